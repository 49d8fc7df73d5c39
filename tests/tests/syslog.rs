//! The audit trail to a SIEM: a real rsyslogd receives Tollgate's RFC 5424 messages over
//! UDP and over TCP (octet-counted, surviving a receiver restart) and writes one line per
//! decision with the user, client and result in the structured data and no secret. A
//! property test shows that any user name yields one well-formed line.

use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use tollgate_actors::audit::syslog::{format_message, Header, MAX_VALUE_BYTES};
use tollgate_actors::audit::Record;
use tollgate_engine::radius::Code;
use tollgate_tests::{free_tcp_port, hotp_code, login, require, Node, RawClient, SECRET};

/// A loopback UDP port that was free a moment ago.
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

/// An rsyslogd run in the foreground from a configuration in `dir`, killed on drop so
/// that it never outlives the test.
struct Rsyslogd {
    child: Child,
}

impl Rsyslogd {
    /// Starts rsyslogd listening on loopback `udp` and `tcp`, writing the messages of
    /// Tollgate (and of the readiness probe) to `dir/out.log`, and waits until it takes
    /// messages on both.
    fn start(dir: &Path, udp: u16, tcp: u16) -> Rsyslogd {
        require("rsyslogd", "rsyslog");
        let work = dir.join("work");
        std::fs::create_dir_all(&work).expect("rsyslog work dir");
        let conf = dir.join("rsyslog.conf");
        let out = out_file(dir);
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{work}")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="{udp}")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
template(name="line" type="string" string="%pri-text% %hostname% %app-name% %procid% %msgid% %structured-data% %msg%\n")
if $app-name == "tollgate" or $app-name == "probe" then {{
  action(type="omfile" file="{out}" template="line")
}}
"#,
                work = work.display(),
                out = out.display(),
            ),
        )
        .expect("write rsyslog.conf");
        let log = std::fs::File::create(dir.join("rsyslogd.log")).expect("rsyslogd log");
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start rsyslogd");
        let rsyslogd = Rsyslogd { child };
        // Ready when a probe sent on each transport has been written out.
        let probe = UdpSocket::bind("127.0.0.1:0").expect("probe socket");
        let ready = Node::eventually(Duration::from_secs(20), || {
            let _ = probe.send_to(b"<14>1 - - probe - - - udp-ready", ("127.0.0.1", udp));
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", tcp)) {
                use std::io::Write;
                let msg = "<14>1 - - probe - - - tcp-ready";
                let _ = write!(s, "{} {msg}", msg.len());
            }
            let text = std::fs::read_to_string(out_file(dir)).unwrap_or_default();
            text.contains("udp-ready") && text.contains("tcp-ready")
        });
        assert!(
            ready,
            "rsyslogd did not take messages; its output:\n{}",
            std::fs::read_to_string(dir.join("rsyslogd.log")).unwrap_or_default()
        );
        rsyslogd
    }
}

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn out_file(dir: &Path) -> PathBuf {
    dir.join("out.log")
}

/// The lines rsyslogd wrote for Tollgate.
fn tollgate_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(out_file(dir))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split(' ').nth(2) == Some("tollgate"))
        .map(str::to_owned)
        .collect()
}

/// Waits until exactly `n` Tollgate lines are there (and no more arrive for a moment).
fn wait_for_lines(dir: &Path, n: usize, node: &Node) -> Vec<String> {
    let arrived = Node::eventually(Duration::from_secs(20), || tollgate_lines(dir).len() >= n);
    assert!(
        arrived,
        "expected {n} audit lines, got {:?}\nserver log:\n{}",
        tollgate_lines(dir),
        node.log()
    );
    std::thread::sleep(Duration::from_millis(300));
    let lines = tollgate_lines(dir);
    assert_eq!(lines.len(), n, "one line per decision: {lines:#?}");
    lines
}

fn assert_no_secret(lines: &[String]) {
    for line in lines {
        for secret in ["Secret123", SECRET, &hotp_code(0), &hotp_code(1)] {
            assert!(
                !line.contains(secret),
                "an audit line holds a secret: {line}"
            );
        }
    }
}

/// Sends an append-mode request for a user name a NAS could send, and waits for the
/// reject.
fn raw_login(node: &Node, user: &str) {
    let raw = RawClient::new(node.radius());
    let authenticator = [9u8; 16];
    raw.send(&RawClient::access_request(
        3,
        authenticator,
        SECRET,
        user,
        "Secret123000000",
        &[],
        true,
    ));
    let reply = raw.recv().expect("a reply");
    assert_eq!(
        RawClient::check_reply(&reply, &authenticator, SECRET),
        Code::AccessReject
    );
}

#[test]
fn decisions_reach_rsyslog_over_udp_one_line_each() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (udp, tcp) = (free_udp_port(), free_tcp_port());
    let _rsyslogd = Rsyslogd::start(dir.path(), udp, tcp);

    let mut node = Node::new(&format!(
        "[audit.syslog]\naddress = \"127.0.0.1:{udp}\"\ntransport = \"udp\"\nhostname = \"tg-e2e\"\n"
    ));
    node.add_client("nas1", "append", true);
    node.add_hotp_user("alice", "Secret123");
    node.start();
    let addr = node.radius();
    assert!(login(addr, "alice", &format!("Secret123{}", hotp_code(0))).is("Access-Accept"));
    assert!(login(addr, "alice", "Secret123000000").is("Access-Reject"));
    // A name with every character RFC 5424 makes us escape.
    raw_login(&node, r#"ev"il]\x"#);

    let lines = wait_for_lines(dir.path(), 3, &node);
    let sd = |user: &str, result: &str, reason: &str| {
        format!(
            "[tollgate@32473 user=\"{user}\" client=\"nas1\" peer=\"127.0.0.1\" mode=\"append\" result=\"{result}\" reason=\"{reason}\" latency_us=\""
        )
    };
    assert!(
        lines[0].starts_with("auth.info tg-e2e tollgate ")
            && lines[0].contains(" login ")
            && lines[0].contains(&sd("alice", "accept", ""))
            && lines[0].ends_with("] login accept"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("auth.notice tg-e2e tollgate ")
            && lines[1].contains(&sd("alice", "reject", "bad_passcode"))
            && lines[1].ends_with("] login reject"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains(&sd(r#"ev\"il\]\\x"#, "reject", "unknown_user")),
        "{}",
        lines[2]
    );
    // PROCID is the server's process id.
    let procid = lines[0].split(' ').nth(3).unwrap_or_default();
    assert!(procid.parse::<u32>().is_ok(), "{}", lines[0]);
    assert_no_secret(&lines);
}

#[test]
fn decisions_reach_rsyslog_over_tcp_across_a_receiver_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (udp, tcp) = (free_udp_port(), free_tcp_port());

    // The server starts before its receiver: records wait while it reconnects.
    let mut node = Node::new(&format!(
        "[audit.syslog]\naddress = \"127.0.0.1:{tcp}\"\ntransport = \"tcp\"\nfacility = \"local4\"\n"
    ));
    node.add_client("nas1", "append", true);
    node.add_hotp_user("alice", "Secret123");
    node.start();
    let addr = node.radius();
    assert!(login(addr, "alice", &format!("Secret123{}", hotp_code(0))).is("Access-Accept"));
    let rsyslogd = Rsyslogd::start(dir.path(), udp, tcp);
    assert!(login(addr, "alice", "Secret123000000").is("Access-Reject"));
    let lines = wait_for_lines(dir.path(), 2, &node);

    // The receiver restarts; the next decision goes over a new connection.
    drop(rsyslogd);
    let _rsyslogd = Rsyslogd::start(dir.path(), udp, tcp);
    assert!(login(addr, "alice", &format!("Secret123{}", hotp_code(1))).is("Access-Accept"));
    let after = wait_for_lines(dir.path(), 3, &node);
    assert_eq!(after[..2], lines[..]);

    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    for (line, (severity, result)) in after.iter().zip([
        ("local4.info", "accept"),
        ("local4.notice", "reject"),
        ("local4.info", "accept"),
    ]) {
        assert!(
            line.starts_with(&format!("{severity} {hostname} tollgate ")),
            "{line}"
        );
        assert!(
            line.contains(
                "[tollgate@32473 user=\"alice\" client=\"nas1\" peer=\"127.0.0.1\" mode=\"append\""
            ) && line.contains(&format!(" result=\"{result}\" ")),
            "{line}"
        );
    }
    assert_no_secret(&after);
}

/// Reads one RFC 5424 PARAM-VALUE (after its opening quote) and returns it unescaped with
/// the rest after its closing quote; `None` when it is not well formed.
fn param_value(s: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                let (_, next) = chars.next()?;
                if !matches!(next, '"' | '\\' | ']') {
                    value.push('\\');
                }
                value.push(next);
            }
            '"' => return Some((value, &s[i + 1..])),
            // RFC 5424 §6.3.3: these three must be escaped inside a value.
            ']' => return None,
            c => value.push(c),
        }
    }
    None
}

/// The structured data of a message as (name, value) pairs, and the text after it.
fn parse_sd(message: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut rest = message.split_once(" [tollgate@32473")?.1;
    let mut params = Vec::new();
    loop {
        if let Some(after) = rest.strip_prefix(']') {
            return Some((params, after));
        }
        rest = rest.strip_prefix(' ')?;
        let (name, after) = rest.split_once("=\"")?;
        if name.is_empty() || name.contains([' ', '=', ']', '"']) {
            return None;
        }
        let (value, after) = param_value(after)?;
        params.push((name.to_owned(), value));
        rest = after;
    }
}

/// What the sink must make of a user name: control characters and line separators as
/// `?`, cut to the bound on a character boundary.
fn sanitised(user: &str) -> String {
    let mut out = String::new();
    for c in user.chars() {
        let c = if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
            '?'
        } else {
            c
        };
        if out.len() + c.len_utf8() > MAX_VALUE_BYTES {
            break;
        }
        out.push(c);
    }
    out
}

fn format_for(user: &str) -> String {
    let record = Record {
        time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        user: user.to_owned(),
        client: "nas1".to_owned(),
        peer: "192.0.2.7".parse().expect("address"),
        mode: "append",
        result: "reject",
        reason: "unknown_user",
        latency_us: 5,
    };
    let mut out = String::new();
    format_message(&mut out, &Header::new(4, "host", "tollgate", 99), &record);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_user_name_yields_one_well_formed_line(
        user in prop_oneof![
            any::<String>(),
            // Names dense in what needs escaping or sanitising.
            "[\"\\\\\\]\\[= \\n\\r\\t\\u{0}\\u{7f}\\u{85}\\u{2028}a-zé例]{0,400}",
        ]
    ) {
        let message = format_for(&user);
        prop_assert!(!message.chars().any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}'), "{message:?}");
        prop_assert!(message.starts_with("<37>1 2023-11-14T22:13:20.000000Z host tollgate 99 login [tollgate@32473 "), "{message:?}");
        let (params, rest) = parse_sd(&message).ok_or_else(|| TestCaseError::fail(format!("bad SD: {message:?}")))?;
        prop_assert_eq!(rest, " login reject");
        let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
        prop_assert_eq!(names, ["user", "client", "peer", "mode", "result", "reason", "latency_us"]);
        prop_assert_eq!(&params[0].1, &sanitised(&user));
        prop_assert_eq!(&params[1].1, "nas1");
        prop_assert_eq!(&params[5].1, "unknown_user");
    }
}
