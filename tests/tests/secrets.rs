//! Secrets never leave: a server at `debug` (and `trace`) log level logs users in with
//! passwords, HOTP and TOTP codes, a challenge, an e-mailed code, wrong passwords and
//! replays; then every log line, audit record, syslog message and metrics page it produced
//! is searched for every password, seed, shared secret and code it saw. None may appear.

use std::net::UdpSocket;
use std::time::Duration;

use tollgate_tests::peers::{code_in, mail_body, SmtpSink};
use tollgate_tests::{
    hotp_code, http_get, login, radclient, totp_code, Node, SECRET, SEED, SEED_B32,
};

/// A TOTP seed of bob's, given in base32 (and so known to the test).
const BOB_SEED_B32: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const ALICE_PASSWORD: &str = "Alice-Pass-4417";
const BOB_PASSWORD: &str = "Bob-Pass-9932";
const CAROL_PASSWORD: &str = "Carol-Pass-2265";
const WRONG_PASSWORD: &str = "Wrong-Pass-7781";

/// Every datagram that has arrived on `socket` so far.
fn drain(socket: &UdpSocket) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = socket.recv(&mut buf) {
        out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    out
}

/// Places where `needle` occurs in `haystack` as a whole word (a six-digit code inside a
/// longer number, such as a timestamp's microseconds, is not the code).
fn whole_word_hits(haystack: &str, needle: &str) -> usize {
    haystack
        .match_indices(needle)
        .filter(|(i, _)| {
            let before = haystack[..*i].chars().next_back();
            let after = haystack[i + needle.len()..].chars().next();
            !before.is_some_and(|c| c.is_ascii_alphanumeric())
                && !after.is_some_and(|c| c.is_ascii_alphanumeric())
        })
        .count()
}

#[test]
fn no_secret_reaches_a_log_an_audit_record_syslog_or_metrics() {
    let syslog = UdpSocket::bind("127.0.0.1:0").expect("syslog socket");
    syslog
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let smtp = SmtpSink::start();
    let metrics_port = tollgate_tests::free_tcp_port();
    let mut node = Node::new(&format!(
        r#"
[log]
level = "debug"
[metrics]
listen = "127.0.0.1:{metrics_port}"
[audit]
file = "{{dir}}/audit.jsonl"
[audit.syslog]
address = "{syslog}"
transport = "udp"
[[gateway]]
name = "mail"
channel = "email"
type = "smtp"
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
allow_plain = true
from = "Tollgate <noreply@example.com>"
"#,
        syslog = syslog.local_addr().expect("address"),
        smtp_port = smtp.addr.port(),
    ));
    node.add_client("nas1", "append", true);
    node.add_hotp_user("alice", ALICE_PASSWORD);
    node.ok(
        &["user", "add", "bob", "--password-stdin"],
        Some(&format!("{BOB_PASSWORD}\n")),
    );
    node.ok(
        &[
            "token",
            "add",
            "bob",
            "--type",
            "totp",
            "--secret",
            BOB_SEED_B32,
            "--no-qr",
        ],
        None,
    );
    node.ok(
        &["user", "add", "carol", "--password-stdin"],
        Some(&format!("{CAROL_PASSWORD}\n")),
    );
    node.ok(
        &[
            "user",
            "set",
            "carol",
            "--delivery",
            "realtime-email",
            "--email",
            "carol@example.com",
        ],
        None,
    );
    // Trace goes further than debug; the test takes the most talkative level there is.
    let addr = node.start_logging("trace");

    let mut codes = Vec::new();
    // Alice: an accept, its replay, a wrong password, a wrong code.
    let code = hotp_code(0);
    assert!(login(addr, "alice", &format!("{ALICE_PASSWORD}{code}")).is("Access-Accept"));
    assert!(login(addr, "alice", &format!("{ALICE_PASSWORD}{code}")).is("Access-Reject"));
    codes.push(code);
    let code = hotp_code(1);
    assert!(login(addr, "alice", &format!("{WRONG_PASSWORD}{code}")).is("Access-Reject"));
    codes.push(code);
    assert!(login(addr, "alice", &format!("{ALICE_PASSWORD}000000")).is("Access-Reject"));
    // Bob: a TOTP accept.
    let bob_seed = tollgate_engine::otp::base32::decode(BOB_SEED_B32).expect("base32");
    let code = totp_code(&bob_seed, tollgate_tests::unix_now());
    assert!(login(addr, "bob", &format!("{BOB_PASSWORD}{code}")).is("Access-Accept"));
    codes.push(code);
    // An unknown name with a password.
    assert!(login(addr, "mallory", &format!("{WRONG_PASSWORD}123456")).is("Access-Reject"));
    // Carol: an e-mailed code, answered at the challenge.
    let first = login(addr, "carol", CAROL_PASSWORD);
    assert!(first.is("Access-Challenge"), "{}", first.output);
    let state = first.attr("State").expect("State").to_owned();
    let mail = smtp
        .wait_for(1, Duration::from_secs(10))
        .expect("the e-mailed code");
    let code = code_in(mail_body(&mail), 6).expect("a code in the e-mail");
    let text = format!(
        "User-Name = \"carol\", User-Password = \"{code}\", State = {state}, Message-Authenticator = 0x00\n"
    );
    assert!(radclient(addr, SECRET, "auth", &text, 1, 3).is("Access-Accept"));
    // The search below finds a code where one is: in the e-mail that carried it.
    assert_eq!(whole_word_hits(&mail, &code), 1, "{mail}");
    codes.push(code);

    // Everything the server wrote or served.
    let metrics_addr = format!("127.0.0.1:{metrics_port}")
        .parse()
        .expect("address");
    let metrics = http_get(metrics_addr, "/metrics").expect("the metrics page");
    node.audit_records(8);
    let (status, _) = node.stop();
    assert!(status.success());
    let log = node.log();
    let audit = std::fs::read_to_string(node.path().join("audit.jsonl")).expect("audit file");
    let syslog = drain(&syslog).join("\n");
    assert!(
        log.lines().any(|l| l.contains("DEBUG")) && log.lines().any(|l| l.contains("TRACE")),
        "the log is not at debug and trace level"
    );
    assert!(
        syslog.contains("carol"),
        "syslog got no audit records:\n{syslog}"
    );

    let hex_seed: String = SEED.iter().map(|b| format!("{b:02x}")).collect();
    let bob_hex: String = bob_seed.iter().map(|b| format!("{b:02x}")).collect();
    let secrets: Vec<(&str, String)> = vec![
        ("shared secret", SECRET.to_owned()),
        ("alice's password", ALICE_PASSWORD.to_owned()),
        ("bob's password", BOB_PASSWORD.to_owned()),
        ("carol's password", CAROL_PASSWORD.to_owned()),
        ("a wrong password", WRONG_PASSWORD.to_owned()),
        ("alice's seed (base32)", SEED_B32.to_owned()),
        (
            "alice's seed (raw)",
            String::from_utf8_lossy(SEED).into_owned(),
        ),
        ("alice's seed (hex)", hex_seed),
        ("bob's seed (base32)", BOB_SEED_B32.to_owned()),
        ("bob's seed (hex)", bob_hex),
    ];
    let mut leaks = Vec::new();
    for (place, text) in [
        ("server log", &log),
        ("audit file", &audit),
        ("syslog", &syslog),
        ("metrics", &metrics),
    ] {
        for (what, secret) in &secrets {
            if text.to_lowercase().contains(&secret.to_lowercase()) {
                leaks.push(format!("{what} in the {place}"));
            }
        }
        for code in &codes {
            let hits = whole_word_hits(text, code);
            if hits > 0 {
                leaks.push(format!("code {code} in the {place} ({hits} times)"));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked: {leaks:?}");
}
