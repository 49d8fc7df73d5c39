//! `slapd-fixture`: the test harness's slapd ([`Slapd::start_with_load_users`]) as a
//! process of its own, for scripts and benchmarks (`loadtest/compare-ldap.sh`).
//!
//! Usage: `slapd-fixture [N]` (N load users `load00000`…, default 10000). Once slapd
//! answers, it prints one `key=value` line per fact and flushes: `ldap_url`, `ldaps_url`,
//! `ca_file`, `pid` (slapd's), `dir`, `base_dn`, `people_dn`, `service_dn`,
//! `service_password`, `load_users`, `load_password`, then `ready=1` last. It then reads
//! commands, one per line of standard input: `kill` SIGKILLs slapd (a crash: ports and
//! database stay) and answers `killed=1`; `restart` starts it again on the same ports and
//! answers `pid=…` and `restarted=1` once it answers binds. It stops when its standard
//! input closes or it gets SIGTERM or SIGINT, and kills slapd and removes its directory on
//! the way out. Everything listens on 127.0.0.1 only.

use std::io::{BufRead, Write};

use tollgate_tests::slapd::{
    Slapd, BASE_DN, LOAD_PASSWORD, PEOPLE_DN, SERVICE_DN, SERVICE_PASSWORD,
};

/// The most load users this fixture builds (slapadd of a million entries takes minutes).
const MAX_USERS: usize = 1_000_000;

fn main() {
    let n = match std::env::args().nth(1).map(|a| a.parse::<usize>()) {
        None => 10_000,
        Some(Ok(n)) if n <= MAX_USERS => n,
        Some(_) => {
            eprintln!("usage: slapd-fixture [LOAD_USERS (0..={MAX_USERS}, default 10000)]");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    // Signal handlers first, so that a SIGTERM during the (slow) start-up is not lost.
    let mut term = runtime.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler")
    });
    let slapd = Slapd::start_with_load_users(n);
    let facts = [
        ("ldap_url", slapd.ldap_url.clone()),
        ("ldaps_url", slapd.ldaps_url.clone()),
        ("ca_file", slapd.ca_file.display().to_string()),
        ("pid", slapd.pid().to_string()),
        ("dir", slapd.path().display().to_string()),
        ("base_dn", BASE_DN.to_owned()),
        ("people_dn", PEOPLE_DN.to_owned()),
        ("service_dn", SERVICE_DN.to_owned()),
        ("service_password", SERVICE_PASSWORD.to_owned()),
        ("load_users", n.to_string()),
        ("load_password", LOAD_PASSWORD.to_owned()),
        ("ready", "1".to_owned()),
    ];
    let mut out = std::io::stdout().lock();
    for (key, value) in facts {
        let _ = writeln!(out, "{key}={value}");
    }
    let _ = out.flush();
    drop(out);

    // Standard input is read on a thread of its own: a blocking read cannot be cancelled,
    // and the process exits without waiting for it. Each line is a command; end of input
    // stops the fixture.
    let (command_tx, mut command_rx) = tokio::sync::mpsc::unbounded_channel::<Command>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let command = match line.trim() {
                "kill" => Command::Kill,
                "restart" => Command::Restart,
                "" => continue,
                other => Command::Unknown(other.to_owned()),
            };
            if command_tx.send(command).is_err() {
                return;
            }
        }
        let _ = command_tx.send(Command::Stop);
    });
    let mut slapd = slapd;
    runtime.block_on(async {
        loop {
            let command = tokio::select! {
                c = command_rx.recv() => c.unwrap_or(Command::Stop),
                _ = term.recv() => Command::Stop,
                _ = tokio::signal::ctrl_c() => Command::Stop,
            };
            let mut out = std::io::stdout().lock();
            match command {
                Command::Kill => {
                    slapd.kill();
                    let _ = writeln!(out, "killed=1");
                }
                Command::Restart => {
                    slapd.restart();
                    let _ = writeln!(out, "pid={}", slapd.pid());
                    let _ = writeln!(out, "restarted=1");
                }
                Command::Unknown(what) => {
                    let _ = writeln!(out, "error=unknown command {what:?} (kill, restart)");
                }
                Command::Stop => break,
            }
            let _ = out.flush();
        }
    });
    // Kills slapd and removes the temporary directory.
    drop(slapd);
}

/// What a line of standard input asks for.
enum Command {
    /// SIGKILL slapd (a crash); its ports and database stay.
    Kill,
    /// Start slapd again on the same ports and database.
    Restart,
    /// End of input, SIGTERM or SIGINT.
    Stop,
    /// Anything else.
    Unknown(String),
}
