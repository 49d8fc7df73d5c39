//! `otpauth://` key URIs, the de facto enrolment format that authenticator apps read from
//! a QR code.
//!
//! The format has no formal standard; this follows the Key Uri Format that Google
//! Authenticator documents and every mainstream app accepts: an `Issuer:account` label and
//! the secret, issuer, algorithm, digits and period (or counter) as query parameters.

use std::fmt::Write as _;

use super::{base32, TokenKind, TokenParams, TokenState};

/// `otpauth://totp/Issuer:account?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30`
/// (or hotp with &counter=N); issuer and account percent-encoded.
///
/// The secret is base32 without padding. Every character of the issuer and account other
/// than RFC 3986 unreserved ones is percent-encoded (so `@` becomes `%40`, a space `%20`
/// and a `:` inside either part `%3A`), which keeps the one literal `:` the label
/// separator. An empty issuer leaves out both the label prefix and the `issuer` parameter.
/// For HOTP the counter written is `state.next_counter`, the press the server expects
/// next. The format cannot express a TOTP start time `t0` other than 0, so a non-zero
/// `t0` is not represented: apps will assume 0.
pub fn otpauth_uri(
    issuer: &str,
    account: &str,
    key: &[u8],
    params: &TokenParams,
    state: &TokenState,
) -> String {
    let kind = match params.kind {
        TokenKind::Totp { .. } => "totp",
        TokenKind::Hotp => "hotp",
    };
    let mut uri = format!("otpauth://{kind}/");
    if !issuer.is_empty() {
        percent_encode_into(&mut uri, issuer);
        uri.push(':');
    }
    percent_encode_into(&mut uri, account);
    uri.push_str("?secret=");
    uri.push_str(&base32::encode(key));
    if !issuer.is_empty() {
        uri.push_str("&issuer=");
        percent_encode_into(&mut uri, issuer);
    }
    // Writing to a `String` cannot fail, so the `fmt::Result`s are safe to ignore.
    let _ = write!(
        uri,
        "&algorithm={}&digits={}",
        params.algorithm.as_str(),
        params.digits
    );
    let _ = match params.kind {
        TokenKind::Totp { period, .. } => write!(uri, "&period={period}"),
        TokenKind::Hotp => write!(uri, "&counter={}", state.next_counter),
    };
    uri
}

/// Appends `text` to `out` with every byte outside the RFC 3986 unreserved set written as
/// `%XX` (upper-case hex, UTF-8 bytes).
fn percent_encode_into(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding() {
        let mut out = String::new();
        percent_encode_into(&mut out, "a b@c:d/é~-._");
        assert_eq!(out, "a%20b%40c%3Ad%2F%C3%A9~-._");
    }
}
