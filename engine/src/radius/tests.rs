//! Unit tests that exercise the codec's modules together: every verification outcome, the
//! shape of encoded replies and requests, and every encoding error.

use super::*;

const SECRET: &[u8] = b"testing123";
const AUTH: [u8; 16] = [
    0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98, 0xa9, 0xba, 0xcb, 0xdc, 0xed, 0xfe, 0x0f,
];

fn request(code: Code, attrs: &[(u8, &[u8])], with_mac: bool) -> Vec<u8> {
    let mut out = Vec::new();
    encode_request(&mut out, code, 42, &AUTH, SECRET, attrs, with_mac).unwrap();
    out
}

fn verified(bytes: &[u8]) -> Verified<'_> {
    verify_request(Packet::decode(bytes).unwrap(), SECRET, false).unwrap()
}

fn verify_err(bytes: &[u8], secret: &[u8], require: bool) -> VerifyError {
    verify_request(Packet::decode(bytes).unwrap(), secret, require).unwrap_err()
}

#[test]
fn access_request_with_message_authenticator_verifies() {
    let b = request(Code::AccessRequest, &[(attr::USER_NAME, b"alice")], true);
    let v = verified(&b);
    assert_eq!(v.attribute(attr::USER_NAME), Some(&b"alice"[..]));
    assert!(verify_request(Packet::decode(&b).unwrap(), SECRET, true).is_ok());
}

#[test]
fn wrong_secret_fails_the_message_authenticator() {
    let b = request(Code::AccessRequest, &[(attr::USER_NAME, b"alice")], true);
    assert_eq!(
        verify_err(&b, b"wrong", false),
        VerifyError::BadMessageAuthenticator
    );
}

#[test]
fn tampered_attribute_fails_the_message_authenticator() {
    let mut b = request(Code::AccessRequest, &[(attr::USER_NAME, b"alice")], true);
    let last = b.len() - 1;
    b[last] ^= 1;
    assert_eq!(
        verify_err(&b, SECRET, false),
        VerifyError::BadMessageAuthenticator
    );
}

#[test]
fn missing_message_authenticator_depends_on_the_flag() {
    let b = request(Code::AccessRequest, &[(attr::USER_NAME, b"alice")], false);
    assert!(verify_request(Packet::decode(&b).unwrap(), SECRET, false).is_ok());
    assert_eq!(
        verify_err(&b, SECRET, true),
        VerifyError::MissingMessageAuthenticator
    );
}

#[test]
fn eap_message_without_message_authenticator_is_refused() {
    let b = request(
        Code::AccessRequest,
        &[(attr::EAP_MESSAGE, &[2, 0, 0, 5, 1])],
        false,
    );
    assert_eq!(
        verify_err(&b, SECRET, false),
        VerifyError::MissingMessageAuthenticator
    );
    let b = request(
        Code::AccessRequest,
        &[(attr::EAP_MESSAGE, &[2, 0, 0, 5, 1])],
        true,
    );
    assert!(verify_request(Packet::decode(&b).unwrap(), SECRET, false).is_ok());
}

/// The BlastRADIUS shape: Proxy-State and no Message-Authenticator. Dropped whatever the
/// client's flag, unless its policy allows it; signed, it is fine.
#[test]
fn proxy_state_without_message_authenticator_is_refused_unless_allowed() {
    let proxied = [
        (attr::USER_NAME, &b"alice"[..]),
        (attr::PROXY_STATE, b"hop"),
    ];
    let b = request(Code::AccessRequest, &proxied, false);
    assert_eq!(
        verify_err(&b, SECRET, false),
        VerifyError::UnsignedProxyState
    );
    assert_eq!(
        verify_err(&b, SECRET, true),
        VerifyError::MissingMessageAuthenticator
    );
    let allowed = SignaturePolicy {
        require_message_authenticator: false,
        allow_unsigned_proxy_state: true,
    };
    assert!(verify_request(Packet::decode(&b).unwrap(), SECRET, allowed).is_ok());
    let signed = request(Code::AccessRequest, &proxied, true);
    assert!(verify_request(Packet::decode(&signed).unwrap(), SECRET, false).is_ok());
    assert!(verify_request(Packet::decode(&signed).unwrap(), SECRET, true).is_ok());
}

/// RFC 2865 §5.44: at most one User-Name, User-Password, CHAP-Password and State.
#[test]
fn a_second_user_name_password_chap_password_or_state_is_malformed() {
    for typ in [
        attr::USER_NAME,
        attr::USER_PASSWORD,
        attr::CHAP_PASSWORD,
        attr::STATE,
    ] {
        let once = request(Code::AccessRequest, &[(typ, &[7u8; 16])], true);
        assert!(Packet::decode(&once).is_ok(), "one of type {typ}");
        let twice = request(
            Code::AccessRequest,
            &[
                (typ, &[7u8; 16]),
                (attr::NAS_PORT, &[0, 0, 0, 1]),
                (typ, &[8u8; 16]),
            ],
            true,
        );
        assert_eq!(
            Packet::decode(&twice).unwrap_err(),
            DecodeError::DuplicateAttribute,
            "two of type {typ}"
        );
    }
    // Attributes that may repeat still do.
    let b = request(
        Code::AccessRequest,
        &[
            (attr::PROXY_STATE, b"a"),
            (attr::PROXY_STATE, b"b"),
            (attr::CLASS, b"c"),
            (attr::CLASS, b"d"),
        ],
        true,
    );
    assert!(Packet::decode(&b).is_ok());
}

#[test]
fn status_server_always_needs_a_message_authenticator() {
    // The encoder adds one to a Status-Server even when not asked to.
    let b = request(Code::StatusServer, &[], false);
    assert!(Packet::decode(&b)
        .unwrap()
        .message_authenticator()
        .is_some());
    assert!(verify_request(Packet::decode(&b).unwrap(), SECRET, false).is_ok());
    // One built by hand without a Message-Authenticator is refused.
    let mut bare = vec![12, 1, 0, 20];
    bare.extend_from_slice(&AUTH);
    assert_eq!(
        verify_err(&bare, SECRET, false),
        VerifyError::MissingMessageAuthenticator
    );
    assert_eq!(
        verify_err(&b, b"wrong", false),
        VerifyError::BadMessageAuthenticator
    );
}

#[test]
fn accounting_request_authenticator_is_checked() {
    let b = request(
        Code::AccountingRequest,
        &[(attr::USER_NAME, b"alice")],
        false,
    );
    assert_ne!(&b[4..20], &AUTH, "the given authenticator is not used");
    assert!(verify_request(Packet::decode(&b).unwrap(), SECRET, true).is_ok());
    assert_eq!(
        verify_err(&b, b"wrong", false),
        VerifyError::BadRequestAuthenticator
    );
    let mut tampered = b.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x80;
    assert_eq!(
        verify_err(&tampered, SECRET, false),
        VerifyError::BadRequestAuthenticator
    );
}

#[test]
fn accounting_request_message_authenticator_is_checked_when_present() {
    let b = request(
        Code::AccountingRequest,
        &[(attr::USER_NAME, b"alice")],
        true,
    );
    let p = Packet::decode(&b).unwrap();
    assert!(p.message_authenticator().is_some());
    assert!(verify_request(p, SECRET, false).is_ok());
    // Corrupt the Message-Authenticator but keep the Request Authenticator valid, so only the
    // Message-Authenticator check can catch it.
    let mut forged = b.clone();
    forged[22] ^= 1;
    forged[4..20].fill(0);
    let digest = {
        use md5::{Digest, Md5};
        let mut h = Md5::new();
        h.update(&forged);
        h.update(SECRET);
        h.finalize()
    };
    forged[4..20].copy_from_slice(&digest);
    assert_eq!(
        verify_err(&forged, SECRET, false),
        VerifyError::BadMessageAuthenticator
    );
}

#[test]
fn unsupported_codes_and_empty_secrets_are_refused() {
    for code in [2u8, 3, 5, 11, 13, 40, 0, 255] {
        let mut b = vec![code, 1, 0, 20];
        b.extend_from_slice(&AUTH);
        assert_eq!(
            verify_err(&b, SECRET, false),
            VerifyError::UnsupportedCode,
            "code {code}"
        );
    }
    let b = request(Code::AccessRequest, &[], true);
    assert_eq!(verify_err(&b, b"", false), VerifyError::EmptySecret);
    let p = Packet::decode(&b).unwrap();
    assert_eq!(
        verify_response(p, &AUTH, SECRET, false).unwrap_err(),
        VerifyError::UnsupportedCode
    );
}

#[test]
fn reply_starts_with_message_authenticator_and_verifies() {
    let req = request(Code::AccessRequest, &[(attr::USER_NAME, b"alice")], true);
    let v = verified(&req);
    let mut out = Vec::new();
    for code in [
        Code::AccessAccept,
        Code::AccessReject,
        Code::AccessChallenge,
    ] {
        encode_reply(
            &mut out,
            code,
            &v,
            SECRET,
            &[(attr::REPLY_MESSAGE, b"hello"), (attr::STATE, b"s1")],
        )
        .unwrap();
        let p = Packet::decode(&out).unwrap();
        assert_eq!(p.code(), code);
        assert_eq!(p.identifier(), 42);
        let first = p.attributes().next().unwrap();
        assert_eq!(first.typ, attr::MESSAGE_AUTHENTICATOR);
        assert_eq!(out[20..22], [80, 18]);
        assert!(verify_response(p, &AUTH, SECRET, true).is_ok());
        let types: Vec<u8> = p.attributes().map(|a| a.typ).collect();
        assert_eq!(types, [80, 18, 24]);
    }
}

#[test]
fn reply_without_attributes_still_has_message_authenticator() {
    let req = request(Code::AccessRequest, &[], false);
    let v = verified(&req);
    let mut out = Vec::new();
    encode_reply(&mut out, Code::AccessReject, &v, SECRET, &[]).unwrap();
    assert_eq!(out.len(), 38);
    let p = Packet::decode(&out).unwrap();
    assert!(p.message_authenticator().is_some());
    assert!(verify_response(p, &AUTH, SECRET, true).is_ok());
}

#[test]
fn proxy_state_is_copied_in_order_after_the_callers_attributes() {
    let req = request(
        Code::AccessRequest,
        &[
            (attr::PROXY_STATE, b"first"),
            (attr::USER_NAME, b"alice"),
            (attr::PROXY_STATE, b""),
            (attr::PROXY_STATE, b"third"),
        ],
        true,
    );
    let v = verified(&req);
    let mut out = Vec::new();
    encode_reply(
        &mut out,
        Code::AccessAccept,
        &v,
        SECRET,
        &[(attr::CLASS, b"c")],
    )
    .unwrap();
    let p = Packet::decode(&out).unwrap();
    let got: Vec<(u8, &[u8])> = p.attributes().map(|a| (a.typ, a.value)).collect();
    assert_eq!(
        got[1..],
        [
            (attr::CLASS, &b"c"[..]),
            (attr::PROXY_STATE, b"first"),
            (attr::PROXY_STATE, b""),
            (attr::PROXY_STATE, b"third"),
        ]
    );
    assert!(verify_response(p, &AUTH, SECRET, true).is_ok());
}

#[test]
fn status_server_is_answered_only_with_access_accept() {
    let req = request(Code::StatusServer, &[], true);
    let v = verified(&req);
    let mut out = Vec::new();
    encode_reply(&mut out, Code::AccessAccept, &v, SECRET, &[]).unwrap();
    assert!(verify_response(Packet::decode(&out).unwrap(), &AUTH, SECRET, true).is_ok());
    for code in [Code::AccessReject, Code::AccessChallenge] {
        assert_eq!(
            encode_reply(&mut out, code, &v, SECRET, &[]),
            Err(EncodeError::InvalidReplyCode)
        );
        assert!(out.is_empty(), "a failed encode leaves the buffer empty");
    }
}

#[test]
fn reply_codes_must_answer_the_request() {
    let req = request(Code::AccessRequest, &[], true);
    let v = verified(&req);
    let mut out = Vec::new();
    for code in [
        Code::AccessRequest,
        Code::AccountingResponse,
        Code::StatusServer,
        Code::Other(99),
    ] {
        assert_eq!(
            encode_reply(&mut out, code, &v, SECRET, &[]),
            Err(EncodeError::InvalidReplyCode)
        );
    }
    let acct = request(Code::AccountingRequest, &[], false);
    let v = verified(&acct);
    assert_eq!(
        encode_reply(&mut out, Code::AccessAccept, &v, SECRET, &[]),
        Err(EncodeError::InvalidReplyCode)
    );
}

#[test]
fn reply_encoding_errors() {
    let req = request(Code::AccessRequest, &[], true);
    let v = verified(&req);
    let mut out = Vec::new();
    let ok = Code::AccessAccept;
    assert_eq!(
        encode_reply(&mut out, ok, &v, b"", &[]),
        Err(EncodeError::EmptySecret)
    );
    assert_eq!(
        encode_reply(
            &mut out,
            ok,
            &v,
            SECRET,
            &[(attr::MESSAGE_AUTHENTICATOR, &[0; 16])]
        ),
        Err(EncodeError::MessageAuthenticatorNotAllowed)
    );
    let long = [b'x'; 254];
    assert_eq!(
        encode_reply(&mut out, ok, &v, SECRET, &[(attr::REPLY_MESSAGE, &long)]),
        Err(EncodeError::AttributeTooLong)
    );
    assert!(encode_reply(
        &mut out,
        ok,
        &v,
        SECRET,
        &[(attr::REPLY_MESSAGE, &long[..253])]
    )
    .is_ok());
    let many = vec![(attr::CLASS, &b""[..]); MAX_ATTRIBUTES];
    assert_eq!(
        encode_reply(&mut out, ok, &v, SECRET, &many),
        Err(EncodeError::TooManyAttributes),
        "the Message-Authenticator counts too"
    );
    assert!(encode_reply(&mut out, ok, &v, SECRET, &many[1..]).is_ok());
    assert_eq!(
        Packet::decode(&out).unwrap().attributes().count(),
        MAX_ATTRIBUTES
    );
    let big = vec![(attr::REPLY_MESSAGE, &long[..253]); 17];
    assert_eq!(
        encode_reply(&mut out, ok, &v, SECRET, &big),
        Err(EncodeError::PacketTooLong)
    );
    assert!(out.is_empty());
}

#[test]
fn reply_never_grows_the_buffer_past_the_maximum_packet() {
    let req = request(Code::AccessRequest, &[], true);
    let v = verified(&req);
    let long = [b'x'; 253];
    let big = vec![(attr::REPLY_MESSAGE, &long[..]); 40];
    let mut out = Vec::with_capacity(MAX_PACKET_LEN);
    let capacity = out.capacity();
    assert_eq!(
        encode_reply(&mut out, Code::AccessAccept, &v, SECRET, &big),
        Err(EncodeError::PacketTooLong)
    );
    assert_eq!(out.capacity(), capacity);
}

#[test]
fn packet_of_exactly_the_maximum_length_is_encoded() {
    let req = request(Code::AccessRequest, &[], true);
    let v = verified(&req);
    // 20 header + 18 Message-Authenticator + 15 * 255 + one attribute of 233 = 4096.
    let long = [b'y'; 253];
    let mut attrs = vec![(attr::REPLY_MESSAGE, &long[..]); 15];
    attrs.push((attr::CLASS, &long[..231]));
    let mut out = Vec::new();
    encode_reply(&mut out, Code::AccessAccept, &v, SECRET, &attrs).unwrap();
    assert_eq!(out.len(), MAX_PACKET_LEN);
    assert!(verify_response(Packet::decode(&out).unwrap(), &AUTH, SECRET, true).is_ok());
    attrs.push((attr::CLASS, b""));
    assert_eq!(
        encode_reply(&mut out, Code::AccessAccept, &v, SECRET, &attrs),
        Err(EncodeError::PacketTooLong)
    );
}

#[test]
fn request_encoding_errors() {
    let mut out = Vec::new();
    for code in [Code::AccessAccept, Code::AccountingResponse, Code::Other(7)] {
        assert_eq!(
            encode_request(&mut out, code, 1, &AUTH, SECRET, &[], false),
            Err(EncodeError::UnsupportedCode)
        );
    }
    assert_eq!(
        encode_request(&mut out, Code::AccessRequest, 1, &AUTH, b"", &[], false),
        Err(EncodeError::EmptySecret)
    );
    assert_eq!(
        encode_request(
            &mut out,
            Code::AccessRequest,
            1,
            &AUTH,
            SECRET,
            &[(attr::MESSAGE_AUTHENTICATOR, &[0; 16])],
            false
        ),
        Err(EncodeError::MessageAuthenticatorNotAllowed)
    );
}

#[test]
fn request_keeps_the_given_authenticator_and_attribute_order() {
    let b = request(
        Code::AccessRequest,
        &[(attr::USER_NAME, b"bob"), (attr::NAS_PORT, &[0, 0, 0, 7])],
        true,
    );
    let p = Packet::decode(&b).unwrap();
    assert_eq!(p.authenticator(), &AUTH);
    assert_eq!(p.identifier(), 42);
    let got: Vec<(u8, &[u8])> = p.attributes().map(|a| (a.typ, a.value)).collect();
    assert_eq!(got[0].0, attr::MESSAGE_AUTHENTICATOR);
    assert_eq!(
        got[1..],
        [
            (attr::USER_NAME, &b"bob"[..]),
            (attr::NAS_PORT, &[0, 0, 0, 7][..])
        ]
    );
}

#[test]
fn response_verification_errors() {
    let req = request(Code::AccessRequest, &[], true);
    let v = verified(&req);
    let mut out = Vec::new();
    encode_reply(&mut out, Code::AccessAccept, &v, SECRET, &[]).unwrap();
    let p = Packet::decode(&out).unwrap();
    assert_eq!(
        verify_response(p, &AUTH, b"wrong", false).unwrap_err(),
        VerifyError::BadResponseAuthenticator
    );
    let mut other_auth = AUTH;
    other_auth[0] ^= 1;
    assert_eq!(
        verify_response(p, &other_auth, SECRET, false).unwrap_err(),
        VerifyError::BadResponseAuthenticator
    );
    assert_eq!(
        verify_response(p, &AUTH, b"", false).unwrap_err(),
        VerifyError::EmptySecret
    );

    // A reply with a valid Response Authenticator but a wrong Message-Authenticator: only the
    // Message-Authenticator check can catch it.
    let mut forged = out.clone();
    forged[22] ^= 1;
    forged[4..20].copy_from_slice(&AUTH);
    let digest = {
        use md5::{Digest, Md5};
        let mut h = Md5::new();
        h.update(&forged);
        h.update(SECRET);
        h.finalize()
    };
    forged[4..20].copy_from_slice(&digest);
    assert_eq!(
        verify_response(Packet::decode(&forged).unwrap(), &AUTH, SECRET, false).unwrap_err(),
        VerifyError::BadMessageAuthenticator
    );

    // A reply without a Message-Authenticator passes only when none is required.
    let mut bare = vec![2, 42, 0, 20];
    bare.extend_from_slice(&AUTH);
    let digest = {
        use md5::{Digest, Md5};
        let mut h = Md5::new();
        h.update(&bare);
        h.update(SECRET);
        h.finalize()
    };
    bare[4..20].copy_from_slice(&digest);
    let p = Packet::decode(&bare).unwrap();
    assert!(verify_response(p, &AUTH, SECRET, false).is_ok());
    assert_eq!(
        verify_response(p, &AUTH, SECRET, true).unwrap_err(),
        VerifyError::MissingMessageAuthenticator
    );
}

#[test]
fn error_labels_are_distinct_snake_case() {
    let decode = [
        DecodeError::TooShort,
        DecodeError::LengthTooSmall,
        DecodeError::TooLong,
        DecodeError::Truncated,
        DecodeError::AttributeTooShort,
        DecodeError::AttributeOverrun,
        DecodeError::TooManyAttributes,
        DecodeError::DuplicateMessageAuthenticator,
        DecodeError::BadMessageAuthenticatorLength,
    ];
    let verify = [
        VerifyError::EmptySecret,
        VerifyError::UnsupportedCode,
        VerifyError::MissingMessageAuthenticator,
        VerifyError::BadMessageAuthenticator,
        VerifyError::BadResponseAuthenticator,
        VerifyError::BadRequestAuthenticator,
    ];
    let mut labels: Vec<&str> = decode.iter().map(DecodeError::as_str).collect();
    labels.extend(verify.iter().map(VerifyError::as_str));
    for label in &labels {
        assert!(label.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
    }
    let decode_labels: std::collections::HashSet<_> = decode.iter().map(|e| e.as_str()).collect();
    assert_eq!(decode_labels.len(), decode.len());
    let verify_labels: std::collections::HashSet<_> = verify.iter().map(|e| e.as_str()).collect();
    assert_eq!(verify_labels.len(), verify.len());
    for e in decode {
        assert!(!e.to_string().is_empty());
    }
    for e in verify {
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn reply_buffer_grows_once_and_is_never_reallocated() {
    let req = request(Code::AccessRequest, &[], true);
    let v = verified(&req);
    let mut out = Vec::new();
    encode_reply(&mut out, Code::AccessReject, &v, SECRET, &[]).unwrap();
    assert!(out.capacity() >= MAX_PACKET_LEN);
    let (pointer, capacity) = (out.as_ptr(), out.capacity());
    let long = [b'x'; 253];
    let big = vec![(attr::REPLY_MESSAGE, &long[..]); 15];
    encode_reply(&mut out, Code::AccessAccept, &v, SECRET, &big).unwrap();
    assert!(out.len() > 3800);
    assert_eq!((out.as_ptr(), out.capacity()), (pointer, capacity));
}

#[test]
fn a_prepared_key_gives_the_same_checks_and_replies_for_every_secret_length() {
    for len in [1usize, 7, 16, 63, 64, 65, 128] {
        let secret: Vec<u8> = (0..len).map(|i| (i * 31 + 5) as u8).collect();
        let mac = MacKey::new(&secret);
        let mut req = Vec::new();
        encode_request(
            &mut req,
            Code::AccessRequest,
            7,
            &AUTH,
            &secret,
            &[(attr::USER_NAME, b"alice")],
            true,
        )
        .unwrap();
        let p = Packet::decode(&req).unwrap();
        let v = verify_request_with(p, &secret, &mac, true).expect("verifies with the key");
        assert!(verify_request(p, &secret, true).is_ok());
        // A key of another secret refuses the same request.
        let other = MacKey::new(b"not the secret");
        assert_eq!(
            verify_request_with(p, &secret, &other, true).unwrap_err(),
            VerifyError::BadMessageAuthenticator
        );
        let (mut with_key, mut plain) = (Vec::new(), Vec::new());
        encode_reply_with(&mut with_key, Code::AccessAccept, &v, &secret, &mac, &[]).unwrap();
        encode_reply(&mut plain, Code::AccessAccept, &v, &secret, &[]).unwrap();
        assert_eq!(with_key, plain, "secret of {len} octets");
        assert!(verify_response(Packet::decode(&with_key).unwrap(), &AUTH, &secret, true).is_ok());
    }
    assert_eq!(format!("{:?}", MacKey::new(SECRET)), "MacKey(..)");
}
