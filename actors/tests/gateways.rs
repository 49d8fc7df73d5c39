//! Gateways against real peers on loopback: an SMTP server (Debian's `python3-aiosmtpd`,
//! plain, STARTTLS and implicit TLS with a test CA made by `openssl`), a scripted HTTP
//! server (plain and over rustls), and the file gateway's file.
//!
//! Every error a gateway returns is checked to hold no part of the message body, which
//! carries the passcode.

mod support;
use support::Pki;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use tollgate_actors::delivery::gateway::{Gateway, SendError};
use tollgate_actors::delivery::{Channel, Message};
use tollgate_config::Config;
use zeroize::Zeroizing;

/// The passcode in every test message; no error text may contain it.
const CODE: &str = "739184";

fn gateway(toml: &str) -> Gateway {
    let config = Config::parse(toml).unwrap_or_else(|e| panic!("config: {e}\n{toml}"));
    Gateway::from_config(&config.gateways[0]).unwrap_or_else(|e| panic!("gateway: {e}"))
}

fn message(id: i64, channel: Channel, to: &str) -> Message {
    Message {
        id,
        key: 0x5eed_0000_0000_0000 | id as u64,
        channel,
        to: to.to_owned(),
        subject: if channel == Channel::Email {
            "Anmeldung bestätigen".to_owned()
        } else {
            String::new()
        },
        body: Zeroizing::new(format!(
            "Ihr Code: {CODE} — gültig 5 Minuten. A&B=C \"quoted\" 100%\nline two"
        )),
    }
}

/// Asserts that a send failed as `transient` says, without showing the passcode.
fn expect_failure(result: Result<(), SendError>, transient: bool) -> String {
    let e = result.expect_err("the send should fail");
    let text = e.to_string();
    assert!(!text.contains(CODE), "the error shows the passcode: {text}");
    assert!(!text.contains("gültig"), "the error shows the body: {text}");
    assert_eq!(e.is_transient(), transient, "{text}");
    text
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn toml_path(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

// ---------------------------------------------------------------------------------------
// SMTP: aiosmtpd.

/// The SMTP peer: aiosmtpd's Controller with a handler that refuses two mailboxes
/// (`busy@` with 451, `nobody@` with 550), accepts one login, and writes each message it
/// takes to a JSON file, parsed by Python's own `email` package.
const SMTPD: &str = r#"
import email, email.policy, itertools, json, os, ssl, sys
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

out, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
counter = itertools.count()

class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0]
        if local == "busy":
            return "451 4.3.0 mailbox busy, try again later"
        if local == "nobody":
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "authenticated": bool(session.authenticated),
            "from": str(msg["From"]),
            "to": str(msg["To"]),
            "subject": str(msg["Subject"]),
            "date": str(msg["Date"]),
            "message_id": str(msg["Message-ID"]),
            "content_type": msg.get_content_type(),
            "charset": msg.get_content_charset(),
            "body": msg.get_content(),
        }
        n = next(counter)
        tmp = os.path.join(out, ".%d.tmp" % n)
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(out, "%04d.json" % n))
        return "250 2.0.0 queued"

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login == b"tollgate" and auth_data.password == b"s3cret pw")
    return AuthResult(success=ok, handled=False)

# aiosmtpd only knows of TLS it started itself (STARTTLS): on an implicit-TLS port it
# would refuse AUTH as unencrypted, so there the requirement is off.
kwargs = dict(hostname="127.0.0.1", port=port, authenticator=authenticator,
              auth_require_tls=(mode == "starttls"))
if mode != "plain":
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[4], sys.argv[5])
    if mode == "starttls":
        kwargs.update(tls_context=ctx, require_starttls=True)
    else:
        kwargs.update(ssl_context=ctx)
controller = Controller(Handler(), **kwargs)
controller.start()
print("READY", flush=True)
sys.stdin.read()
controller.stop()
"#;

struct Smtpd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Smtpd {
    /// Starts aiosmtpd in `mode` (`plain`, `starttls` or `tls`).
    fn start(mode: &str, pki: Option<&Pki>) -> Smtpd {
        let python = "/usr/bin/python3";
        let check = Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .output()
            .unwrap_or_else(|e| panic!("{python}: {e} (install the Debian package python3)"));
        assert!(
            check.status.success(),
            "aiosmtpd is missing: install the Debian package python3-aiosmtpd"
        );
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("smtpd.py");
        std::fs::write(&script, SMTPD).unwrap();
        let out = dir.path().join("mail");
        std::fs::create_dir(&out).unwrap();
        let port = free_port();
        let mut cmd = Command::new(python);
        cmd.arg(&script)
            .arg(&out)
            .arg(port.to_string())
            .arg(mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(pki) = pki {
            cmd.arg(&pki.cert).arg(&pki.key);
        }
        let mut child = cmd.spawn().expect("start aiosmtpd");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "READY", "aiosmtpd did not start");
        Smtpd { child, port, dir }
    }

    fn received(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("mail"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    fn section(&self, extra: &str) -> String {
        format!(
            "[[gateway]]\nname = \"mail\"\nchannel = \"email\"\ntype = \"smtp\"\nhost = \"127.0.0.1\"\nport = {}\nfrom = \"Tollgate <noreply@tollgate.test>\"\ntimeout_ms = 5000\n{extra}",
            self.port
        )
    }
}

fn check_mail(got: &serde_json::Value, to: &str, tls: bool, authenticated: bool) {
    assert_eq!(got["mail_from"], "noreply@tollgate.test");
    assert_eq!(got["rcpt_tos"], serde_json::json!([to]));
    assert_eq!(got["tls"], tls);
    assert_eq!(got["authenticated"], authenticated);
    assert_eq!(got["from"], "Tollgate <noreply@tollgate.test>");
    assert_eq!(got["to"], to);
    assert_eq!(got["subject"], "Anmeldung bestätigen");
    assert!(!got["date"].as_str().unwrap().is_empty());
    let id = got["message_id"].as_str().unwrap();
    assert!(
        id.starts_with('<') && id.ends_with("@tollgate.test>"),
        "{id}"
    );
    assert_eq!(got["content_type"], "text/plain");
    assert_eq!(got["charset"], "utf-8");
    // SMTP carries lines ending in CRLF; the text is compared line by line.
    let body = got["body"].as_str().unwrap().replace("\r\n", "\n");
    assert!(
        body.contains(&format!("Ihr Code: {CODE} — gültig 5 Minuten.")),
        "{body}"
    );
    assert!(body.contains("A&B=C \"quoted\" 100%\nline two"), "{body}");
}

#[tokio::test]
async fn smtp_plain_delivers_the_message_and_sorts_refusals() {
    let smtpd = Smtpd::start("plain", None);
    let g = gateway(&smtpd.section("tls = \"none\"\nallow_plain = true\n"));
    assert_eq!(g.channel(), Channel::Email);
    g.send(&message(1, Channel::Email, "alice@example.com"))
        .await
        .unwrap();
    let mail = smtpd.received();
    assert_eq!(mail.len(), 1);
    check_mail(&mail[0], "alice@example.com", false, false);
    // The outbox id and the message's key: the same at every attempt of one message.
    assert_eq!(mail[0]["message_id"], "<1.5eed000000000001@tollgate.test>");
    g.send(&message(1, Channel::Email, "alice@example.com"))
        .await
        .unwrap();
    let mail = smtpd.received();
    assert_eq!(mail.len(), 2);
    assert_eq!(mail[1]["message_id"], mail[0]["message_id"]);

    // 451 is worth another try, 550 is not; a destination that is no address is refused
    // before any connection.
    let text = expect_failure(
        g.send(&message(2, Channel::Email, "busy@example.com"))
            .await,
        true,
    );
    assert!(text.contains("451"), "{text}");
    let text = expect_failure(
        g.send(&message(3, Channel::Email, "nobody@example.com"))
            .await,
        false,
    );
    assert!(text.contains("550"), "{text}");
    expect_failure(
        g.send(&message(4, Channel::Email, "not an address")).await,
        false,
    );
    assert_eq!(smtpd.received().len(), 2, "nothing else was taken");
}

#[tokio::test]
async fn smtp_auth_logs_in_and_a_wrong_password_is_final() {
    let smtpd = Smtpd::start("plain", None);
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("smtp.pw");
    std::fs::write(&pw, "s3cret pw\n").unwrap();
    let g = gateway(&smtpd.section(&format!(
        "tls = \"none\"\nallow_plain = true\nusername = \"tollgate\"\npassword_file = {}\n",
        toml_path(&pw)
    )));
    g.send(&message(10, Channel::Email, "bob@example.com"))
        .await
        .unwrap();
    check_mail(&smtpd.received()[0], "bob@example.com", false, true);

    let g = gateway(&smtpd.section(
        "tls = \"none\"\nallow_plain = true\nusername = \"tollgate\"\npassword = \"wrong\"\n",
    ));
    let text = expect_failure(
        g.send(&message(11, Channel::Email, "bob@example.com"))
            .await,
        false,
    );
    assert!(text.contains("535"), "{text}");
    assert_eq!(smtpd.received().len(), 1);
}

#[tokio::test]
async fn smtp_starttls_checks_the_certificate_against_ca_file() {
    let pki = Pki::new("gateway");
    let smtpd = Smtpd::start("starttls", Some(&pki));
    let g = gateway(&smtpd.section(&format!(
        "tls = \"starttls\"\nca_file = {}\nusername = \"tollgate\"\npassword = \"s3cret pw\"\n",
        toml_path(&pki.ca)
    )));
    g.send(&message(20, Channel::Email, "carol@example.com"))
        .await
        .unwrap();
    let mail = smtpd.received();
    assert_eq!(mail.len(), 1);
    check_mail(&mail[0], "carol@example.com", true, true);

    // A CA that did not sign the server's certificate: the handshake fails and nothing
    // is sent (in particular not the password).
    let g = gateway(&smtpd.section(&format!(
        "ca_file = {}\nusername = \"tollgate\"\npassword = \"s3cret pw\"\n",
        toml_path(&pki.other_ca)
    )));
    expect_failure(
        g.send(&message(21, Channel::Email, "carol@example.com"))
            .await,
        true,
    );
    assert_eq!(smtpd.received().len(), 1);
}

#[tokio::test]
async fn smtp_starttls_is_required_when_asked_for() {
    // A server that offers no STARTTLS: the message must not go out in clear text.
    let smtpd = Smtpd::start("plain", None);
    let pki = Pki::new("gateway");
    let g = gateway(&smtpd.section(&format!("ca_file = {}\n", toml_path(&pki.ca))));
    expect_failure(
        g.send(&message(30, Channel::Email, "dave@example.com"))
            .await,
        true,
    );
    assert!(smtpd.received().is_empty());
}

#[tokio::test]
async fn smtp_implicit_tls_delivers() {
    let pki = Pki::new("gateway");
    let smtpd = Smtpd::start("tls", Some(&pki));
    let g = gateway(&smtpd.section(&format!(
        "tls = \"tls\"\nca_file = {}\nusername = \"tollgate\"\npassword = \"s3cret pw\"\n",
        toml_path(&pki.ca)
    )));
    g.send(&message(40, Channel::Email, "erin@example.com"))
        .await
        .unwrap();
    let mail = smtpd.received();
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0]["authenticated"], true);
    assert_eq!(mail[0]["rcpt_tos"], serde_json::json!(["erin@example.com"]));
}

#[tokio::test]
async fn smtp_without_a_server_or_an_answer_is_transient() {
    let port = free_port();
    let g = gateway(&format!(
        "[[gateway]]\nname = \"mail\"\nchannel = \"email\"\ntype = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\nfrom = \"noreply@tollgate.test\"\ntls = \"none\"\nallow_plain = true\n"
    ));
    expect_failure(
        g.send(&message(50, Channel::Email, "a@example.com")).await,
        true,
    );

    // A server that accepts the connection and never greets.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let g = gateway(&format!(
        "[[gateway]]\nname = \"mail\"\nchannel = \"email\"\ntype = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\nfrom = \"noreply@tollgate.test\"\ntls = \"none\"\nallow_plain = true\ntimeout_ms = 300\n"
    ));
    expect_failure(
        g.send(&message(51, Channel::Email, "a@example.com")).await,
        true,
    );
    drop(silent);
}

// ---------------------------------------------------------------------------------------
// HTTP: a scripted server.

/// One request as the server read it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }
}

/// One scripted answer.
#[derive(Clone)]
struct Reply {
    status: u16,
    body: &'static str,
    delay: Duration,
}

fn reply(status: u16, body: &'static str) -> Reply {
    Reply {
        status,
        body,
        delay: Duration::ZERO,
    }
}

/// An HTTP/1.1 server on loopback that answers each request with the next scripted reply
/// (200 when the script is done) and records what it was sent. With a TLS configuration
/// it speaks HTTPS.
struct HttpPeer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl HttpPeer {
    fn start(script: Vec<Reply>) -> HttpPeer {
        Self::start_with(script, None)
    }

    fn start_with(script: Vec<Reply>, tls: Option<Arc<rustls::ServerConfig>>) -> HttpPeer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.into_iter()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let (record, script, tls) = (record.clone(), script.clone(), tls.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    match tls {
                        Some(config) => {
                            let Ok(conn) = rustls::ServerConnection::new(config) else {
                                return;
                            };
                            serve(rustls::StreamOwned::new(conn, stream), &record, &script);
                        }
                        None => serve(stream, &record, &script),
                    }
                });
            }
        });
        HttpPeer { addr, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(
    mut stream: impl Read + Write,
    record: &Mutex<Vec<Seen>>,
    script: &Mutex<std::vec::IntoIter<Reply>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let target = request_line.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    record.lock().unwrap().push(Seen {
        method,
        target,
        headers,
        body,
    });
    let reply = script
        .lock()
        .unwrap()
        .next()
        .unwrap_or_else(|| reply(200, "ok"));
    std::thread::sleep(reply.delay);
    let answer = format!(
        "HTTP/1.1 {} Scripted\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\nLocation: http://127.0.0.1:9/elsewhere\r\n\r\n{}",
        reply.status,
        reply.body.len(),
        reply.body
    );
    let _ = stream.write_all(answer.as_bytes());
    let _ = stream.flush();
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[tokio::test]
async fn http_form_post_with_retries_headers_and_basic_auth() {
    let peer = HttpPeer::start(vec![
        reply(503, "busy"),
        reply(503, "busy"),
        reply(200, "ok"),
    ]);
    let g = gateway(&format!(
        "[[gateway]]\nname = \"sms\"\nchannel = \"sms\"\ntype = \"http\"\nurl = \"http://{}/v1/send?to={{to}}&ref={{id}}\"\nbody = \"from=Tollgate&text={{message}}\"\nusername = \"api\"\npassword = \"p@ss:word\"\n[gateway.headers]\nX-Request-Id = \"tg-{{id}}\"\nX-Dest = \"{{to}}\"\n",
        peer.addr
    ));
    let msg = message(77, Channel::Sms, "+49 151 2345&x=1\r\nX-Evil: yes");
    expect_failure(g.send(&msg).await, true);
    expect_failure(g.send(&msg).await, true);
    g.send(&msg).await.unwrap();

    let seen = peer.seen();
    assert_eq!(seen.len(), 3);
    let r = &seen[2];
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.target,
        "/v1/send?to=%2B49%20151%202345%26x%3D1%0D%0AX-Evil%3A%20yes&ref=77"
    );
    assert_eq!(r.header("host"), Some(peer.addr.to_string().as_str()));
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        r.header("authorization"),
        Some(basic("api", "p@ss:word").as_str())
    );
    assert_eq!(r.header("x-request-id"), Some("tg-77"));
    // The line break in the number became spaces: no header was injected.
    assert_eq!(r.header("x-dest"), Some("+49 151 2345&x=1  X-Evil: yes"));
    assert_eq!(r.header("x-evil"), None);
    assert!(r.header("user-agent").unwrap().starts_with("tollgate/"));
    assert_eq!(
        r.form(),
        vec![
            ("from".to_owned(), "Tollgate".to_owned()),
            ("text".to_owned(), msg.body.to_string()),
        ]
    );
}

#[tokio::test]
async fn http_statuses_are_sorted_and_redirects_not_followed() {
    let peer = HttpPeer::start(vec![
        reply(400, "bad number"),
        reply(429, "slow down"),
        reply(408, "timeout"),
        reply(301, ""),
        reply(404, ""),
        reply(201, "created"),
    ]);
    let g = gateway(&format!(
        "[[gateway]]\nname = \"voice\"\nchannel = \"voice\"\ntype = \"http\"\nmethod = \"GET\"\nurl = \"http://{}/call?to={{to}}&say={{message}}\"\n",
        peer.addr
    ));
    let msg = message(5, Channel::Voice, "+15550001111");
    let text = expect_failure(g.send(&msg).await, false);
    assert!(text.contains("400"), "{text}");
    expect_failure(g.send(&msg).await, true);
    expect_failure(g.send(&msg).await, true);
    let text = expect_failure(g.send(&msg).await, false);
    assert!(text.contains("301"), "{text}");
    expect_failure(g.send(&msg).await, false);
    g.send(&msg).await.unwrap();
    let seen = peer.seen();
    // The redirect's Location was not visited: six requests, all to the same place.
    assert_eq!(seen.len(), 6);
    for r in &seen {
        assert_eq!(r.method, "GET");
        assert!(r.body.is_empty());
        let url = url::Url::parse(&format!("http://x{}", r.target)).unwrap();
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs[0], ("to".to_owned(), "+15550001111".to_owned()));
        assert_eq!(pairs[1], ("say".to_owned(), msg.body.to_string()));
    }
}

#[tokio::test]
async fn http_success_body_must_confirm_the_message() {
    let peer = HttpPeer::start(vec![
        reply(200, "ERR: no credit left"),
        reply(200, "status=OK queued"),
        reply(503, "status=OK but down"),
    ]);
    let g = gateway(&format!(
        "[[gateway]]\nname = \"sms\"\nchannel = \"sms\"\ntype = \"http\"\nurl = \"http://{}/send\"\nbody = \"to={{to}}&text={{message}}\"\nsuccess_status = [200]\nsuccess_body = \"status=OK\"\n",
        peer.addr
    ));
    let msg = message(6, Channel::Sms, "+15550001111");
    // A 2xx without the marker: the provider took the request and said no; sending the
    // same request again would not change that.
    let text = expect_failure(g.send(&msg).await, false);
    assert!(text.contains("success_body"), "{text}");
    assert!(
        !text.contains("credit"),
        "the response body stays out of errors: {text}"
    );
    g.send(&msg).await.unwrap();
    expect_failure(g.send(&msg).await, true);
}

#[tokio::test]
async fn http_timeouts_and_refused_connections_are_transient() {
    let peer = HttpPeer::start(vec![Reply {
        status: 200,
        body: "late",
        delay: Duration::from_secs(3),
    }]);
    let g = gateway(&format!(
        "[[gateway]]\nname = \"sms\"\nchannel = \"sms\"\ntype = \"http\"\nurl = \"http://{}/send\"\nbody = \"to={{to}}&text={{message}}\"\ntimeout_ms = 300\n",
        peer.addr
    ));
    let msg = message(8, Channel::Sms, "+15550001111");
    let started = std::time::Instant::now();
    let text = expect_failure(g.send(&msg).await, true);
    assert!(text.contains("within 300 ms"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the timeout held"
    );

    let port = free_port();
    let g = gateway(&format!(
        "[[gateway]]\nname = \"sms\"\nchannel = \"sms\"\ntype = \"http\"\nurl = \"http://127.0.0.1:{port}/send\"\nbody = \"to={{to}}&text={{message}}\"\n"
    ));
    let text = expect_failure(g.send(&msg).await, true);
    assert!(text.contains("connect"), "{text}");
}

#[tokio::test]
async fn http_presets_speak_their_providers_shape() {
    let peer = HttpPeer::start(vec![
        reply(201, r#"{"sid":"SM1","status":"queued"}"#),
        reply(202, r#"{"message_uuid":"aaaaaaaa-bbbb"}"#),
    ]);
    let twilio = gateway(&format!(
        "[[gateway]]\nname = \"twilio\"\nchannel = \"sms\"\ntype = \"http\"\npreset = \"twilio\"\naccount = \"AC0123\"\npassword = \"authtoken\"\nfrom = \"+15550009999\"\nurl = \"http://{}/2010-04-01/Accounts/{{account}}/Messages.json\"\n",
        peer.addr
    ));
    let msg = message(90, Channel::Sms, "+15550001111");
    twilio.send(&msg).await.unwrap();
    let vonage = gateway(&format!(
        "[[gateway]]\nname = \"vonage\"\nchannel = \"sms\"\ntype = \"http\"\npreset = \"vonage\"\nusername = \"key\"\npassword = \"secret\"\nfrom = \"Tollgate\"\nurl = \"http://{}/v1/messages\"\n",
        peer.addr
    ));
    vonage.send(&msg).await.unwrap();

    let seen = peer.seen();
    let t = &seen[0];
    assert_eq!(t.method, "POST");
    assert_eq!(t.target, "/2010-04-01/Accounts/AC0123/Messages.json");
    assert_eq!(
        t.header("authorization"),
        Some(basic("AC0123", "authtoken").as_str())
    );
    assert_eq!(
        t.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        t.form(),
        vec![
            ("To".to_owned(), "+15550001111".to_owned()),
            ("From".to_owned(), "+15550009999".to_owned()),
            ("Body".to_owned(), msg.body.to_string()),
        ]
    );
    let v = &seen[1];
    assert_eq!(v.method, "POST");
    assert_eq!(v.target, "/v1/messages");
    assert_eq!(
        v.header("authorization"),
        Some(basic("key", "secret").as_str())
    );
    assert_eq!(v.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&v.body).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "message_type": "text",
            "channel": "sms",
            "to": "15550001111",
            "from": "Tollgate",
            "text": msg.body.as_str(),
        })
    );
}

#[tokio::test]
async fn https_checks_the_certificate_against_ca_file() {
    let pki = Pki::new("gateway");
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(&pki.cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&pki.key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let peer = HttpPeer::start_with(vec![reply(200, "ok")], Some(Arc::new(server)));
    let section = |ca: &Path| {
        format!(
            "[[gateway]]\nname = \"sms\"\nchannel = \"sms\"\ntype = \"http\"\nurl = \"https://{}/send\"\ncontent_type = \"application/json\"\nbody = '{{\"to\":\"{{to}}\",\"text\":\"{{message}}\"}}'\nca_file = {}\n",
            peer.addr,
            toml_path(ca)
        )
    };
    let msg = message(12, Channel::Sms, "+15550001111");
    gateway(&section(&pki.ca)).send(&msg).await.unwrap();
    let seen = peer.seen();
    assert_eq!(seen.len(), 1);
    let json: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(json["text"], msg.body.as_str());
    assert_eq!(json["to"], "+15550001111");

    let text = expect_failure(gateway(&section(&pki.other_ca)).send(&msg).await, true);
    assert!(text.contains("TLS"), "{text}");
    assert_eq!(
        peer.seen().len(),
        1,
        "nothing was sent to an unverified server"
    );
}

// ---------------------------------------------------------------------------------------
// File.

#[tokio::test]
async fn the_file_gateway_writes_one_private_json_line_per_message() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("codes.jsonl");
    let g = gateway(&format!(
        "[[gateway]]\nname = \"codes\"\nchannel = \"sms\"\ntype = \"file\"\npath = {}\n",
        toml_path(&path)
    ));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "created at start-up, private");
    g.send(&message(1, Channel::Sms, "+15550001111"))
        .await
        .unwrap();
    // A file gateway records any channel (the built-in outbox file serves them all).
    let outbox = Gateway::outbox_file(Channel::Email, &path).unwrap();
    outbox
        .send(&message(2, Channel::Email, "alice@example.com"))
        .await
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], 1);
    assert_eq!(lines[0]["channel"], "sms");
    assert_eq!(lines[0]["to"], "+15550001111");
    assert_eq!(lines[0]["subject"], "");
    assert_eq!(lines[0]["body"], message(1, Channel::Sms, "").body.as_str());
    assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(lines[1]["channel"], "email");
    assert_eq!(lines[1]["subject"], "Anmeldung bestätigen");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}
