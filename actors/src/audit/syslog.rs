//! The syslog sink: every audit record as an RFC 5424 message to a SIEM, over UDP or TCP.
//!
//! This module owns the message format and its transport. A record becomes
//!
//! ```text
//! <37>1 2025-01-02T03:04:05.123456Z radius-1 tollgate 4242 login [tollgate@32473 user="alice" client="vpn" peer="10.0.0.1" mode="append" result="reject" reason="bad_passcode" latency_us="87"] login reject
//! ```
//!
//! with severity info for an accept or a challenge and notice for a refusal. Values in the
//! structured data are sanitised (no control character, at most [`MAX_VALUE_BYTES`]) and
//! escaped (`"`, `\` and `]`, RFC 5424 §6.3.3), so whatever a NAS sends as a user name,
//! the message stays one line with one well-formed SD-ELEMENT.
//!
//! Over UDP each message is one datagram (RFC 5426). Over TCP messages are framed by
//! octet counting (RFC 6587 §3.4.1); a lost connection is reopened with exponential
//! back-off and the batch that failed is sent again, while new records wait in the
//! bounded queue (and are dropped and counted once it is full).

use std::fmt::Write as _;
use std::io::{ErrorKind, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use metrics::Counter;
use tollgate_config::AuditConfig;

use super::Record;

/// The SD-ID of Tollgate's structured data. 32473 is the private enterprise number that
/// RFC 5612 reserves for documentation; a site with its own number can rewrite the SD-ID
/// in its SIEM's parser.
pub const SD_ID: &str = "tollgate@32473";
/// The MSGID of every audit message.
pub const MSG_ID: &str = "login";
/// Longest value, in bytes before escaping, of one SD-PARAM: the longest RADIUS attribute
/// (253 bytes), so a user name is never cut, and a bound on what a NAS can make us send.
pub const MAX_VALUE_BYTES: usize = 253;

/// Severity `notice` (5): a refused login, significant but normal.
const SEVERITY_NOTICE: u8 = 5;
/// Severity `informational` (6): an accepted or challenged login.
const SEVERITY_INFO: u8 = 6;

/// Records sent in one TCP write at most, so that one failed write re-sends little.
const MAX_BATCH: usize = 256;
/// Time allowed to open a TCP connection to the receiver.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time a TCP write may block before the connection is given up and reopened.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// First wait before reconnecting; doubled after each failure up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Slice of a back-off wait after which the thread checks whether the server is gone.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// How messages travel.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// One datagram per message.
    Udp,
    /// Octet-counted frames on a stream.
    Tcp,
}

/// Everything the sink needs, resolved from `[audit.syslog]` (the host name included).
#[derive(Clone, Debug)]
pub struct SyslogSettings {
    /// The receiver.
    pub address: SocketAddr,
    /// UDP or TCP.
    pub transport: Transport,
    /// The header of every message.
    pub header: Header,
    /// Capacity of the queue in front of the sending thread.
    pub queue: usize,
}

impl SyslogSettings {
    /// The settings of `[audit.syslog]`, or `None` when the section is absent.
    pub fn from_config(audit: &AuditConfig) -> Option<SyslogSettings> {
        let s = audit.syslog.as_ref()?;
        let hostname = s.hostname.clone().unwrap_or_else(machine_hostname);
        Some(SyslogSettings {
            address: s.address,
            transport: match s.transport.as_str() {
                "tcp" => Transport::Tcp,
                _ => Transport::Udp,
            },
            header: Header::new(
                s.facility.code(),
                &hostname,
                &s.app_name,
                std::process::id(),
            ),
            queue: s.queue,
        })
    }
}

/// The fields of the RFC 5424 header that do not change from one message to the next,
/// already checked and sanitised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    facility: u8,
    hostname: String,
    app_name: String,
    procid: String,
}

impl Header {
    /// A header for `facility` (0 to 23; larger values are taken as 23), a host name and
    /// an application name (printable ASCII only: any other character becomes `_`, and an
    /// empty one the NILVALUE `-`) and a process id.
    pub fn new(facility: u8, hostname: &str, app_name: &str, procid: u32) -> Header {
        Header {
            facility: facility.min(23),
            hostname: header_field(hostname, 255),
            app_name: header_field(app_name, 48),
            procid: procid.to_string(),
        }
    }

    /// The PRI value of a message of `severity`: facility × 8 + severity (RFC 5424 §6.2.1).
    pub fn pri(&self, severity: u8) -> u8 {
        self.facility * 8 + severity.min(7)
    }
}

/// A header field as RFC 5424 allows it: 1 to `max` printable US-ASCII characters.
fn header_field(value: &str, max: usize) -> String {
    let field: String = value
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(max)
        .collect();
    if field.is_empty() {
        "-".to_owned()
    } else {
        field
    }
}

/// The severity of a decision: notice for a refusal, informational otherwise.
pub fn severity(result: &str) -> u8 {
    if result == "reject" {
        SEVERITY_NOTICE
    } else {
        SEVERITY_INFO
    }
}

/// Appends the RFC 5424 message of `record` to `out` (no framing, no line end).
pub fn format_message(out: &mut String, header: &Header, record: &Record) {
    let _ = write!(out, "<{}>1 ", header.pri(severity(record.result)));
    push_timestamp(out, record.time);
    let _ = write!(
        out,
        " {} {} {} {MSG_ID} [{SD_ID}",
        header.hostname, header.app_name, header.procid
    );
    push_param(out, "user", &record.user);
    push_param(out, "client", &record.client);
    // An address prints as digits, dots, colons and hex letters: nothing to escape.
    let _ = write!(out, " peer=\"{}\"", record.peer);
    push_param(out, "mode", record.mode);
    push_param(out, "result", record.result);
    push_param(out, "reason", record.reason);
    let _ = write!(out, " latency_us=\"{}\"] login ", record.latency_us);
    // The message text is the result alone, which the SD already holds; it is run through
    // the same sanitising so nothing but a fixed word can ever reach the free-form part.
    push_sanitised(out, record.result, |c, out| out.push(c));
}

/// Appends ` name="value"` with the value sanitised and escaped.
fn push_param(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    push_sanitised(out, value, |c, out| {
        // RFC 5424 §6.3.3: these three must be escaped inside a PARAM-VALUE.
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    });
    out.push('"');
}

/// Feeds `value` to `emit` character by character, with every control character (C0, DEL,
/// C1) and line or paragraph separator replaced by `?`, and stops before
/// [`MAX_VALUE_BYTES`] would be exceeded (on a character boundary).
fn push_sanitised(out: &mut String, value: &str, emit: impl Fn(char, &mut String)) {
    let mut used = 0;
    for c in value.chars() {
        let c = if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            '?'
        } else {
            c
        };
        used += c.len_utf8();
        if used > MAX_VALUE_BYTES {
            break;
        }
        emit(c, out);
    }
}

/// Appends `time` as an RFC 5424 TIMESTAMP in UTC with microseconds
/// (`2025-01-02T03:04:05.123456Z`); a time before 1970 is written as the epoch.
pub fn push_timestamp(out: &mut String, time: SystemTime) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_micros()
    );
}

/// The Gregorian date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The machine's host name from gethostname(2), or the NILVALUE `-` when there is none.
pub fn machine_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which outlives the call; the kernel
    // writes at most `len` bytes into it.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "-".to_owned();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    header_field(&String::from_utf8_lossy(&buf[..end]), 255)
}

/// Starts the sending thread; returns the sending end of its queue and a keep-alive token.
///
/// The thread stops when the queue's sending end is dropped and the queue is empty. While
/// it waits to reconnect it also watches the token: once the token is dropped (the audit
/// trail is gone), it gives up instead of retrying for ever.
pub(super) fn spawn(
    settings: SyslogSettings,
) -> std::io::Result<(SyncSender<Arc<Record>>, Arc<()>)> {
    let mut out = match settings.transport {
        Transport::Udp => Output::Udp(udp_socket(settings.address)?),
        Transport::Tcp => Output::Tcp(TcpOutput::new(settings.address)),
    };
    let (tx, rx) = mpsc::sync_channel::<Arc<Record>>(settings.queue);
    let keepalive = Arc::new(());
    let alive = Arc::downgrade(&keepalive);
    let header = settings.header;
    std::thread::Builder::new()
        .name("tollgate-syslog".to_owned())
        .spawn(move || {
            crate::sched::background();
            let failed = super::dropped_counter("syslog", "send_failed");
            match &mut out {
                Output::Udp(socket) => run_udp(socket, &header, &rx, &failed),
                Output::Tcp(tcp) => run_tcp(tcp, &header, &rx, &failed, &alive),
            }
        })?;
    Ok((tx, keepalive))
}

enum Output {
    Udp(UdpSocket),
    Tcp(TcpOutput),
}

/// A UDP socket of the receiver's address family, connected to it so that an ICMP
/// "port unreachable" surfaces as an error of a later send and is counted.
fn udp_socket(address: SocketAddr) -> std::io::Result<UdpSocket> {
    let local: IpAddr = match address {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind((local, 0))?;
    socket.connect(address)?;
    Ok(socket)
}

fn run_udp(socket: &UdpSocket, header: &Header, rx: &Receiver<Arc<Record>>, failed: &Counter) {
    let mut message = String::new();
    let mut failing = false;
    while let Ok(record) = rx.recv() {
        message.clear();
        format_message(&mut message, header, &record);
        match socket.send(message.as_bytes()) {
            Ok(_) => {
                if failing {
                    tracing::info!("audit syslog receiver reachable again");
                    failing = false;
                }
            }
            Err(e) => {
                failed.increment(1);
                // One warning per outage, not one per record.
                if !failing {
                    tracing::warn!(error = %e, "audit syslog message not sent; dropping and counting until sends succeed");
                    failing = true;
                }
            }
        }
    }
}

fn run_tcp(
    tcp: &mut TcpOutput,
    header: &Header,
    rx: &Receiver<Arc<Record>>,
    failed: &Counter,
    alive: &Weak<()>,
) {
    let mut batch = Vec::new();
    let mut message = String::new();
    while let Ok(first) = rx.recv() {
        batch.clear();
        let mut count = 0u64;
        for record in std::iter::once(first).chain(rx.try_iter().take(MAX_BATCH - 1)) {
            message.clear();
            format_message(&mut message, header, &record);
            frame(&mut batch, &message);
            count += 1;
        }
        if !tcp.send(&batch, alive) {
            // The audit trail was shut down while the receiver was unreachable.
            failed.increment(count);
            return;
        }
    }
}

/// Appends one octet-counted frame, `MSG-LEN SP SYSLOG-MSG` (RFC 6587 §3.4.1).
pub fn frame(out: &mut Vec<u8>, message: &str) {
    let _ = write!(out, "{} ", message.len());
    out.extend_from_slice(message.as_bytes());
}

/// A TCP connection to the receiver that is opened on demand and reopened with back-off.
struct TcpOutput {
    address: SocketAddr,
    stream: Option<TcpStream>,
    backoff: Duration,
    next_attempt: Instant,
    failing: bool,
}

impl TcpOutput {
    fn new(address: SocketAddr) -> TcpOutput {
        TcpOutput {
            address,
            stream: None,
            backoff: INITIAL_BACKOFF,
            next_attempt: Instant::now(),
            failing: false,
        }
    }

    /// Sends `bytes` whole on a live connection, reconnecting as often as needed; returns
    /// false only when `alive` is gone before that succeeded.
    fn send(&mut self, bytes: &[u8], alive: &Weak<()>) -> bool {
        loop {
            if self.stream.is_none() && !self.connect(alive) {
                return false;
            }
            let Some(stream) = self.stream.as_mut() else {
                continue;
            };
            // A receiver that restarted has closed our connection; writing into it would
            // succeed locally and lose the batch, so look before writing.
            if peer_closed(stream) {
                self.lost("the receiver closed the connection");
                continue;
            }
            match stream.write_all(bytes) {
                Ok(()) => {
                    self.backoff = INITIAL_BACKOFF;
                    return true;
                }
                Err(e) => self.lost(&e.to_string()),
            }
        }
    }

    /// Opens the connection, waiting out the back-off first; false when `alive` is gone.
    fn connect(&mut self, alive: &Weak<()>) -> bool {
        loop {
            while Instant::now() < self.next_attempt {
                if alive.strong_count() == 0 {
                    return false;
                }
                std::thread::sleep(WAIT_SLICE.min(self.next_attempt - Instant::now()));
            }
            match TcpStream::connect_timeout(&self.address, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
                    tracing::info!(address = %self.address, "audit syslog connected");
                    self.failing = false;
                    self.stream = Some(stream);
                    return true;
                }
                Err(e) => {
                    if !self.failing {
                        tracing::warn!(address = %self.address, error = %e, "audit syslog receiver unreachable; records wait in the queue while retrying");
                        self.failing = true;
                    }
                    self.schedule_retry();
                }
            }
        }
    }

    fn lost(&mut self, why: &str) {
        tracing::warn!(address = %self.address, error = why, "audit syslog connection lost; reconnecting");
        self.stream = None;
        self.schedule_retry();
    }

    fn schedule_retry(&mut self) {
        self.next_attempt = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
}

/// Whether the peer has closed (or reset) the connection, without blocking.
fn peer_closed(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let mut byte = [0u8; 1];
    let closed = match stream.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).is_err() || closed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(user: &str, result: &'static str, reason: &'static str) -> Record {
        Record {
            time: UNIX_EPOCH + Duration::from_micros(1_735_787_045_123_456),
            user: user.to_owned(),
            client: "vpn-east".to_owned(),
            peer: "10.0.0.1".parse().unwrap(),
            mode: "append",
            result,
            reason,
            latency_us: 87,
        }
    }

    fn message(header: &Header, r: &Record) -> String {
        let mut out = String::new();
        format_message(&mut out, header, r);
        out
    }

    fn header() -> Header {
        Header::new(4, "radius-1", "tollgate", 4242)
    }

    #[test]
    fn golden_accept_and_reject() {
        assert_eq!(
            message(&header(), &record("alice", "accept", "")),
            "<38>1 2025-01-02T03:04:05.123456Z radius-1 tollgate 4242 login [tollgate@32473 user=\"alice\" client=\"vpn-east\" peer=\"10.0.0.1\" mode=\"append\" result=\"accept\" reason=\"\" latency_us=\"87\"] login accept"
        );
        assert_eq!(
            message(&header(), &record("alice", "reject", "bad_passcode")),
            "<37>1 2025-01-02T03:04:05.123456Z radius-1 tollgate 4242 login [tollgate@32473 user=\"alice\" client=\"vpn-east\" peer=\"10.0.0.1\" mode=\"append\" result=\"reject\" reason=\"bad_passcode\" latency_us=\"87\"] login reject"
        );
    }

    #[test]
    fn golden_challenge_over_ipv6_on_local7() {
        let mut r = record("bob", "challenge", "");
        r.peer = "2001:db8::1".parse().unwrap();
        r.mode = "challenge";
        r.time = UNIX_EPOCH;
        assert_eq!(
            message(&Header::new(23, "h", "tg", 1), &r),
            "<190>1 1970-01-01T00:00:00.000000Z h tg 1 login [tollgate@32473 user=\"bob\" client=\"vpn-east\" peer=\"2001:db8::1\" mode=\"challenge\" result=\"challenge\" reason=\"\" latency_us=\"87\"] login challenge"
        );
    }

    #[test]
    fn pri_is_facility_times_eight_plus_severity() {
        assert_eq!(Header::new(0, "h", "a", 1).pri(0), 0);
        assert_eq!(Header::new(4, "h", "a", 1).pri(SEVERITY_NOTICE), 37);
        assert_eq!(Header::new(4, "h", "a", 1).pri(SEVERITY_INFO), 38);
        assert_eq!(Header::new(10, "h", "a", 1).pri(SEVERITY_INFO), 86);
        assert_eq!(Header::new(23, "h", "a", 1).pri(7), 191);
        // Out-of-range inputs stay within the largest PRI RFC 5424 allows.
        assert_eq!(Header::new(99, "h", "a", 1).pri(99), 191);
        assert_eq!(severity("reject"), SEVERITY_NOTICE);
        assert_eq!(severity("accept"), SEVERITY_INFO);
        assert_eq!(severity("challenge"), SEVERITY_INFO);
    }

    #[test]
    fn param_values_escape_quote_backslash_and_bracket() {
        let m = message(
            &header(),
            &record(r#"a"b\c]d[e=f"#, "reject", "unknown_user"),
        );
        assert!(m.contains(r#" user="a\"b\\c\]d[e=f" client="#), "{m}");
    }

    #[test]
    fn control_characters_and_separators_become_question_marks() {
        let m = message(
            &header(),
            &record(
                "a\nb\rc\td\u{0}e\u{7f}f\u{85}g\u{2028}h\u{2029}i",
                "reject",
                "x",
            ),
        );
        assert!(m.contains(" user=\"a?b?c?d?e?f?g?h?i\" "), "{m}");
        assert!(!m.contains(['\n', '\r']), "{m}");
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        let m = message(&header(), &record(&"é".repeat(300), "reject", "x"));
        let user = m
            .split(" user=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap();
        assert_eq!(user.len(), 252, "126 two-byte characters fit in 253 bytes");
        assert!(user.chars().all(|c| c == 'é'));
        let m = message(&header(), &record(&"\"".repeat(400), "reject", "x"));
        // Escaping doubles the bytes but never the number of characters kept.
        assert!(m.contains(&format!(" user=\"{}\" ", "\\\"".repeat(MAX_VALUE_BYTES))));
    }

    #[test]
    fn unicode_user_names_are_kept() {
        let m = message(&header(), &record("jürgen.öğ@例え", "accept", ""));
        assert!(m.contains(" user=\"jürgen.öğ@例え\" "), "{m}");
    }

    #[test]
    fn header_fields_are_printable_ascii_or_nil() {
        let h = Header::new(4, "host name\u{e9}", "", 7);
        assert_eq!(h.hostname, "host_name_");
        assert_eq!(h.app_name, "-");
        assert_eq!(Header::new(4, &"h".repeat(300), "a", 1).hostname.len(), 255);
        assert_eq!(Header::new(4, "h", &"a".repeat(60), 1).app_name.len(), 48);
        let machine = machine_hostname();
        assert!(!machine.is_empty() && machine.bytes().all(|b| b.is_ascii_graphic()));
    }

    #[test]
    fn timestamps_are_utc_with_microseconds() {
        let at = |micros: u64| {
            let mut s = String::new();
            push_timestamp(&mut s, UNIX_EPOCH + Duration::from_micros(micros));
            s
        };
        assert_eq!(at(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
        assert_eq!(at(4_107_542_399_999_999), "2100-02-28T23:59:59.999999Z");
        assert_eq!(at(1_709_251_199_500_000), "2024-02-29T23:59:59.500000Z");
        let mut s = String::new();
        push_timestamp(&mut s, UNIX_EPOCH - Duration::from_secs(5));
        assert_eq!(s, "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn frames_count_octets_not_characters() {
        let mut out = Vec::new();
        frame(&mut out, "ab");
        frame(&mut out, "é");
        assert_eq!(out, b"2 ab2 \xc3\xa9");
    }

    #[test]
    fn tcp_frames_reach_a_receiver_that_comes_up_late() {
        use std::io::Read;
        // Reserve a port, free it, and only listen on it after the first attempt failed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        let (tx, keepalive) = spawn(SyslogSettings {
            address,
            transport: Transport::Tcp,
            header: header(),
            queue: 8,
        })
        .unwrap();
        tx.send(Arc::new(record("late", "accept", ""))).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let listener = std::net::TcpListener::bind(address).unwrap();
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        drop((tx, keepalive));
        let mut text = String::new();
        conn.read_to_string(&mut text).unwrap();
        let (len, msg) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len(), "{text}");
        assert!(msg.contains(" user=\"late\" "), "{text}");
    }

    #[test]
    fn udp_sends_one_datagram_per_record() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let (tx, _keepalive) = spawn(SyslogSettings {
            address: receiver.local_addr().unwrap(),
            transport: Transport::Udp,
            header: header(),
            queue: 8,
        })
        .unwrap();
        tx.send(Arc::new(record("u1", "accept", ""))).unwrap();
        tx.send(Arc::new(record("u2", "reject", "bad_password")))
            .unwrap();
        let mut buf = [0u8; 2048];
        for user in ["u1", "u2"] {
            let n = receiver.recv(&mut buf).unwrap();
            let text = std::str::from_utf8(&buf[..n]).unwrap();
            assert!(text.starts_with('<') && !text.contains('\n'), "{text}");
            assert!(text.contains(&format!(" user=\"{user}\" ")), "{text}");
        }
    }
}
