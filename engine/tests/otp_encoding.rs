//! Enrolment encodings of `tollgate_engine::otp`: golden `otpauth://` URIs and base32
//! properties.

use proptest::prelude::*;
use tollgate_engine::otp::{base32, otpauth_uri, Algorithm, TokenKind, TokenParams, TokenState};

const KEY: &[u8] = b"12345678901234567890";

#[test]
fn totp_uri_golden() {
    let uri = otpauth_uri(
        "Tollgate",
        "alice",
        KEY,
        &TokenParams::default(),
        &TokenState::default(),
    );
    assert_eq!(
        uri,
        "otpauth://totp/Tollgate:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
         &issuer=Tollgate&algorithm=SHA1&digits=6&period=30"
    );
}

#[test]
fn account_with_at_sign_and_spaces_is_percent_encoded() {
    let params = TokenParams {
        kind: TokenKind::Totp { period: 60, t0: 0 },
        algorithm: Algorithm::Sha256,
        digits: 8,
    };
    let uri = otpauth_uri(
        "ACME Co: VPN",
        "Alice Smith@example.com",
        KEY,
        &params,
        &TokenState::default(),
    );
    assert_eq!(
        uri,
        "otpauth://totp/ACME%20Co%3A%20VPN:Alice%20Smith%40example.com\
         ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME%20Co%3A%20VPN\
         &algorithm=SHA256&digits=8&period=60"
    );
}

#[test]
fn hotp_uri_carries_the_next_counter() {
    let params = TokenParams {
        kind: TokenKind::Hotp,
        algorithm: Algorithm::Sha1,
        digits: 6,
    };
    let state = TokenState {
        next_counter: 42,
        drift: 0,
    };
    assert_eq!(
        otpauth_uri("Tollgate", "bob", b"foobar", &params, &state),
        "otpauth://hotp/Tollgate:bob?secret=MZXW6YTBOI&issuer=Tollgate\
         &algorithm=SHA1&digits=6&counter=42"
    );
}

#[test]
fn empty_issuer_is_left_out() {
    assert_eq!(
        otpauth_uri(
            "",
            "ünïcode",
            b"",
            &TokenParams::default(),
            &TokenState::default()
        ),
        "otpauth://totp/%C3%BCn%C3%AFcode?secret=&algorithm=SHA1&digits=6&period=30"
    );
}

#[test]
fn base32_error_messages_are_clear() {
    let error = base32::decode("JBSW Y3DP 1").unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid base32 character '1' at position 10 (only A-Z and 2-7 are allowed)"
    );
}

proptest! {
    #[test]
    fn base32_round_trip(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let encoded = base32::encode(&data);
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
        prop_assert_eq!(encoded.len(), (data.len() * 8).div_ceil(5));
        prop_assert_eq!(base32::decode(&encoded), Ok(data.clone()));
        prop_assert_eq!(base32::decode(&encoded.to_lowercase()), Ok(data.clone()));
        // Padding back to a multiple of eight and grouping by four, as apps display it.
        let mut padded = encoded.clone();
        while padded.len() % 8 != 0 {
            padded.push('=');
        }
        let grouped: String = padded
            .as_bytes()
            .chunks(4)
            .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        prop_assert_eq!(base32::decode(&grouped), Ok(data));
    }

    #[test]
    fn base32_decode_never_panics(s in any::<String>()) {
        let _ = base32::decode(&s);
    }

    #[test]
    fn base32_decode_of_alphabet_strings_never_panics(s in "[A-Za-z2-7= ]{0,64}") {
        if let Ok(bytes) = base32::decode(&s) {
            let symbols = s.chars().filter(|c| c.is_ascii_alphanumeric()).count();
            prop_assert_eq!(bytes.len(), symbols * 5 / 8);
        }
    }

    #[test]
    fn uri_never_panics(
        issuer in any::<String>(),
        account in any::<String>(),
        key in proptest::collection::vec(any::<u8>(), 0..80),
        counter in any::<u64>(),
    ) {
        let params = TokenParams { kind: TokenKind::Hotp, algorithm: Algorithm::Sha512, digits: 7 };
        let state = TokenState { next_counter: counter, drift: 0 };
        let uri = otpauth_uri(&issuer, &account, &key, &params, &state);
        prop_assert!(uri.is_ascii());
        let counter_part = format!("&counter={counter}");
        prop_assert!(uri.ends_with(&counter_part));
    }
}
