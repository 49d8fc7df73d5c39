//! Reaching a domain's servers: TLS settings, connecting in order of preference, the
//! health of each server, and running one operation with failover.
//!
//! A server that fails at the transport level (refused, reset, timed out, `busy`,
//! `unavailable`) is marked dead and skipped until the health probe of
//! [`super::pool::DirectorySupervisor`] finds it answering again, so a dead server costs a
//! login nothing once it is known. Result codes that belong to the operation (a wrong
//! password, no such object, no access) are answers, not failures.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Mod, Scope, SearchEntry};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tollgate_config::{LdapConfig, SharedSecret};
use zeroize::Zeroizing;

use super::DirError;
use crate::unix_now_ms;

/// LDAP result codes this module names (RFC 4511 appendix A).
pub mod rc {
    /// success
    pub const SUCCESS: u32 = 0;
    /// noSuchAttribute: a value to delete was not there.
    pub const NO_SUCH_ATTRIBUTE: u32 = 16;
    /// inappropriateMatching: the attribute has no equality rule, so single values can
    /// be neither deleted nor added beside others.
    pub const INAPPROPRIATE_MATCHING: u32 = 18;
    /// attributeOrValueExists
    pub const VALUE_EXISTS: u32 = 20;
    /// noSuchObject
    pub const NO_SUCH_OBJECT: u32 = 32;
    /// invalidCredentials
    pub const INVALID_CREDENTIALS: u32 = 49;
    /// insufficientAccessRights
    pub const INSUFFICIENT_ACCESS: u32 = 50;
    /// busy
    pub const BUSY: u32 = 51;
    /// unavailable
    pub const UNAVAILABLE: u32 = 52;
}

/// One server of a domain and whether it is being skipped.
pub struct Server {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// Zero while the server is in use; otherwise the time (ms) it was found dead.
    dead_since: AtomicU64,
}

impl Server {
    /// Whether the server is being skipped.
    pub fn is_dead(&self) -> bool {
        self.dead_since.load(Ordering::Relaxed) != 0
    }
}

/// How to reach the servers of one domain.
pub struct Endpoints {
    /// The domain, for logs.
    pub domain: String,
    /// Servers in order of preference.
    pub servers: Vec<Server>,
    /// Bumped each time a server comes back, so that connections on a less preferred
    /// server move back to it.
    epoch: AtomicU64,
    starttls: bool,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Time to connect (TCP and TLS).
    pub connect_timeout: Duration,
    /// Time one operation may take.
    pub op_timeout: Duration,
    /// The service account.
    pub bind_dn: String,
    bind_password: SharedSecret,
}

/// Builds the TLS settings of a domain: its CA file, or the system's roots.
pub fn tls_config(config: &LdapConfig) -> Result<Option<Arc<rustls::ClientConfig>>, DirError> {
    let Some(path) = &config.ca_file else {
        return Ok(None);
    };
    let setup = |what: String| DirError::Setup(format!("ldap `{}`: {what}", config.domain));
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| setup(format!("cannot read ca_file {}: {e}", path.display())))?;
    for cert in certs {
        let cert = cert.map_err(|e| setup(format!("ca_file {}: {e}", path.display())))?;
        roots
            .add(cert)
            .map_err(|e| setup(format!("ca_file {}: {e}", path.display())))?;
    }
    if roots.is_empty() {
        return Err(setup(format!(
            "ca_file {} holds no certificate",
            path.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(Arc::new(tls)))
}

impl Endpoints {
    /// The endpoints of a domain's configuration.
    pub fn new(config: &LdapConfig) -> Result<Endpoints, DirError> {
        let bind_password = config
            .resolve_bind_password()
            .map_err(|e| DirError::Setup(e.to_string()))?;
        Ok(Endpoints {
            domain: config.domain.to_ascii_lowercase(),
            servers: config
                .servers
                .iter()
                .map(|url| Server {
                    url: url.trim_end_matches('/').to_owned(),
                    dead_since: AtomicU64::new(0),
                })
                .collect(),
            epoch: AtomicU64::new(0),
            starttls: config.starttls,
            tls: tls_config(config)?,
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
            op_timeout: Duration::from_millis(config.operation_timeout_ms),
            bind_dn: config.bind_dn.clone(),
            bind_password,
        })
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Marks a server dead after a failure.
    pub fn mark_dead(&self, index: usize, why: &str) {
        let server = &self.servers[index];
        if server
            .dead_since
            .compare_exchange(0, unix_now_ms().max(1), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            metrics::counter!(crate::metrics::LDAP_FAILOVERS_TOTAL, "domain" => self.domain.clone())
                .increment(1);
            tracing::warn!(domain = %self.domain, server = %server.url, reason = why, "directory server marked dead; skipping it");
        }
    }

    /// Marks a server alive after a good probe.
    pub fn mark_alive(&self, index: usize) {
        let server = &self.servers[index];
        if server.dead_since.swap(0, Ordering::AcqRel) != 0 {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            tracing::info!(domain = %self.domain, server = %server.url, "directory server answers again");
        }
    }

    /// Servers being skipped.
    pub fn dead(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.servers.len()).filter(|&i| self.servers[i].is_dead())
    }

    /// The most preferred server in use.
    pub fn preferred(&self) -> Option<usize> {
        (0..self.servers.len()).find(|&i| !self.servers[i].is_dead())
    }

    fn settings(&self) -> LdapConnSettings {
        let mut s = LdapConnSettings::new()
            .set_conn_timeout(self.connect_timeout)
            .set_starttls(self.starttls);
        if let Some(tls) = &self.tls {
            s = s.set_config(Arc::clone(tls));
        }
        s
    }

    /// Opens a connection to server `index` (TCP, then TLS or StartTLS); with `service`,
    /// binds it as the service account.
    pub async fn connect(&self, index: usize, service: bool) -> Result<Ldap, ConnectError> {
        let url = &self.servers[index].url;
        let (conn, mut ldap) = LdapConnAsync::with_settings(self.settings(), url)
            .await
            .map_err(ConnectError::Transport)?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "directory connection ended");
            }
        });
        if service {
            let password =
                Zeroizing::new(String::from_utf8_lossy(self.bind_password.expose()).into_owned());
            let res = ldap
                .with_timeout(self.op_timeout)
                .simple_bind(&self.bind_dn, password.as_str())
                .await
                .map_err(ConnectError::Transport)?;
            match res.rc {
                rc::SUCCESS => {}
                rc::BUSY | rc::UNAVAILABLE => {
                    return Err(ConnectError::Transport(LdapError::from(res)));
                }
                _ => {
                    return Err(ConnectError::ServiceBind(format!(
                        "rc {} {}",
                        res.rc,
                        res.text.trim()
                    )))
                }
            }
        }
        Ok(ldap)
    }
}

/// Why a connection could not be made.
#[derive(Debug)]
pub enum ConnectError {
    /// The server could not be reached or spoke no TLS we trust.
    Transport(LdapError),
    /// The server refused the service account.
    ServiceBind(String),
}

/// One directory operation.
pub enum Op {
    /// A subtree search.
    Search {
        /// Where.
        base: String,
        /// Filter, already escaped.
        filter: String,
        /// Attributes wanted.
        attrs: Vec<String>,
    },
    /// Reads attributes of one entry.
    Read {
        /// The entry.
        dn: String,
        /// Attributes wanted.
        attrs: Vec<String>,
    },
    /// A simple bind as a user.
    Bind {
        /// The user's DN.
        dn: String,
        /// The password (never empty: checked before).
        password: Zeroizing<String>,
    },
    /// Replace one value of an attribute by another, atomically: the delete fails when the
    /// old value is gone, so two servers cannot both advance one record.
    Swap {
        /// The entry.
        dn: String,
        /// The attribute.
        attr: String,
        /// The value to remove, if any.
        old: Option<String>,
        /// The value to add.
        new: String,
    },
    /// Sets every value of an attribute.
    Replace {
        /// The entry.
        dn: String,
        /// The attribute.
        attr: String,
        /// Its new values.
        values: Vec<String>,
    },
}

/// What an operation returned.
#[derive(Debug)]
pub enum OpResult {
    /// Search entries.
    Entries(Vec<SearchEntry>),
    /// The result code and diagnostic text of a bind or modify.
    Code(u32, String),
}

/// Whether an error means the server (not the request) failed.
fn transport_failure(e: &LdapError) -> bool {
    match e {
        LdapError::LdapResult { result } => matches!(result.rc, rc::BUSY | rc::UNAVAILABLE),
        LdapError::FilterParsing | LdapError::AddNoValues | LdapError::DecodingUTF8 => false,
        _ => true,
    }
}

/// Runs one operation on a live connection.
pub async fn run(ldap: &mut Ldap, op: &Op, timeout: Duration) -> Result<OpResult, LdapError> {
    match op {
        Op::Search {
            base,
            filter,
            attrs,
        } => {
            let res = ldap
                .with_timeout(timeout)
                .search(base, Scope::Subtree, filter, attrs)
                .await?;
            match res.1.rc {
                rc::SUCCESS => Ok(OpResult::Entries(
                    res.0.into_iter().map(SearchEntry::construct).collect(),
                )),
                rc::NO_SUCH_OBJECT => Ok(OpResult::Entries(Vec::new())),
                _ => Err(LdapError::from(res.1)),
            }
        }
        Op::Read { dn, attrs } => {
            let res = ldap
                .with_timeout(timeout)
                .search(dn, Scope::Base, "(objectClass=*)", attrs)
                .await?;
            match res.1.rc {
                rc::SUCCESS => Ok(OpResult::Entries(
                    res.0.into_iter().map(SearchEntry::construct).collect(),
                )),
                rc::NO_SUCH_OBJECT => Ok(OpResult::Entries(Vec::new())),
                _ => Err(LdapError::from(res.1)),
            }
        }
        Op::Replace { dn, attr, values } => {
            let set: HashSet<String> = values.iter().cloned().collect();
            let res = ldap
                .with_timeout(timeout)
                .modify(dn, vec![Mod::Replace(attr.clone(), set)])
                .await?;
            if matches!(res.rc, rc::BUSY | rc::UNAVAILABLE) {
                return Err(LdapError::from(res));
            }
            Ok(OpResult::Code(res.rc, res.text))
        }
        Op::Bind { dn, password } => {
            let res = ldap.with_timeout(timeout).simple_bind(dn, password).await?;
            if matches!(res.rc, rc::BUSY | rc::UNAVAILABLE) {
                return Err(LdapError::from(res));
            }
            Ok(OpResult::Code(res.rc, res.text))
        }
        Op::Swap { dn, attr, old, new } => {
            let mut mods = Vec::with_capacity(2);
            if let Some(old) = old {
                mods.push(Mod::Delete(attr.clone(), HashSet::from([old.clone()])));
            }
            mods.push(Mod::Add(attr.clone(), HashSet::from([new.clone()])));
            let res = ldap.with_timeout(timeout).modify(dn, mods).await?;
            if matches!(res.rc, rc::BUSY | rc::UNAVAILABLE) {
                return Err(LdapError::from(res));
            }
            Ok(OpResult::Code(res.rc, res.text))
        }
    }
}

/// A connection held by a pool member, and where it goes.
pub struct Held {
    ldap: Ldap,
    server: usize,
    epoch: u64,
}

/// Runs `op` on `held` (connecting first when needed), failing over across the domain's
/// servers: each server is tried at most once per operation.
pub async fn run_with_failover(
    ends: &Endpoints,
    held: &mut Option<Held>,
    service: bool,
    op: &Op,
) -> Result<OpResult, DirError> {
    for _ in 0..ends.servers.len() {
        // Move back to a more preferred server when one has come back.
        if let Some(h) = held {
            let stale = h.epoch != ends.epoch() && ends.preferred().is_some_and(|p| p < h.server);
            if stale || h.ldap.is_closed() || ends.servers[h.server].is_dead() {
                *held = None;
            }
        }
        if held.is_none() {
            *held = Some(connect_first(ends, service).await?);
        }
        let Some(h) = held.as_mut() else {
            return Err(DirError::Unavailable);
        };
        match run(&mut h.ldap, op, ends.op_timeout).await {
            Ok(result) => return Ok(result),
            Err(e) if transport_failure(&e) => {
                ends.mark_dead(h.server, &e.to_string());
                *held = None;
            }
            Err(e) => return Err(DirError::Protocol(e.to_string())),
        }
    }
    Err(DirError::Unavailable)
}

async fn connect_first(ends: &Endpoints, service: bool) -> Result<Held, DirError> {
    let epoch = ends.epoch();
    for i in 0..ends.servers.len() {
        if ends.servers[i].is_dead() {
            continue;
        }
        match ends.connect(i, service).await {
            Ok(ldap) => {
                return Ok(Held {
                    ldap,
                    server: i,
                    epoch,
                })
            }
            Err(ConnectError::Transport(e)) => ends.mark_dead(i, &e.to_string()),
            Err(ConnectError::ServiceBind(why)) => {
                tracing::error!(domain = %ends.domain, server = %ends.servers[i].url, bind_dn = %ends.bind_dn, reason = %why, "the directory refused the service account");
                return Err(DirError::ServiceBind(why));
            }
        }
    }
    Err(DirError::Unavailable)
}

/// Probes a dead server: connect, TLS, service bind. Marks it alive when all succeed.
pub async fn probe(ends: &Endpoints, index: usize) -> bool {
    match ends.connect(index, true).await {
        Ok(mut ldap) => {
            let _ = ldap.unbind().await;
            ends.mark_alive(index);
            true
        }
        Err(_) => false,
    }
}
