//! `push-bench`: figures of push approval against a running server, measured from outside.
//!
//! Usage: `push-bench DATA_CONFIG RADIUS_ADDR API_ADDR SERVER_PID HELD APPROVALS`.
//! It enrols a phone for user `alice` (who must exist with password `Secret123`, delivery
//! `push`, and a RADIUS client for 127.0.0.1 with the test secret in append mode), then:
//!
//! 1. holds `HELD` logins at once (distinct requests from many sockets) and reports the
//!    server's resident memory before and after, per held login;
//! 2. approves `APPROVALS` logins one at a time and reports, for each, the time from
//!    sending the approval to receiving the RADIUS Access-Accept: median, p99, max.
//!
//! Loopback only; bounded by its arguments.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use tollgate_tests::peers::PhoneApp;
use tollgate_tests::{cli_with, rss_kib, RawClient, SECRET};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!("usage: push-bench CONFIG RADIUS_ADDR API_ADDR SERVER_PID HELD APPROVALS");
        std::process::exit(2);
    }
    let config = Path::new(&args[1]);
    let radius: SocketAddr = args[2].parse().expect("RADIUS address");
    let api: SocketAddr = args[3].parse().expect("API address");
    let pid: u32 = args[4].parse().expect("server pid");
    let held: usize = args[5].parse().expect("HELD");
    let approvals: usize = args[6].parse().expect("APPROVALS");
    for a in [radius, api] {
        assert!(a.ip().is_loopback(), "loopback only");
    }

    let out = cli_with(config, &["device", "enrol", "alice", "--no-qr"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    let code = text
        .lines()
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .expect("an enrolment code")
        .to_owned();
    let app = PhoneApp::enrol(api, &code);
    std::thread::sleep(Duration::from_millis(500));

    // 1. Memory of held logins.
    let before = rss_kib(pid);
    let sockets = held.div_ceil(250);
    let clients: Vec<RawClient> = (0..sockets).map(|_| RawClient::new(radius)).collect();
    let mut sent = 0;
    for (c, raw) in clients.iter().enumerate() {
        for id in 0..250u8 {
            if sent == held {
                break;
            }
            let mut auth = [0u8; 16];
            auth[..8].copy_from_slice(&(c as u64).to_be_bytes());
            auth[8] = id;
            raw.send(&RawClient::access_request(
                id,
                auth,
                SECRET,
                "alice",
                "Secret123",
                &[],
                true,
            ));
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Count until every login is held, or the count stops growing (a list of 100,000
    // is megabytes of JSON: poll sparingly).
    let started = Instant::now();
    let mut pending = 0;
    while started.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_secs(2));
        let now = app.pending().len();
        if now >= held || (now == pending && now > 0) {
            pending = now;
            break;
        }
        pending = now;
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(pid);
    println!(
        "held {pending} logins: RSS {before} KiB -> {after} KiB, {:.2} KiB per held login",
        (after.saturating_sub(before)) as f64 / pending.max(1) as f64
    );
    if approvals == 0 {
        return;
    }
    // Let them go: decline every one.
    for p in app.pending() {
        let _ = app.decide(p["id"].as_str().unwrap_or(""), false, None);
    }
    std::thread::sleep(Duration::from_secs(1));

    // 2. Time from approval to Access-Accept.
    let raw = RawClient::new(radius);
    let mut times = Vec::with_capacity(approvals);
    let mut http_times = Vec::with_capacity(approvals);
    for i in 0..approvals {
        let mut auth = [0xa5u8; 16];
        auth[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let id = (i % 256) as u8;
        raw.send(&RawClient::access_request(
            id,
            auth,
            SECRET,
            "alice",
            "Secret123",
            &[],
            true,
        ));
        let challenge = loop {
            if let Some(p) = app.pending().into_iter().next() {
                break p;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let path = format!("/v1/challenges/{}", challenge["id"].as_str().unwrap());
        let body = br#"{"decision":"approve","number":null}"#;
        let headers = app.sign("POST", &path, body, false);
        let t0 = Instant::now();
        let (status, _) = tollgate_tests::peers::http(api, "POST", &path, &headers, body);
        assert_eq!(status, 200);
        http_times.push(t0.elapsed());
        let reply = raw.recv().expect("the Access-Accept");
        let took = t0.elapsed();
        assert_eq!(reply[0], 2, "Access-Accept");
        times.push(took);
    }
    times.sort();
    http_times.sort();
    println!(
        "the approval's HTTP round trip alone: median {:?}",
        http_times[http_times.len() / 2]
    );
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "approval → Access-Accept over {} logins (HTTP round trip of the approval included): median {:?}, p99 {:?}, max {:?}",
        times.len(),
        pct(0.5),
        pct(0.99),
        times[times.len() - 1]
    );
}
