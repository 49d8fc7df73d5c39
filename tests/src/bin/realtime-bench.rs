//! `realtime-bench`: login latency of real-time codes against a running server, measured
//! from outside, without the gateway's own latency.
//!
//! Usage: `realtime-bench RADIUS_ADDR OUTBOX_FILE USERS LOGINS`. Users `rt0`… `rt<USERS-1>`
//! must exist with password `Secret123` and delivery `realtime-sms` (each its own number),
//! the server's SMS channel must go to the file gateway `OUTBOX_FILE`, and
//! `delivery.max_per_destination_per_hour = 0`. Each login: the password (timed until the
//! Access-Challenge: password check, code, durable outbox write, session), then, once the
//! code is in the file, the answer (timed until the Access-Accept). The wait for the file —
//! the gateway — is not counted. Loopback only.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use tollgate_engine::radius::attr;
use tollgate_tests::peers::{code_in, outbox_lines};
use tollgate_tests::{RawClient, SECRET};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: realtime-bench RADIUS_ADDR OUTBOX_FILE USERS LOGINS");
        std::process::exit(2);
    }
    let radius: SocketAddr = args[1].parse().expect("RADIUS address");
    assert!(radius.ip().is_loopback(), "loopback only");
    let outbox = Path::new(&args[2]);
    let users: usize = args[3].parse().expect("USERS");
    let logins: usize = args[4].parse().expect("LOGINS");
    let raw = RawClient::new(radius);
    let mut first = Vec::with_capacity(logins);
    let mut second = Vec::with_capacity(logins);
    let mut seen = outbox_lines(outbox).len();
    for i in 0..logins {
        let user = format!("rt{}", i % users);
        let mut auth = [0x3cu8; 16];
        auth[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let id = (i % 256) as u8;
        let t0 = Instant::now();
        raw.send(&RawClient::access_request(
            id,
            auth,
            SECRET,
            &user,
            "Secret123",
            &[],
            true,
        ));
        let reply = raw.recv().expect("the Access-Challenge");
        first.push(t0.elapsed());
        assert_eq!(reply[0], 11, "Access-Challenge for {user}");
        let state = RawClient::reply_attribute(&reply, attr::STATE).expect("a State");
        // The gateway's part: wait for the line in the file (not counted).
        let deadline = Instant::now() + Duration::from_secs(10);
        let code = loop {
            let lines = outbox_lines(outbox);
            if lines.len() > seen {
                seen = lines.len();
                break code_in(lines[seen - 1]["body"].as_str().unwrap_or(""), 6).expect("a code");
            }
            assert!(Instant::now() < deadline, "no code reached the file");
            std::thread::sleep(Duration::from_millis(1));
        };
        let mut auth2 = auth;
        auth2[15] ^= 0xff;
        let t1 = Instant::now();
        raw.send(&RawClient::access_request(
            id.wrapping_add(128),
            auth2,
            SECRET,
            &user,
            &code,
            &[(attr::STATE, &state)],
            true,
        ));
        let reply = raw.recv().expect("the Access-Accept");
        second.push(t1.elapsed());
        assert_eq!(reply[0], 2, "Access-Accept for {user}");
    }
    for (name, mut t) in [
        ("password → challenge (code written)", first),
        ("code → accept", second),
    ] {
        t.sort();
        let pct = |p: f64| t[((t.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "{name}: {} logins, median {:?}, p99 {:?}, max {:?}",
            t.len(),
            pct(0.5),
            pct(0.99),
            t[t.len() - 1]
        );
    }
}
