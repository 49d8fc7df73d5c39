//! The audit trail: one structured record per login decision, and the sinks it goes to.
//!
//! This module owns the record (user, client, address, login mode, result, reason of a
//! refusal, latency) and its way out: the log (target `tollgate::audit`) always, and,
//! when configured, a JSON-lines file ([`mod@file`]) and a syslog receiver such as a SIEM
//! ([`syslog`], RFC 5424 over UDP or TCP). A record never holds a password, passcode,
//! seed or secret: [`AuditEvent`] has no field that could carry one.
//!
//! Each sink is written by its own thread behind a bounded queue. A slow disk or an absent
//! receiver makes the server drop and count audit records
//! (`tollgate_audit_dropped_total{sink,reason}`), never slow a login.

pub mod file;
pub mod syslog;

use std::net::IpAddr;
use std::path::Path;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use metrics::Counter;
use tollgate_config::AuditConfig;
use tollgate_engine::login::{LoginMode, Outcome};

/// Records waiting for the audit file at most.
const FILE_QUEUE: usize = 16_384;

/// One decision, as the client actor sees it.
pub struct AuditEvent<'a> {
    /// User name as given in the request.
    pub user: &'a str,
    /// Client name.
    pub client: &'a str,
    /// Source address of the request.
    pub peer: IpAddr,
    /// Login mode of the client.
    pub mode: LoginMode,
    /// What was decided.
    pub outcome: Outcome,
    /// Time from receipt to reply.
    pub latency: Duration,
}

/// One decision, owned, as the sink threads receive it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// When the decision was recorded.
    pub time: SystemTime,
    /// User name as given in the request (not yet sanitised: each sink does that for its
    /// own format).
    pub user: String,
    /// Client name.
    pub client: String,
    /// Source address of the request.
    pub peer: IpAddr,
    /// Login mode (`append`, `challenge`, `passcode-only`).
    pub mode: &'static str,
    /// `accept`, `reject` or `challenge`.
    pub result: &'static str,
    /// Why a login was refused; empty otherwise.
    pub reason: &'static str,
    /// Time from receipt to reply, in microseconds.
    pub latency_us: u64,
}

impl Record {
    /// The owned record of an event at `time`.
    pub fn new(e: &AuditEvent<'_>, time: SystemTime) -> Record {
        let (result, reason) = result_and_reason(e.outcome);
        Record {
            time,
            user: e.user.to_owned(),
            client: e.client.to_owned(),
            peer: e.peer,
            mode: e.mode.as_str(),
            result,
            reason,
            latency_us: latency_us(e.latency),
        }
    }
}

fn result_and_reason(outcome: Outcome) -> (&'static str, &'static str) {
    match outcome {
        Outcome::Reject(r) => ("reject", r.as_str()),
        other => (other.as_str(), ""),
    }
}

fn latency_us(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros()).unwrap_or(u64::MAX)
}

/// The sending end of one sink's queue, with the counter of what a full queue turns away.
struct Sink {
    tx: SyncSender<Arc<Record>>,
    full: Counter,
    /// Dropped with the sink, which tells a sink thread waiting to reconnect to give up.
    _keepalive: Option<Arc<()>>,
}

impl Sink {
    /// A sink named `name` in metrics; its counter is registered now, so that the series
    /// exists (at zero) from start-up and alerts on it can be checked against the exporter.
    fn new(name: &'static str, tx: SyncSender<Arc<Record>>, keepalive: Option<Arc<()>>) -> Sink {
        Sink {
            tx,
            full: dropped_counter(name, "queue_full"),
            _keepalive: keepalive,
        }
    }
}

/// The counter of records a sink lost, by why.
pub(crate) fn dropped_counter(sink: &'static str, reason: &'static str) -> Counter {
    metrics::counter!(crate::metrics::AUDIT_DROPPED_TOTAL, "sink" => sink, "reason" => reason)
}

/// The audit trail of a server: the log, plus the sinks its configuration asks for.
pub struct Audit {
    sinks: Vec<Sink>,
}

impl Audit {
    /// Audit to the log only.
    pub fn log_only() -> Self {
        Audit { sinks: Vec::new() }
    }

    /// Audit to the log and to `path` (appended, created with mode 0600).
    pub fn with_file(path: &Path) -> std::io::Result<Self> {
        let mut audit = Audit::log_only();
        audit
            .sinks
            .push(Sink::new("file", file::spawn(path, FILE_QUEUE)?, None));
        Ok(audit)
    }

    /// Audit as `[audit]` says: to the log, and to the file and the syslog receiver when
    /// they are configured.
    ///
    /// Fails when the file cannot be opened, the syslog socket cannot be created or a
    /// sink thread cannot be started; the error names the sink. An unreachable TCP
    /// receiver is not an error: the sink connects (and reconnects) in the background, so
    /// that logins never wait for the SIEM.
    pub fn from_config(config: &AuditConfig) -> std::io::Result<Self> {
        let mut audit = match &config.file {
            Some(path) => Audit::with_file(path).map_err(|e| {
                std::io::Error::new(e.kind(), format!("audit file {}: {e}", path.display()))
            })?,
            None => Audit::log_only(),
        };
        if let Some(settings) = syslog::SyslogSettings::from_config(config) {
            let address = settings.address;
            let (tx, keepalive) = syslog::spawn(settings).map_err(|e| {
                std::io::Error::new(e.kind(), format!("audit syslog to {address}: {e}"))
            })?;
            audit.sinks.push(Sink::new("syslog", tx, Some(keepalive)));
        }
        Ok(audit)
    }

    /// Records a decision.
    pub fn record(&self, e: &AuditEvent<'_>) {
        let (result, reason) = result_and_reason(e.outcome);
        tracing::info!(
            target: "tollgate::audit",
            user = %e.user,
            client = %e.client,
            peer = %e.peer,
            mode = e.mode.as_str(),
            result,
            reason,
            latency_us = latency_us(e.latency),
            "login decision"
        );
        if self.sinks.is_empty() {
            return;
        }
        // One owned copy serves every sink; each formats it on its own thread, so the
        // login path pays for two small allocations and a queue push per sink.
        let record = Arc::new(Record::new(e, SystemTime::now()));
        for sink in &self.sinks {
            match sink.tx.try_send(Arc::clone(&record)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => sink.full.increment(1),
                // The sink thread is gone (it only stops when its file or socket cannot
                // be used any more); the record is lost like one turned away.
                Err(TrySendError::Disconnected(_)) => sink.full.increment(1),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use tollgate_engine::login::RejectReason;

    #[test]
    fn a_record_copies_the_event_and_names_the_reason_of_a_refusal() {
        let e = AuditEvent {
            user: "alice",
            client: "vpn",
            peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
            mode: LoginMode::Challenge,
            outcome: Outcome::Reject(RejectReason::BadPasscode),
            latency: Duration::from_micros(1234),
        };
        let r = Record::new(&e, SystemTime::UNIX_EPOCH);
        assert_eq!(r.user, "alice");
        assert_eq!(r.client, "vpn");
        assert_eq!(r.mode, "challenge");
        assert_eq!((r.result, r.reason), ("reject", "bad_passcode"));
        assert_eq!(r.latency_us, 1234);
        let accept = Record::new(
            &AuditEvent {
                outcome: Outcome::Accept,
                ..e
            },
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!((accept.result, accept.reason), ("accept", ""));
    }

    #[test]
    fn a_full_queue_drops_the_record_without_waiting() {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let audit = Audit {
            sinks: vec![Sink::new("file", tx, None)],
        };
        let e = AuditEvent {
            user: "bob",
            client: "vpn",
            peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
            mode: LoginMode::Append,
            outcome: Outcome::Accept,
            latency: Duration::ZERO,
        };
        // Nobody reads the queue: the second and third records must not block.
        for _ in 0..3 {
            audit.record(&e);
        }
        assert_eq!(rx.try_iter().count(), 1);
    }
}
