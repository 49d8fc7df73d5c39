//! One directory domain: finding a user, reading what the directory says of them, checking
//! their password by binding, and swapping their token records.

use std::sync::Arc;

use dashmap::DashMap;
use ldap3::{ldap_escape, SearchEntry};
use tokio::sync::Semaphore;
use tollgate_config::{GroupMembership, GroupPolicy, LdapConfig, LdapProfile};
use tollgate_engine::login::LockoutState;
use zeroize::Zeroizing;

use super::conn::{rc, Endpoints, Op, OpResult};
use super::pool::DomainPools;
use super::record::{self, DirToken, RecordError};
use super::DirError;
use crate::store::MasterKey;

/// What the directory says of an account, before any password is tried.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Account {
    /// Usable.
    Active,
    /// Disabled (`userAccountControl` bit 2, or AD bind data 533).
    Disabled,
    /// Past `accountExpires` (or AD bind data 701).
    Expired,
    /// Locked by the directory's own lockout (or AD bind data 775).
    Locked,
    /// The password expired or must be changed (AD bind data 532 / 773).
    PasswordExpired,
}

/// A user as found in the directory.
#[derive(Debug)]
pub struct DirUser {
    /// Distinguished name, for the bind and for token writes.
    pub dn: String,
    /// The login name the directory holds (`uid`, `sAMAccountName`).
    pub name: String,
    /// `name@domain`: the user's name in Tollgate (embedded tokens, lockout, audit).
    pub qualified: String,
    /// Mobile number, if any.
    pub mobile: Option<String>,
    /// E-mail address, if any.
    pub mail: Option<String>,
    /// Groups, as normalised DNs.
    pub groups: Vec<String>,
    /// The account's state.
    pub account: Account,
    /// Values of the token attribute that are Tollgate records.
    pub token_values: Vec<String>,
}

/// The result of a password check.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BindResult {
    /// The directory accepted the password.
    Good,
    /// It did not.
    Bad,
    /// It refused because of the account's state.
    Account(Account),
}

/// The result of swapping a token record.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SwapResult {
    /// Written.
    Written,
    /// The old value was gone: another login (here or on another server) advanced it.
    Conflict,
    /// The service account may not write the attribute.
    AccessDenied,
}

/// A configured directory domain and its connections.
pub struct Domain {
    /// The domain's name, lowercase.
    pub name: String,
    /// Its settings.
    pub config: LdapConfig,
    /// Its servers.
    pub ends: Arc<Endpoints>,
    pools: DomainPools,
    /// Logins against this domain in progress at once; beyond it they are refused.
    pub gate: Arc<Semaphore>,
    key: Arc<MasterKey>,
    groups: Vec<(String, GroupPolicy)>,
    /// Failure counts of users that have no entry in the embedded store (kept in memory).
    pub lockouts: DashMap<String, LockoutState>,
    /// Locks that serialise the token checks of one entry on this server.
    entry_locks: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    /// Whether the token attribute takes single-value deletes (cleared on the first
    /// inappropriateMatching answer).
    atomic_writes: std::sync::atomic::AtomicBool,
}

/// Normalises a DN for comparison: lowercase, no spaces around separators.
pub fn normalize_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| {
            rdn.split('=')
                .map(|p| p.trim().to_lowercase())
                .collect::<Vec<_>>()
                .join("=")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Puts escaped values into a filter template in one pass, so that a value can never
/// introduce a placeholder of its own.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    'outer: while !rest.is_empty() {
        for (name, value) in values {
            if let Some(after) = rest.strip_prefix(name) {
                out.push_str(&ldap_escape(*value));
                rest = after;
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Finds an attribute's values without regard to the case of its name.
fn values<'a>(entry: &'a SearchEntry, name: &str) -> &'a [String] {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
        .unwrap_or(&[])
}

fn first(entry: &SearchEntry, name: &str) -> Option<String> {
    values(entry, name).first().cloned()
}

/// Seconds between 1601-01-01 and 1970-01-01, for Windows FILETIME values.
const FILETIME_UNIX_OFFSET: u64 = 11_644_473_600;
/// `accountExpires` of an account that never expires.
const NEVER: u64 = 0x7FFF_FFFF_FFFF_FFFF;
const UF_ACCOUNTDISABLE: u64 = 0x2;
const UF_LOCKOUT: u64 = 0x10;
const UF_PASSWORD_EXPIRED: u64 = 0x80_0000;

/// Reads Active Directory's account flags.
fn ad_account(entry: &SearchEntry, now: u64) -> Account {
    let num = |name: &str| first(entry, name).and_then(|v| v.trim().parse::<u64>().ok());
    let uac = num("userAccountControl").unwrap_or(0);
    let computed = num("msDS-User-Account-Control-Computed").unwrap_or(0);
    if uac & UF_ACCOUNTDISABLE != 0 {
        return Account::Disabled;
    }
    if let Some(expires) = num("accountExpires") {
        if expires != 0 && expires != NEVER {
            let at = (expires / 10_000_000).saturating_sub(FILETIME_UNIX_OFFSET);
            if at <= now {
                return Account::Expired;
            }
        }
    }
    if (uac | computed) & UF_LOCKOUT != 0 {
        return Account::Locked;
    }
    if computed & UF_PASSWORD_EXPIRED != 0 || num("pwdLastSet") == Some(0) {
        return Account::PasswordExpired;
    }
    Account::Active
}

/// Reads the sub-code Active Directory puts in an invalidCredentials message
/// (`... data 775, ...`).
fn ad_bind_refusal(text: &str) -> BindResult {
    let code = text.split("data ").nth(1).map(|s| {
        s.chars()
            .take_while(char::is_ascii_hexdigit)
            .collect::<String>()
    });
    match code.as_deref() {
        Some("533") => BindResult::Account(Account::Disabled),
        Some("701") => BindResult::Account(Account::Expired),
        Some("775") => BindResult::Account(Account::Locked),
        Some("532") | Some("773") => BindResult::Account(Account::PasswordExpired),
        _ => BindResult::Bad,
    }
}

impl Domain {
    /// A domain over running pools.
    pub fn new(
        config: LdapConfig,
        ends: Arc<Endpoints>,
        pools: DomainPools,
        key: Arc<MasterKey>,
    ) -> Domain {
        let groups = config
            .groups
            .iter()
            .map(|g| (normalize_dn(&g.dn), g.policy))
            .collect();
        Domain {
            name: config.domain.to_ascii_lowercase(),
            gate: Arc::new(Semaphore::new(config.queue)),
            config,
            ends,
            pools,
            key,
            groups,
            lockouts: DashMap::new(),
            entry_locks: DashMap::new(),
            atomic_writes: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// The pools (for fault injection in tests).
    pub fn pools(&self) -> &DomainPools {
        &self.pools
    }

    fn wanted_attributes(&self) -> Vec<String> {
        let c = &self.config;
        let mut attrs = vec![
            c.name_attribute().to_owned(),
            c.mobile_attribute.clone(),
            c.mail_attribute.clone(),
        ];
        if c.tokens_in_directory {
            attrs.push(c.token_attribute.clone());
        }
        if c.group_membership() == GroupMembership::MemberOf {
            attrs.push("memberOf".to_owned());
        }
        if c.profile == LdapProfile::ActiveDirectory {
            for a in [
                "userAccountControl",
                "msDS-User-Account-Control-Computed",
                "accountExpires",
                "pwdLastSet",
            ] {
                attrs.push(a.to_owned());
            }
        }
        attrs
    }

    /// Finds a user by the name typed (without its domain). `None` when there is no such
    /// user; an error when the directory could not tell or several entries match.
    pub async fn find_user(&self, user: &str, now: u64) -> Result<Option<DirUser>, DirError> {
        if user.is_empty() || user.len() > 256 {
            return Ok(None);
        }
        let upn = format!("{user}@{}", self.name);
        let filter = fill(
            self.config.user_filter(),
            &[("{user}", user), ("{upn}", &upn)],
        );
        let found = self
            .pools
            .search
            .run(Op::Search {
                base: self.config.base_dn.clone(),
                filter,
                attrs: self.wanted_attributes(),
            })
            .await?;
        let OpResult::Entries(mut entries) = found else {
            return Err(DirError::Protocol("a search returned no entries".into()));
        };
        if entries.len() > 1 {
            return Err(DirError::Ambiguous(entries.len()));
        }
        let Some(entry) = entries.pop() else {
            return Ok(None);
        };
        let groups = match self.config.group_membership() {
            GroupMembership::MemberOf => values(&entry, "memberOf")
                .iter()
                .map(|g| normalize_dn(g))
                .collect(),
            GroupMembership::GroupSearch if self.groups.is_empty() => Vec::new(),
            GroupMembership::GroupSearch => self.search_groups(&entry.dn).await?,
        };
        let account = match self.config.profile {
            LdapProfile::ActiveDirectory => ad_account(&entry, now),
            LdapProfile::Openldap => Account::Active,
        };
        let name = first(&entry, self.config.name_attribute()).unwrap_or_else(|| user.to_owned());
        let token_values = if self.config.tokens_in_directory {
            values(&entry, &self.config.token_attribute)
                .iter()
                .filter(|v| v.starts_with(record::PREFIX))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        Ok(Some(DirUser {
            qualified: format!("{}@{}", name.to_lowercase(), self.name),
            dn: entry.dn.clone(),
            name,
            mobile: first(&entry, &self.config.mobile_attribute),
            mail: first(&entry, &self.config.mail_attribute),
            groups,
            account,
            token_values,
        }))
    }

    async fn search_groups(&self, dn: &str) -> Result<Vec<String>, DirError> {
        let filter = fill(self.config.group_filter(), &[("{dn}", dn)]);
        let base = self
            .config
            .group_base_dn
            .clone()
            .unwrap_or_else(|| self.config.base_dn.clone());
        match self
            .pools
            .search
            .run(Op::Search {
                base,
                filter,
                attrs: vec!["1.1".to_owned()],
            })
            .await?
        {
            OpResult::Entries(groups) => Ok(groups.iter().map(|g| normalize_dn(&g.dn)).collect()),
            OpResult::Code(..) => Err(DirError::Protocol("a search returned a code".into())),
        }
    }

    /// The policy the group rules give this user.
    pub fn policy(&self, user: &DirUser) -> GroupPolicy {
        self.groups
            .iter()
            .find(|(dn, _)| user.groups.iter().any(|g| g == dn))
            .map(|(_, p)| *p)
            .unwrap_or_else(|| self.config.others())
    }

    /// Checks a password by binding as the user. An empty password is refused without a
    /// bind: to a directory, an empty simple bind is an anonymous one, and it succeeds.
    pub async fn check_password(&self, dn: &str, password: &[u8]) -> Result<BindResult, DirError> {
        if password.is_empty() || dn.is_empty() {
            return Ok(BindResult::Bad);
        }
        let Ok(password) = std::str::from_utf8(password) else {
            return Ok(BindResult::Bad);
        };
        let op = Op::Bind {
            dn: dn.to_owned(),
            password: Zeroizing::new(password.to_owned()),
        };
        match self.pools.bind.run(op).await? {
            OpResult::Code(rc::SUCCESS, _) => Ok(BindResult::Good),
            OpResult::Code(rc::INVALID_CREDENTIALS, text) => Ok(ad_bind_refusal(&text)),
            OpResult::Code(code, text) => {
                tracing::debug!(domain = %self.name, rc = code, text = %text.trim(), "bind refused");
                Ok(BindResult::Bad)
            }
            OpResult::Entries(_) => Err(DirError::Protocol("a bind returned entries".into())),
        }
    }

    /// The lock that serialises token checks of one entry on this server.
    pub fn entry_lock(&self, dn: &str) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(&self.entry_locks.entry(dn.to_lowercase()).or_default())
    }

    /// Drops the lock of an entry nobody else holds or waits for.
    pub fn release_entry_lock(&self, dn: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        drop(lock);
        self.entry_locks
            .remove_if(&dn.to_lowercase(), |_, l| Arc::strong_count(l) == 1);
    }

    /// Reads the current values of the user's token attribute.
    pub async fn read_token_values(&self, dn: &str) -> Result<Vec<String>, DirError> {
        let attr = self.config.token_attribute.clone();
        match self
            .pools
            .search
            .run(Op::Read {
                dn: dn.to_owned(),
                attrs: vec![attr.clone()],
            })
            .await?
        {
            OpResult::Entries(entries) => Ok(entries
                .first()
                .map(|e| values(e, &attr).to_vec())
                .unwrap_or_default()),
            OpResult::Code(..) => Err(DirError::Protocol("a read returned a code".into())),
        }
    }

    /// Writes `new` in place of `old` (or beside the others when `old` is `None`) in the
    /// user's token attribute, whose values were just read as `current`.
    ///
    /// Where the attribute has an equality rule this is one atomic modify (delete the old
    /// value, add the new): it fails if another server advanced the record first. Where it
    /// has none (`telexNumber` in OpenLDAP's core schema) single values cannot be named,
    /// and the whole value set is replaced instead; the caller holds the entry's lock, so
    /// this server never races itself, and `current` was read under it.
    pub async fn write_token(
        &self,
        dn: &str,
        old: Option<&str>,
        new: String,
        current: &[String],
    ) -> Result<SwapResult, DirError> {
        let attr = self.config.token_attribute.clone();
        if self
            .atomic_writes
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            let op = Op::Swap {
                dn: dn.to_owned(),
                attr: attr.clone(),
                old: old.map(str::to_owned),
                new: new.clone(),
            };
            match self.pools.search.run(op).await? {
                OpResult::Code(rc::INAPPROPRIATE_MATCHING, _) => {
                    self.atomic_writes
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(domain = %self.name, attribute = %attr,
                        "the token attribute has no equality rule: token records are replaced whole, under a per-server lock");
                }
                other => return self.swap_result(dn, other),
            }
        }
        let mut values: Vec<String> = current
            .iter()
            .filter(|v| Some(v.as_str()) != old)
            .cloned()
            .collect();
        values.push(new);
        let op = Op::Replace {
            dn: dn.to_owned(),
            attr,
            values,
        };
        let result = self.pools.search.run(op).await?;
        self.swap_result(dn, result)
    }

    fn swap_result(&self, dn: &str, result: OpResult) -> Result<SwapResult, DirError> {
        match result {
            OpResult::Code(rc::SUCCESS, _) => Ok(SwapResult::Written),
            OpResult::Code(rc::NO_SUCH_ATTRIBUTE | rc::VALUE_EXISTS, _) => Ok(SwapResult::Conflict),
            OpResult::Code(rc::INSUFFICIENT_ACCESS, _) => {
                tracing::error!(domain = %self.name, dn, attribute = %self.config.token_attribute,
                    "Error writing to LDAP, access denied: the service account may not write the token attribute");
                Ok(SwapResult::AccessDenied)
            }
            OpResult::Code(code, text) => Err(DirError::Protocol(format!(
                "modify of {} refused: rc {code} {}",
                self.config.token_attribute,
                text.trim()
            ))),
            OpResult::Entries(_) => Err(DirError::Protocol("a modify returned entries".into())),
        }
    }

    /// Opens the user's token records; damaged or foreign ones are skipped (and logged).
    pub fn tokens(&self, user: &DirUser) -> Vec<(String, DirToken)> {
        self.open_tokens(user, &user.token_values)
    }

    /// Opens token records read from the user's entry.
    pub fn open_tokens(&self, user: &DirUser, values: &[String]) -> Vec<(String, DirToken)> {
        values
            .iter()
            .filter_map(|v| match record::decode(&self.key, &self.name, &user.name, v) {
                Ok(t) => Some((v.clone(), t)),
                Err(RecordError::Foreign) => None,
                Err(e) => {
                    tracing::warn!(domain = %self.name, user = %user.qualified, error = %e, "token record skipped");
                    None
                }
            })
            .collect()
    }

    /// Seals a token record for the user.
    pub fn seal(&self, user: &DirUser, token: &DirToken) -> String {
        record::encode(&self.key, &self.name, &user.name, token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn entry(attrs: &[(&str, &str)]) -> SearchEntry {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in attrs {
            map.entry((*k).to_owned())
                .or_default()
                .push((*v).to_owned());
        }
        SearchEntry {
            dn: "cn=x,dc=example,dc=com".into(),
            attrs: map,
            bin_attrs: HashMap::new(),
        }
    }

    #[test]
    fn fill_escapes_values_and_never_reexpands_them() {
        let f = fill(
            "(&(uid={user})(upn={upn}))",
            &[("{user}", "a*)(uid=*"), ("{upn}", "x")],
        );
        assert_eq!(f, "(&(uid=a\\2a\\29\\28uid=\\2a)(upn=x))");
        let f = fill("(uid={user})", &[("{user}", "{upn}"), ("{upn}", "boom")]);
        assert_eq!(f, "(uid={upn})");
        let f = fill("(cn=é{user})", &[("{user}", "\\0")]);
        assert_eq!(f, "(cn=é\\5c0)");
    }

    proptest::proptest! {
        /// Whatever a user types as their name, the filled filter keeps the template's
        /// structure: no parenthesis, asterisk or backslash of theirs survives unescaped.
        #[test]
        fn any_name_stays_inside_its_filter_value(name in "\\PC{0,40}") {
            let f = fill("(&(objectClass=user)(uid={user}))", &[("{user}", &name)]);
            let inner = f
                .strip_prefix("(&(objectClass=user)(uid=")
                .and_then(|r| r.strip_suffix("))"))
                .expect("the template's frame is intact");
            proptest::prop_assert!(!inner.contains(['(', ')', '*', '\0']));
            proptest::prop_assert!(inner.replace("\\5c", "").replace("\\28", "").replace("\\29", "").replace("\\2a", "").replace("\\00", "").chars().all(|c| c != '\\'));
        }

        /// Directory answers are read without panicking, whatever they hold.
        #[test]
        fn directory_values_never_panic(text in "\\PC{0,80}", uac in "[0-9a-z ]{0,25}") {
            let _ = ad_bind_refusal(&text);
            let _ = ad_account(&entry(&[("userAccountControl", &uac), ("accountExpires", &uac), ("pwdLastSet", &text)]), 1_800_000_000);
            let _ = normalize_dn(&text);
        }
    }

    #[test]
    fn dns_compare_without_case_or_spaces() {
        assert_eq!(
            normalize_dn("CN=VPN Users, OU=Groups,DC=Example, DC=com"),
            normalize_dn("cn=vpn users,ou=groups,dc=example,dc=com")
        );
    }

    #[test]
    fn active_directory_flags_are_read() {
        let now = 1_800_000_000;
        assert_eq!(
            ad_account(&entry(&[("userAccountControl", "512")]), now),
            Account::Active
        );
        assert_eq!(
            ad_account(&entry(&[("userAccountControl", "514")]), now),
            Account::Disabled
        );
        assert_eq!(
            ad_account(
                &entry(&[
                    ("userAccountControl", "512"),
                    ("accountExpires", "130000000000000000")
                ]),
                now
            ),
            Account::Expired
        );
        assert_eq!(
            ad_account(
                &entry(&[
                    ("userAccountControl", "512"),
                    ("accountExpires", "9223372036854775807")
                ]),
                now
            ),
            Account::Active
        );
        assert_eq!(
            ad_account(
                &entry(&[
                    ("userAccountControl", "512"),
                    ("msDS-User-Account-Control-Computed", "16")
                ]),
                now
            ),
            Account::Locked
        );
        assert_eq!(
            ad_account(
                &entry(&[("userAccountControl", "512"), ("pwdLastSet", "0")]),
                now
            ),
            Account::PasswordExpired
        );
        assert_eq!(
            ad_account(&entry(&[("userAccountControl", "junk")]), now),
            Account::Active
        );
    }

    #[test]
    fn active_directory_bind_codes_are_read() {
        let msg = |d: &str| {
            format!("80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data {d}, v4563")
        };
        assert_eq!(ad_bind_refusal(&msg("52e")), BindResult::Bad);
        assert_eq!(
            ad_bind_refusal(&msg("775")),
            BindResult::Account(Account::Locked)
        );
        assert_eq!(
            ad_bind_refusal(&msg("533")),
            BindResult::Account(Account::Disabled)
        );
        assert_eq!(
            ad_bind_refusal(&msg("701")),
            BindResult::Account(Account::Expired)
        );
        assert_eq!(
            ad_bind_refusal(&msg("773")),
            BindResult::Account(Account::PasswordExpired)
        );
        assert_eq!(ad_bind_refusal("Invalid credentials"), BindResult::Bad);
    }
}
