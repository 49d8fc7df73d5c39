//! The audit file sink: one JSON object per line, appended by its own thread.
//!
//! The file is created with mode 0600 (it names users and their addresses). The thread
//! writes what the queue holds as one batch of whole lines whenever it wakes, so the file
//! is current without a write per record under load. A batch that cannot be written (a
//! full disk) is cut off again where it began and its lines are counted as dropped
//! (`tollgate_audit_dropped_total{sink="file",reason="send_failed"}`): the file never
//! holds a torn line, and a line written later starts on a line of its own. A file left
//! ending in a torn line (a crash in the middle of a write) gets a newline at open.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::Record;

/// Opens `path` for appending and starts the thread that writes it; returns the sending
/// end of a queue of `capacity` records.
pub(super) fn spawn(path: &Path, capacity: usize) -> std::io::Result<SyncSender<Arc<Record>>> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .open(path)?;
    end_on_a_newline(&mut file)?;
    let (tx, rx) = mpsc::sync_channel::<Arc<Record>>(capacity);
    std::thread::Builder::new()
        .name("tollgate-audit".to_owned())
        .spawn(move || run(file, rx))?;
    Ok(tx)
}

/// Most bytes in one batch: a queue full of records is written in a few writes, not one
/// large allocation.
const BATCH_BYTES: usize = 64 << 10;

/// How often a disk that keeps refusing the audit file is reported while it does.
const REPORT_EVERY: Duration = Duration::from_secs(10);

fn run(mut file: File, rx: Receiver<Arc<Record>>) {
    crate::sched::background();
    let mut batch = String::new();
    let mut failing = Failing::default();
    while let Ok(record) = rx.recv() {
        batch.clear();
        json_line(&mut batch, &record);
        let mut lines = 1;
        // Everything queued meanwhile goes in the same write, so the file is current.
        for record in rx.try_iter() {
            json_line(&mut batch, &record);
            lines += 1;
            if batch.len() >= BATCH_BYTES {
                failing.note(append_whole(&mut file, batch.as_bytes()), lines);
                batch.clear();
                lines = 0;
            }
        }
        if lines > 0 {
            failing.note(append_whole(&mut file, batch.as_bytes()), lines);
        }
    }
}

/// Whether the file is being refused, and since when it was last reported.
#[derive(Default)]
struct Failing {
    /// Lines dropped since the failure began.
    dropped: u64,
    /// When the failure was last reported; `None` while writes succeed.
    reported: Option<Instant>,
}

impl Failing {
    /// Counts the outcome of a batch of `lines` and reports the start and the end of a
    /// failure (and every [`REPORT_EVERY`] while it lasts), not every batch.
    fn note(&mut self, result: std::io::Result<()>, lines: u64) {
        match result {
            Ok(()) => {
                if self.reported.take().is_some() {
                    tracing::warn!(
                        dropped = self.dropped,
                        "the audit file is written again; records were dropped meanwhile"
                    );
                    self.dropped = 0;
                }
            }
            Err(e) => {
                super::dropped_counter("file", "send_failed").increment(lines);
                self.dropped += lines;
                if self.reported.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
                    tracing::warn!(error = %e, dropped = self.dropped, "cannot write the audit file; dropping its records until it can");
                    self.reported = Some(Instant::now());
                }
            }
        }
    }
}

/// A file written only at its end.
trait AppendOnly: Write {
    /// Its length.
    fn len(&self) -> std::io::Result<u64>;
    /// Cuts it to `len` bytes.
    fn cut(&self, len: u64) -> std::io::Result<()>;
}

impl AppendOnly for File {
    fn len(&self) -> std::io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn cut(&self, len: u64) -> std::io::Result<()> {
        self.set_len(len)
    }
}

/// Appends `batch` (whole lines) or nothing: when a write fails part way, the part that
/// reached the file is cut off again.
fn append_whole(file: &mut impl AppendOnly, batch: &[u8]) -> std::io::Result<()> {
    let mut written = 0;
    let error = loop {
        if written == batch.len() {
            return Ok(());
        }
        match file.write(&batch[written..]) {
            Ok(0) => break std::io::Error::from(std::io::ErrorKind::WriteZero),
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break e,
        }
    };
    if written > 0 {
        // Appends go to the end, so the torn part is the file's last `written` bytes.
        if let Ok(len) = file.len() {
            if let Some(keep) = len.checked_sub(written as u64) {
                let _ = file.cut(keep);
            }
        }
    }
    Err(error)
}

/// Ends a file left with a torn last line on a newline, so the next record is a line of
/// its own.
fn end_on_a_newline(file: &mut File) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1)?;
    if last[0] != b'\n' {
        file.write_all(b"\n")?;
    }
    Ok(())
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

    #[test]
    fn a_torn_last_line_is_ended_before_the_next_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, b"{\"ts_ms\":1}\n{\"ts_").unwrap();
        let mut file = OpenOptions::new()
            .append(true)
            .read(true)
            .open(&path)
            .unwrap();
        end_on_a_newline(&mut file).unwrap();
        end_on_a_newline(&mut file).unwrap();
        append_whole(&mut file, b"{\"ts_ms\":2}\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"ts_ms\":1}\n{\"ts_\n{\"ts_ms\":2}\n");
    }

    /// A disk that takes `room` more bytes, then refuses.
    struct SmallDisk {
        data: std::cell::RefCell<Vec<u8>>,
        room: usize,
    }

    impl Write for SmallDisk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.room);
            if n == 0 {
                return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
            }
            self.room -= n;
            self.data.borrow_mut().extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl AppendOnly for SmallDisk {
        fn len(&self) -> std::io::Result<u64> {
            Ok(self.data.borrow().len() as u64)
        }
        fn cut(&self, len: u64) -> std::io::Result<()> {
            self.data.borrow_mut().truncate(len as usize);
            Ok(())
        }
    }

    #[test]
    fn a_batch_the_disk_takes_only_part_of_is_cut_off_again() {
        let mut disk = SmallDisk {
            data: std::cell::RefCell::new(b"{\"a\":1}\n".to_vec()),
            room: 5,
        };
        let e = append_whole(&mut disk, b"{\"b\":2}\n{\"c\":3}\n").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(disk.data.borrow().as_slice(), b"{\"a\":1}\n");
        // Space returns: the next batch lands whole, on a line of its own.
        disk.room = 100;
        append_whole(&mut disk, b"{\"d\":4}\n").unwrap();
        assert_eq!(disk.data.borrow().as_slice(), b"{\"a\":1}\n{\"d\":4}\n");
    }

    #[test]
    fn a_refused_batch_is_an_error() {
        let mut full = OpenOptions::new().append(true).open("/dev/full").unwrap();
        let e = append_whole(&mut full, b"{}\n").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
    }
}
