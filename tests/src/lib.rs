//! The end-to-end test harness: a Tollgate node run from the real binary in a temporary
//! data directory on a loopback port, its admin commands, and the real peers that talk to
//! it (`radclient` from freeradius-utils) or a raw RADIUS client built on the engine's
//! codec for byte-exact checks; and a real OpenLDAP directory ([`slapd`]) for the LDAP
//! user backend.
//!
//! A peer that is missing fails the test with the Debian package to install; nothing is
//! skipped silently.

pub mod peers;
pub mod slapd;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use tollgate_engine::otp::{self, Algorithm, TokenKind, TokenParams};
use tollgate_engine::radius::{
    attr, encode_request, hide_password, verify_response, Code, Packet, MAX_PASSWORD_LEN,
};

/// A fixed 20-byte seed (RFC 4226's) in base32, for tokens whose codes tests compute.
pub const SEED_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
/// The same seed as bytes.
pub const SEED: &[u8] = b"12345678901234567890";
/// Shared secret of the test client.
pub const SECRET: &str = "test-shared-secret-42";

/// Fails with a clear message when a peer program is missing.
pub fn require(program: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{program}` is missing: install the Debian package {package} (scripts/test.sh does it)"
    );
}

/// The `tollgate` binary built by cargo beside the test executables.
pub fn tollgate_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/tollgate; a binary of this crate
    // (target/<profile>/<bin>) finds it beside itself.
    let dir = exe.parent().expect("target directory");
    let dir = if dir.ends_with("deps") {
        dir.parent().expect("target directory")
    } else {
        dir
    };
    let bin = dir.join("tollgate");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p tollgate-actors --bin tollgate` (scripts/test.sh does it)",
        bin.display()
    );
    bin
}

/// Runs a `tollgate` command with a configuration file and optional standard input.
pub fn cli_with(config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(tollgate_bin());
    cmd.arg("--config").arg(config).args(args);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run tollgate");
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
    }
    child.wait_with_output().expect("wait for tollgate")
}

/// One Tollgate node: a data directory, a configuration file, and the server process.
pub struct Node {
    dir: tempfile::TempDir,
    config: PathBuf,
    child: Option<Child>,
    /// The RADIUS address of the running server.
    pub addr: Option<SocketAddr>,
}

impl Node {
    /// A node whose configuration is the given TOML plus a loopback listener on a free
    /// port; `{dir}` in the TOML stands for the node's temporary directory. Its store is
    /// initialised; nothing runs yet.
    pub fn new(extra_toml: &str) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("tollgate.toml");
        let data = dir.path().join("data");
        let extra_toml = extra_toml.replace("{dir}", &dir.path().display().to_string());
        let text = format!(
            "data_dir = {:?}\n[radius]\nlisten = [\"127.0.0.1:0\"]\n{extra_toml}\n",
            data.display().to_string()
        );
        std::fs::write(&config, text).expect("write config");
        let node = Node {
            dir,
            config,
            child: None,
            addr: None,
        };
        // Admin commands work only on a store that exists.
        node.ok(&["init"], None);
        node
    }

    /// The node's temporary directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The configuration file.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Runs an admin command against this node's configuration.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        cli_with(&self.config, args, stdin)
    }

    /// Runs an admin command that must succeed, and returns its standard output.
    pub fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.cli(args, stdin);
        assert!(
            out.status.success(),
            "tollgate {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A one-time enrolment code for a phone of `user` (`tollgate device enrol`).
    pub fn enrolment_code(&self, user: &str) -> String {
        let out = self.ok(&["device", "enrol", user, "--no-qr"], None);
        out.lines()
            .next()
            .and_then(|l| l.rsplit(' ').next())
            .expect("an enrolment code")
            .to_owned()
    }

    /// Adds the test client (secret [`SECRET`], 127.0.0.1) in a login mode.
    pub fn add_client(&self, name: &str, mode: &str, require_ma: bool) {
        self.ok(
            &[
                "client",
                "add",
                name,
                "--address",
                "127.0.0.1",
                "--secret-stdin",
                "--mode",
                mode,
                "--require-message-authenticator",
                if require_ma { "true" } else { "false" },
            ],
            Some(&format!("{SECRET}\n")),
        );
    }

    /// Adds a user with a password and an HOTP token on [`SEED`] starting at counter 0.
    pub fn add_hotp_user(&self, name: &str, password: &str) {
        self.ok(
            &["user", "add", name, "--password-stdin"],
            Some(&format!("{password}\n")),
        );
        self.ok(
            &[
                "token", "add", name, "--type", "hotp", "--secret", SEED_B32, "--no-qr",
            ],
            None,
        );
    }

    /// The running server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server not started").id()
    }

    /// Starts the server and waits until it listens.
    pub fn start(&mut self) -> SocketAddr {
        self.start_logging("info")
    }

    /// Starts the server with `filter` as its log filter (`RUST_LOG`), and waits until it
    /// listens.
    pub fn start_logging(&mut self, filter: &str) -> SocketAddr {
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("log file");
        let mut child = Command::new(tollgate_bin())
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start tollgate serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.trim().parse::<SocketAddr>());
                }
            }
        });
        self.child = Some(child);
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(addr)) => addr,
            other => panic!("server did not start ({other:?}); its log:\n{}", self.log()),
        };
        self.addr = Some(addr);
        addr
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Whether the server's log shows `needle` within a few seconds (the log is written by
    /// a background thread, a moment after the event).
    pub fn log_shows(&self, needle: &str) -> bool {
        Node::eventually(Duration::from_secs(5), || self.log().contains(needle))
    }

    /// The records of the audit file `{dir}/audit.jsonl`, once it holds at least `n` of
    /// them (waiting up to 10 s). Every decision is recorded, but by the file's own thread
    /// after the reply went out: a test that reads the file right after a reply must say how
    /// many decisions it made, or it may read the file one record short.
    pub fn audit_records(&self, n: usize) -> Vec<serde_json::Value> {
        let mut records = Vec::new();
        Node::eventually(Duration::from_secs(10), || {
            let text = std::fs::read_to_string(self.path().join("audit.jsonl")).unwrap_or_default();
            // A line still being written has no newline yet.
            let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
            records = complete
                .lines()
                .map(|l| serde_json::from_str(l).expect("an audit line is JSON"))
                .collect();
            records.len() >= n
        });
        assert!(
            records.len() >= n,
            "the audit file holds {} records, {n} expected",
            records.len()
        );
        records
    }

    /// The lines of the outbox file gateway (`data/outbox.log`, where messages go when
    /// no gateway is configured for their channel), once it holds at least `n` (waiting up
    /// to 10 s).
    pub fn outbox_at_least(&self, n: usize) -> Vec<serde_json::Value> {
        let outbox = self.path().join("data").join("outbox.log");
        let mut lines = Vec::new();
        let arrived = Node::eventually(Duration::from_secs(10), || {
            lines = peers::outbox_lines(&outbox);
            lines.len() >= n
        });
        assert!(
            arrived,
            "the outbox holds {} messages, {n} expected\n{}",
            lines.len(),
            self.log()
        );
        lines
    }

    /// The RADIUS address; panics if the server is not running.
    pub fn radius(&self) -> SocketAddr {
        self.addr.expect("server not started")
    }

    /// Sends SIGTERM and waits for the server to exit; returns its status and how long the
    /// exit took.
    pub fn stop(&mut self) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("server not started");
        let started = Instant::now();
        // SAFETY-free: kill(2) through libc is a plain FFI call on our own child's pid.
        send_signal(child.id(), libc::SIGTERM);
        let deadline = started + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                self.addr = None;
                return (status, started.elapsed());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "server did not exit within 30 s of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server with SIGKILL (a crash, not a shutdown) and waits for it; returns
    /// the moment the signal was sent.
    pub fn kill(&mut self) -> Instant {
        let mut sent = Instant::now();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            sent = Instant::now();
            let _ = child.wait();
        }
        self.addr = None;
        sent
    }

    /// Polls `f` until it is true or `timeout` passes.
    pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if f() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[allow(unsafe_code)]
fn send_signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child's.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// A loopback port that was free a moment ago (for listeners whose address must be
/// written into a configuration before the server starts).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// GETs `path` from a loopback HTTP server and returns the body of a 200 answer.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| body.to_owned())
        .or_else(|| head.starts_with("HTTP/1.0 200").then(|| body.to_owned()))
}

/// The value of one sample of a Prometheus text exposition, by its full series text
/// (`name{label="value",...}`), labels in the order the exporter writes them (sorted).
pub fn metric(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

/// Resident memory of a process, in KiB (0 when it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Seconds since the Unix epoch (the time a TOTP code is computed for).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs()
}

/// The HOTP code of [`SEED`] at `counter` (6 digits, SHA-1).
pub fn hotp_code(counter: u64) -> String {
    let params = TokenParams {
        kind: TokenKind::Hotp,
        algorithm: Algorithm::Sha1,
        digits: 6,
    };
    let mut buf = [0u8; 8];
    String::from_utf8_lossy(otp::code_at(SEED, &params, counter, &mut buf)).into_owned()
}

/// The TOTP code of a seed now (30 s, 6 digits, SHA-1).
pub fn totp_code(seed: &[u8], now: u64) -> String {
    let params = TokenParams {
        kind: TokenKind::Totp { period: 30, t0: 0 },
        algorithm: Algorithm::Sha1,
        digits: 6,
    };
    let mut buf = [0u8; 8];
    let counter = otp::totp_counter(now, 30, 0);
    String::from_utf8_lossy(otp::code_at(seed, &params, counter, &mut buf)).into_owned()
}

/// What radclient printed of one exchange.
#[derive(Debug)]
pub struct RadReply {
    /// `Access-Accept`, `Access-Reject`, `Access-Challenge`, or `None` for no reply.
    pub code: Option<String>,
    /// Attributes of the reply as `(name, value)` text.
    pub attrs: Vec<(String, String)>,
    /// radclient's whole output, for assertion messages.
    pub output: String,
}

impl RadReply {
    /// The value of an attribute of the reply.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the reply is this code.
    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

/// Runs radclient once (`kind` is `auth` or `status`) with `attrs` as its input and waits
/// at most `timeout_secs` with `retries` attempts.
pub fn radclient(
    addr: SocketAddr,
    secret: &str,
    kind: &str,
    attrs: &str,
    retries: u32,
    timeout_secs: u32,
) -> RadReply {
    require("radclient", "freeradius-utils");
    let mut child = Command::new("radclient")
        .args([
            "-x",
            "-r",
            &retries.to_string(),
            "-t",
            &timeout_secs.to_string(),
            &addr.to_string(),
            kind,
            secret,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run radclient");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(attrs.as_bytes())
        .expect("write radclient input");
    let out = child.wait_with_output().expect("radclient");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut code = None;
    let mut attrs = Vec::new();
    let mut in_reply = false;
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("Received ") {
            code = rest.split_whitespace().next().map(str::to_owned);
            in_reply = true;
            continue;
        }
        if line.starts_with("Sent ") {
            in_reply = false;
            continue;
        }
        if in_reply && line.starts_with('\t') {
            if let Some((n, v)) = line.trim().split_once(" = ") {
                attrs.push((n.to_owned(), v.trim_matches('"').to_owned()));
            }
        }
    }
    RadReply {
        code,
        attrs,
        output,
    }
}

/// An Access-Request in append mode with Message-Authenticator, through radclient.
pub fn login(addr: SocketAddr, user: &str, field: &str) -> RadReply {
    radclient(
        addr,
        SECRET,
        "auth",
        &format!(
            "User-Name = \"{user}\", User-Password = \"{field}\", Message-Authenticator = 0x00\n"
        ),
        1,
        3,
    )
}

/// A RADIUS client on the engine's codec, for byte-exact and malformed traffic.
pub struct RawClient {
    socket: UdpSocket,
}

impl RawClient {
    /// A client talking to `server` from a fresh loopback port.
    pub fn new(server: SocketAddr) -> RawClient {
        RawClient::from_address(server, "127.0.0.1")
    }

    /// A client talking to `server` from a fresh port of `local` (a loopback address, such
    /// as 127.0.0.2 for a second NAS).
    pub fn from_address(server: SocketAddr, local: &str) -> RawClient {
        let socket = UdpSocket::bind((local, 0)).expect("bind");
        socket.connect(server).expect("connect");
        socket
            .set_read_timeout(Some(Duration::from_millis(1500)))
            .expect("timeout");
        RawClient { socket }
    }

    /// Sends a datagram as is.
    pub fn send(&self, bytes: &[u8]) {
        self.socket.send(bytes).expect("send");
    }

    /// Waits for one datagram.
    pub fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = [0u8; 4096];
        self.socket.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
    }

    /// The value of the first attribute of type `kind` in a reply (unverified; the
    /// attributes are walked as laid out, and a malformed list ends the walk).
    pub fn reply_attribute(reply: &[u8], kind: u8) -> Option<Vec<u8>> {
        let mut i = 20;
        while i + 2 <= reply.len() {
            let (t, l) = (reply[i], usize::from(reply[i + 1]));
            if l < 2 || i + l > reply.len() {
                return None;
            }
            if t == kind {
                return Some(reply[i + 2..i + l].to_vec());
            }
            i += l;
        }
        None
    }

    /// Builds an Access-Request with User-Name and hidden User-Password.
    pub fn access_request(
        identifier: u8,
        authenticator: [u8; 16],
        secret: &str,
        user: &str,
        password: &str,
        extra: &[(u8, &[u8])],
        message_authenticator: bool,
    ) -> Vec<u8> {
        let mut hidden = [0u8; MAX_PASSWORD_LEN];
        let n = hide_password(
            password.as_bytes(),
            secret.as_bytes(),
            &authenticator,
            &mut hidden,
        )
        .expect("hide");
        let mut attrs: Vec<(u8, &[u8])> = vec![
            (attr::USER_NAME, user.as_bytes()),
            (attr::USER_PASSWORD, &hidden[..n]),
        ];
        attrs.extend_from_slice(extra);
        let mut out = Vec::new();
        encode_request(
            &mut out,
            Code::AccessRequest,
            identifier,
            &authenticator,
            secret.as_bytes(),
            &attrs,
            message_authenticator,
        )
        .expect("encode");
        out
    }

    /// Decodes and verifies a reply to a request with `authenticator`; returns its code.
    pub fn check_reply(reply: &[u8], authenticator: &[u8; 16], secret: &str) -> Code {
        let p = Packet::decode(reply).expect("reply decodes");
        let v = verify_response(p, authenticator, secret.as_bytes(), true)
            .expect("reply verifies with Message-Authenticator");
        assert_eq!(
            v.attributes().next().map(|a| a.typ),
            Some(attr::MESSAGE_AUTHENTICATOR),
            "Message-Authenticator is the first attribute"
        );
        v.code()
    }
}
