//! The README's first command: `tollgate serve --demo` prints a login that works.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use tollgate_tests::{require, tollgate_bin};

#[test]
fn the_demo_prints_a_radclient_line_that_logs_in() {
    require("radclient", "freeradius-utils");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(tollgate_bin())
        .args([
            "--data-dir",
            data.to_str().unwrap(),
            "serve",
            "--demo",
            "--radius-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the demo");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let done = line.starts_with("listening on ");
            lines.push(line);
            if done {
                let _ = tx.send(lines.clone());
            }
        }
    });
    let lines = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the demo starts");
    let text = lines.join("\n");
    assert!(
        text.contains("otpauth://totp/Tollgate:demo?secret="),
        "{text}"
    );
    assert!(text.contains('█'), "a QR code is printed: {text}");
    let line = lines
        .iter()
        .find(|l| l.trim_start().starts_with("echo "))
        .unwrap_or_else(|| panic!("no radclient line in:\n{text}"));
    let out = Command::new("sh")
        .arg("-c")
        .arg(line.trim())
        .output()
        .expect("run the line");
    let shown = String::from_utf8_lossy(&out.stdout);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        shown.contains("Received Access-Accept"),
        "{line}\n{shown}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The demo user is an ordinary user of the store, seen by the admin commands.
    let out = Command::new(tollgate_bin())
        .args(["--data-dir", data.to_str().unwrap(), "user", "list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("demo"));
}
