//! Cross-checks of the Tollgate RADIUS codec against the independent `radius` crate.
//!
//! Packets we encode must be read by `radius` with the same attributes, and its
//! authenticity check must accept our replies; packets `radius` encodes must decode and verify
//! here; and both implementations must hide a User-Password identically.

use proptest::prelude::*;
use radius::core::avp::AVP;
use radius::core::code::Code as TheirCode;
use radius::core::packet::Packet as TheirPacket;
use radius::core::rfc2865;
use tollgate_engine::radius::{
    attr, encode_reply, encode_request, hide_password, unhide_password, verify_request,
    verify_response, Code, DecodeError, Packet, SignaturePolicy, VerifyError, MAX_PACKET_LEN,
    MAX_PASSWORD_LEN,
};

/// Whether a list repeats one of the attributes RFC 2865 allows at most once, which our
/// decoder refuses and the `radius` crate does not.
fn repeats_a_single(attrs: &[(u8, Vec<u8>)]) -> bool {
    [
        attr::USER_NAME,
        attr::USER_PASSWORD,
        attr::CHAP_PASSWORD,
        attr::STATE,
    ]
    .iter()
    .any(|t| attrs.iter().filter(|(typ, _)| typ == t).count() > 1)
}

const SECRET: &[u8] = b"cross-check-secret";
const AUTH: [u8; 16] = *b"0123456789abcdef";

/// Asserts that `theirs` holds exactly the values `ours` holds for every attribute type, in
/// order. The `radius` crate offers lookup by type only, so the comparison is per type.
fn assert_same_attributes(ours: &Packet<'_>, theirs: &TheirPacket) {
    for typ in 0..=255u8 {
        let mine: Vec<Vec<u8>> = ours.attributes_of(typ).map(<[u8]>::to_vec).collect();
        let other: Vec<Vec<u8>> = theirs
            .lookup_all(typ)
            .into_iter()
            .map(AVP::encode_bytes)
            .collect();
        assert_eq!(mine, other, "attribute type {typ}");
    }
}

fn hide(password: &[u8], authenticator: &[u8; 16]) -> Vec<u8> {
    let mut out = [0u8; MAX_PASSWORD_LEN];
    let n = hide_password(password, SECRET, authenticator, &mut out).unwrap();
    out[..n].to_vec()
}

#[test]
fn our_request_and_reply_are_read_by_radius() {
    let password = b"s3cret-passw0rd";
    let hidden = hide(password, &AUTH);
    let attrs: [(u8, &[u8]); 6] = [
        (attr::USER_NAME, b"alice"),
        (attr::USER_PASSWORD, &hidden),
        (attr::NAS_PORT, &[0, 0, 0, 9]),
        (attr::PROXY_STATE, b"p1"),
        (attr::NAS_IDENTIFIER, b"gw"),
        (attr::PROXY_STATE, b"p2"),
    ];
    let mut request = Vec::new();
    encode_request(
        &mut request,
        Code::AccessRequest,
        77,
        &AUTH,
        SECRET,
        &attrs,
        true,
    )
    .unwrap();

    let theirs = TheirPacket::decode(&request, SECRET).unwrap();
    assert_eq!(theirs.get_code(), TheirCode::AccessRequest);
    assert_eq!(theirs.get_identifier(), 77);
    assert_eq!(theirs.get_authenticator().as_slice(), &AUTH);
    let ours = Packet::decode(&request).unwrap();
    assert_same_attributes(&ours, &theirs);
    assert_eq!(
        rfc2865::lookup_user_password(&theirs).unwrap().unwrap(),
        password
    );
    assert_eq!(rfc2865::lookup_nas_port(&theirs).unwrap().unwrap(), 9);

    let verified = verify_request(ours, SECRET, true).unwrap();
    let mut reply = Vec::with_capacity(MAX_PACKET_LEN);
    for code in [
        Code::AccessAccept,
        Code::AccessReject,
        Code::AccessChallenge,
    ] {
        encode_reply(
            &mut reply,
            code,
            &verified,
            SECRET,
            &[(attr::REPLY_MESSAGE, b"hi"), (attr::STATE, b"\x00\x01")],
        )
        .unwrap();
        assert!(TheirPacket::is_authentic_response(&reply, &request, SECRET));
        let their_reply = TheirPacket::decode(&reply, SECRET).unwrap();
        assert_eq!(their_reply.get_code().string(), code_name(code));
        assert_same_attributes(&Packet::decode(&reply).unwrap(), &their_reply);
        assert!(!TheirPacket::is_authentic_response(
            &reply, &request, b"other"
        ));
    }
}

fn code_name(code: Code) -> &'static str {
    code.name().unwrap()
}

#[test]
fn our_accounting_request_is_authentic_to_radius() {
    let mut request = Vec::new();
    encode_request(
        &mut request,
        Code::AccountingRequest,
        5,
        &AUTH,
        SECRET,
        &[(40, &[0, 0, 0, 1]), (44, b"session-1")],
        false,
    )
    .unwrap();
    assert!(TheirPacket::is_authentic_request(&request, SECRET));
    assert!(!TheirPacket::is_authentic_request(&request, b"other"));
}

#[test]
fn radius_requests_and_replies_are_read_and_verified_by_us() {
    let mut request = TheirPacket::new_with_identifier(TheirCode::AccessRequest, SECRET, 200);
    rfc2865::add_user_name(&mut request, "bob");
    rfc2865::add_user_password(&mut request, b"hunter2-and-some-more-length").unwrap();
    rfc2865::add_nas_port(&mut request, 4);
    rfc2865::add_proxy_state(&mut request, b"ps");
    rfc2865::add_state(&mut request, b"");
    let request_bytes = request.encode().unwrap();

    let ours = Packet::decode(&request_bytes).unwrap();
    assert_eq!(ours.code(), Code::AccessRequest);
    assert_eq!(ours.identifier(), 200);
    assert_same_attributes(&ours, &request);
    // Proxy-State without Message-Authenticator: refused unless the client is allowed it.
    assert_eq!(
        verify_request(ours, SECRET, false).unwrap_err(),
        VerifyError::UnsignedProxyState
    );
    let policy = SignaturePolicy {
        require_message_authenticator: false,
        allow_unsigned_proxy_state: true,
    };
    let verified = verify_request(ours, SECRET, policy).unwrap();
    let mut out = [0u8; MAX_PASSWORD_LEN];
    let clear = unhide_password(
        verified.attribute(attr::USER_PASSWORD).unwrap(),
        SECRET,
        verified.authenticator(),
        &mut out,
    )
    .unwrap();
    assert_eq!(clear, b"hunter2-and-some-more-length");

    for code in [
        TheirCode::AccessAccept,
        TheirCode::AccessReject,
        TheirCode::AccessChallenge,
    ] {
        let mut reply = request.make_response_packet(code);
        rfc2865::add_reply_message(&mut reply, "welcome");
        rfc2865::add_class(&mut reply, &[1, 2, 3]);
        let reply_bytes = reply.encode().unwrap();
        let p = Packet::decode(&reply_bytes).unwrap();
        assert_same_attributes(&p, &reply);
        assert!(verify_response(p, verified.authenticator(), SECRET, false).is_ok());
        assert!(verify_response(p, verified.authenticator(), b"other", false).is_err());
    }

    let mut accounting = TheirPacket::new_with_identifier(TheirCode::AccountingRequest, SECRET, 3);
    rfc2865::add_user_name(&mut accounting, "bob");
    let accounting_bytes = accounting.encode().unwrap();
    assert!(verify_request(Packet::decode(&accounting_bytes).unwrap(), SECRET, false).is_ok());
    assert!(verify_request(Packet::decode(&accounting_bytes).unwrap(), b"other", false).is_err());
}

#[test]
fn password_hiding_matches_radius_for_every_length() {
    for len in 0..=MAX_PASSWORD_LEN {
        // The `radius` crate cuts a revealed password at its first NUL, so use none here.
        let password: Vec<u8> = (0..len).map(|i| (i % 250) as u8 + 1).collect();
        let theirs = AVP::from_user_password(attr::USER_PASSWORD, &password, SECRET, &AUTH)
            .unwrap()
            .encode_bytes();
        assert_eq!(hide(&password, &AUTH), theirs, "length {len}");
        let mut out = [0u8; MAX_PASSWORD_LEN];
        assert_eq!(
            unhide_password(&theirs, SECRET, &AUTH, &mut out).unwrap(),
            password.as_slice()
        );
    }
}

/// An attribute list of up to 20 attributes, excluding the Message-Authenticator that the
/// encoder places itself.
fn attribute_lists() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    let typ = any::<u8>().prop_filter("encoder owns it", |t| *t != attr::MESSAGE_AUTHENTICATOR);
    prop::collection::vec((typ, prop::collection::vec(any::<u8>(), 0..=60)), 0..20)
}

proptest! {
    #[test]
    fn random_requests_agree_with_radius(
        attrs in attribute_lists(),
        identifier in any::<u8>(),
        authenticator in any::<[u8; 16]>(),
        with_mac in any::<bool>(),
    ) {
        let borrowed: Vec<(u8, &[u8])> = attrs.iter().map(|(t, v)| (*t, v.as_slice())).collect();
        let mut bytes = Vec::new();
        let code = Code::AccessRequest;
        encode_request(&mut bytes, code, identifier, &authenticator, SECRET, &borrowed, with_mac)
            .unwrap();
        let theirs = TheirPacket::decode(&bytes, SECRET).unwrap();
        prop_assert_eq!(theirs.get_identifier(), identifier);
        if repeats_a_single(&attrs) {
            prop_assert_eq!(Packet::decode(&bytes).unwrap_err(), DecodeError::DuplicateAttribute);
        } else {
            assert_same_attributes(&Packet::decode(&bytes).unwrap(), &theirs);
        }
    }

    #[test]
    fn random_radius_requests_decode_identically(
        attrs in attribute_lists(),
        identifier in any::<u8>(),
    ) {
        let code = TheirCode::AccessRequest;
        let mut theirs = TheirPacket::new_with_identifier(code, SECRET, identifier);
        for (typ, value) in &attrs {
            theirs.add(AVP::from_bytes(*typ, value));
        }
        let bytes = theirs.encode().unwrap();
        if repeats_a_single(&attrs) {
            prop_assert_eq!(Packet::decode(&bytes).unwrap_err(), DecodeError::DuplicateAttribute);
            return Ok(());
        }
        let ours = Packet::decode(&bytes).unwrap();
        prop_assert_eq!(ours.identifier(), identifier);
        let listed: Vec<(u8, Vec<u8>)> =
            ours.attributes().map(|a| (a.typ, a.value.to_vec())).collect();
        prop_assert_eq!(listed, attrs);
    }
}
