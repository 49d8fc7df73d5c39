//! Rendering an `http` gateway's templates for one message, each value escaped for the
//! place it stands in.
//!
//! A value never changes the structure around it: in a URL and a form body every byte but
//! the unreserved ones (`A-Z a-z 0-9 - . _ ~`) is percent-encoded, so `&`, `=`, `/`, `?` and
//! `#` in a message stay data; in a JSON body a value becomes the inside of a JSON string,
//! so the template puts it between quotes; in a header line breaks and other control
//! characters become spaces, so a value cannot start a header of its own.

use std::borrow::Cow;
use std::fmt::Write;

use tollgate_config::{Placeholder, Template};
use zeroize::Zeroizing;

/// Where a rendered template goes, which decides how values are escaped.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Escape {
    /// A URL (path or query): percent-encoding, space as `%20`.
    Url,
    /// An `application/x-www-form-urlencoded` body: percent-encoding, space as `+`.
    Form,
    /// An `application/json` body: the inside of a JSON string.
    Json,
    /// A header value: as it is, but without control characters.
    Header,
}

/// The values of one message and of the gateway's own keys.
pub(super) struct Values<'a> {
    pub to: &'a str,
    pub message: &'a str,
    pub id: i64,
    pub subject: &'a str,
    pub from: &'a str,
    pub account: &'a str,
}

impl Values<'_> {
    fn get(&self, p: Placeholder) -> Cow<'_, str> {
        match p {
            Placeholder::To => Cow::Borrowed(self.to),
            Placeholder::ToDigits => {
                Cow::Owned(self.to.chars().filter(char::is_ascii_digit).collect())
            }
            Placeholder::Message => Cow::Borrowed(self.message),
            Placeholder::Id => Cow::Owned(self.id.to_string()),
            Placeholder::Subject => Cow::Borrowed(self.subject),
            Placeholder::From => Cow::Borrowed(self.from),
            Placeholder::Account => Cow::Borrowed(self.account),
        }
    }
}

/// Renders `template` for `values`. The result may hold the passcode, so it is wiped when
/// dropped.
pub(super) fn render(
    template: &Template,
    values: &Values<'_>,
    escape: Escape,
) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(256));
    template.render(&mut out, |p, out| {
        let value = values.get(p);
        match escape {
            Escape::Url => push_percent_encoded(out, &value, false),
            Escape::Form => push_percent_encoded(out, &value, true),
            Escape::Json => push_json_escaped(out, &value),
            Escape::Header => push_header_safe(out, &value),
        }
    });
    out
}

/// Percent-encodes every byte but the unreserved ones (RFC 3986 §2.3); with `plus`, a space
/// becomes `+` as HTML forms write it.
pub(super) fn push_percent_encoded(out: &mut String, value: &str, plus: bool) {
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b))
            }
            b' ' if plus => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
}

/// Escapes a value as the inside of a JSON string (RFC 8259 §7).
pub(super) fn push_json_escaped(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// Copies a value into a header, each control character (tab aside) turned into a space.
pub(super) fn push_header_safe(out: &mut String, value: &str) {
    for c in value.chars() {
        out.push(if c.is_control() && c != '\t' { ' ' } else { c });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn values<'a>(to: &'a str, message: &'a str) -> Values<'a> {
        Values {
            to,
            message,
            id: 42,
            subject: "Sign-in",
            from: "Tollgate & Co",
            account: "AC/1",
        }
    }

    fn check(template: &str, escape: Escape, to: &str, message: &str, expected: &str) {
        let t = Template::parse(template).unwrap();
        let got = render(&t, &values(to, message), escape);
        assert_eq!(got.as_str(), expected, "{template} / {escape:?}");
    }

    #[test]
    fn a_dot_segment_value_changes_the_url_and_is_caught() {
        let t = Template::parse("https://sms.example/v1/{to}/send").unwrap();
        for to in [".", ".."] {
            let rendered = render(&t, &values(to, ""), Escape::Url);
            let url = url::Url::parse(&rendered).unwrap();
            assert_ne!(url.as_str(), rendered.as_str(), "{to}");
        }
    }

    #[test]
    fn each_place_has_its_escaping() {
        check(
            "https://h.example/{account}/send?to={to}&text={message}&ref={id}",
            Escape::Url,
            "+44 7700",
            "a&b=c d/é#",
            "https://h.example/AC%2F1/send?to=%2B44%207700&text=a%26b%3Dc%20d%2F%C3%A9%23&ref=42",
        );
        check(
            "To={to}&From={from}&Body={message}",
            Escape::Form,
            "+447700",
            "code 1+2",
            "To=%2B447700&From=Tollgate+%26+Co&Body=code+1%2B2",
        );
        check(
            r#"{"to":"{to_digits}","text":"{message}","id":{id}}"#,
            Escape::Json,
            "+44 (0) 7700",
            "say \"hi\"\\\n\u{1}",
            r#"{"to":"4407700","text":"say \"hi\"\\\n\u0001","id":42}"#,
        );
        check(
            "Code for {to}: {subject}",
            Escape::Header,
            "a\r\nX-Injected: 1",
            "",
            "Code for a  X-Injected: 1: Sign-in",
        );
    }

    proptest! {
        #[test]
        fn any_value_keeps_a_json_body_valid(to in any::<String>(), message in any::<String>()) {
            let t = Template::parse(r#"{"to":"{to}","text":"{message}","n":{id}}"#).unwrap();
            let body = render(&t, &values(&to, &message), Escape::Json);
            let parsed: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
            prop_assert_eq!(parsed["to"].as_str(), Some(to.as_str()));
            prop_assert_eq!(parsed["text"].as_str(), Some(message.as_str()));
            prop_assert_eq!(parsed["n"].as_i64(), Some(42));
        }

        #[test]
        fn any_value_keeps_a_url_whole(to in any::<String>(), message in any::<String>()) {
            // A whole path segment of `.` or `..` is resolved away by any URL parser; the
            // gateway refuses to send such a message (checked in http.rs).
            prop_assume!(to != "." && to != "..");
            let t = Template::parse("https://sms.example:8443/v1/{to}/send?text={message}&ref={id}").unwrap();
            let rendered = render(&t, &values(&to, &message), Escape::Url);
            let url = url::Url::parse(&rendered).expect("the URL parses");
            // Nothing was re-encoded: the URL sent is the one rendered.
            prop_assert_eq!(url.as_str(), rendered.as_str());
            prop_assert_eq!(url.host_str(), Some("sms.example"));
            prop_assert_eq!(url.port(), Some(8443));
            let segments: Vec<_> = url.path_segments().unwrap().collect();
            prop_assert_eq!(segments.len(), 3);
            let decoded = percent_decode(segments[1]);
            prop_assert_eq!(decoded, to);
            let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
            prop_assert_eq!(pairs, vec![("text".to_owned(), message.clone()), ("ref".to_owned(), "42".to_owned())]);
            prop_assert!(url.fragment().is_none());
        }

        #[test]
        fn any_value_keeps_a_form_body_whole(to in any::<String>(), message in any::<String>()) {
            let t = Template::parse("To={to}&Body={message}").unwrap();
            let body = render(&t, &values(&to, &message), Escape::Form);
            prop_assert!(body.bytes().all(|b| b.is_ascii_graphic()));
            let pairs: Vec<(String, String)> =
                url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
            prop_assert_eq!(pairs, vec![("To".to_owned(), to.clone()), ("Body".to_owned(), message.clone())]);
        }

        #[test]
        fn no_value_breaks_a_header_line(to in any::<String>(), message in any::<String>()) {
            let t = Template::parse("{to} {message}").unwrap();
            let value = render(&t, &values(&to, &message), Escape::Header);
            prop_assert!(!value.contains(['\r', '\n', '\0']));
            prop_assert!(hyper::header::HeaderValue::from_str(&value).is_ok() || !value.is_ascii());
            prop_assert!(hyper::header::HeaderValue::from_bytes(value.as_bytes()).is_ok());
        }
    }

    fn percent_decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }
}
