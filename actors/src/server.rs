//! Starting and stopping the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use ractor::{Actor, ActorRef};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tollgate_config::Config;
use tollgate_engine::login::LockoutPolicy;
use tollgate_engine::otp::VerifyPolicy;

use crate::audit::Audit;
use crate::ldap::Domains;
use crate::radius::{
    bind_sockets, spawn_workers, ClientSettings, ClientTable, RadiusSupervisor,
    RadiusSupervisorMsg, SessionRegistry, SessionSupervisor, Shared, WorkerContext,
};
use crate::state::Directory;
use crate::store::{Store, StoreError};
use crate::sync::{all_clients, load_directory, StoreSync, SyncTargets};

/// How often the store thread writes runtime state and reads admin changes.
const SYNC_INTERVAL: Duration = Duration::from_millis(200);

/// Why the server could not start. Each names what the operator must fix.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration refers to something that does not work (a secret file).
    #[error("configuration: {0}")]
    Config(#[from] tollgate_config::ConfigError),
    /// The store could not be opened or read.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The used-code journal could not be read, applied or started.
    #[error("{0}")]
    Journal(#[from] crate::state::journal::JournalError),
    /// An audit sink (file or syslog) could not be set up.
    #[error("audit: {0}")]
    Audit(std::io::Error),
    /// A thread or actor could not be started.
    #[error("cannot start {what}: {reason}")]
    Spawn {
        /// What.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

/// A running server.
pub struct Server {
    radius_addrs: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    workers: Vec<std::thread::JoinHandle<()>>,
    supervisor: ActorRef<RadiusSupervisorMsg>,
    supervisor_task: JoinHandle<()>,
    session_supervisor: ActorRef<()>,
    table: Arc<ArcSwap<ClientTable>>,
    shared: Arc<Shared>,
    scheduler: ActorRef<crate::delivery::scheduler::SchedulerMsg>,
    mobile_api: Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)>,
    store_sync: Option<StoreSync>,
    grace: Duration,
    /// Held while the server runs: no second server on this data directory.
    _serving: crate::store::serving::ServeLock,
}

/// What happened at shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Requests still unanswered when the grace period ended.
    pub abandoned: usize,
    /// Time the drain took.
    pub drained_in: Duration,
}

fn client_settings_from_config(config: &Config) -> Result<Vec<Arc<ClientSettings>>, ServerError> {
    config
        .clients
        .iter()
        .map(|c| {
            let secret = c.resolve_secret()?;
            Ok(Arc::new(ClientSettings {
                name: Arc::from(c.name.as_str()),
                address: c.address,
                mac: tollgate_engine::radius::MacKey::new(secret.expose()),
                secret,
                mode: c.mode,
                require_message_authenticator: c.require_message_authenticator,
                allow_unsigned_proxy_state: c.allow_unsigned_proxy_state,
                rate_limit: if c.rate_limit == 0 {
                    config.radius.rate_limit_per_client
                } else {
                    c.rate_limit
                },
            }))
        })
        .collect()
}

/// Binds the mobile app API and serves it until the returned sender fires.
async fn start_mobile_api(
    config: &Config,
    addr: SocketAddr,
    shared: &Arc<Shared>,
) -> Result<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>), ServerError> {
    let tls =
        match (&config.mobile_api.tls_cert, &config.mobile_api.tls_key) {
            (Some(cert), Some(key)) => Some(tollgate_portals::tls_config(cert, key).map_err(
                |e| ServerError::Spawn {
                    what: "the mobile API",
                    reason: e.to_string(),
                },
            )?),
            _ => None,
        };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let backend = Arc::new(crate::push_api::Backend::new(
        Arc::clone(shared),
        Arc::clone(&shared.delivery.outbox),
    ));
    let limits = tollgate_portals::PushApiLimits {
        enrol_per_minute: config.mobile_api.enrol_per_minute,
        max_nonces: config.mobile_api.max_nonces,
        max_nonces_per_device: config.mobile_api.max_nonces_per_device,
        ..tollgate_portals::PushApiLimits::default()
    };
    let router = tollgate_portals::router_with_limits(backend, limits);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tracing::info!(address = %addr, tls = tls.is_some(), "mobile API listening");
    let task = tokio::spawn(tollgate_portals::serve(listener, router, tls, async move {
        let _ = rx.await;
    }));
    Ok((tx, task))
}

impl Server {
    /// Opens the store, loads the directory, starts every actor and binds the listeners.
    ///
    /// The audit trail writes its log lines to `audit_log` when given (the server's own
    /// log, in its format), besides the file and syslog receiver of `[audit]`.
    pub async fn start(
        config: &Config,
        audit_log: Option<crate::audit::LogOutput>,
    ) -> Result<Server, ServerError> {
        let mut store = Store::open(&config.data_dir)?;
        let serving = crate::store::serving::lock(&config.data_dir)?;
        let otp = &config.otp;
        let otp_policy = VerifyPolicy {
            totp_window: otp.totp_window,
            hotp_lookahead: otp.hotp_lookahead,
            max_drift: otp.max_drift,
            resync_window: otp.resync_window,
        };
        // What a crash left unwritten goes into the store before anything is loaded from it.
        let recovered = crate::sync::recover_journal(&mut store, &otp_policy, crate::unix_now())?;
        let journal = crate::state::Journal::open(&config.data_dir)?;
        let start_seq = store.last_change()?;
        let directory = Arc::new(
            Directory::new(
                otp_policy,
                LockoutPolicy {
                    threshold: config.lockout.threshold,
                    duration_secs: config.lockout.duration_secs,
                },
                config.passwords.cache_ttl_secs,
            )
            .with_journal(journal)
            .with_hash_params(crate::store::HashParams::from_config(&config.passwords)),
        );
        let loaded = Instant::now();
        load_directory(&store, &directory)?;
        // Made now, so that no login pays for the decoy's hash.
        directory.decoy();
        tracing::info!(
            users = directory.len(),
            elapsed_ms = loaded.elapsed().as_millis() as u64,
            "directory loaded"
        );

        let from_config = client_settings_from_config(config)?;
        let clients = all_clients(&from_config, &store, config.radius.rate_limit_per_client)?;

        let audit = Audit::from_config(&config.audit, audit_log).map_err(ServerError::Audit)?;
        let domains = Arc::new(
            Domains::start(&config.ldap, Arc::new(store.master_key()?))
                .await
                .map_err(|e| ServerError::Spawn {
                    what: "the directory connections",
                    reason: e.to_string(),
                })?,
        );
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let delivery = crate::delivery::start(config, Arc::clone(&directory))
            .await
            .map_err(|e| ServerError::Spawn {
                what: "delivered codes",
                reason: e.to_string(),
            })?;
        // A day code used just before a crash is used for good now; its replacement was
        // still to be sent when the process died.
        for &(user_id, issued_at) in &recovered.day_codes {
            delivery.delivery.day_code_used(user_id, issued_at);
        }
        let shared = Arc::new(Shared {
            delivery: Arc::clone(&delivery.delivery),
            directory: Arc::clone(&directory),
            domains,
            sessions: SessionRegistry::new(config.login.max_sessions),
            slow_gate: Arc::new(Semaphore::new(config.passwords.max_pending_checks)),
            checks: crate::state::CheckPool::start(cores).map_err(|e| ServerError::Spawn {
                what: "the password checks",
                reason: e.to_string(),
            })?,
            challenge_ttl_secs: config.login.challenge_ttl_secs,
            challenge_message: config.login.challenge_message.clone(),
            push: crate::radius::push::PushRegistry::default(),
            push_timeout_secs: config.login.push_timeout_secs,
            push_prompt: config.login.push_prompt.clone(),
            audit,
            dedup_window: Duration::from_secs(config.radius.duplicate_window_secs),
            dedup_entries: config.radius.duplicate_cache_entries,
        });

        let spawn_err = |what: &'static str| {
            move |e: ractor::SpawnErr| ServerError::Spawn {
                what,
                reason: e.to_string(),
            }
        };
        let (session_supervisor, _) = Actor::spawn(None, SessionSupervisor, Arc::clone(&shared))
            .await
            .map_err(spawn_err("the session supervisor"))?;
        shared
            .sessions
            .set_supervisor(session_supervisor.get_cell());

        let table = Arc::new(ArcSwap::from_pointee(ClientTable::default()));
        let (supervisor, supervisor_task) = Actor::spawn(
            None,
            RadiusSupervisor,
            crate::radius::RadiusSupervisorArgs {
                shared: Arc::clone(&shared),
                table: Arc::clone(&table),
                clients,
                max_in_flight: config.radius.max_in_flight_per_client,
            },
        )
        .await
        .map_err(spawn_err("the RADIUS supervisor"))?;

        let store_sync = StoreSync::spawn(
            store,
            SyncTargets {
                directory: Arc::clone(&directory),
                clients_from_config: from_config,
                default_rate: config.radius.rate_limit_per_client,
                supervisor: supervisor.clone(),
            },
            start_seq,
            SYNC_INTERVAL,
        )
        .map_err(|e| ServerError::Spawn {
            what: "the store thread",
            reason: e.to_string(),
        })?;

        let mobile_api = match config.mobile_api.listen {
            Some(addr) => Some(start_mobile_api(config, addr, &shared).await?),
            None => None,
        };

        let stop = Arc::new(AtomicBool::new(false));
        let worker_ctx = Arc::new(WorkerContext {
            table: Arc::clone(&table),
            shared: Arc::clone(&shared),
            stop: Arc::clone(&stop),
            max_wait: Duration::from_micros(config.radius.max_wait_us),
            overload_after: Duration::from_millis(config.radius.overload_after_ms),
        });
        let per_address = match config.radius.workers {
            0 => cores,
            n => n,
        };
        let mut workers = Vec::new();
        let mut radius_addrs = Vec::new();
        for addr in &config.radius.listen {
            let sockets = bind_sockets(*addr, per_address).map_err(|source| ServerError::Bind {
                addr: *addr,
                source,
            })?;
            let local = sockets[0]
                .local_addr()
                .map_err(|source| ServerError::Bind {
                    addr: *addr,
                    source,
                })?;
            radius_addrs.push(local);
            tracing::info!(address = %local, workers = sockets.len(), "RADIUS listening");
            workers.extend(spawn_workers(&sockets, &worker_ctx).map_err(|e| {
                ServerError::Spawn {
                    what: "the UDP workers",
                    reason: e.to_string(),
                }
            })?);
        }
        Ok(Server {
            radius_addrs,
            stop,
            workers,
            supervisor,
            supervisor_task,
            session_supervisor,
            table,
            shared,
            scheduler: delivery.scheduler,
            mobile_api,
            store_sync: Some(store_sync),
            grace: Duration::from_secs(config.shutdown.grace_secs),
            _serving: serving,
        })
    }

    /// Runs today's day-code batch now, whatever the time of day.
    pub fn run_day_codes_now(&self) {
        let _ = self
            .scheduler
            .cast(crate::delivery::scheduler::SchedulerMsg::RunNow);
    }

    /// The addresses the RADIUS listeners are bound to.
    pub fn radius_addrs(&self) -> &[SocketAddr] {
        &self.radius_addrs
    }

    /// The directory in memory.
    pub fn directory(&self) -> &Arc<crate::state::Directory> {
        &self.shared.directory
    }

    /// Names of the clients currently served.
    pub fn client_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .table
            .load()
            .slots()
            .map(|s| s.core.settings.name.to_string())
            .collect();
        names.sort();
        names
    }

    /// The actor serving a client now (it changes when the actor is restarted).
    pub fn client_actor_id(&self, name: &str) -> Option<ractor::ActorId> {
        self.table
            .load()
            .slots()
            .find(|s| &*s.core.settings.name == name)
            .map(|s| s.actor.get_id())
    }

    /// Requests admitted and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.table
            .load()
            .slots()
            .map(|s| s.capacity.saturating_sub(s.gate.available_permits()))
            .sum()
    }

    /// Makes every directory connection actor panic, to show that they are restarted;
    /// returns the ids of the actors that were made to fail.
    #[cfg(feature = "fault-injection")]
    pub fn crash_directory_connections(&self) -> Vec<ractor::ActorId> {
        let mut crashed = Vec::new();
        for domain in self.shared.domains.list() {
            let pools = domain.pools();
            for actor in pools.search.actors().into_iter().chain(pools.bind.actors()) {
                crashed.push(actor.get_id());
                let _ = actor.cast(crate::ldap::pool::ConnMsg::Panic);
            }
        }
        crashed
    }

    /// The actors of every directory connection now.
    pub fn directory_connection_ids(&self) -> Vec<ractor::ActorId> {
        self.shared
            .domains
            .list()
            .iter()
            .flat_map(|d| {
                let p = d.pools();
                p.search.actors().into_iter().chain(p.bind.actors())
            })
            .map(|a| a.get_id())
            .collect()
    }

    /// Makes a client's actor panic, to show that it is restarted.
    #[cfg(feature = "fault-injection")]
    pub fn crash_client(&self, name: &str) {
        let _ = self
            .supervisor
            .cast(RadiusSupervisorMsg::CrashClient(name.to_owned()));
    }

    /// Stops accepting, answers what is in flight within the grace period, writes runtime
    /// state to the store, and stops every actor.
    pub async fn shutdown(mut self) -> ShutdownReport {
        let started = Instant::now();
        self.stop.store(true, Ordering::Relaxed);
        let workers = std::mem::take(&mut self.workers);
        // Workers notice the flag within their receive timeout and finish the datagram
        // they hold; joining them blocks, so it happens off the async workers.
        let _ = tokio::task::spawn_blocking(move || {
            for w in workers {
                let _ = w.join();
            }
        })
        .await;
        let deadline = started + self.grace;
        let mut abandoned = self.in_flight();
        while abandoned > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            abandoned = self.in_flight();
        }
        if abandoned > 0 {
            tracing::warn!(abandoned, "grace period over with requests unanswered");
        }
        self.supervisor.stop(Some("shutdown".to_owned()));
        let _ = (&mut self.supervisor_task).await;
        self.session_supervisor.stop(Some("shutdown".to_owned()));
        self.shared.domains.stop();
        self.shared.delivery.stop();
        if let Some((stop, task)) = self.mobile_api.take() {
            let _ = stop.send(());
            let _ = task.await;
        }
        self.scheduler.stop(Some("shutdown".to_owned()));
        if let Some(sync) = self.store_sync.take() {
            // The last flush blocks on SQLite; keep it off the async workers.
            let _ = tokio::task::spawn_blocking(move || sync.stop()).await;
        }
        ShutdownReport {
            abandoned,
            drained_in: started.elapsed(),
        }
    }
}
