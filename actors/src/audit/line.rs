//! The audit line in the server's log: the decision's record written by the audit thread
//! as the log's own lines look (`[log] format`), without going through the log's event
//! machinery.
//!
//! A text line reads
//!
//! ```text
//! 2026-12-08T00:17:26.370055Z  INFO tollgate::audit: login decision user="alice" client="vpn" peer=10.0.0.1 mode="append" result="accept" reason="" latency_us=412
//! ```
//!
//! and a JSON line holds the same fields under `fields`, beside `timestamp`, `level` and
//! `target`, as every other JSON log line. The user and client names are quoted and
//! escaped in both, so that a name with a quote, a newline or a control character can never
//! forge a line or a field.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tollgate_config::LogFormat;

use super::trail::Entry;

/// The log target of decision lines, as filters name it.
pub const TARGET: &str = "tollgate::audit";

/// Writes decision lines in one format, keeping the date part of the last timestamp.
pub struct LineFormat {
    format: LogFormat,
    /// The second `date` was formatted for.
    second: u64,
    /// `YYYY-MM-DDTHH:MM:SS` of `second`.
    date: String,
}

impl LineFormat {
    /// Lines in `format`.
    pub fn new(format: LogFormat) -> LineFormat {
        LineFormat {
            format,
            second: u64::MAX,
            date: String::new(),
        }
    }

    /// Appends the line of `entry` from `client`, newline included.
    pub fn push(&mut self, out: &mut String, entry: &Entry, client: &str) {
        let (result, reason) = super::result_and_reason(entry.outcome);
        let mode = entry.mode.as_str();
        match self.format {
            LogFormat::Text => {
                self.timestamp(out, entry.time);
                out.push_str("  INFO ");
                out.push_str(TARGET);
                out.push_str(": login decision user=");
                push_quoted(out, entry.user());
                out.push_str(" client=");
                push_quoted(out, client);
                out.push_str(" peer=");
                push_ip(out, entry.peer);
                for (name, value) in [
                    (" mode=\"", mode),
                    ("\" result=\"", result),
                    ("\" reason=\"", reason),
                ] {
                    out.push_str(name);
                    out.push_str(value);
                }
                out.push_str("\" latency_us=");
                push_u64(out, entry.latency_us);
            }
            LogFormat::Json => {
                out.push_str("{\"timestamp\":\"");
                self.timestamp(out, entry.time);
                out.push_str(
                    "\",\"level\":\"INFO\",\"fields\":{\"message\":\"login decision\",\"user\":",
                );
                push_json(out, entry.user());
                out.push_str(",\"client\":");
                push_json(out, client);
                // An address prints as digits, dots, colons and hex letters: nothing to escape.
                out.push_str(",\"peer\":\"");
                push_ip(out, entry.peer);
                for (name, value) in [
                    ("\",\"mode\":\"", mode),
                    ("\",\"result\":\"", result),
                    ("\",\"reason\":\"", reason),
                ] {
                    out.push_str(name);
                    out.push_str(value);
                }
                out.push_str("\",\"latency_us\":");
                push_u64(out, entry.latency_us);
                out.push_str("},\"target\":\"");
                out.push_str(TARGET);
                out.push_str("\"}");
            }
        }
        out.push('\n');
    }

    /// Appends `time` in UTC with microseconds (`2026-12-08T00:17:26.370055Z`), the form
    /// of the log's other lines.
    fn timestamp(&mut self, out: &mut String, time: SystemTime) {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let second = since.as_secs();
        if second != self.second {
            self.second = second;
            self.date.clear();
            super::syslog::push_timestamp(&mut self.date, UNIX_EPOCH + Duration::from_secs(second));
            // What follows the seconds (`.000000Z`) is written per line.
            self.date.truncate(self.date.len() - ".000000Z".len());
        }
        out.push_str(&self.date);
        out.push('.');
        let micros = since.subsec_micros();
        for shift in [100_000, 10_000, 1_000, 100, 10, 1] {
            out.push(char::from(b'0' + (micros / shift % 10) as u8));
        }
        out.push('Z');
    }
}

/// Appends `value` in double quotes, escaped as Rust's `{:?}` does when it holds a quote,
/// a backslash or anything but printable ASCII.
fn push_quoted(out: &mut String, value: &str) {
    if value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push('"');
        out.push_str(value);
        out.push('"');
    } else {
        let _ = write!(out, "{value:?}");
    }
}

/// Appends `value` as a JSON string.
fn push_json(out: &mut String, value: &str) {
    match serde_json::to_string(value) {
        Ok(s) => out.push_str(&s),
        // A `str` always serialises; this only keeps the line well formed.
        Err(_) => out.push_str("\"\""),
    }
}

/// Appends `n` in decimal (the formatting machinery costs several times more per line).
fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

/// Appends an address as `Display` writes it, IPv4 without the formatting machinery.
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_u64(out, u64::from(octet));
            }
        }
        IpAddr::V6(_) => {
            let _ = write!(out, "{ip}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;
    use tollgate_engine::login::{LoginMode, Outcome, RejectReason};

    use crate::audit::trail::ClientTag;

    fn entry(user: &str, outcome: Outcome, peer: IpAddr) -> Entry {
        Entry::new(
            UNIX_EPOCH + Duration::from_micros(1_796_689_046_370_055),
            user,
            ClientTag::NONE,
            peer,
            LoginMode::Append,
            outcome,
            412,
        )
    }

    fn line(format: LogFormat, e: &Entry, client: &str) -> String {
        let mut out = String::new();
        LineFormat::new(format).push(&mut out, e, client);
        out
    }

    #[test]
    fn golden_text_lines() {
        let e = entry("alice", Outcome::Accept, "10.0.0.1".parse().unwrap());
        assert_eq!(
            line(LogFormat::Text, &e, "vpn"),
            "2026-12-08T00:17:26.370055Z  INFO tollgate::audit: login decision user=\"alice\" client=\"vpn\" peer=10.0.0.1 mode=\"append\" result=\"accept\" reason=\"\" latency_us=412\n"
        );
        let e = entry(
            "a\"b\nc",
            Outcome::Reject(RejectReason::BadPasscode),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        );
        assert_eq!(
            line(LogFormat::Text, &e, "vpn 2"),
            "2026-12-08T00:17:26.370055Z  INFO tollgate::audit: login decision user=\"a\\\"b\\nc\" client=\"vpn 2\" peer=::1 mode=\"append\" result=\"reject\" reason=\"bad_passcode\" latency_us=412\n"
        );
    }

    #[test]
    fn json_lines_hold_every_field_under_fields_and_escape_names() {
        let e = entry(
            "é\"\u{1}",
            Outcome::Reject(RejectReason::UnknownUser),
            "192.0.2.7".parse().unwrap(),
        );
        let text = line(LogFormat::Json, &e, "nas\\1");
        assert!(text.ends_with('\n') && text.lines().count() == 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["timestamp"], "2026-12-08T00:17:26.370055Z");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "tollgate::audit");
        let f = &v["fields"];
        assert_eq!(f["message"], "login decision");
        assert_eq!(f["user"], "é\"\u{1}");
        assert_eq!(f["client"], "nas\\1");
        assert_eq!(f["peer"], "192.0.2.7");
        assert_eq!(f["mode"], "append");
        assert_eq!(f["result"], "reject");
        assert_eq!(f["reason"], "unknown_user");
        assert_eq!(f["latency_us"], 412);
    }

    #[test]
    fn the_date_part_follows_the_second() {
        let mut f = LineFormat::new(LogFormat::Text);
        let mut out = String::new();
        for micros in [
            86_399_999_999u64,
            86_400_000_000,
            86_400_000_001,
            951_782_400_000_000,
        ] {
            f.timestamp(&mut out, UNIX_EPOCH + Duration::from_micros(micros));
            out.push(' ');
        }
        assert_eq!(
            out,
            "1970-01-01T23:59:59.999999Z 1970-01-02T00:00:00.000000Z 1970-01-02T00:00:00.000001Z 2000-02-29T00:00:00.000000Z "
        );
    }

    proptest::proptest! {
        /// Numbers and addresses come out as `Display` writes them.
        #[test]
        fn numbers_and_addresses_as_display_writes_them(n: u64, v4: [u8; 4], v6: [u16; 8]) {
            let mut out = String::new();
            push_u64(&mut out, n);
            proptest::prop_assert_eq!(&out, &n.to_string());
            for ip in [IpAddr::from(v4), IpAddr::from(v6)] {
                out.clear();
                push_ip(&mut out, ip);
                proptest::prop_assert_eq!(&out, &ip.to_string());
            }
        }

        /// Whatever the name, a text line is one line, and its user field reads back as
        /// the name.
        #[test]
        fn any_name_stays_on_its_line(user in "\\PC*|[\\x00-\\x7f]*") {
            let e = entry(&user, Outcome::Accept, "10.0.0.1".parse().unwrap());
            let text = line(LogFormat::Text, &e, "vpn");
            proptest::prop_assert_eq!(text.matches('\n').count(), 1);
            proptest::prop_assert!(text.ends_with('\n'));
            let json = line(LogFormat::Json, &e, "vpn");
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            proptest::prop_assert_eq!(v["fields"]["user"].as_str(), Some(user.as_str()));
        }
    }
}
