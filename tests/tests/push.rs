//! Push approval end to end: the real `tollgate` binary, `radclient` as the NAS, and a
//! phone app simulated over the real mobile API (Ed25519 key, signed requests): approve,
//! decline, timeout, approving twice, a forged signature, number matching in challenge
//! mode, a retransmit storm while a login is held, and 10,000 logins held at once.

use std::time::{Duration, Instant};

use tollgate_engine::radius::Code;
use tollgate_tests::peers::PhoneApp;
use tollgate_tests::{login, radclient, Node, RadReply, RawClient, SECRET};

struct Setup {
    node: Node,
    app: PhoneApp,
}

fn setup(mode: &str, timeout_secs: u64) -> Setup {
    setup_with(mode, timeout_secs, "")
}

fn setup_with(mode: &str, timeout_secs: u64, extra: &str) -> Setup {
    setup_with_api(mode, timeout_secs, extra, "")
}

/// As `setup_with`, with `api_extra` lines in `[mobile_api]`.
fn setup_with_api(mode: &str, timeout_secs: u64, extra: &str, api_extra: &str) -> Setup {
    let port = tollgate_tests::free_tcp_port();
    let mut node = Node::new(&format!(
        "{extra}[mobile_api]\nlisten = \"127.0.0.1:{port}\"\nallow_plain = true\n{api_extra}[login]\npush_timeout_secs = {timeout_secs}\n[audit]\nfile = \"{{dir}}/audit.jsonl\"\n"
    ));
    node.add_client("nas1", mode, true);
    node.ok(
        &["user", "add", "alice", "--password-stdin"],
        Some("Secret123\n"),
    );
    node.ok(&["user", "set", "alice", "--delivery", "push"], None);
    let code = node.enrolment_code("alice");
    node.start();
    let api = format!("127.0.0.1:{port}").parse().unwrap();
    let app = PhoneApp::enrol(api, &code);
    // The server learns of the new device through the store's change log.
    std::thread::sleep(Duration::from_millis(400));
    Setup { node, app }
}

/// Starts a login on another thread (it is held until the phone answers).
fn login_in_background(node: &Node, wait_secs: u32) -> std::thread::JoinHandle<RadReply> {
    let addr = node.radius();
    std::thread::spawn(move || {
        radclient(
            addr,
            SECRET,
            "auth",
            "User-Name = \"alice\", User-Password = \"Secret123\", Message-Authenticator = 0x00\n",
            1,
            wait_secs,
        )
    })
}

fn wait_pending(app: &PhoneApp, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let p = app.pending();
        if p.len() >= n || Instant::now() > deadline {
            return p;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_approval_on_the_phone_accepts_the_held_login() {
    let Setup { node, app } = setup("append", 20);
    let held = login_in_background(&node, 15);
    let pending = wait_pending(&app, 1);
    assert_eq!(pending.len(), 1, "{}", node.log());
    assert_eq!(pending[0]["client"], "nas1");
    let id = pending[0]["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let (status, body) = app.decide(&id, true, None);
    assert_eq!(status, 200, "{body}");
    let reply = held.join().unwrap();
    assert!(
        reply.is("Access-Accept"),
        "{}\n{}",
        reply.output,
        node.log()
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // Approving again changes nothing.
    let (status, _) = app.decide(&id, true, None);
    assert!(status == 409 || status == 404, "second approval: {status}");
    assert!(app.pending().is_empty());
}

#[test]
fn a_decline_rejects_and_is_reported() {
    let Setup { node, app } = setup("append", 20);
    let held = login_in_background(&node, 15);
    let pending = wait_pending(&app, 1);
    let id = pending[0]["id"].as_str().unwrap().to_owned();
    let (status, body) = app.decide(&id, false, None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("declined"), "{body}");
    let reply = held.join().unwrap();
    assert!(reply.is("Access-Reject"), "{}", reply.output);
    assert!(
        node.log_shows("declined the login on their phone"),
        "{}",
        node.log()
    );
}

#[test]
fn an_unanswered_push_times_out_with_a_reject() {
    let Setup { node, app } = setup("append", 5);
    let started = Instant::now();
    let held = login_in_background(&node, 12);
    let pending = wait_pending(&app, 1);
    assert_eq!(pending.len(), 1, "{}", node.log());
    let id = pending[0]["id"].as_str().unwrap().to_owned();
    let reply = held.join().unwrap();
    assert!(reply.is("Access-Reject"), "{}", reply.output);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(9),
        "{took:?}"
    );
    assert!(app.pending().is_empty());
    // An approval that arrives after the challenge expired finds nothing and accepts
    // nothing: the app is told so.
    let (status, body) = app.decide(&id, true, None);
    assert_eq!(status, 404, "{body}");
    std::thread::sleep(Duration::from_millis(300));
    let results: Vec<String> = node
        .audit_records(1)
        .iter()
        .filter(|r| r["user"] == "alice")
        .map(|r| {
            format!(
                "{}/{}",
                r["result"].as_str().unwrap_or(""),
                r["reason"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        results,
        ["reject/push_timeout"],
        "one login, timed out, never accepted"
    );
}

#[test]
fn a_device_over_its_configured_nonce_limit_is_told_to_slow_down() {
    let s = setup_with_api("append", 30, "", "max_nonces_per_device = 3\n");
    // Every signed request leaves its nonce with the server for minutes: three go through...
    for _ in 0..3 {
        assert_eq!(s.app.signed("GET", "/v1/challenges", b"", false).0, 200);
    }
    // ...and the fourth finds the device's share full.
    let (status, body) = s.app.signed("GET", "/v1/challenges", b"", false);
    assert_eq!(status, 429, "{body}");
}

#[test]
fn a_forged_signature_is_refused_and_changes_nothing() {
    let Setup { node, app } = setup("append", 20);
    let held = login_in_background(&node, 15);
    let pending = wait_pending(&app, 1);
    let id = pending[0]["id"].as_str().unwrap().to_owned();
    let body = br#"{"decision":"approve","number":null}"#;
    let (status, _) = app.signed("POST", &format!("/v1/challenges/{id}"), body, true);
    assert_eq!(status, 401);
    assert_eq!(app.pending().len(), 1, "still pending");
    // A device that does not exist.
    let (status, _) = tollgate_tests::peers::http(
        app.api,
        "GET",
        "/v1/challenges",
        &[("x-tollgate-device", "nope".into())],
        b"",
    );
    assert_eq!(status, 401);
    let (status, _) = app.decide(&id, true, None);
    assert_eq!(status, 200);
    assert!(held.join().unwrap().is("Access-Accept"));
    drop(node);
}

#[test]
fn challenge_mode_shows_the_number_to_pick() {
    let Setup { node, app } = setup("challenge", 20);
    let first = login(node.radius(), "alice", "Secret123");
    assert!(
        first.is("Access-Challenge"),
        "{}\n{}",
        first.output,
        node.log()
    );
    let prompt = first.attr("Reply-Message").unwrap().to_owned();
    let number: u8 = prompt
        .split("pick ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number in {prompt:?}"));
    let state = first.attr("State").unwrap().to_owned();
    let pending = wait_pending(&app, 1);
    let numbers: Vec<u64> = pending[0]["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(numbers.len(), 3);
    assert!(
        numbers.contains(&u64::from(number)),
        "{numbers:?} lacks {number}"
    );
    let id = pending[0]["id"].as_str().unwrap().to_owned();
    let (status, body) = app.decide(&id, true, Some(number));
    assert_eq!(status, 200, "{body}");
    // The user presses Enter at the prompt.
    let answer = format!(
        "User-Name = \"alice\", User-Password = \"\", State = {state}, Message-Authenticator = 0x00\n"
    );
    let ok = radclient(node.radius(), SECRET, "auth", &answer, 1, 5);
    assert!(ok.is("Access-Accept"), "{}\n{}", ok.output, node.log());

    // The wrong number is a decline.
    let second = login(node.radius(), "alice", "Secret123");
    let state = second.attr("State").unwrap().to_owned();
    let pending = wait_pending(&app, 1);
    let id = pending[0]["id"].as_str().unwrap().to_owned();
    let right: u8 = second
        .attr("Reply-Message")
        .unwrap()
        .split("pick ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    let wrong = pending[0]["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap() as u8)
        .find(|n| *n != right)
        .unwrap();
    let (status, _) = app.decide(&id, true, Some(wrong));
    assert_eq!(status, 422);
    let answer = format!(
        "User-Name = \"alice\", User-Password = \"\", State = {state}, Message-Authenticator = 0x00\n"
    );
    let no = radclient(node.radius(), SECRET, "auth", &answer, 1, 5);
    assert!(no.is("Access-Reject"), "{}", no.output);
}

#[test]
fn retransmits_of_a_held_login_join_it_and_get_the_one_answer() {
    let Setup { node, app } = setup("append", 20);
    let raw = RawClient::new(node.radius());
    let auth = [0x5a; 16];
    let request = RawClient::access_request(7, auth, SECRET, "alice", "Secret123", &[], true);
    raw.send(&request);
    let pending = wait_pending(&app, 1);
    assert_eq!(pending.len(), 1);
    // The NAS retransmits while the phone is silent: nothing new is started.
    for _ in 0..20 {
        raw.send(&request);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(app.pending().len(), 1, "retransmits joined the held login");
    assert!(raw.recv().is_none(), "nothing is answered before the phone");
    let id = pending[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.decide(&id, true, None).0, 200);
    let reply = raw.recv().expect("the answer");
    assert_eq!(
        RawClient::check_reply(&reply, &auth, SECRET),
        Code::AccessAccept
    );
    // A late retransmit gets the same answer again, from the duplicate cache.
    raw.send(&request);
    let again = raw.recv().expect("the cached answer");
    assert_eq!(again, reply);
    drop(node);
}

#[test]
fn ten_thousand_logins_are_held_at_once() {
    const N: usize = 10_000;
    // A burst of 10,000 logins from one NAS: let all of them in. A debug build takes
    // seconds to work through it, a standing queue the workers would otherwise shed from
    // (as they should under persistent overload; this test is about holding, not shedding).
    let Setup { node, app } = setup_with(
        "append",
        20,
        "max_in_flight_per_client = 20000\nmax_wait_us = 0\n",
    );
    let started = Instant::now();
    // One login first, so that the password is in the verified-credential cache.
    let warm = login_in_background(&node, 15);
    let first = wait_pending(&app, 1);
    app.decide(first[0]["id"].as_str().unwrap(), true, None);
    assert!(warm.join().unwrap().is("Access-Accept"));
    // Distinct requests: 40 NAS ports, 250 identifiers each.
    let clients: Vec<RawClient> = (0..40).map(|_| RawClient::new(node.radius())).collect();
    for (c, raw) in clients.iter().enumerate() {
        for id in 0..250u8 {
            let mut auth = [0u8; 16];
            auth[0] = c as u8;
            auth[1] = id;
            raw.send(&RawClient::access_request(
                id,
                auth,
                SECRET,
                "alice",
                "Secret123",
                &[],
                true,
            ));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let pending = wait_pending(&app, N);
    assert_eq!(pending.len(), N, "held after {:?}", started.elapsed());
    // Every one of them is answered when its time runs out.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut answered = 0;
    for raw in &clients {
        let mut here = 0;
        while here < 250 && Instant::now() < deadline {
            if let Some(reply) = raw.recv() {
                assert_eq!(reply[0], 3, "an Access-Reject");
                here += 1;
            }
        }
        answered += here;
    }
    assert_eq!(answered, N, "{}", node.log());
    assert!(app.pending().is_empty());
}
