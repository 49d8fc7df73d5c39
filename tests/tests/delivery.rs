//! Delivered codes end to end with real peers: a code e-mailed through a real SMTP server
//! (aiosmtpd) logs the user in through `radclient`; an SMS provider that fails its first
//! attempts, fails over, refuses, or is down for a while; preload day codes sent by the
//! daily batch, used once and replaced.

use std::time::Duration;

use tollgate_tests::peers::{code_in, mail_body, outbox_lines, HttpStub, SmtpSink};
use tollgate_tests::{login, radclient, Node, SECRET};

/// An HTTP SMS gateway pointed at a stub.
fn sms_gateway(name: &str, url: &str) -> String {
    format!(
        r#"
[[gateway]]
name = "{name}"
channel = "sms"
type = "http"
url = "{url}/sms?id={{id}}"
body = "to={{to}}&text={{message}}"
timeout_ms = 2000
"#
    )
}

/// Retries after about a second, so that the tests see several attempts.
const FAST_RETRY: &str = "[delivery]\nretry_base_ms = 500\nretry_max_ms = 1000\nmax_attempts = 4\n";

fn user_with_delivery(node: &Node, name: &str, delivery: &str, dest: &[&str]) {
    node.ok(
        &["user", "add", name, "--password-stdin"],
        Some("Secret123\n"),
    );
    let mut args = vec!["user", "set", name, "--delivery", delivery];
    args.extend_from_slice(dest);
    node.ok(&args, None);
}

/// Answers a challenge with `code` under its State.
fn answer(node: &Node, user: &str, state: &str, code: &str) -> tollgate_tests::RadReply {
    let text = format!(
        "User-Name = \"{user}\", User-Password = \"{code}\", State = {state}, Message-Authenticator = 0x00\n"
    );
    radclient(node.radius(), SECRET, "auth", &text, 1, 3)
}

#[test]
fn an_emailed_code_logs_the_user_in_once() {
    let smtp = SmtpSink::start();
    let mut node = Node::new(&smtp.gateway());
    node.add_client("nas1", "challenge", true);
    user_with_delivery(
        &node,
        "alice",
        "realtime-email",
        &["--email", "alice@example.com"],
    );
    node.start();

    let first = login(node.radius(), "alice", "Secret123");
    assert!(
        first.is("Access-Challenge"),
        "{}\n{}",
        first.output,
        node.log()
    );
    assert_eq!(
        first.attr("Reply-Message"),
        Some("Enter the passcode sent to a***@example.com")
    );
    let state = first.attr("State").expect("State").to_owned();
    let mail = smtp
        .wait_for(1, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no e-mail arrived\n{}", node.log()));
    assert!(mail.contains("X-Rcpt: alice@example.com"), "{mail}");
    assert!(mail.contains("Subject: Your passcode"), "{mail}");
    let code = code_in(mail_body(&mail), 6).expect("a six-digit code in the e-mail");
    // The code is never in the server's log.
    assert!(!node.log().contains(&code), "the code leaked into the log");

    let ok = answer(&node, "alice", &state, &code);
    assert!(ok.is("Access-Accept"), "{}\n{}", ok.output, node.log());
    // The session is gone: the same State and code are refused.
    let again = answer(&node, "alice", &state, &code);
    assert!(again.is("Access-Reject"), "{}", again.output);

    // A wrong code ends the session too.
    let second = login(node.radius(), "alice", "Secret123");
    let state = second.attr("State").expect("State").to_owned();
    let mail = smtp
        .wait_for(2, Duration::from_secs(10))
        .expect("second e-mail");
    let code2 = code_in(mail_body(&mail), 6).expect("code");
    let wrong = if code2 == "000000" {
        "000001"
    } else {
        "000000"
    };
    assert!(answer(&node, "alice", &state, wrong).is("Access-Reject"));
    assert!(answer(&node, "alice", &state, &code2).is("Access-Reject"));

    // A wrong password sends nothing.
    assert!(login(node.radius(), "alice", "Secret124").is("Access-Reject"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(smtp.messages().len(), 2);
}

#[test]
fn a_mail_server_that_is_down_delays_the_codes_says_so_and_sends_each_once_when_back() {
    let mut smtp = SmtpSink::start();
    // A long back-off, so that only the gateway's return can bring the waiting codes out
    // within the test's seconds.
    let mut node = Node::new(&format!(
        "{}[delivery]\nretry_base_ms = 60000\n",
        smtp.gateway()
    ));
    node.add_client("nas1", "challenge", true);
    for name in ["alice", "bob", "carol", "dave"] {
        user_with_delivery(
            &node,
            name,
            "realtime-email",
            &["--email", &format!("{name}@example.com")],
        );
    }
    node.start();
    let normal = "Enter the passcode sent to a***@example.com";
    assert_eq!(
        login(node.radius(), "alice", "Secret123").attr("Reply-Message"),
        Some(normal)
    );
    smtp.wait_for(1, Duration::from_secs(10))
        .expect("alice's e-mail");

    smtp.kill();
    // The first code after the crash is where the dispatcher finds out.
    assert!(login(node.radius(), "bob", "Secret123").is("Access-Challenge"));
    assert!(
        Node::eventually(Duration::from_secs(10), || node
            .log_shows("every gateway of the channel is failing")),
        "{}",
        node.log()
    );
    let carol = login(node.radius(), "carol", "Secret123");
    assert_eq!(
        carol.attr("Reply-Message"),
        Some("Your passcode for c***@example.com is delayed: the e-mail service is not answering. It will be sent as soon as it does; enter it then"),
        "{}",
        carol.output
    );
    let carol_state = carol.attr("State").expect("State").to_owned();

    smtp.restart();
    // The next code goes out at once; the two that waited follow it, long before their
    // next retry.
    let back = std::time::Instant::now();
    assert!(login(node.radius(), "dave", "Secret123").is("Access-Challenge"));
    let fourth = smtp.wait_for(4, Duration::from_secs(10));
    assert!(
        fourth.is_some() && back.elapsed() < Duration::from_secs(10),
        "the waiting codes did not follow the gateway's return\n{}",
        node.log()
    );
    std::thread::sleep(Duration::from_millis(1500));
    let mails = smtp.messages();
    for name in ["alice", "bob", "carol", "dave"] {
        let to = format!("X-Rcpt: {name}@example.com");
        assert_eq!(
            mails.iter().filter(|m| m.contains(&to)).count(),
            1,
            "{name} got other than one e-mail"
        );
    }
    assert_eq!(mails.len(), 4);
    // The delayed code still logs carol in.
    let mail = mails
        .iter()
        .find(|m| m.contains("X-Rcpt: carol@example.com"))
        .expect("carol's e-mail");
    let code = code_in(mail_body(mail), 6).expect("a code");
    assert!(answer(&node, "carol", &carol_state, &code).is("Access-Accept"));
    // Back to the usual prompt once a message went out.
    assert_eq!(
        login(node.radius(), "alice", "Secret123").attr("Reply-Message"),
        Some(normal)
    );
}

#[test]
fn a_provider_that_fails_at_first_gets_the_message_once() {
    let stub = HttpStub::start(&[503, 503]);
    let mut node = Node::new(&format!(
        "{}{FAST_RETRY}",
        sms_gateway("sms-1", &format!("http://{}", stub.addr))
    ));
    node.add_client("nas1", "append", true);
    user_with_delivery(&node, "bob", "realtime-sms", &["--mobile", "+447700900123"]);
    node.start();

    let first = login(node.radius(), "bob", "Secret123");
    assert!(
        first.is("Access-Challenge"),
        "{}\n{}",
        first.output,
        node.log()
    );
    assert_eq!(
        first.attr("Reply-Message"),
        Some("Enter the passcode sent to ...0123")
    );
    let state = first.attr("State").expect("State").to_owned();
    let ok = stub.wait_for_successes(1, Duration::from_secs(15));
    assert_eq!(ok.len(), 1, "{:?}\n{}", stub.received(), node.log());
    let all = stub.received();
    assert_eq!(all.len(), 3, "two failures, then one delivery: {all:?}");
    // Every attempt carried the same message id, for the provider to deduplicate.
    let ids: Vec<&str> = all.iter().map(|r| r.line.as_str()).collect();
    assert!(ids.iter().all(|l| *l == ids[0]), "{ids:?}");
    assert!(
        ok[0].body.starts_with("to=%2B447700900123&text="),
        "{}",
        ok[0].body
    );
    let code = code_in(&ok[0].body, 6).expect("code in the SMS");
    let accept = answer(&node, "bob", &state, &code);
    assert!(
        accept.is("Access-Accept"),
        "{}\n{}",
        accept.output,
        node.log()
    );

    // Nothing is left in the outbox, and nothing more is sent.
    let out = node.ok(&["outbox", "list"], None);
    assert!(out.starts_with("0 waiting, 0 dead letters"), "{out}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(stub.received().len(), 3);
}

#[test]
fn a_failing_gateway_fails_over_to_the_next_of_its_channel() {
    let broken = HttpStub::start(&[500; 20]);
    let good = HttpStub::start(&[]);
    let mut node = Node::new(&format!(
        "{}{}",
        sms_gateway("primary", &format!("http://{}", broken.addr)),
        sms_gateway("secondary", &format!("http://{}", good.addr))
    ));
    node.add_client("nas1", "append", true);
    user_with_delivery(
        &node,
        "carl",
        "realtime-sms",
        &["--mobile", "+447700900999"],
    );
    node.start();
    assert!(login(node.radius(), "carl", "Secret123").is("Access-Challenge"));
    let ok = good.wait_for_successes(1, Duration::from_secs(5));
    assert_eq!(ok.len(), 1, "{}", node.log());
    assert_eq!(broken.received().len(), 1);
}

#[test]
fn a_refused_message_becomes_a_dead_letter_that_can_be_resent() {
    let stub = HttpStub::start(&[400]);
    let mut node = Node::new(&format!(
        "{}{FAST_RETRY}",
        sms_gateway("sms-1", &format!("http://{}", stub.addr))
    ));
    node.add_client("nas1", "append", true);
    user_with_delivery(
        &node,
        "dora",
        "realtime-sms",
        &["--mobile", "+447700900555"],
    );
    node.start();
    assert!(login(node.radius(), "dora", "Secret123").is("Access-Challenge"));
    let mut listing = String::new();
    assert!(
        Node::eventually(Duration::from_secs(5), || {
            listing = node.ok(&["outbox", "list", "--dead"], None);
            listing.starts_with("0 waiting, 1 dead letters")
        }),
        "{listing}\n{}",
        node.log()
    );
    assert!(listing.contains("+447700900555"), "{listing}");
    assert!(listing.contains("400"), "the reason is kept: {listing}");
    let id = listing
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .expect("an id")
        .to_owned();
    node.ok(&["outbox", "resend", &id], None);
    let ok = stub.wait_for_successes(1, Duration::from_secs(5));
    assert_eq!(ok.len(), 1, "{}", node.log());
    assert!(Node::eventually(Duration::from_secs(3), || node
        .ok(&["outbox", "list"], None)
        .starts_with("0 waiting, 0 dead letters")));
}

#[test]
fn a_provider_down_for_a_while_gets_the_message_when_it_is_back() {
    let port = tollgate_tests::free_tcp_port();
    let mut node = Node::new(&format!(
        "{}[delivery]\nretry_base_ms = 500\nretry_max_ms = 1000\nmax_attempts = 20\n",
        sms_gateway("sms-1", &format!("http://127.0.0.1:{port}"))
    ));
    node.add_client("nas1", "append", true);
    user_with_delivery(
        &node,
        "erik",
        "realtime-sms",
        &["--mobile", "+447700900777"],
    );
    node.start();
    assert!(login(node.radius(), "erik", "Secret123").is("Access-Challenge"));
    // Nobody listens for a few seconds: the message waits in the outbox.
    std::thread::sleep(Duration::from_secs(3));
    let waiting = node.ok(&["outbox", "list"], None);
    assert!(
        waiting.starts_with("1 waiting, 0 dead letters"),
        "{waiting}"
    );
    let stub = HttpStub::start_on(port, &[]);
    let ok = stub.wait_for_successes(1, Duration::from_secs(10));
    assert_eq!(ok.len(), 1, "{}", node.log());
    assert!(Node::eventually(Duration::from_secs(3), || node
        .ok(&["outbox", "list"], None)
        .starts_with("0 waiting")));
}

#[test]
fn a_user_without_a_number_or_a_flooded_number_gets_a_clear_reject() {
    let stub = HttpStub::start(&[]);
    let mut node = Node::new(&format!(
        "{}[delivery]\nmax_per_destination_per_hour = 2\n[audit]\nfile = \"{{dir}}/audit.jsonl\"\n",
        sms_gateway("sms-1", &format!("http://{}", stub.addr))
    ));
    node.add_client("nas1", "append", true);
    user_with_delivery(&node, "fay", "realtime-sms", &[]);
    user_with_delivery(&node, "gus", "realtime-sms", &["--mobile", "+447700900321"]);
    node.start();
    assert!(login(node.radius(), "fay", "Secret123").is("Access-Reject"));
    assert!(login(node.radius(), "gus", "Secret123").is("Access-Challenge"));
    assert!(login(node.radius(), "gus", "Secret123").is("Access-Challenge"));
    // The third code within the hour is not sent.
    assert!(login(node.radius(), "gus", "Secret123").is("Access-Reject"));
    assert!(
        node.log_shows("too many codes to this destination"),
        "{}",
        node.log()
    );
    assert_eq!(stub.wait_for_successes(2, Duration::from_secs(5)).len(), 2);
}

#[test]
fn day_codes_are_sent_ahead_used_once_and_replaced() {
    // The batch is due at once (00:00 UTC has passed today).
    let mut node = Node::new("[delivery.preload]\nsend_at = \"00:00\"\ndays = 2\n");
    node.add_client("nas1", "append", true);
    user_with_delivery(&node, "hana", "preload-sms", &["--mobile", "+447700900111"]);
    node.start();
    let outbox = node.path().join("data").join("outbox.log");
    let mut lines = node.outbox_at_least(1);
    assert_eq!(lines[0]["to"], "+447700900111");
    let code = code_in(lines[0]["body"].as_str().unwrap(), 6).expect("a code");

    let ok = login(node.radius(), "hana", &format!("Secret123{code}"));
    assert!(ok.is("Access-Accept"), "{}\n{}", ok.output, node.log());
    let again = login(node.radius(), "hana", &format!("Secret123{code}"));
    assert!(again.is("Access-Reject"), "a day code is used once");

    // A new one was sent as soon as the first was used.
    assert!(
        Node::eventually(Duration::from_secs(10), || {
            lines = outbox_lines(&outbox);
            lines.len() >= 2
        }),
        "{}",
        node.log()
    );
    let next = code_in(lines[1]["body"].as_str().unwrap(), 6).expect("a code");
    let ok = login(node.radius(), "hana", &format!("Secret123{next}"));
    assert!(ok.is("Access-Accept"), "{}\n{}", ok.output, node.log());

    // A restart neither resends today's batch nor forgets the code in use.
    node.stop();
    let before = outbox_lines(&outbox).len();
    node.start();
    std::thread::sleep(Duration::from_secs(2));
    let after = outbox_lines(&outbox);
    assert!(after.len() <= before + 1, "{} → {}", before, after.len());
    let latest = code_in(after.last().unwrap()["body"].as_str().unwrap(), 6).unwrap();
    let ok = login(node.radius(), "hana", &format!("Secret123{latest}"));
    assert!(ok.is("Access-Accept"), "{}\n{}", ok.output, node.log());
}

#[test]
fn the_day_code_batch_resumes_after_a_crash_without_sending_twice() {
    const USERS: usize = 10_000;
    let mut node =
        Node::new("[delivery.preload]\nsend_at = \"00:00\"\nbatch = 500\nbatch_pause_ms = 100\n");
    node.add_client("nas1", "passcode-only", true);
    let csv = node.path().join("users.csv");
    let mut text = String::from("name,delivery,mobile,email\n");
    for i in 0..USERS {
        text.push_str(&format!("p{i:05},preload-sms,+4477009{i:05},\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let out = node.ok(
        &[
            "user",
            "delivery-import",
            csv.to_str().unwrap(),
            "--create-users",
        ],
        None,
    );
    assert!(out.contains("10000 users set (10000 created)"), "{out}");

    let outbox = node.path().join("data").join("outbox.log");
    node.start();
    // Crash the server part-way through the run.
    assert!(
        Node::eventually(Duration::from_secs(30), || outbox_lines(&outbox).len()
            >= 1_000),
        "{}",
        node.log()
    );
    node.kill();
    let at_crash = outbox_lines(&outbox).len();
    assert!(
        at_crash < USERS,
        "the run ended before the crash ({at_crash})"
    );

    node.start();
    let mut lines = Vec::new();
    assert!(
        Node::eventually(Duration::from_secs(60), || {
            lines = outbox_lines(&outbox);
            let users: std::collections::HashSet<_> =
                lines.iter().map(|l| l["to"].to_string()).collect();
            users.len() >= USERS
        }),
        "the run did not finish: {} lines\n{}",
        lines.len(),
        node.log()
    );
    // Every user got exactly one code. A message delivered in the instant of the crash
    // may be written once more under its same id; it never carries another code.
    let mut by_user: std::collections::HashMap<String, std::collections::HashSet<String>> =
        std::collections::HashMap::new();
    let mut ids = std::collections::HashSet::new();
    for l in &lines {
        by_user
            .entry(l["to"].to_string())
            .or_default()
            .insert(l["body"].to_string());
        ids.insert(l["id"].to_string());
    }
    assert_eq!(by_user.len(), USERS);
    let twice: Vec<_> = by_user
        .iter()
        .filter(|(_, codes)| codes.len() > 1)
        .collect();
    assert!(
        twice.is_empty(),
        "users sent two codes: {:?}",
        &twice[..twice.len().min(3)]
    );
    assert_eq!(ids.len(), USERS, "one message per user");
    assert!(node.log_shows("day-code batch finished"), "{}", node.log());

    // The codes in the messages are the ones the server holds.
    let sample = lines
        .iter()
        .find(|l| l["to"] == "+447700904242")
        .expect("p04242's message");
    let code = code_in(sample["body"].as_str().unwrap(), 6).unwrap();
    let r = login(node.radius(), "p04242", &code);
    assert!(r.is("Access-Accept"), "{}\n{}", r.output, node.log());
}

#[test]
fn a_voice_call_reads_the_code_digit_by_digit() {
    let stub = HttpStub::start(&[]);
    let mut node = Node::new(&format!(
        r#"
[[gateway]]
name = "calls"
channel = "voice"
type = "http"
url = "http://{}/call"
content_type = "application/json"
body = '{{"to": "{{to}}", "say": "{{message}}"}}'
"#,
        stub.addr
    ));
    node.add_client("nas1", "challenge", true);
    user_with_delivery(
        &node,
        "ivy",
        "realtime-voice",
        &["--mobile", "+447700900888"],
    );
    node.start();
    let first = login(node.radius(), "ivy", "Secret123");
    assert!(
        first.is("Access-Challenge"),
        "{}\n{}",
        first.output,
        node.log()
    );
    let state = first.attr("State").unwrap().to_owned();
    let call = stub.wait_for_successes(1, Duration::from_secs(5));
    assert_eq!(call.len(), 1, "{}", node.log());
    let body: serde_json::Value = serde_json::from_str(&call[0].body).expect("a JSON body");
    assert_eq!(body["to"], "+447700900888");
    let said = body["say"].as_str().unwrap();
    // "Your passcode is 1 2 3 4 5 6. ..." — spoken one digit at a time.
    let digits: String = said
        .split("passcode is ")
        .nth(1)
        .unwrap()
        .chars()
        .take(11)
        .collect();
    assert!(
        digits.chars().enumerate().all(|(i, c)| if i % 2 == 1 {
            c == ' '
        } else {
            c.is_ascii_digit()
        }),
        "{said}"
    );
    let code: String = digits.chars().filter(char::is_ascii_digit).collect();
    assert!(answer(&node, "ivy", &state, &code).is("Access-Accept"));
}
