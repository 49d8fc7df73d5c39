//! Every login mode against the real `radclient`, with and without Message-Authenticator.

use std::time::Duration;

use tollgate_engine::radius::attr;
use tollgate_tests::{
    hotp_code, login, radclient, rss_kib, totp_code, Node, RawClient, SECRET, SEED, SEED_B32,
};

fn node(mode: &str, require_ma: bool) -> Node {
    let mut node = Node::new("");
    node.add_client("nas1", mode, require_ma);
    node.add_hotp_user("alice", "Secret123");
    node.start();
    node
}

#[test]
fn append_mode_accepts_password_and_passcode_and_refuses_each_wrong_part() {
    let node = node("append", true);
    let addr = node.radius();
    let ok = login(addr, "alice", &format!("Secret123{}", hotp_code(0)));
    assert!(ok.is("Access-Accept"), "{}", ok.output);
    // The reply carries a Message-Authenticator (radclient verifies it when present).
    assert!(ok.attr("Message-Authenticator").is_some(), "{}", ok.output);

    let wrong_password = login(addr, "alice", &format!("Secret124{}", hotp_code(1)));
    assert!(
        wrong_password.is("Access-Reject"),
        "{}",
        wrong_password.output
    );
    let wrong_code = login(addr, "alice", "Secret123000000");
    assert!(wrong_code.is("Access-Reject"), "{}", wrong_code.output);
    let unknown = login(addr, "mallory", &format!("Secret123{}", hotp_code(1)));
    assert!(unknown.is("Access-Reject"), "{}", unknown.output);
    // All three refusals look the same to the NAS: no Reply-Message, no hint.
    for r in [&wrong_password, &wrong_code, &unknown] {
        assert!(r.attr("Reply-Message").is_none(), "{}", r.output);
    }
    // The wrong password did not consume code 1: it still logs in.
    let ok = login(addr, "alice", &format!("Secret123{}", hotp_code(1)));
    assert!(ok.is("Access-Accept"), "{}", ok.output);
}

#[test]
fn a_used_code_is_refused_the_second_time() {
    let node = node("append", true);
    let addr = node.radius();
    let field = format!("Secret123{}", hotp_code(0));
    assert!(login(addr, "alice", &field).is("Access-Accept"));
    let replay = login(addr, "alice", &field);
    assert!(replay.is("Access-Reject"), "{}", replay.output);
    assert!(node.log_shows("replayed_passcode"), "{}", node.log());
}

#[test]
fn totp_tokens_log_in_with_the_current_code() {
    let mut node = Node::new("");
    node.add_client("nas1", "append", true);
    node.ok(
        &["user", "add", "tina", "--password-stdin"],
        Some("pw-tina\n"),
    );
    let out = node.ok(
        &[
            "token", "add", "tina", "--type", "totp", "--secret", SEED_B32,
        ],
        None,
    );
    assert!(
        out.contains("otpauth://totp/Tollgate:tina?secret="),
        "{out}"
    );
    assert!(out.contains('█'), "a terminal QR code is printed: {out}");
    node.start();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let r = login(
        node.radius(),
        "tina",
        &format!("pw-tina{}", totp_code(SEED, now)),
    );
    assert!(r.is("Access-Accept"), "{}\n{}", r.output, node.log());
}

#[test]
fn challenge_mode_asks_for_the_passcode_with_a_single_use_state() {
    let node = node("challenge", true);
    let addr = node.radius();
    let first = login(addr, "alice", "Secret123");
    assert!(first.is("Access-Challenge"), "{}", first.output);
    assert_eq!(first.attr("Reply-Message"), Some("Enter your passcode"));
    let state = first
        .attr("State")
        .expect("State in the challenge")
        .to_owned();
    // 16 random octets at least: 0x + 32 hex digits.
    assert!(state.starts_with("0x") && state.len() >= 34, "{state}");

    let answer = format!(
        "User-Name = \"alice\", User-Password = \"{}\", State = {state}, Message-Authenticator = 0x00\n",
        hotp_code(0)
    );
    let second = radclient(addr, SECRET, "auth", &answer, 1, 3);
    assert!(second.is("Access-Accept"), "{}", second.output);

    // The same State again (with the next code) names no session any more.
    let again = format!(
        "User-Name = \"alice\", User-Password = \"{}\", State = {state}, Message-Authenticator = 0x00\n",
        hotp_code(1)
    );
    let third = radclient(addr, SECRET, "auth", &again, 1, 3);
    assert!(third.is("Access-Reject"), "{}", third.output);

    // A wrong password gets no challenge.
    let bad = login(addr, "alice", "Secret999");
    assert!(bad.is("Access-Reject"), "{}", bad.output);
}

#[test]
fn an_answered_challenge_leaves_nothing_behind() {
    // Each session's expiry timer once kept the session's actor in memory until the
    // session would have expired (120 s), about 5 KB per login: 15,000 logins grew the
    // server by some 75 MB.
    let node = node("challenge", true);
    let raw = RawClient::new(node.radius());
    let mut counter = 0u64;
    let mut logins = |n: u64| {
        for _ in 0..n {
            let mut auth = [0x11u8; 16];
            auth[..8].copy_from_slice(&counter.to_be_bytes());
            let id = (counter % 256) as u8;
            raw.send(&RawClient::access_request(
                id,
                auth,
                SECRET,
                "alice",
                "Secret123",
                &[],
                true,
            ));
            let reply = raw.recv().expect("the challenge");
            assert_eq!(RawClient::check_reply(&reply, &auth, SECRET).as_u8(), 11);
            let state = RawClient::reply_attribute(&reply, attr::STATE).expect("a State");
            auth[8] = 0xee;
            raw.send(&RawClient::access_request(
                id,
                auth,
                SECRET,
                "alice",
                &hotp_code(counter),
                &[(attr::STATE, &state)],
                true,
            ));
            let reply = raw.recv().expect("the answer");
            assert_eq!(RawClient::check_reply(&reply, &auth, SECRET).as_u8(), 2);
            counter += 1;
        }
    };
    // The allocator's pools fill first.
    logins(3_000);
    let before = rss_kib(node.pid());
    logins(15_000);
    let grown = rss_kib(node.pid()).saturating_sub(before);
    assert!(
        grown < 20 * 1024,
        "15,000 answered challenges grew the server by {grown} KiB"
    );
}

/// A user whose cached password is gone (a cold start, or an entry that expired) and who
/// logs in many times at once costs one Argon2 check per core, not one per login: the
/// logins behind the first take its answer from the cache. Forty at once once meant forty
/// Argon2 checks, and a soak whose users' entries expired together never recovered.
#[test]
fn logins_of_one_user_waiting_on_its_password_check_share_it() {
    let port = tollgate_tests::free_tcp_port();
    let mut node = Node::new(&format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"));
    node.add_client("nas1", "challenge", true);
    node.add_hotp_user("alice", "Secret123");
    let addr = node.start();
    let raw = RawClient::new(addr);
    const LOGINS: u8 = 40;
    let auths: Vec<[u8; 16]> = (0..LOGINS).map(|i| [i.wrapping_add(1); 16]).collect();
    for (id, auth) in auths.iter().enumerate() {
        raw.send(&RawClient::access_request(
            id as u8,
            *auth,
            SECRET,
            "alice",
            "Secret123",
            &[],
            true,
        ));
    }
    let mut challenged = 0;
    for _ in 0..LOGINS {
        let reply = raw.recv().expect("a reply to each login");
        let auth = &auths[usize::from(reply[1])];
        assert_eq!(RawClient::check_reply(&reply, auth, SECRET).as_u8(), 11);
        challenged += 1;
    }
    assert_eq!(challenged, LOGINS);
    let text = tollgate_tests::http_get(
        format!("127.0.0.1:{port}").parse().expect("address"),
        "/metrics",
    )
    .unwrap_or_default();
    let count = |path: &str| {
        tollgate_tests::metric(
            &text,
            &format!("tollgate_password_checks_total{{path=\"{path}\",result=\"good\"}}"),
        )
        .unwrap_or(0.0)
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let argon2 = count("argon2");
    assert!(
        (1.0..=cores).contains(&argon2),
        "{argon2} Argon2 checks for {LOGINS} logins of one user on {cores} cores"
    );
    assert!(
        count("cache_after_wait") >= 1.0,
        "no login took its answer from the check it waited on: {text}"
    );
}

#[test]
fn a_challenge_state_is_bound_to_its_user() {
    let node = node("challenge", true);
    node.add_hotp_user("bob", "BobPass1");
    let addr = node.radius();
    let first = login(addr, "alice", "Secret123");
    let state = first.attr("State").expect("State").to_owned();
    let stolen = format!(
        "User-Name = \"bob\", User-Password = \"{}\", State = {state}, Message-Authenticator = 0x00\n",
        hotp_code(0)
    );
    let r = radclient(addr, SECRET, "auth", &stolen, 1, 3);
    assert!(r.is("Access-Reject"), "{}", r.output);
}

#[test]
fn passcode_only_mode_takes_the_code_alone() {
    let node = node("passcode-only", true);
    let addr = node.radius();
    let r = login(addr, "alice", &hotp_code(0));
    assert!(r.is("Access-Accept"), "{}", r.output);
    let r = login(addr, "alice", &format!("Secret123{}", hotp_code(1)));
    assert!(r.is("Access-Reject"), "{}", r.output);
}

#[test]
fn message_authenticator_is_required_by_default_and_optional_when_configured() {
    let mut node = Node::new("");
    node.add_client("strict", "append", true);
    node.add_hotp_user("alice", "Secret123");
    node.start();
    let addr = node.radius();
    let without = format!(
        "User-Name = \"alice\", User-Password = \"Secret123{}\"\n",
        hotp_code(0)
    );
    let r = radclient(addr, SECRET, "auth", &without, 1, 1);
    assert!(
        r.code.is_none(),
        "a request without Message-Authenticator is dropped: {}",
        r.output
    );

    // Relaxing the client (a change picked up by the running server) lets it through.
    node.ok(&["client", "remove", "strict"], None);
    node.add_client("lenient", "append", false);
    let ok = Node::eventually(Duration::from_secs(5), || {
        radclient(addr, SECRET, "auth", &without, 1, 1).is("Access-Accept")
    });
    assert!(ok, "{}", node.log());
}

#[test]
fn status_server_is_answered() {
    let node = node("append", true);
    let r = radclient(
        node.radius(),
        SECRET,
        "status",
        "Message-Authenticator = 0x00\n",
        1,
        3,
    );
    assert!(r.is("Access-Accept"), "{}", r.output);
}

#[test]
fn a_wrong_shared_secret_is_dropped() {
    let node = node("append", true);
    let r = radclient(
        node.radius(),
        "not-the-secret",
        "auth",
        &format!("User-Name = \"alice\", User-Password = \"Secret123{}\", Message-Authenticator = 0x00\n", hotp_code(0)),
        1,
        1,
    );
    assert!(r.code.is_none(), "{}", r.output);
    // The code was not consumed by the dropped request.
    assert!(login(
        node.radius(),
        "alice",
        &format!("Secret123{}", hotp_code(0))
    )
    .is("Access-Accept"));
}

#[test]
fn requests_from_unknown_addresses_are_dropped() {
    let mut node = Node::new("");
    node.ok(
        &[
            "client",
            "add",
            "elsewhere",
            "--address",
            "192.0.2.0/24",
            "--secret-stdin",
        ],
        Some(&format!("{SECRET}\n")),
    );
    node.add_hotp_user("alice", "Secret123");
    node.start();
    let r = login(
        node.radius(),
        "alice",
        &format!("Secret123{}", hotp_code(0)),
    );
    assert!(r.code.is_none(), "{}", r.output);
}

/// An unknown name and a known name with a wrong password cost the same slow password
/// check, so that the time of the reply does not tell which names exist (the times
/// themselves are measured by `loadtest/timing-oracle.sh`, not here); both are refused
/// with their own reason in the audit trail.
#[test]
fn an_unknown_name_costs_the_same_password_check_as_a_wrong_password() {
    let port = tollgate_tests::free_tcp_port();
    let mut node = Node::new(&format!(
        "[metrics]\nlisten = \"127.0.0.1:{port}\"\n[audit]\nfile = \"{{dir}}/audit.jsonl\"\n"
    ));
    node.add_client("nas1", "append", true);
    node.add_hotp_user("alice", "Secret123");
    let addr = node.start();
    let metrics_addr = format!("127.0.0.1:{port}").parse().expect("address");
    let argon2_checks = || {
        let text = tollgate_tests::http_get(metrics_addr, "/metrics").unwrap_or_default();
        tollgate_tests::metric(
            &text,
            "tollgate_password_checks_total{path=\"argon2\",result=\"bad\"}",
        )
        .unwrap_or(0.0)
    };
    let wrong = login(addr, "alice", &format!("Wrong123{}", hotp_code(0)));
    assert!(wrong.is("Access-Reject"), "{}", wrong.output);
    let unknown = login(addr, "mallory", &format!("Wrong123{}", hotp_code(0)));
    assert!(unknown.is("Access-Reject"), "{}", unknown.output);
    assert!(
        Node::eventually(Duration::from_secs(5), || argon2_checks() == 2.0),
        "two Argon2 checks expected, one per refusal: {}",
        argon2_checks()
    );
    let records = node.audit_records(2);
    let reasons: Vec<_> = records.iter().map(|r| r["reason"].clone()).collect();
    assert_eq!(reasons, ["bad_password", "unknown_user"], "{records:?}");
}
