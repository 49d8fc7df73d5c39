//! The file gateway: each message becomes one JSON line appended to a local file.
//!
//! It is the embedded default, so that a new installation shows its codes without any
//! provider, and a test peer that needs no network. The file holds passcodes: it is
//! created with mode 0600 (an existing file keeps the mode it has). A message counts as
//! sent only once its line is written and synced to disk, and a new file's directory entry
//! is synced too, so an accepted message survives a crash.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use zeroize::Zeroizing;

use super::SendError;
use crate::delivery::Message;

/// Serialises the appends of every file gateway in the process, so that two gateways on
/// one file (the built-in outbox file serves every channel) never interleave lines.
static APPEND: Mutex<()> = Mutex::new(());

pub(super) struct FileGateway {
    path: PathBuf,
}

impl FileGateway {
    /// Creates the file when it is missing, so that a path that cannot be written stops
    /// the server at start-up.
    pub(super) fn open(path: &Path) -> std::io::Result<FileGateway> {
        open_for_append(path).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
        })?;
        Ok(FileGateway {
            path: path.to_owned(),
        })
    }

    pub(super) async fn send(&self, msg: &Message) -> Result<(), SendError> {
        let line = json_line(msg, SystemTime::now());
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || append(&path, &line))
            .await
            .map_err(|_| SendError::Transient("the file writer stopped".to_owned()))?
    }
}

/// Opens the file for appending (each open, so that a rotated file is followed), creating
/// it with mode 0600; a file just created has its directory synced, so that its name
/// survives a crash.
fn open_for_append(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.append(true).mode(0o600);
    match options.clone().create_new(true).open(path) {
        Ok(file) => {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            File::open(dir)?.sync_all()?;
            Ok(file)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => options.open(path),
        Err(e) => Err(e),
    }
}

fn append(path: &Path, line: &str) -> Result<(), SendError> {
    let failed = |e: std::io::Error| {
        SendError::Transient(format!("cannot write {}: {}", path.display(), e.kind()))
    };
    let _guard = APPEND
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut file = open_for_append(path).map_err(failed)?;
    file.write_all(line.as_bytes()).map_err(failed)?;
    file.sync_data().map_err(failed)
}

/// The JSON line of a message, newline included: `time` (RFC 3339, UTC), `id`, `channel`,
/// `to`, `subject`, `body`.
fn json_line(msg: &Message, now: SystemTime) -> Zeroizing<String> {
    let mut time = String::new();
    crate::audit::syslog::push_timestamp(&mut time, now);
    let value = serde_json::json!({
        "time": time,
        "id": msg.id,
        "channel": msg.channel.as_str(),
        "to": msg.to,
        "subject": msg.subject,
        "body": msg.body.as_str(),
    });
    let mut line = Zeroizing::new(value.to_string());
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::Channel;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, UNIX_EPOCH};

    fn message(id: i64, body: &str) -> Message {
        Message {
            key: 7,
            id,
            channel: Channel::Email,
            to: "alice@example.com".to_owned(),
            subject: "Your \"code\"".to_owned(),
            body: Zeroizing::new(body.to_owned()),
        }
    }

    #[test]
    fn a_line_holds_every_field() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let line = json_line(&message(9, "code 123\nbye"), at);
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["time"], "2023-11-14T22:13:20.123000Z");
        assert_eq!(v["id"], 9);
        assert_eq!(v["channel"], "email");
        assert_eq!(v["to"], "alice@example.com");
        assert_eq!(v["subject"], "Your \"code\"");
        assert_eq!(v["body"], "code 123\nbye");
    }

    #[tokio::test]
    async fn messages_are_appended_to_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("codes.jsonl");
        let g = FileGateway::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        g.send(&message(1, "one")).await.unwrap();
        g.send(&message(2, "two")).await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let ids: Vec<i64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        assert_eq!(ids, vec![1, 2]);
    }

    #[tokio::test]
    async fn a_file_that_cannot_be_written_is_a_transient_failure() {
        let dir = tempfile::tempdir().unwrap();
        assert!(FileGateway::open(&dir.path().join("no/such/dir/x")).is_err());
        let path = dir.path().join("codes.jsonl");
        let g = FileGateway::open(&path).unwrap();
        // The directory goes away under the gateway (a disk unmounted, a clean-up job).
        drop(dir);
        let e = g.send(&message(3, "secret 555")).await.unwrap_err();
        assert!(e.is_transient(), "{e}");
        assert!(!e.to_string().contains("555"));
    }
}
