//! End to end: the harness's own binary against a real `tollgate serve` on loopback.
//!
//! A server is started from the `tollgate` binary cargo built beside this test (build it
//! first with `cargo build --workspace --bins`, as `scripts/test.sh` does), loaded with the
//! files `tollgate-loadtest setup` writes, and driven with a few hundred passcode-only
//! logins, a mix of every kind of request, and a short open loop. Every run must end with
//! every transaction as expected and every reply verified. Nothing here asserts on speed.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod support;
use support::{assert_ok, run_with_stdin, start_server, tollgate_bin};

/// Runs `tollgate-loadtest run` with `args` and returns its JSON report.
fn harness_run(server: SocketAddr, dir: &Path, secret: &str, args: &[&str]) -> Value {
    let json = dir.join("report.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate-loadtest"));
    cmd.arg("run")
        .arg("--server")
        .arg(server.to_string())
        .arg("--secret-stdin")
        .arg("--dir")
        .arg(dir)
        .arg("--json")
        .arg(&json)
        .arg("--quiet")
        .args(args);
    let out = run_with_stdin(cmd, secret);
    let stdout = assert_ok(&format!("tollgate-loadtest run {args:?}"), &out);
    let text = std::fs::read_to_string(&json).expect("the JSON report");
    let report: Value = serde_json::from_str(&text).expect("valid JSON");
    assert!(
        report["passed"] == true,
        "run {args:?} did not pass:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

fn count(report: &Value, key: &str) -> u64 {
    report["counts"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("counts.{key}"))
}

fn kind(report: &Value, kind: &str, key: &str) -> u64 {
    report["by_kind"][kind][key].as_u64().unwrap_or(0)
}

#[test]
fn the_harness_drives_a_real_server_without_a_single_failure() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let config = tmp.path().join("tollgate.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[radius]\nlisten = [\"127.0.0.1:0\"]\n[log]\nlevel = \"warn\"\n",
            tmp.path().join("data").display().to_string()
        ),
    )
    .expect("write config");
    let lt = tmp.path().join("lt");

    let out = Command::new(env!("CARGO_BIN_EXE_tollgate-loadtest"))
        .args(["setup", "--users", "20", "--dir"])
        .arg(&lt)
        .output()
        .expect("run setup");
    let printed = assert_ok("tollgate-loadtest setup", &out);
    assert!(printed.contains("token import") && printed.contains("--create-users"));
    let secret = std::fs::read_to_string(lt.join("secret")).expect("secret file");

    let tollgate = |args: &[&str], stdin: &str| {
        let mut cmd = Command::new(tollgate_bin());
        cmd.arg("--config").arg(&config).args(args);
        assert_ok(&format!("tollgate {args:?}"), &run_with_stdin(cmd, stdin))
    };
    let seeds = lt.join("seeds.csv").display().to_string();
    tollgate(&["init"], "");
    tollgate(&["token", "import", &seeds, "--create-users"], "");
    tollgate(
        &[
            "client",
            "add",
            "loadtest",
            "--address",
            "127.0.0.0/8",
            "--secret-stdin",
            "--mode",
            "passcode-only",
        ],
        &secret,
    );
    let server = start_server(&config, &tmp.path().join("server.log"));

    // A closed loop of passcode logins from three simulated NAS.
    let r = harness_run(
        server.addr,
        &lt,
        &secret,
        &[
            "--scenario",
            "passcode",
            "--concurrency",
            "8",
            "--duration",
            "15",
            "--max-requests",
            "300",
            "--sources",
            "3",
            "--sockets-per-source",
            "2",
            "--timeout-ms",
            "5000",
        ],
    );
    assert_eq!(count(&r, "started"), 300);
    assert_eq!(count(&r, "accepts"), 300);
    assert_eq!(count(&r, "answered"), 300);
    assert_eq!(count(&r, "ok"), 300);
    for zero in [
        "failures",
        "timeouts",
        "bad_replies",
        "stray_replies",
        "send_errors",
    ] {
        assert_eq!(count(&r, zero), 0, "{zero}");
    }
    assert_eq!(r["latency_us"]["count"], 300);

    // Every kind of request; the second run also proves the counters were kept.
    let r = harness_run(
        server.addr,
        &lt,
        &secret,
        &[
            "--scenario",
            "mix",
            "--mix",
            "accept=80,reject=10,bad-secret=3,malformed=3,replay=2,unknown-user=2,bad-password=2",
            "--concurrency",
            "6",
            "--duration",
            "15",
            "--max-requests",
            "300",
            "--timeout-ms",
            "400",
        ],
    );
    let started = count(&r, "started");
    assert_eq!(started, 300);
    for zero in [
        "failures",
        "timeouts",
        "bad_replies",
        "unexpected_replies",
        "send_errors",
    ] {
        assert_eq!(count(&r, zero), 0, "{zero}");
    }
    let probes = kind(&r, "bad-secret", "started") + kind(&r, "malformed", "started");
    assert!(probes > 0);
    assert_eq!(count(&r, "dropped_as_expected"), probes);
    assert_eq!(count(&r, "ok") + probes, started);
    assert_eq!(kind(&r, "accept", "accepts"), kind(&r, "accept", "started"));
    for refused in ["reject", "replay", "unknown-user", "bad-password"] {
        assert!(kind(&r, refused, "started") > 0, "{refused} was never sent");
        assert_eq!(
            kind(&r, refused, "rejects"),
            kind(&r, refused, "started"),
            "{refused}"
        );
    }

    // A short open loop, measured against its timetable.
    let r = harness_run(
        server.addr,
        &lt,
        &secret,
        &[
            "--scenario",
            "passcode",
            "--rate",
            "400",
            "--duration",
            "0.5",
            "--timeout-ms",
            "5000",
        ],
    );
    assert_eq!(count(&r, "started"), 200);
    assert_eq!(count(&r, "accepts"), 200);
    assert_eq!(r["open_loop"]["started"], 200);

    // Half the logins sent twice at once, as a NAS retransmits: each copy is answered as
    // its original (the server's duplicate cache) or not at all, never refused as a replay.
    let r = harness_run(
        server.addr,
        &lt,
        &secret,
        &[
            "--scenario",
            "passcode",
            "--concurrency",
            "4",
            "--duration",
            "15",
            "--max-requests",
            "200",
            "--duplicates",
            "50",
            "--timeout-ms",
            "5000",
        ],
    );
    assert_eq!(count(&r, "accepts"), 200);
    assert_eq!(count(&r, "ok"), 200);
    let duplicates = count(&r, "duplicates_sent");
    assert!((50..=150).contains(&duplicates), "{duplicates} duplicates");
    for zero in [
        "failures",
        "timeouts",
        "bad_replies",
        "stray_replies",
        "duplicate_mismatches",
    ] {
        assert_eq!(count(&r, zero), 0, "{zero}");
    }
    assert_eq!(r["passed"], true);

    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(lt.join("state.json")).unwrap()).unwrap();
    let users = state["users"].as_array().expect("users");
    assert_eq!(users.len(), 20);
    assert!(users.iter().all(|u| u["next_counter"].as_u64() > Some(0)));
    drop(server);
}
