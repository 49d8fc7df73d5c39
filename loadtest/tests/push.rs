//! The push scenario end to end: the harness's own binary against a real `tollgate serve`
//! with its mobile API on loopback.
//!
//! `setup --passwords` and `tollgate user import` make 20 users, `push-setup` turns them into
//! push users and enrols a simulated phone for each over the real API, and `run --scenario
//! push` keeps 10 logins held while the phones approve each after 50 to 200 ms: first
//! through a client in append mode (the request is held), then through one in challenge mode
//! (number matching). Every reply is verified by the harness; the test reads its JSON
//! report. The server is the `tollgate` binary cargo built beside this test (`cargo build
//! -p tollgate-actors --bin tollgate`, as `scripts/test.sh` does for every binary).

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

mod support;
use support::{assert_ok, run_with_stdin, start_server, tollgate_bin, Server};

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Runs `tollgate-loadtest run --scenario push` with `args` and returns its JSON report
/// and its standard output.
fn push_run(
    server: &Server,
    dir: &Path,
    secret: &str,
    name: &str,
    args: &[&str],
) -> (Value, String) {
    let json = dir.join(format!("{name}.json"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate-loadtest"));
    cmd.arg("run")
        .arg("--server")
        .arg(server.addr.to_string())
        .arg("--secret-stdin")
        .arg("--dir")
        .arg(dir)
        .arg("--scenario")
        .arg("push")
        .arg("--json")
        .arg(&json)
        .arg("--quiet")
        .args(args);
    let out = run_with_stdin(cmd, secret);
    let stdout = assert_ok(&format!("tollgate-loadtest run {args:?}"), &out);
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON report"))
            .expect("valid JSON");
    assert!(
        report["passed"] == true,
        "run {args:?} did not pass:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    (report, stdout)
}

fn n(report: &Value, path: &[&str]) -> f64 {
    let mut v = report;
    for key in path {
        v = &v[*key];
    }
    v.as_f64()
        .unwrap_or_else(|| panic!("{} is not a number in the report", path.join(".")))
}

#[test]
fn simulated_phones_approve_held_logins_under_load() {
    let begun = Instant::now();
    let tmp = tempfile::tempdir().expect("temp dir");
    let config = tmp.path().join("tollgate.toml");
    let api_port = free_tcp_port();
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[radius]\nlisten = [\"127.0.0.1:0\"]\n[log]\nlevel = \"warn\"\n\
             [mobile_api]\nlisten = \"127.0.0.1:{api_port}\"\nallow_plain = true\n",
            tmp.path().join("data").display().to_string()
        ),
    )
    .expect("write config");
    let lt = tmp.path().join("lt");
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate-loadtest"))
        .args(["setup", "--users", "20", "--passwords", "--dir"])
        .arg(&lt)
        .output()
        .expect("run setup");
    let printed = assert_ok("tollgate-loadtest setup", &out);
    assert!(printed.contains("push-setup"), "{printed}");
    let secret = std::fs::read_to_string(lt.join("secret")).expect("secret file");

    let tollgate = |args: &[&str], stdin: &str| {
        let mut cmd = Command::new(tollgate_bin());
        cmd.arg("--config").arg(&config).args(args);
        assert_ok(&format!("tollgate {args:?}"), &run_with_stdin(cmd, stdin))
    };
    let users = lt.join("users.csv").display().to_string();
    tollgate(&["init"], "");
    tollgate(&["user", "import", &users], "");
    // The harness's default sources (127.0.0.2 up) reach the append client; the challenge
    // client is another range of loopback addresses.
    for (name, range, mode) in [
        ("loadtest", "127.0.0.0/29", "append"),
        ("loadtest-challenge", "127.0.1.0/29", "challenge"),
    ] {
        tollgate(
            &[
                "client",
                "add",
                name,
                "--address",
                range,
                "--secret-stdin",
                "--mode",
                mode,
            ],
            &secret,
        );
    }
    let server = start_server(&config, &tmp.path().join("server.log"));

    let api = format!("127.0.0.1:{api_port}");
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate-loadtest"))
        .args(["push-setup", "--dir"])
        .arg(&lt)
        .arg("--config")
        .arg(&config)
        .args(["--api", &api])
        .output()
        .expect("run push-setup");
    let printed = assert_ok("tollgate-loadtest push-setup", &out);
    assert!(printed.contains("enrolled 20 devices"), "{printed}");
    let devices: Value =
        serde_json::from_str(&std::fs::read_to_string(lt.join("devices.json")).unwrap()).unwrap();
    assert_eq!(devices["devices"].as_array().map(Vec::len), Some(20));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(lt.join("devices.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "devices.json holds private keys");

    // Held logins: 10 in flight for 3 s, each approved 50 to 200 ms after it left.
    let (r, summary) = push_run(
        &server,
        &lt,
        &secret,
        "append",
        &[
            "--concurrency",
            "10",
            "--duration",
            "3",
            "--approve-min-ms",
            "50",
            "--approve-max-ms",
            "200",
            "--warmup",
        ],
    );
    println!("{summary}");
    let accepts = n(&r, &["counts", "accepts"]);
    assert!(accepts > 0.0, "{summary}");
    assert_eq!(n(&r, &["counts", "rejects"]), 0.0, "{summary}");
    assert_eq!(n(&r, &["counts", "timeouts"]), 0.0, "{summary}");
    assert_eq!(n(&r, &["counts", "bad_replies"]), 0.0, "{summary}");
    assert_eq!(r["config"]["login"], "push-append");
    let held = n(&r, &["push", "held", "max"]);
    assert!((1.0..=10.0).contains(&held), "held at once: {held}");
    let mean = n(&r, &["push", "held", "mean"]);
    assert!(mean > 0.0 && mean <= held, "mean held {mean}");
    assert!(
        n(&r, &["login_latency_us", "p50"]) >= 50_000.0,
        "a login waits for its approval: {summary}"
    );
    assert!(
        n(&r, &["login_latency_us", "max"]) < 5_000_000.0,
        "{summary}"
    );
    assert_eq!(n(&r, &["push", "app", "approved"]), accepts);
    assert_eq!(n(&r, &["push", "approval_to_accept_us", "count"]), accepts);
    assert!(r["push"]["http_errors"]
        .as_object()
        .is_some_and(|e| e.is_empty()));
    assert!(summary.contains("held         max"), "{summary}");

    // Number matching through the challenge-mode client: the phone picks the number the
    // Access-Challenge showed, the NAS sends the State at once and it is held.
    let (r, summary) = push_run(
        &server,
        &lt,
        &secret,
        "challenge",
        &[
            "--login",
            "challenge",
            "--source-base",
            "127.0.1.2",
            "--sources",
            "1",
            "--concurrency",
            "5",
            "--duration",
            "1",
            "--approve-min-ms",
            "20",
            "--approve-max-ms",
            "60",
        ],
    );
    println!("{summary}");
    let accepts = n(&r, &["counts", "accepts"]);
    assert!(accepts > 0.0, "{summary}");
    assert_eq!(n(&r, &["counts", "rejects"]), 0.0, "{summary}");
    assert_eq!(n(&r, &["counts", "challenges"]), accepts, "{summary}");
    assert_eq!(n(&r, &["push", "app", "approved"]), accepts);
    assert_eq!(n(&r, &["push", "app", "number_unknown"]), 0.0);
    assert_eq!(r["config"]["login"], "push-challenge");
    drop(server);
    eprintln!("push end to end took {:?}", begun.elapsed());
}
