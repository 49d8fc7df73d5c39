//! The audit trail: one structured record per login decision.
//!
//! Each record names the user, the client, its address, the login mode, the result, the
//! reason of a refusal and the latency; it never holds a password, passcode, seed or
//! secret. Records go to the log (target `tollgate::audit`) and, when configured, as JSON
//! lines to a file written by its own thread behind a bounded queue: a slow disk makes
//! the server drop and count audit lines, never slow a login.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::Path;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::Duration;

use tollgate_engine::login::{LoginMode, Outcome};

use crate::unix_now_ms;

/// Lines waiting for the audit file at most.
const QUEUE: usize = 16_384;

/// One decision.
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

/// The audit sink.
pub struct Audit {
    file: Option<SyncSender<String>>,
}

impl Audit {
    /// Audit to the log only.
    pub fn log_only() -> Self {
        Audit { file: None }
    }

    /// Audit to the log and to `path` (appended, created with mode 0600).
    pub fn with_file(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let (tx, rx) = mpsc::sync_channel::<String>(QUEUE);
        std::thread::Builder::new()
            .name("tollgate-audit".to_owned())
            .spawn(move || {
                let mut out = BufWriter::new(file);
                while let Ok(line) = rx.recv() {
                    let _ = out.write_all(line.as_bytes());
                    // Write out whenever the queue is empty, so the file is current.
                    let mut more = rx.try_iter();
                    for line in more.by_ref() {
                        let _ = out.write_all(line.as_bytes());
                    }
                    let _ = out.flush();
                }
                let _ = out.flush();
            })?;
        Ok(Audit { file: Some(tx) })
    }

    /// Records a decision.
    pub fn record(&self, e: &AuditEvent<'_>) {
        let (result, reason) = match e.outcome {
            Outcome::Reject(r) => ("reject", r.as_str()),
            other => (other.as_str(), ""),
        };
        let latency_us = e.latency.as_micros() as u64;
        tracing::info!(
            target: "tollgate::audit",
            user = %e.user,
            client = %e.client,
            peer = %e.peer,
            mode = e.mode.as_str(),
            result,
            reason,
            latency_us,
            "login decision"
        );
        if let Some(tx) = &self.file {
            let line = serde_json::json!({
                "ts_ms": unix_now_ms(),
                "user": e.user,
                "client": e.client,
                "peer": e.peer.to_string(),
                "mode": e.mode.as_str(),
                "result": result,
                "reason": reason,
                "latency_us": latency_us,
            });
            let mut text = line.to_string();
            text.push('\n');
            if let Err(TrySendError::Full(_)) = tx.try_send(text) {
                metrics::counter!(crate::metrics::DROPPED_TOTAL, "client" => "audit", "reason" => "audit_queue_full").increment(1);
            }
        }
    }
}
