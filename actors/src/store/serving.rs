//! One server per data directory.
//!
//! A server keeps runtime state in memory (the counters of used codes, lockouts) and writes
//! it to the store in the background. Two servers on one data directory would each accept a
//! code the other had already taken, and overwrite each other's counters. [`ServeLock`]
//! holds an exclusive lock on a file of the directory for as long as the server runs; the
//! system releases it when the process ends, however it ends. The command-line tools (token
//! import, user and client changes) do not take it: they work through the store's change
//! log, which a running server reads.
//!
//! The lock is `flock(2)`, which the standard library offers only from a Rust newer than
//! this project's minimum: the one call is this module's `unsafe`.

#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::StoreError;

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "serve.lock";

/// The lock of a running server on its data directory; released when dropped.
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
}

/// Takes the serving lock of `dir`, or says which process holds it.
pub fn lock(dir: &Path) -> Result<ServeLock, StoreError> {
    let path = dir.join(LOCK_FILE);
    let busy = |reason: String| StoreError::DataDir {
        path: dir.to_owned(),
        reason,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| busy(format!("cannot open {}: {e}", path.display())))?;
    // SAFETY: flock(2) takes a descriptor this function owns, open for the whole call, and
    // plain flags; it touches no memory of ours.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    let error = std::io::Error::last_os_error();
    match (locked, error.kind()) {
        (0, _) => {}
        (_, std::io::ErrorKind::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                "another process".to_owned()
            } else {
                format!("process {holder}")
            };
            return Err(busy(format!(
                "{who} is already serving it (a second server would accept codes the first has used); stop it first"
            )));
        }
        _ => {
            return Err(busy(format!("cannot lock {}: {error}", path.display())));
        }
    }
    // Who holds it, for the message above; the lock, not this text, is what counts.
    let pid = std::process::id().to_string();
    let written = file
        .set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(pid.as_bytes()));
    if let Err(e) = written {
        tracing::warn!(error = %e, path = %path.display(), "cannot write the pid into the lock file");
    }
    Ok(ServeLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_server_per_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock(dir.path()).unwrap();
        let e = lock(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "process {} is already serving it",
                std::process::id()
            )),
            "{e}"
        );
        // Another directory is another server's.
        let other = tempfile::tempdir().unwrap();
        let _second = lock(other.path()).unwrap();
        // Released with the server.
        drop(first);
        let _again = lock(dir.path()).unwrap();
    }
}
