//! What the harness's end-to-end tests share: the `tollgate` binary cargo built beside
//! them, running a program with input, and a `tollgate serve` process that is killed when
//! dropped.

#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The `tollgate` binary in the same target directory as this test.
pub fn tollgate_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/tollgate
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("tollgate"))
        .expect("target directory");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p tollgate-actors --bin tollgate` \
         (scripts/test.sh builds every binary before the tests)",
        bin.display()
    );
    bin
}

/// Runs a program with `stdin` fed in, and returns its output.
pub fn run_with_stdin(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start program");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait for program")
}

/// The program's standard output; fails the test with everything it said when it failed.
pub fn assert_ok(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `tollgate serve` process, killed when dropped.
pub struct Server {
    child: Child,
    /// Its RADIUS address.
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tollgate --config CONFIG serve` with its log in `log`, and waits until it
/// listens.
pub fn start_server(config: &Path, log: &Path) -> Server {
    let mut child = Command::new(tollgate_bin())
        .arg("--config")
        .arg(config)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(log).expect("log file")))
        .spawn()
        .expect("start tollgate serve");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.trim().parse::<SocketAddr>());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(addr)) => Server {
            child,
            addr,
            log: log.to_owned(),
        },
        other => {
            let _ = child.kill();
            panic!(
                "tollgate serve did not start ({other:?}); its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        }
    }
}
