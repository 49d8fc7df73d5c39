//! Peers of the delivered-codes tests: a real SMTP server (Debian's `python3-aiosmtpd`)
//! that keeps every message it receives, and a scripted HTTP server standing in for an SMS
//! or voice provider.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The Debian interpreter, which sees Debian's Python packages.
const PYTHON: &str = "/usr/bin/python3";

const SMTP_SCRIPT: &str = r#"
import asyncio, sys, os, itertools
from aiosmtpd.controller import Controller

out = sys.argv[2]
# A restart on the same directory goes on numbering after what is there.
counter = itertools.count(len([f for f in os.listdir(out) if f.endswith(".eml")]))

class Keep:
    async def handle_DATA(self, server, session, envelope):
        n = next(counter)
        tmp = os.path.join(out, f".{n}.eml")
        with open(tmp, "wb") as f:
            f.write(b"X-Rcpt: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode())
        os.rename(tmp, os.path.join(out, f"{n}.eml"))
        return "250 OK"

c = Controller(Keep(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
print("ready", flush=True)
sys.stdin.read()
c.stop()
"#;

/// A running SMTP server that writes each message it receives to a directory.
pub struct SmtpSink {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Its address.
    pub addr: SocketAddr,
}

impl SmtpSink {
    /// Starts the server on a free loopback port.
    pub fn start() -> SmtpSink {
        let ok = Command::new(PYTHON)
            .args(["-c", "import aiosmtpd"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "Python's aiosmtpd is missing: install the Debian package python3-aiosmtpd (scripts/test.sh does it)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let port = crate::free_tcp_port();
        let mut sink = SmtpSink {
            child: None,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        sink.spawn();
        sink
    }

    fn spawn(&mut self) {
        let mut child = Command::new(PYTHON)
            .args(["-c", SMTP_SCRIPT, &self.addr.port().to_string()])
            .arg(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start aiosmtpd");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("aiosmtpd starts");
        assert_eq!(line.trim(), "ready", "aiosmtpd did not start");
        self.child = Some(child);
    }

    /// Kills the server (SIGKILL: a crash, connections reset); what it kept stays.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and directory (killing it first if it runs).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// A `[[gateway]]` section that sends e-mail to this server (plain SMTP on loopback).
    pub fn gateway(&self) -> String {
        format!(
            r#"
[[gateway]]
name = "mail"
channel = "email"
type = "smtp"
host = "127.0.0.1"
port = {port}
tls = "none"
allow_plain = true
from = "Tollgate <noreply@example.com>"
"#,
            port = self.addr.port()
        )
    }

    /// The directory the messages are written to (`<n>.eml`).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Every message received so far, as text, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        files.sort_by_key(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0)
        });
        files
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }

    /// Waits for the `n`th message (1-based).
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.messages().into_iter().nth(n - 1) {
                return Some(m);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The body of a received e-mail: what follows the first blank line. A code must be looked
/// for there, not in the headers, whose Message-ID is random and can hold a run of digits.
pub fn mail_body(message: &str) -> &str {
    message
        .split_once("\r\n\r\n")
        .or_else(|| message.split_once("\n\n"))
        .map_or(message, |(_, body)| body)
}

/// The first run of `digits` ASCII digits standing alone in `text` (a code in a message).
pub fn code_in(text: &str, digits: usize) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == digits)
        .map(str::to_owned)
}

/// One request the HTTP stub received.
#[derive(Clone, Debug)]
pub struct Received {
    /// Method and target (`POST /sms?x=1`).
    pub line: String,
    /// Header lines.
    pub headers: Vec<String>,
    /// Body.
    pub body: String,
    /// The status it was answered with.
    pub status: u16,
}

/// An HTTP server on loopback that answers requests with scripted statuses (then 200
/// for ever) and records them.
pub struct HttpStub {
    /// Its address.
    pub addr: SocketAddr,
    script: Arc<Mutex<Vec<u16>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl HttpStub {
    /// Starts the server; `script` is the statuses of the first requests, in order.
    pub fn start(script: &[u16]) -> HttpStub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        HttpStub::serve(listener, script)
    }

    /// Starts the server on a given port (for a provider that comes back).
    pub fn start_on(port: u16, script: &[u16]) -> HttpStub {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the port again");
        HttpStub::serve(listener, script)
    }

    fn serve(listener: TcpListener, script: &[u16]) -> HttpStub {
        let addr = listener.local_addr().expect("addr");
        let script = Arc::new(Mutex::new(script.iter().rev().copied().collect::<Vec<_>>()));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (s, r) = (Arc::clone(&script), Arc::clone(&received));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (s, r) = (Arc::clone(&s), Arc::clone(&r));
                std::thread::spawn(move || handle(stream, &s, &r));
            }
        });
        HttpStub {
            addr,
            script,
            received,
        }
    }

    /// Sets the statuses of the next requests.
    pub fn set_script(&self, script: &[u16]) {
        *self.script.lock().unwrap() = script.iter().rev().copied().collect();
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `n` requests were answered 2xx.
    pub fn wait_for_successes(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let ok: Vec<Received> = self
                .received()
                .into_iter()
                .filter(|r| (200..300).contains(&r.status))
                .collect();
            if ok.len() >= n || Instant::now() > deadline {
                return ok;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn handle(stream: TcpStream, script: &Mutex<Vec<u16>>, received: &Mutex<Vec<Received>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        let h = h.trim_end().to_owned();
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        headers.push(h);
    }
    let mut body = vec![0u8; length.min(1 << 20)];
    let _ = reader.read_exact(&mut body);
    let status = script.lock().unwrap().pop().unwrap_or(200);
    received.lock().unwrap().push(Received {
        line: line.trim_end().to_owned(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        status,
    });
    let reply = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
    );
    let mut w = &stream;
    let _ = w.write_all(reply.as_bytes());
}

/// Lines of the built-in outbox file gateway, parsed.
pub fn outbox_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// One HTTP/1.1 request over a fresh connection; returns the status and the body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("content-type: application/json\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    // One write, without Nagle: a head and a body written apart would wait for a delayed ACK.
    let _ = s.set_nodelay(true);
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    s.write_all(&bytes).expect("send");
    // Read until the body is complete (by Content-Length), not until the server closes.
    let mut out = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if let Some(length) = length {
                if out.len() >= end + 4 + length {
                    break;
                }
            }
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = match text.split_once("\r\n\r\n") {
        Some((head, rest))
            if head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked") =>
        {
            dechunk(rest)
        }
        Some((_, rest)) => rest.to_owned(),
        None => String::new(),
    };
    (status, body)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// A phone app: an Ed25519 key enrolled with the mobile API, signing its requests.
pub struct PhoneApp {
    /// The API's address.
    pub api: SocketAddr,
    key: ed25519_dalek::SigningKey,
    /// The device id, once enrolled.
    pub device: String,
}

impl PhoneApp {
    /// Enrols a new key with a one-time `code`; panics with the API's answer on failure.
    pub fn enrol(api: SocketAddr, code: &str) -> PhoneApp {
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let (status, body) = PhoneApp::try_enrol(api, code, &key);
        assert_eq!(status, 201, "enrolment refused: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        PhoneApp {
            api,
            key,
            device: v["device_id"].as_str().expect("device_id").to_owned(),
        }
    }

    /// Sends an enrolment request and returns the API's answer.
    pub fn try_enrol(
        api: SocketAddr,
        code: &str,
        key: &ed25519_dalek::SigningKey,
    ) -> (u16, String) {
        use base64::Engine as _;
        use ed25519_dalek::Signer as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let public = b64.encode(key.verifying_key().as_bytes());
        let sig = key.sign(&tollgate_engine::push::enrol_message(code, &public));
        let body = serde_json::json!({
            "code": code,
            "name": "test phone",
            "platform": "poll",
            "push_token": null,
            "key_alg": "ed25519",
            "public_key": public,
            "signature": b64.encode(sig.to_bytes()),
        });
        http(api, "POST", "/v1/devices", &[], body.to_string().as_bytes())
    }

    /// A signed request; `forge` flips a bit of the signature.
    pub fn signed(&self, method: &str, path: &str, body: &[u8], forge: bool) -> (u16, String) {
        let headers = self.sign(method, path, body, forge);
        http(self.api, method, path, &headers, body)
    }

    /// The headers that sign a request (signing is slow in an unoptimised build: a caller
    /// that times the request signs first).
    pub fn sign(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        forge: bool,
    ) -> Vec<(&'static str, String)> {
        use base64::Engine as _;
        use ed25519_dalek::Signer as _;
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut n = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut n);
        let nonce = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n);
        let msg = tollgate_engine::push::request_message(method, path, ts, &nonce, body);
        let mut sig = self.key.sign(&msg).to_bytes();
        if forge {
            sig[0] ^= 1;
        }
        vec![
            ("x-tollgate-device", self.device.clone()),
            ("x-tollgate-timestamp", ts.to_string()),
            ("x-tollgate-nonce", nonce),
            (
                "x-tollgate-signature",
                base64::engine::general_purpose::STANDARD.encode(sig),
            ),
        ]
    }

    /// The pending approvals.
    pub fn pending(&self) -> Vec<serde_json::Value> {
        let (status, body) = self.signed("GET", "/v1/challenges", b"", false);
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        v["challenges"].as_array().cloned().unwrap_or_default()
    }

    /// Approves or declines a pending login.
    pub fn decide(&self, id: &str, approve: bool, number: Option<u8>) -> (u16, String) {
        let body = serde_json::json!({
            "decision": if approve { "approve" } else { "decline" },
            "number": number,
        });
        self.signed(
            "POST",
            &format!("/v1/challenges/{id}"),
            body.to_string().as_bytes(),
            false,
        )
    }
}
