//! `smtp-outage`: real-time e-mail codes requested steadily while the mail server is down
//! for a while; counts what the users were told and what the mail server received.
//!
//! Usage: `smtp-outage USERS RATE UP_SECS DOWN_SECS` (run by `loadtest/fault-smtp.sh`). It
//! starts a real SMTP server (aiosmtpd, keeping every message) and a Tollgate (the
//! `tollgate` binary beside this one) whose e-mail gateway is that server, with USERS users
//! `mail0`… (password `Secret123`, delivery `realtime-email`, no per-destination limit) and
//! a RADIUS client in challenge mode. It then sends RATE password logins per second, users
//! in turn: UP_SECS with the mail server up, DOWN_SECS after it is SIGKILLed, UP_SECS after
//! it is started again on the same port; then it waits (at most 120 s) for the outbox to
//! empty. Each login must get an Access-Challenge whose message says either that the code
//! was sent or that it is delayed.
//!
//! It prints a table per phase (logins, challenges, prompts that said "delayed", other
//! answers) and the mail server's count: messages received, codes requested, codes never
//! received (lost), codes received more than once (sent twice), and how long after the
//! restart the last waiting code arrived. Exit 1 when a code was lost or sent twice, or a
//! login was not challenged. Loopback only; bounded by its arguments.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tollgate_engine::radius::attr;
use tollgate_tests::peers::{code_in, mail_body, SmtpSink};
use tollgate_tests::{metric, Node, RawClient, SECRET};

/// A phase's tally of what the logins were answered.
#[derive(Default)]
struct Tally {
    logins: u64,
    challenges: u64,
    delayed: u64,
    other: u64,
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a number"))
        .collect();
    let [users, rate, up_secs, down_secs] = args[..] else {
        eprintln!("usage: smtp-outage USERS RATE UP_SECS DOWN_SECS");
        std::process::exit(2);
    };
    assert!(
        users > 0 && rate > 0 && rate <= 1000,
        "USERS > 0, RATE in 1..=1000"
    );

    let mut smtp = SmtpSink::start();
    let metrics_port = tollgate_tests::free_tcp_port();
    let mut node = Node::new(&format!(
        "{}\n[delivery]\nmax_per_destination_per_hour = 0\n\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n",
        smtp.gateway()
    ));
    node.add_client("nas1", "challenge", true);
    let csv: String = (0..users)
        .map(|i| format!("mail{i},Secret123\n"))
        .collect::<String>();
    let list = node.path().join("users.csv");
    std::fs::write(&list, format!("name,password\n{csv}")).expect("users.csv");
    node.ok(&["user", "import", list.to_str().expect("path")], None);
    let delivery: String = (0..users)
        .map(|i| format!("mail{i},realtime-email,,mail{i}@example.com\n"))
        .collect();
    let list = node.path().join("delivery.csv");
    std::fs::write(&list, format!("name,delivery,mobile,email\n{delivery}")).expect("delivery.csv");
    node.ok(
        &["user", "delivery-import", list.to_str().expect("path")],
        None,
    );
    node.start();
    eprintln!("smtp-outage: {users} users, {rate} logins/s; up {up_secs} s, down {down_secs} s, up {up_secs} s");

    let raw = RawClient::new(node.radius());
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut requested: u64 = 0;
    let mut run = |secs: u64, label: &str| -> Tally {
        let mut tally = Tally::default();
        let start = Instant::now();
        let mut next = start;
        while start.elapsed() < Duration::from_secs(secs) {
            let now = Instant::now();
            if now < next {
                std::thread::sleep(next - now);
            }
            next += interval;
            let user = format!("mail{}", requested % users);
            let mut auth = [0x5au8; 16];
            auth[..8].copy_from_slice(&requested.to_be_bytes());
            let id = (requested % 256) as u8;
            raw.send(&RawClient::access_request(
                id,
                auth,
                SECRET,
                &user,
                "Secret123",
                &[],
                true,
            ));
            requested += 1;
            tally.logins += 1;
            let Some(reply) = raw.recv() else {
                tally.other += 1;
                continue;
            };
            let message = RawClient::reply_attribute(&reply, attr::REPLY_MESSAGE)
                .map(|m| String::from_utf8_lossy(&m).into_owned())
                .unwrap_or_default();
            if reply[0] != 11 {
                tally.other += 1;
            } else if message.contains("delayed") {
                tally.challenges += 1;
                tally.delayed += 1;
            } else if message.starts_with("Enter the passcode sent to") {
                tally.challenges += 1;
            } else {
                tally.other += 1;
            }
        }
        eprintln!(
            "  {label}: {} logins, {} challenged ({} told the code is delayed), {} other",
            tally.logins, tally.challenges, tally.delayed, tally.other
        );
        tally
    };
    let before = run(up_secs, "mail server up");
    smtp.kill();
    let during = run(down_secs, "mail server down");
    smtp.restart();
    let restarted = Instant::now();
    // How long the codes that waited take to arrive: until the mail server holds as many
    // messages as were requested before it came back.
    let backlog = {
        let dir = smtp.path().to_owned();
        let target = before.logins + during.logins;
        std::thread::spawn(move || {
            while restarted.elapsed() < Duration::from_secs(120) {
                let count = std::fs::read_dir(&dir)
                    .map(|d| {
                        d.filter_map(Result::ok)
                            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                            .count()
                    })
                    .unwrap_or(0);
                if count as u64 >= target {
                    return Some(restarted.elapsed());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            None
        })
    };
    let after = run(up_secs, "mail server back");
    let backlog = backlog.join().ok().flatten();

    // Wait for the outbox to empty (every code delivered or dead).
    let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], metrics_port));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let count = smtp.messages().len();
        let page = tollgate_tests::http_get(metrics, "/metrics").unwrap_or_default();
        let queued = metric(&page, "tollgate_delivery_queued").unwrap_or(f64::NAN);
        if (queued == 0.0 && count as u64 >= requested) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let page = tollgate_tests::http_get(metrics, "/metrics").unwrap_or_default();
    let dead = metric(&page, "tollgate_delivery_dead_letters").unwrap_or(f64::NAN);

    // Every message the mail server got, by its Message-ID (the same at every attempt of
    // one outbox message), and how often; each must hold a code.
    let mails = smtp.messages();
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut without_code = 0;
    for m in &mails {
        let id = m
            .lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("message-id"))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_default();
        if code_in(mail_body(m), 6).is_none() {
            without_code += 1;
        }
        *ids.entry(id).or_default() += 1;
    }
    let twice = ids.values().filter(|&&n| n > 1).count();
    let distinct = ids.len() as u64;
    let lost = requested.saturating_sub(distinct);

    println!();
    println!("real-time e-mail codes, {users} users, {rate} logins/s; the mail server SIGKILLed for {down_secs} s");
    println!();
    println!(
        "{:<18} {:>7} {:>11} {:>8} {:>6}",
        "phase", "logins", "challenged", "delayed", "other"
    );
    for (label, t) in [
        ("mail server up", &before),
        ("mail server down", &during),
        ("mail server back", &after),
    ] {
        println!(
            "{:<18} {:>7} {:>11} {:>8} {:>6}",
            label, t.logins, t.challenges, t.delayed, t.other
        );
    }
    println!();
    println!(
        "codes requested {requested}; messages received {}; distinct Message-IDs {distinct}; lost {lost}; received twice {twice}; without a code {without_code}; dead letters {dead}",
        mails.len()
    );
    match backlog {
        Some(t) => println!(
            "the codes that waited had all arrived {:.1} s after the mail server was back",
            t.as_secs_f64()
        ),
        None => println!(
            "the codes that waited had not all arrived 120 s after the mail server was back"
        ),
    }
    let not_challenged = before.other + during.other + after.other;
    let failed = lost > 0 || twice > 0 || not_challenged > 0 || without_code > 0;
    if failed {
        eprintln!("FAIL: {lost} lost, {twice} sent twice, {not_challenged} logins not challenged");
        std::process::exit(1);
    }
}
