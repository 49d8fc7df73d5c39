//! The audit file sink: one JSON object per line, appended by its own thread.
//!
//! The file is created with mode 0600 (it names users and their addresses) and written
//! through a buffer that is flushed whenever the queue runs empty, so the file is current
//! without a write per record under load.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use super::Record;

/// Opens `path` for appending and starts the thread that writes it; returns the sending
/// end of a queue of `capacity` records.
pub(super) fn spawn(path: &Path, capacity: usize) -> std::io::Result<SyncSender<Arc<Record>>> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let (tx, rx) = mpsc::sync_channel::<Arc<Record>>(capacity);
    std::thread::Builder::new()
        .name("tollgate-audit".to_owned())
        .spawn(move || run(file, rx))?;
    Ok(tx)
}

fn run(file: File, rx: Receiver<Arc<Record>>) {
    crate::sched::background();
    let mut out = BufWriter::new(file);
    let mut line = String::new();
    while let Ok(record) = rx.recv() {
        write_line(&mut out, &mut line, &record);
        // Write out whenever the queue is empty, so the file is current.
        for record in rx.try_iter() {
            write_line(&mut out, &mut line, &record);
        }
        if let Err(e) = out.flush() {
            tracing::warn!(error = %e, "cannot write the audit file");
        }
    }
    let _ = out.flush();
}

fn write_line(out: &mut impl Write, line: &mut String, record: &Record) {
    line.clear();
    json_line(line, record);
    if out.write_all(line.as_bytes()).is_err() {
        // The flush that follows reports the error once per batch, not once per line.
        super::dropped_counter("file", "send_failed").increment(1);
    }
}

/// The JSON line of a record, newline included.
pub fn json_line(out: &mut String, r: &Record) {
    let ts_ms = r
        .time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let value = serde_json::json!({
        "ts_ms": ts_ms,
        "user": r.user,
        "client": r.client,
        "peer": r.peer.to_string(),
        "mode": r.mode,
        "result": r.result,
        "reason": r.reason,
        "latency_us": r.latency_us,
    });
    out.push_str(&value.to_string());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_json_line_holds_every_field_and_escapes_the_user() {
        let r = Record {
            time: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            user: "a\"b".to_owned(),
            client: "vpn".to_owned(),
            peer: "10.0.0.1".parse().unwrap(),
            mode: "append",
            result: "reject",
            reason: "bad_passcode",
            latency_us: 42,
        };
        let mut line = String::new();
        json_line(&mut line, &r);
        assert!(line.ends_with('\n') && line.lines().count() == 1, "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ts_ms"], 1_700_000_000_123u64);
        assert_eq!(v["user"], "a\"b");
        assert_eq!(v["peer"], "10.0.0.1");
        assert_eq!(v["reason"], "bad_passcode");
        assert_eq!(v["latency_us"], 42);
    }
}
