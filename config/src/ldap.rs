//! `[[ldap]]`: an LDAP or Active Directory domain as a user directory.
//!
//! Each section is one domain: the servers to try in order, how to reach them safely, the
//! service account that searches, how users are found and mapped, which groups enable two
//! factors, and whether token records live in the directory. A profile (`openldap` or
//! `active-directory`) fills in the filters and attribute names that differ between the
//! two; every one of them can still be set by hand.

use std::path::PathBuf;

use serde::Deserialize;

use crate::{ConfigError, SharedSecret};

/// The family of directory server, which picks the defaults of a domain.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LdapProfile {
    /// OpenLDAP and most other LDAPv3 servers: `inetOrgPerson` users named by `uid`,
    /// groups found by searching `groupOfNames` / `groupOfUniqueNames` members.
    #[default]
    Openldap,
    /// Active Directory: users named by `sAMAccountName` or `userPrincipalName`, groups
    /// read from `memberOf`, and the account flags (`userAccountControl`,
    /// `accountExpires`, `lockoutTime`) checked before any bind.
    ActiveDirectory,
}

/// How a user's groups are learnt.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupMembership {
    /// From the user entry's `memberOf` attribute (Active Directory, OpenLDAP's memberof
    /// overlay).
    MemberOf,
    /// By a second search for groups that list the user's DN (`group_filter`).
    GroupSearch,
}

/// What a group membership (or the lack of one) means for a login.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupPolicy {
    /// The directory password and a passcode.
    TwoFactor,
    /// The directory password alone (for accounts that cannot hold a token).
    PasswordOnly,
    /// Refused.
    Reject,
}

impl GroupPolicy {
    /// The name used in the configuration and in audit lines.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupPolicy::TwoFactor => "two-factor",
            GroupPolicy::PasswordOnly => "password-only",
            GroupPolicy::Reject => "reject",
        }
    }
}

/// `[[ldap.group]]`: members of `dn` log in under `policy`. The first rule that matches
/// wins.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRule {
    /// Distinguished name of the group.
    pub dn: String,
    /// The policy of its members.
    pub policy: GroupPolicy,
}

/// `[[ldap]]`: one directory domain.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// The domain's DNS name: `user@<domain>` logins go to this directory.
    pub domain: String,
    /// Other names of the domain: a NetBIOS name for `NAME\user` logins, other UPN
    /// suffixes for `user@suffix`.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Whether logins that name no domain go to this directory (at most one domain).
    #[serde(default)]
    pub default: bool,
    /// `openldap` (default) or `active-directory`.
    #[serde(default)]
    pub profile: LdapProfile,
    /// Server URLs in order of preference: `ldaps://host:636` or `ldap://host:389`.
    pub servers: Vec<String>,
    /// Upgrade `ldap://` connections with StartTLS (on by default).
    #[serde(default = "yes")]
    pub starttls: bool,
    /// Allow `ldap://` without StartTLS: passwords then cross the network in clear text.
    #[serde(default)]
    pub allow_plain: bool,
    /// PEM file of the certificate authorities that sign the servers' certificates; the
    /// system's roots when not given.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Distinguished name of the service account that searches (and writes token
    /// records).
    pub bind_dn: String,
    /// The service account's password, inline.
    #[serde(default)]
    pub bind_password: Option<SharedSecret>,
    /// A file holding the service account's password (trailing newline ignored).
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// Where users are searched (subtree).
    pub base_dn: String,
    /// Filter that finds a user: `{user}` is the name without its domain, `{upn}` the
    /// name as `user@domain`; both are escaped (RFC 4515) before they are put in.
    #[serde(default)]
    pub user_filter: Option<String>,
    /// Attribute holding the user's login name.
    #[serde(default)]
    pub name_attribute: Option<String>,
    /// Attribute holding the mobile number.
    #[serde(default = "mobile")]
    pub mobile_attribute: String,
    /// Attribute holding the e-mail address.
    #[serde(default = "mail")]
    pub mail_attribute: String,
    /// How groups are learnt: `member-of` or `group-search` (the profile's choice when not
    /// given).
    #[serde(default)]
    pub group_membership: Option<GroupMembership>,
    /// Filter for `group-search`: `{dn}` is the user's escaped DN.
    #[serde(default)]
    pub group_filter: Option<String>,
    /// Where groups are searched; `base_dn` when not given.
    #[serde(default)]
    pub group_base_dn: Option<String>,
    /// Group rules, first match wins.
    #[serde(default, rename = "group")]
    pub groups: Vec<GroupRule>,
    /// Policy of users that match no rule: `reject` when rules are given, `two-factor`
    /// otherwise.
    #[serde(default)]
    pub others: Option<GroupPolicy>,
    /// Keep users' token records (sealed) in the directory, so that every server reading
    /// it shares them.
    #[serde(default)]
    pub tokens_in_directory: bool,
    /// The attribute that holds token records.
    #[serde(default = "telex_number")]
    pub token_attribute: String,
    /// Milliseconds to establish a connection (TCP and TLS).
    #[serde(default = "connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Milliseconds one search, bind or modify may take.
    #[serde(default = "operation_timeout_ms")]
    pub operation_timeout_ms: u64,
    /// Connections that search as the service account.
    #[serde(default = "two")]
    pub search_connections: usize,
    /// Connections that check user passwords by binding.
    #[serde(default = "four")]
    pub bind_connections: usize,
    /// Directory operations waiting or running at once; beyond it logins are refused.
    #[serde(default = "queue")]
    pub queue: usize,
    /// Seconds a server that failed is skipped before it is tried again.
    #[serde(default = "retry_secs")]
    pub retry_secs: u64,
}

fn yes() -> bool {
    true
}
fn mobile() -> String {
    "mobile".to_owned()
}
fn mail() -> String {
    "mail".to_owned()
}
fn telex_number() -> String {
    "telexNumber".to_owned()
}
fn connect_timeout_ms() -> u64 {
    2_000
}
fn operation_timeout_ms() -> u64 {
    3_000
}
fn two() -> usize {
    2
}
fn four() -> usize {
    4
}
fn queue() -> usize {
    256
}
fn retry_secs() -> u64 {
    10
}

impl LdapConfig {
    /// The user filter, from the profile when not given.
    pub fn user_filter(&self) -> &str {
        match (&self.user_filter, self.profile) {
            (Some(f), _) => f,
            (None, LdapProfile::Openldap) => "(&(objectClass=inetOrgPerson)(uid={user}))",
            (None, LdapProfile::ActiveDirectory) => {
                "(&(objectClass=user)(|(sAMAccountName={user})(userPrincipalName={upn})))"
            }
        }
    }

    /// The login-name attribute, from the profile when not given.
    pub fn name_attribute(&self) -> &str {
        match (&self.name_attribute, self.profile) {
            (Some(a), _) => a,
            (None, LdapProfile::Openldap) => "uid",
            (None, LdapProfile::ActiveDirectory) => "sAMAccountName",
        }
    }

    /// How groups are learnt, from the profile when not given.
    pub fn group_membership(&self) -> GroupMembership {
        match (self.group_membership, self.profile) {
            (Some(g), _) => g,
            (None, LdapProfile::Openldap) => GroupMembership::GroupSearch,
            (None, LdapProfile::ActiveDirectory) => GroupMembership::MemberOf,
        }
    }

    /// The group filter of `group-search`.
    pub fn group_filter(&self) -> &str {
        self.group_filter.as_deref().unwrap_or(
            "(|(&(objectClass=groupOfNames)(member={dn}))(&(objectClass=groupOfUniqueNames)(uniqueMember={dn})))",
        )
    }

    /// The policy of users that match no group rule.
    pub fn others(&self) -> GroupPolicy {
        self.others.unwrap_or(if self.groups.is_empty() {
            GroupPolicy::TwoFactor
        } else {
            GroupPolicy::Reject
        })
    }

    /// The service account's password, read from `bind_password_file` when given.
    pub fn resolve_bind_password(&self) -> Result<SharedSecret, ConfigError> {
        if let Some(path) = &self.bind_password_file {
            return SharedSecret::from_file(path);
        }
        self.bind_password
            .clone()
            .ok_or_else(|| ConfigError::invalid("ldap.bind_password", "missing"))
    }

    /// Every name this domain answers to, lowercased.
    pub fn names(&self) -> impl Iterator<Item = String> + '_ {
        std::iter::once(&self.domain)
            .chain(&self.aliases)
            .map(|n| n.to_ascii_lowercase())
    }

    pub(crate) fn validate(&self, i: usize) -> Result<(), ConfigError> {
        let at = |key: &str| format!("ldap[{i}].{key}");
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 253
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        };
        if !name_ok(&self.domain) {
            return Err(ConfigError::invalid(
                at("domain"),
                "must be a domain name (letters, digits, '-', '.', '_')",
            ));
        }
        for (j, a) in self.aliases.iter().enumerate() {
            if !name_ok(a) {
                return Err(ConfigError::invalid(
                    at(&format!("aliases[{j}]")),
                    "must be a domain or NetBIOS name (letters, digits, '-', '.', '_')",
                ));
            }
        }
        if self.servers.is_empty() {
            return Err(ConfigError::invalid(
                at("servers"),
                "needs at least one ldap:// or ldaps:// URL",
            ));
        }
        for (j, url) in self.servers.iter().enumerate() {
            let key = at(&format!("servers[{j}]"));
            let rest = if let Some(rest) = url.strip_prefix("ldaps://") {
                rest
            } else if let Some(rest) = url.strip_prefix("ldap://") {
                if !self.starttls && !self.allow_plain {
                    return Err(ConfigError::invalid(
                        key,
                        "is plain LDAP: set starttls = true, use ldaps://, or set allow_plain = true to send passwords in clear text",
                    ));
                }
                rest
            } else {
                return Err(ConfigError::invalid(
                    key,
                    format!("`{url}` must start with ldap:// or ldaps://"),
                ));
            };
            let host = rest.trim_end_matches('/');
            if host.is_empty() || host.contains('/') || host.contains('?') {
                return Err(ConfigError::invalid(
                    key,
                    format!("`{url}` must be scheme://host[:port] with nothing after"),
                ));
            }
        }
        if self.bind_dn.trim().is_empty() {
            return Err(ConfigError::invalid(at("bind_dn"), "must not be empty"));
        }
        match (&self.bind_password, &self.bind_password_file) {
            (None, None) => {
                return Err(ConfigError::invalid(
                    at("bind_password"),
                    "give bind_password or bind_password_file",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    at("bind_password_file"),
                    "give bind_password or bind_password_file, not both",
                ))
            }
            // An empty bind password is an anonymous bind that "succeeds".
            (Some(p), None) if p.is_empty() => {
                return Err(ConfigError::invalid(
                    at("bind_password"),
                    "must not be empty (an empty password binds anonymously)",
                ))
            }
            _ => {}
        }
        if self.base_dn.trim().is_empty() {
            return Err(ConfigError::invalid(at("base_dn"), "must not be empty"));
        }
        let filter = self.user_filter();
        if !(filter.contains("{user}") || filter.contains("{upn}")) || !balanced(filter) {
            return Err(ConfigError::invalid(
                at("user_filter"),
                "must be a parenthesised filter that uses {user} or {upn}",
            ));
        }
        if self.group_membership() == GroupMembership::GroupSearch
            && (!self.group_filter().contains("{dn}") || !balanced(self.group_filter()))
        {
            return Err(ConfigError::invalid(
                at("group_filter"),
                "must be a parenthesised filter that uses {dn}",
            ));
        }
        for (j, g) in self.groups.iter().enumerate() {
            if g.dn.trim().is_empty() {
                return Err(ConfigError::invalid(
                    at(&format!("group[{j}].dn")),
                    "must not be empty",
                ));
            }
        }
        if self.token_attribute.is_empty()
            || !self
                .token_attribute
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(ConfigError::invalid(
                at("token_attribute"),
                "must be an attribute name",
            ));
        }
        if !(100..=60_000).contains(&self.connect_timeout_ms) {
            return Err(ConfigError::invalid(
                at("connect_timeout_ms"),
                "must be between 100 and 60000",
            ));
        }
        if !(100..=60_000).contains(&self.operation_timeout_ms) {
            return Err(ConfigError::invalid(
                at("operation_timeout_ms"),
                "must be between 100 and 60000",
            ));
        }
        for (key, n) in [
            ("search_connections", self.search_connections),
            ("bind_connections", self.bind_connections),
        ] {
            if !(1..=64).contains(&n) {
                return Err(ConfigError::invalid(at(key), "must be between 1 and 64"));
            }
        }
        if !(1..=1_000_000).contains(&self.queue) {
            return Err(ConfigError::invalid(
                at("queue"),
                "must be between 1 and 1000000",
            ));
        }
        if !(1..=3600).contains(&self.retry_secs) {
            return Err(ConfigError::invalid(
                at("retry_secs"),
                "must be between 1 and 3600",
            ));
        }
        Ok(())
    }
}

/// Whether a filter starts with '(' and its parentheses balance.
fn balanced(filter: &str) -> bool {
    let mut depth = 0i32;
    for c in filter.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0 && filter.starts_with('(')
}

/// Checks what only the set of domains can tell: names unique, one default at most.
pub(crate) fn validate_all(domains: &[LdapConfig]) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashSet::new();
    let mut default = None;
    for (i, d) in domains.iter().enumerate() {
        d.validate(i)?;
        for name in d.names() {
            if !seen.insert(name.clone()) {
                return Err(ConfigError::invalid(
                    format!("ldap[{i}].domain"),
                    format!("`{name}` names two domains"),
                ));
            }
        }
        if d.default {
            if let Some(first) = default {
                return Err(ConfigError::invalid(
                    format!("ldap[{i}].default"),
                    format!("ldap[{first}] is already the default domain"),
                ));
            }
            default = Some(i);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{Config, ConfigError, GroupMembership, GroupPolicy, LdapProfile};

    const BASE: &str = r#"
[[ldap]]
domain = "example.com"
servers = ["ldaps://ldap1.example.com", "ldap://ldap2.example.com:389"]
bind_dn = "cn=tollgate,ou=services,dc=example,dc=com"
bind_password = "s3rvice"
base_dn = "dc=example,dc=com"
"#;

    fn refused(text: &str) -> (String, String) {
        match Config::parse(text).expect_err("config should be refused") {
            e @ ConfigError::Invalid { .. } | e @ ConfigError::Syntax { .. } => {
                (e.key_path().unwrap_or_default().to_owned(), e.to_string())
            }
            e => panic!("unexpected error {e}"),
        }
    }

    #[test]
    fn a_minimal_domain_takes_the_openldap_defaults() {
        let c = Config::parse(BASE).unwrap();
        let d = &c.ldap[0];
        assert_eq!(d.profile, LdapProfile::Openldap);
        assert!(d.starttls && !d.allow_plain && !d.tokens_in_directory);
        assert_eq!(
            d.user_filter(),
            "(&(objectClass=inetOrgPerson)(uid={user}))"
        );
        assert_eq!(d.name_attribute(), "uid");
        assert_eq!(d.group_membership(), GroupMembership::GroupSearch);
        assert_eq!(d.others(), GroupPolicy::TwoFactor);
        assert_eq!(d.token_attribute, "telexNumber");
        assert_eq!(d.resolve_bind_password().unwrap().expose(), b"s3rvice");
        assert!(!format!("{d:?}").contains("s3rvice"));
    }

    #[test]
    fn the_active_directory_profile_reads_member_of() {
        let text = format!(
            "{BASE}profile = \"active-directory\"\naliases = [\"EXAMPLE\"]\n[[ldap.group]]\ndn = \"cn=vpn,dc=example,dc=com\"\npolicy = \"two-factor\"\n"
        );
        let c = Config::parse(&text).unwrap();
        let d = &c.ldap[0];
        assert_eq!(d.group_membership(), GroupMembership::MemberOf);
        assert_eq!(d.name_attribute(), "sAMAccountName");
        assert!(d.user_filter().contains("{upn}"));
        assert_eq!(d.others(), GroupPolicy::Reject);
        assert_eq!(
            d.names().collect::<Vec<_>>(),
            vec!["example.com".to_owned(), "example".to_owned()]
        );
    }

    #[test]
    fn plain_ldap_needs_to_be_asked_for() {
        let text = format!("{BASE}starttls = false\n");
        let (path, msg) = refused(&text);
        assert_eq!(path, "ldap[0].servers[1]");
        assert!(msg.contains("clear text"), "{msg}");
        let text = format!("{BASE}starttls = false\nallow_plain = true\n");
        assert!(Config::parse(&text).is_ok());
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (
                BASE.replace("ldaps://ldap1", "http://ldap1"),
                "ldap[0].servers[0]",
            ),
            (BASE.replace("\"s3rvice\"", "\"\""), "ldap[0].bind_password"),
            (
                BASE.replace("bind_password = \"s3rvice\"\n", ""),
                "ldap[0].bind_password",
            ),
            (
                BASE.replace("example.com\"\nservers", "exa mple\"\nservers"),
                "ldap[0].domain",
            ),
            (
                format!("{BASE}user_filter = \"(uid=alice)\"\n"),
                "ldap[0].user_filter",
            ),
            (
                format!("{BASE}user_filter = \"(uid={{user}}\"\n"),
                "ldap[0].user_filter",
            ),
            (
                format!("{BASE}bind_connections = 0\n"),
                "ldap[0].bind_connections",
            ),
            (format!("{BASE}queue = 0\n"), "ldap[0].queue"),
            (
                format!("{BASE}operation_timeout_ms = 5\n"),
                "ldap[0].operation_timeout_ms",
            ),
            (
                format!("{BASE}token_attribute = \"telex number\"\n"),
                "ldap[0].token_attribute",
            ),
            (format!("{BASE}colour = \"blue\"\n"), "ldap[0]"),
        ];
        for (text, want) in cases {
            let (path, msg) = refused(&text);
            assert!(path.starts_with(want), "{want}: got {path}: {msg}");
        }
    }

    #[test]
    fn domains_and_defaults_are_unique() {
        let two = format!("{BASE}default = true\n{}default = true\n", BASE);
        let (path, _) = refused(&two);
        assert_eq!(path, "ldap[1].domain");
        let other = BASE.replace("example.com\"\nservers", "other.example\"\nservers");
        let two = format!("{BASE}default = true\n{other}default = true\n");
        let (path, msg) = refused(&two);
        assert_eq!(path, "ldap[1].default", "{msg}");
    }

    #[test]
    fn the_bind_password_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bind.pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let text = BASE.replace(
            "bind_password = \"s3rvice\"",
            &format!("bind_password_file = {:?}", file.display().to_string()),
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(
            c.ldap[0].resolve_bind_password().unwrap().expose(),
            b"from-file"
        );
    }
}
