//! LDAP and Active Directory domains as user directories.
//!
//! This module owns everything Tollgate does with an external directory: routing a login
//! name to its domain (`user@domain`, `DOMAIN\user`, or the default domain), the
//! supervised pool of connection actors per domain (`pool`), failover and health of the
//! servers (`conn`), finding users and reading their attributes, groups and account flags,
//! checking passwords by binding (`domain`), token records kept in a directory attribute
//! (`record`), and the login procedure for directory users (`login`).
//!
//! Users of no configured domain stay in the embedded directory (`crate::state`). A
//! directory user may also have an entry in the embedded store named `user@domain`: it
//! holds their tokens (unless the domain keeps them in the directory) and their lockout
//! state.

pub mod conn;
pub mod domain;
pub mod login;
pub mod pool;
pub mod record;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};
use tokio::sync::oneshot;
use tollgate_config::LdapConfig;

pub use domain::{Account, BindResult, DirUser, Domain, SwapResult};

use crate::store::MasterKey;

/// Why a directory operation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DirError {
    /// No server of the domain answered in time.
    #[error("no directory server answered")]
    Unavailable,
    /// A server refused the service account.
    #[error("the directory refused the service account: {0}")]
    ServiceBind(String),
    /// Several entries match one login name.
    #[error("{0} entries match the login name")]
    Ambiguous(usize),
    /// The server answered something unexpected.
    #[error("directory protocol error: {0}")]
    Protocol(String),
    /// The domain's settings do not work (CA file, password file).
    #[error("{0}")]
    Setup(String),
}

/// A login name routed to a domain.
pub struct Route<'a> {
    /// The domain.
    pub domain: &'a Arc<Domain>,
    /// The name without its domain part.
    pub user: &'a str,
}

/// Every configured domain, and the routing of login names to them.
#[derive(Default)]
pub struct Domains {
    list: Vec<Arc<Domain>>,
    by_name: HashMap<String, usize>,
    default: Option<usize>,
    supervisor: Option<ActorRef<pool::SupervisorMsg>>,
}

impl Domains {
    /// No domains: every user is in the embedded directory.
    pub fn none() -> Domains {
        Domains::default()
    }

    /// Starts the connection pools of every configured domain under one supervisor.
    /// Connections open on first use, so a directory that is down does not stop the
    /// server from starting.
    pub async fn start(configs: &[LdapConfig], key: Arc<MasterKey>) -> Result<Domains, DirError> {
        if configs.is_empty() {
            return Ok(Domains::none());
        }
        let mut ends = Vec::new();
        for c in configs {
            ends.push((
                Arc::new(conn::Endpoints::new(c)?),
                c.search_connections,
                c.bind_connections,
            ));
        }
        let probe_every = configs
            .iter()
            .map(|c| c.retry_secs)
            .min()
            .map_or(Duration::from_secs(10), Duration::from_secs);
        let (tx, rx) = oneshot::channel();
        let endpoints: Vec<_> = ends.iter().map(|(e, _, _)| Arc::clone(e)).collect();
        let (supervisor, _) = Actor::spawn(
            None,
            pool::DirectorySupervisor,
            pool::SupervisorArgs {
                domains: ends,
                pools: tx,
                probe_every,
            },
        )
        .await
        .map_err(|e| DirError::Setup(format!("cannot start the directory supervisor: {e}")))?;
        let pools = rx
            .await
            .map_err(|_| DirError::Setup("the directory supervisor did not start".into()))?;
        let mut domains = Domains {
            supervisor: Some(supervisor),
            ..Domains::default()
        };
        for ((config, ends), pools) in configs.iter().zip(endpoints).zip(pools) {
            // The domain's error and failover series exist from start-up, at zero, so that
            // dashboards and alerts see a healthy directory rather than no data.
            for role in ["search", "bind"] {
                metrics::counter!(crate::metrics::LDAP_ERRORS_TOTAL, "domain" => ends.domain.clone(), "role" => role)
                    .increment(0);
            }
            metrics::counter!(crate::metrics::LDAP_FAILOVERS_TOTAL, "domain" => ends.domain.clone())
                .increment(0);
            let i = domains.list.len();
            for name in config.names() {
                domains.by_name.insert(name, i);
            }
            if config.default {
                domains.default = Some(i);
            }
            domains.list.push(Arc::new(Domain::new(
                config.clone(),
                ends,
                pools,
                Arc::clone(&key),
            )));
        }
        Ok(domains)
    }

    /// Whether no domain is configured.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The configured domains.
    pub fn list(&self) -> &[Arc<Domain>] {
        &self.list
    }

    /// The domain answering to `name` (its domain name or an alias).
    pub fn by_name(&self, name: &str) -> Option<&Arc<Domain>> {
        self.by_name
            .get(&name.to_ascii_lowercase())
            .map(|&i| &self.list[i])
    }

    /// The domain of logins that name none.
    pub fn default_domain(&self) -> Option<&Arc<Domain>> {
        self.default.map(|i| &self.list[i])
    }

    /// The domain a login name belongs to, and the name without its domain part.
    /// `user@domain` and `DOMAIN\user` go to a configured domain of that name; a name with
    /// no domain part goes to the default domain; anything else stays embedded.
    pub fn route<'a>(&'a self, login: &'a str) -> Option<Route<'a>> {
        if self.list.is_empty() {
            return None;
        }
        if let Some((prefix, user)) = login.split_once('\\') {
            return self.by_name(prefix).map(|domain| Route { domain, user });
        }
        if let Some((user, suffix)) = login.rsplit_once('@') {
            return self.by_name(suffix).map(|domain| Route { domain, user });
        }
        self.default_domain().map(|domain| Route {
            domain,
            user: login,
        })
    }

    /// Stops the connection actors.
    pub fn stop(&self) {
        if let Some(s) = &self.supervisor {
            s.stop(Some("server stopping".to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> tollgate_config::Config {
        tollgate_config::Config::parse(text).expect("config parses")
    }

    #[tokio::test]
    async fn login_names_route_to_their_domain() {
        let c = config(
            r#"
[[ldap]]
domain = "example.com"
aliases = ["EXAMPLE"]
default = true
servers = ["ldap://127.0.0.1:1"]
bind_dn = "cn=svc"
bind_password = "pw"
base_dn = "dc=example,dc=com"
[[ldap]]
domain = "corp.example.com"
aliases = ["CORP"]
servers = ["ldaps://127.0.0.1:1"]
bind_dn = "cn=svc"
bind_password = "pw"
base_dn = "dc=corp"
"#,
        );
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::load_or_create(&dir.path().join("k")).unwrap().0;
        // Connections open on first use: nothing listens on port 1 and start-up succeeds.
        let domains = Domains::start(&c.ldap, Arc::new(key)).await.unwrap();
        let route = |name: &str| {
            domains
                .route(name)
                .map(|r| (r.domain.name.clone(), r.user.to_owned()))
        };
        let ex = |u: &str| Some(("example.com".to_owned(), u.to_owned()));
        let corp = |u: &str| Some(("corp.example.com".to_owned(), u.to_owned()));
        assert_eq!(route("alice@example.com"), ex("alice"));
        assert_eq!(route("alice@EXAMPLE.com"), ex("alice"));
        assert_eq!(route("example\\alice"), ex("alice"));
        assert_eq!(route("alice"), ex("alice"));
        assert_eq!(route("a@b@example.com"), ex("a@b"));
        assert_eq!(route("alice@corp.example.com"), corp("alice"));
        assert_eq!(route("CORP\\alice"), corp("alice"));
        // Names of no configured domain stay in the embedded directory.
        assert_eq!(route("alice@elsewhere.org"), None);
        assert_eq!(route("OTHER\\alice"), None);
        assert!(domains.by_name("corp").is_some());
        assert_eq!(
            domains.default_domain().map(|d| d.name.as_str()),
            Some("example.com")
        );
        domains.stop();
    }

    #[tokio::test]
    async fn without_domains_nothing_routes() {
        let domains = Domains::none();
        assert!(domains.route("alice@example.com").is_none());
        assert!(domains.route("alice").is_none());
    }
}
