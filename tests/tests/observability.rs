//! What an operator sees: metrics counting drops, shedding and replies, and the audit
//! trail with one JSON line per decision and no secret in it.

use std::net::SocketAddr;
use std::time::Duration;

use tollgate_tests::{free_tcp_port, hotp_code, http_get, login, metric, radclient, Node, SECRET};

#[test]
fn metrics_count_replies_and_every_dropped_request() {
    let port = free_tcp_port();
    let mut node = Node::new(&format!(
        "[metrics]\nlisten = \"127.0.0.1:{port}\"\n[audit]\nfile = \"{{dir}}/audit.jsonl\"\n"
    ));
    node.add_client("nas1", "append", true);
    node.add_hotp_user("alice", "Secret123");
    node.start();
    let addr = node.radius();
    let metrics_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    assert!(login(addr, "alice", &format!("Secret123{}", hotp_code(0))).is("Access-Accept"));
    assert!(login(addr, "alice", "Secret123000000").is("Access-Reject"));
    // Dropped: no Message-Authenticator, and a wrong secret.
    let r = radclient(
        addr,
        SECRET,
        "auth",
        "User-Name = \"alice\", User-Password = \"x\"\n",
        1,
        1,
    );
    assert!(r.code.is_none());
    let r = radclient(
        addr,
        "wrong",
        "auth",
        "User-Name = \"alice\", User-Password = \"x\", Message-Authenticator = 0x00\n",
        1,
        1,
    );
    assert!(r.code.is_none());

    let mut text = String::new();
    let seen = Node::eventually(Duration::from_secs(5), || {
        text = http_get(metrics_addr, "/metrics").unwrap_or_default();
        metric(
            &text,
            "tollgate_radius_dropped_total{client=\"nas1\",reason=\"bad_message_authenticator\"}",
        )
        .is_some()
    });
    assert!(seen, "{text}");
    let check = |series: &str, expected: f64| {
        assert_eq!(metric(&text, series), Some(expected), "{series} in\n{text}");
    };
    check(
        "tollgate_radius_replies_total{client=\"nas1\",mode=\"append\",result=\"accept\"}",
        1.0,
    );
    check(
        "tollgate_radius_replies_total{client=\"nas1\",mode=\"append\",result=\"reject\"}",
        1.0,
    );
    check(
        "tollgate_radius_rejects_total{client=\"nas1\",reason=\"bad_passcode\"}",
        1.0,
    );
    check(
        "tollgate_radius_dropped_total{client=\"nas1\",reason=\"missing_message_authenticator\"}",
        1.0,
    );
    check(
        "tollgate_radius_dropped_total{client=\"nas1\",reason=\"bad_message_authenticator\"}",
        1.0,
    );
    assert!(text.contains("tollgate_radius_request_duration_seconds_bucket{client=\"nas1\",result=\"accept\",le=\"0.001\"}"), "{text}");
    // Process figures: a live server has memory, threads and open files.
    for name in [
        "process_resident_memory_bytes",
        "process_threads",
        "process_open_fds",
    ] {
        assert!(
            metric(&text, name).is_some_and(|v| v > 0.0),
            "{name} in\n{text}"
        );
    }
    assert!(
        metric(&text, "process_cpu_seconds_total").is_some(),
        "{text}"
    );

    // The audit file: one JSON line per decision, no password, passcode or secret.
    node.audit_records(2);
    let audit = std::fs::read_to_string(node.path().join("audit.jsonl")).expect("audit file");
    let lines: Vec<&str> = audit.lines().collect();
    assert_eq!(lines.len(), 2, "{audit}");
    assert!(
        lines[0].contains("\"result\":\"accept\"") && lines[0].contains("\"user\":\"alice\""),
        "{audit}"
    );
    assert!(lines[1].contains("\"reason\":\"bad_passcode\""), "{audit}");
    for secret in ["Secret123", SECRET, &hotp_code(0)] {
        assert!(!audit.contains(secret), "audit holds a secret: {audit}");
    }
}

#[test]
fn a_client_over_its_rate_limit_is_shed_and_counted() {
    let port = free_tcp_port();
    let mut node = Node::new(&format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"));
    node.ok(
        &[
            "client",
            "add",
            "slow",
            "--address",
            "127.0.0.1",
            "--secret-stdin",
            "--rate-limit",
            "1",
        ],
        Some(&format!("{SECRET}\n")),
    );
    node.start();
    let addr = node.radius();
    let mut answered = 0;
    for _ in 0..5 {
        let r = radclient(
            addr,
            SECRET,
            "auth",
            "User-Name = \"nobody\", User-Password = \"x\", Message-Authenticator = 0x00\n",
            1,
            1,
        );
        if r.code.is_some() {
            answered += 1;
        }
    }
    assert!(answered < 5, "the rate limit let every request through");
    let text =
        http_get(format!("127.0.0.1:{port}").parse().unwrap(), "/metrics").unwrap_or_default();
    let dropped = metric(
        &text,
        "tollgate_radius_dropped_total{client=\"slow\",reason=\"rate_limited\"}",
    );
    assert!(dropped.is_some_and(|n| n >= 1.0), "{text}");
}

/// A worker that stays behind drops the requests that waited too long in its socket, and
/// counts every one: each request of a burst is either answered or counted as shed.
#[test]
fn a_worker_persistently_behind_sheds_late_requests_and_counts_them() {
    use tollgate_tests::RawClient;
    let port = free_tcp_port();
    // (The lines before `[metrics]` belong to `[radius]`.) One worker, and a target no
    // loaded worker can meet: 1 µs in the socket, for 1 ms.
    let mut node = Node::new(&format!(
        "workers = 1\nmax_wait_us = 1\noverload_after_ms = 1\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    node.add_client("nas1", "append", true);
    node.start();
    let addr = node.radius();
    let metrics_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // The kernel turns arrival stamping on in the background.
    std::thread::sleep(Duration::from_millis(200));

    const SOCKETS: usize = 4;
    const PER_SOCKET: usize = 250;
    let clients: Vec<RawClient> = (0..SOCKETS).map(|_| RawClient::new(addr)).collect();
    let mut sent = 0;
    for id in 0..PER_SOCKET {
        for (s, client) in clients.iter().enumerate() {
            let mut authenticator = [0u8; 16];
            authenticator[0] = id as u8;
            authenticator[1] = s as u8;
            authenticator[2] = 0x5a;
            let request = RawClient::access_request(
                id as u8,
                authenticator,
                SECRET,
                "nobody",
                "Secret123000000",
                &[],
                true,
            );
            client.send(&request);
            sent += 1;
        }
    }
    let mut answered = 0;
    for client in &clients {
        while client.recv().is_some() {
            answered += 1;
        }
    }
    let mut text = String::new();
    let mut shed = 0.0;
    Node::eventually(Duration::from_secs(5), || {
        text = http_get(metrics_addr, "/metrics").unwrap_or_default();
        shed = metric(&text, "tollgate_shed_total{gate=\"queue\"}").unwrap_or(0.0);
        shed as usize + answered >= sent
    });
    assert!(shed > 0.0, "nothing shed\n{text}");
    assert!(answered > 0, "nothing answered");
    assert_eq!(
        shed as usize + answered,
        sent,
        "every request is answered or counted as shed\n{text}"
    );
    assert!(
        node.log_shows("shedding requests that waited too long"),
        "{}",
        node.log()
    );
}
