//! The audit trail: one structured record per login decision, and the outputs it goes to.
//!
//! This module owns the record (user, client, address, login mode, result, reason of a
//! refusal, latency) and its way out: the server's log (target `tollgate::audit`, in the
//! log's format, [`line`]) unless the log's filter leaves it out, and, when configured, a
//! JSON-lines file ([`mod@file`]) and a syslog receiver such as a SIEM ([`syslog`], RFC
//! 5424 over UDP or TCP). A record never holds a password, passcode, seed or secret:
//! [`AuditEvent`] has no field that could carry one.
//!
//! Recording a decision costs the deciding thread a copy into its own lane and nothing
//! else ([`trail`]); the audit thread formats and writes the log lines in batches and hands
//! the records to the file and syslog threads. Every queue on the way is bounded: a slow
//! disk, a blocked log or an absent receiver makes the server drop and count audit records
//! (`tollgate_audit_dropped_total{sink,reason}`), never slow a login.

pub mod file;
pub mod line;
pub mod syslog;
pub mod trail;

use std::io::Write;
use std::net::IpAddr;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use metrics::Counter;
use tollgate_config::{AuditConfig, LogFormat};
use tollgate_engine::login::{LoginMode, Outcome};

pub use trail::ClientTag;
use trail::{Entry, Outputs, Trail};

/// Records waiting for the audit file at most.
const FILE_QUEUE: usize = 16_384;

/// Log bytes the audit thread gathers before it writes them.
const LOG_BATCH: usize = 64 << 10;

/// One decision, as the client's core sees it.
pub struct AuditEvent<'a> {
    /// When the decision was made.
    pub time: SystemTime,
    /// User name as given in the request.
    pub user: &'a str,
    /// The client, by its tag ([`Audit::client`]).
    pub client: ClientTag,
    /// Source address of the request.
    pub peer: IpAddr,
    /// Login mode of the client.
    pub mode: LoginMode,
    /// What was decided.
    pub outcome: Outcome,
    /// Time from receipt to reply.
    pub latency: Duration,
}

/// One decision, owned, as the file and syslog threads receive it.
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
    /// The owned record of an entry from `client`.
    fn new(e: &Entry, client: &str) -> Record {
        let (result, reason) = result_and_reason(e.outcome);
        Record {
            time: e.time,
            user: e.user().to_owned(),
            client: client.to_owned(),
            peer: e.peer,
            mode: e.mode.as_str(),
            result,
            reason,
            latency_us: e.latency_us,
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

/// The sending end of one sink thread's queue, with the counter of what a full queue
/// turns away.
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

    fn send(&self, record: Arc<Record>) {
        match self.tx.try_send(record) {
            Ok(()) => {}
            // A gone sink thread (it only stops when its file or socket cannot be used any
            // more) loses the record like a full queue.
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.full.increment(1),
        }
    }
}

/// The counter of records a sink lost, by why.
pub(crate) fn dropped_counter(sink: &'static str, reason: &'static str) -> Counter {
    metrics::counter!(crate::metrics::AUDIT_DROPPED_TOTAL, "sink" => sink, "reason" => reason)
}

/// Where the decision lines of the log go: the log's format, and a writer that takes whole
/// batches of lines without tearing them against the log's other lines
/// ([`LockedStderr`] for a server that logs to standard error).
pub struct LogOutput {
    /// The log's line format.
    pub format: LogFormat,
    /// Where the lines go.
    pub writer: Box<dyn Write + Send>,
}

/// Standard error, written a whole buffer at a time under its lock, so that two writers of
/// the process (the log's writer thread and the audit thread) never interleave lines.
pub struct LockedStderr;

impl Write for LockedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().lock().write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().lock().flush()
    }
}

/// What the audit thread does with each entry.
struct Sinks {
    log: Option<(line::LineFormat, Box<dyn Write + Send>)>,
    batch: String,
    log_failed: Counter,
    /// The file and syslog threads.
    threads: Vec<Sink>,
}

impl Sinks {
    fn write_log(&mut self) {
        if let Some((_, writer)) = &mut self.log {
            if !self.batch.is_empty() {
                if writer.write_all(self.batch.as_bytes()).is_err() {
                    let lines = self.batch.matches('\n').count();
                    self.log_failed.increment(lines as u64);
                }
                self.batch.clear();
            }
        }
    }
}

impl Outputs for Sinks {
    fn entry(&mut self, entry: &Entry, client: &str) {
        if let Some((format, _)) = &mut self.log {
            format.push(&mut self.batch, entry, client);
            if self.batch.len() >= LOG_BATCH {
                self.write_log();
            }
        }
        if !self.threads.is_empty() {
            // One owned copy serves every sink thread.
            let record = Arc::new(Record::new(entry, client));
            for sink in &self.threads {
                sink.send(Arc::clone(&record));
            }
        }
    }

    fn flush(&mut self) {
        self.write_log();
    }
}

/// The audit trail of a server.
pub struct Audit {
    /// `None` when nothing would receive a record (the log's filter leaves audit lines
    /// out and no sink is configured): recording then costs nothing.
    trail: Option<Trail>,
}

impl Audit {
    /// An audit trail that records nothing.
    pub fn none() -> Self {
        Audit { trail: None }
    }

    /// Audit as `[audit]` says: to `log` when given, and to the file and the syslog
    /// receiver when they are configured.
    ///
    /// Fails when the file cannot be opened, the syslog socket cannot be created or a
    /// thread cannot be started; the error names the sink. An unreachable TCP receiver is
    /// not an error: the sink connects (and reconnects) in the background, so that logins
    /// never wait for the SIEM.
    pub fn from_config(config: &AuditConfig, log: Option<LogOutput>) -> std::io::Result<Self> {
        let mut threads = Vec::new();
        if let Some(path) = &config.file {
            let tx = file::spawn(path, FILE_QUEUE).map_err(|e| {
                std::io::Error::new(e.kind(), format!("audit file {}: {e}", path.display()))
            })?;
            threads.push(Sink::new("file", tx, None));
        }
        if let Some(settings) = syslog::SyslogSettings::from_config(config) {
            let address = settings.address;
            let (tx, keepalive) = syslog::spawn(settings).map_err(|e| {
                std::io::Error::new(e.kind(), format!("audit syslog to {address}: {e}"))
            })?;
            threads.push(Sink::new("syslog", tx, Some(keepalive)));
        }
        if log.is_none() && threads.is_empty() {
            return Ok(Audit::none());
        }
        let sinks = Sinks {
            log: log.map(|l| (line::LineFormat::new(l.format), l.writer)),
            batch: String::with_capacity(LOG_BATCH + 1024),
            log_failed: dropped_counter("log", "send_failed"),
            threads,
        };
        let trail = Trail::start(sinks)
            .map_err(|e| std::io::Error::new(e.kind(), format!("audit thread: {e}")))?;
        Ok(Audit { trail: Some(trail) })
    }

    /// The tag that stands for the client named `name` in its decisions' records.
    pub fn client(&self, name: &str) -> ClientTag {
        self.trail
            .as_ref()
            .map_or(ClientTag::NONE, |t| t.client(name))
    }

    /// Records a decision.
    pub fn record(&self, e: &AuditEvent<'_>) {
        if let Some(trail) = &self.trail {
            trail.push(Entry::new(
                e.time,
                e.user,
                e.client,
                e.peer,
                e.mode,
                e.outcome,
                latency_us(e.latency),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::sync::Mutex;
    use tollgate_engine::login::RejectReason;

    /// A log writer whose bytes the test reads afterwards.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn event(user: &str, client: ClientTag, outcome: Outcome) -> AuditEvent<'_> {
        AuditEvent {
            time: SystemTime::now(),
            user,
            client,
            peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
            mode: LoginMode::Challenge,
            outcome,
            latency: Duration::from_micros(1234),
        }
    }

    #[test]
    fn a_record_copies_the_entry_and_names_the_reason_of_a_refusal() {
        let entry = |outcome| {
            Entry::new(
                SystemTime::UNIX_EPOCH,
                "alice",
                ClientTag::NONE,
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                LoginMode::Challenge,
                outcome,
                1234,
            )
        };
        let r = Record::new(&entry(Outcome::Reject(RejectReason::BadPasscode)), "vpn");
        assert_eq!(r.user, "alice");
        assert_eq!(r.client, "vpn");
        assert_eq!(r.mode, "challenge");
        assert_eq!((r.result, r.reason), ("reject", "bad_passcode"));
        assert_eq!(r.latency_us, 1234);
        let accept = Record::new(&entry(Outcome::Accept), "vpn");
        assert_eq!((accept.result, accept.reason), ("accept", ""));
    }

    #[test]
    fn every_decision_reaches_the_log_in_the_order_of_its_thread() {
        let out = Shared::default();
        let audit = Audit::from_config(
            &AuditConfig::default(),
            Some(LogOutput {
                format: LogFormat::Text,
                writer: Box::new(out.clone()),
            }),
        )
        .unwrap();
        let a = audit.client("vpn-a");
        let b = audit.client("vpn-b");
        audit.record(&event("alice", a, Outcome::Accept));
        audit.record(&event("bob", b, Outcome::Reject(RejectReason::UnknownUser)));
        audit.record(&event("carol", a, Outcome::Challenge));
        // Dropping the trail writes what it holds.
        drop(audit);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].contains("user=\"alice\" client=\"vpn-a\" peer=127.0.0.1 mode=\"challenge\" result=\"accept\" reason=\"\" latency_us=1234"), "{text}");
        assert!(
            lines[1].contains("user=\"bob\" client=\"vpn-b\"")
                && lines[1].contains("reason=\"unknown_user\""),
            "{text}"
        );
        assert!(
            lines[2].contains("user=\"carol\" client=\"vpn-a\"")
                && lines[2].contains("result=\"challenge\""),
            "{text}"
        );
    }

    #[test]
    fn the_file_gets_the_decisions_the_log_gets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let out = Shared::default();
        let config = AuditConfig {
            file: Some(path.clone()),
            ..AuditConfig::default()
        };
        let audit = Audit::from_config(
            &config,
            Some(LogOutput {
                format: LogFormat::Json,
                writer: Box::new(out.clone()),
            }),
        )
        .unwrap();
        let vpn = audit.client("vpn");
        for i in 0..100 {
            audit.record(&event(&format!("u{i}"), vpn, Outcome::Accept));
        }
        drop(audit);
        let log = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let users = |text: &str, field: &dyn Fn(&serde_json::Value) -> String| {
            text.lines()
                .map(|l| field(&serde_json::from_str(l).unwrap()))
                .collect::<Vec<_>>()
        };
        let expected: Vec<_> = (0..100).map(|i| format!("u{i}")).collect();
        assert_eq!(
            users(&log, &|v| v["fields"]["user"].as_str().unwrap().to_owned()),
            expected
        );
        // The file thread writes on its own time.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.lines().count() >= 100 || std::time::Instant::now() > deadline {
                assert_eq!(
                    users(&text, &|v| v["user"].as_str().unwrap().to_owned()),
                    expected
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_log_nobody_reads_does_not_hold_up_the_end_of_the_audit() {
        /// A log writer that blocks until the test ends (a full pipe nobody drains).
        struct Stuck(std::sync::mpsc::Receiver<()>);
        impl Write for Stuck {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                let _ = self.0.recv();
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (release, stuck) = std::sync::mpsc::channel();
        let audit = Audit::from_config(
            &AuditConfig::default(),
            Some(LogOutput {
                format: LogFormat::Text,
                writer: Box::new(Stuck(stuck)),
            }),
        )
        .unwrap();
        let vpn = audit.client("vpn");
        audit.record(&event("alice", vpn, Outcome::Accept));
        // Returns (after trail::DRAIN_AT_MOST) although the thread is stuck in a write.
        drop(audit);
        drop(release);
    }

    #[test]
    fn an_audit_without_outputs_records_nothing_and_starts_no_thread() {
        let audit = Audit::from_config(&AuditConfig::default(), None).unwrap();
        assert!(audit.trail.is_none());
        assert_eq!(audit.client("vpn"), ClientTag::NONE);
        audit.record(&event("alice", ClientTag::NONE, Outcome::Accept));
    }
}
