//! The harness's bookkeeping against a strict in-process RADIUS server.
//!
//! The fake server below keeps its own HOTP counter per user, accepts a code only at or
//! ahead of that counter (with the same look-ahead of 10 as Tollgate) and refuses every
//! `SHED_EVERY`-th request outright, as an overloaded server sheds load. If the harness ever
//! sent two codes of one user at once, the later one could arrive first and turn the
//! earlier into a replay; if it lost track of counters across refusals, its codes would fall
//! out of the window. Either would show as refusals beyond the shed ones, and as counters that
//! differ from the server's at the end.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tollgate_engine::otp::code_at;
use tollgate_engine::radius::{
    attr, encode_reply, unhide_password, verify_request, Code, Packet, MAX_PASSWORD_LEN,
};
use tollgate_loadtest::mix::{Kind, Mix};
use tollgate_loadtest::run::{run_phase, Load, Phase, Target};
use tollgate_loadtest::users::User;
use tollgate_loadtest::{state, LoginMode};

const SECRET: &[u8] = b"fake-server-secret";
const SHED_EVERY: u64 = 7;
const LOOKAHEAD: u64 = 10;

/// What the fake server saw.
#[derive(Debug, Default)]
struct Seen {
    requests: u64,
    shed: u64,
    accepted: u64,
    bad_codes: u64,
    next: HashMap<String, u64>,
}

/// Runs the fake server on a loopback port until `stop` is set.
fn fake_server(users: &[User], stop: Arc<AtomicBool>) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    let seeds: HashMap<String, Vec<u8>> = users
        .iter()
        .map(|u| (u.name.clone(), u.seed.clone()))
        .collect();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let shared = Arc::clone(&seen);
    std::thread::spawn(move || {
        let params = state::token_params();
        let mut buf = [0u8; 4096];
        let mut out = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let Ok(p) = Packet::decode(&buf[..n]) else {
                continue;
            };
            let Ok(req) = verify_request(p, SECRET, true) else {
                continue;
            };
            let name =
                String::from_utf8_lossy(req.attribute(attr::USER_NAME).unwrap()).into_owned();
            let mut clear = [0u8; MAX_PASSWORD_LEN];
            let code = unhide_password(
                req.attribute(attr::USER_PASSWORD).unwrap(),
                SECRET,
                req.authenticator(),
                &mut clear,
            )
            .unwrap()
            .to_vec();
            let mut seen = shared.lock().unwrap();
            seen.requests += 1;
            let verdict = if seen.requests % SHED_EVERY == 0 {
                seen.shed += 1;
                Code::AccessReject
            } else {
                let next = seen.next.get(&name).copied().unwrap_or(0);
                let seed = &seeds[&name];
                let hit = (next..=next + LOOKAHEAD).find(|&c| {
                    let mut b = [0u8; 8];
                    code_at(seed, &params, c, &mut b) == code.as_slice()
                });
                match hit {
                    Some(c) => {
                        seen.next.insert(name, c + 1);
                        seen.accepted += 1;
                        Code::AccessAccept
                    }
                    None => {
                        seen.bad_codes += 1;
                        Code::AccessReject
                    }
                }
            };
            drop(seen);
            encode_reply(&mut out, verdict, &req, SECRET, &[]).unwrap();
            socket.send_to(&out, peer).unwrap();
        }
    });
    (addr, seen)
}

fn users(n: usize) -> Vec<User> {
    (0..n)
        .map(|i| User {
            index: i,
            name: format!("fake{i:03}"),
            seed: format!("seed-of-user-{i:05}!").into_bytes(),
            password: None,
            next_counter: 0,
            last_accepted: None,
            failures: 0,
        })
        .collect()
}

fn check(load: Load, threads: usize, max: Option<u64>, duration: Duration) -> u64 {
    let list = users(20);
    let stop = Arc::new(AtomicBool::new(false));
    let (server, seen) = fake_server(&list, Arc::clone(&stop));
    let target = Target {
        server,
        secret: Arc::from(SECRET),
        sources: vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()],
        sockets_per_source: 2,
        params: state::token_params(),
        lookahead: LOOKAHEAD,
        require_reply_ma: true,
        push: None,
    };
    let phase = Phase {
        label: "test",
        mode: LoginMode::Passcode,
        mix: Mix::only(Kind::Good),
        load,
        duration,
        max_transactions: max,
        timeout: Duration::from_secs(5),
        threads,
        lockout_guard: None,
        duplicate_percent: 0,
        approve_delay: (Duration::ZERO, Duration::ZERO),
        progress: false,
    };
    let (outcome, back) =
        run_phase(&target, &phase, list, &Arc::new(AtomicBool::new(false))).unwrap();
    stop.store(true, Ordering::Relaxed);
    let seen = seen.lock().unwrap();
    let c = outcome.stats.counts;
    assert_eq!(c.timeouts, 0);
    assert_eq!(c.bad_replies, 0);
    assert_eq!(c.started, seen.requests);
    assert_eq!(
        seen.bad_codes, 0,
        "the harness sent codes out of order or out of the window"
    );
    assert_eq!(c.accepts, seen.accepted);
    assert_eq!(c.rejects, seen.shed);
    assert_eq!(c.failures, seen.shed);
    assert_eq!(back.len(), 20);
    for u in &back {
        let server_next = seen.next.get(&u.name).copied().unwrap_or(0);
        assert_eq!(u.next_counter, server_next, "counter of {}", u.name);
        assert_eq!(
            u.last_accepted,
            server_next.checked_sub(1),
            "last accepted of {}",
            u.name
        );
    }
    c.started
}

#[test]
fn closed_loop_counters_stay_in_step_with_a_shedding_server() {
    let started = check(
        Load::Closed { concurrency: 16 },
        2,
        Some(2_000),
        Duration::from_secs(15),
    );
    assert_eq!(started, 2_000);
}

#[test]
fn open_loop_sends_exactly_its_timetable() {
    let started = check(
        Load::Open {
            rate: 2_000.0,
            spin: false,
        },
        1,
        None,
        Duration::from_millis(500),
    );
    assert_eq!(started, 1_000);
}

#[test]
fn a_spinning_open_loop_sends_exactly_its_timetable() {
    let started = check(
        Load::Open {
            rate: 4_000.0,
            spin: true,
        },
        1,
        None,
        Duration::from_millis(500),
    );
    assert_eq!(started, 2_000);
}
