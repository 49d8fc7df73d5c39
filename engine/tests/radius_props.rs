//! Property tests of the RADIUS codec.
//!
//! They show that decoding and verification never panic on arbitrary or mutated input, that
//! encoded requests decode to what was encoded, that every encoded reply verifies while any
//! single flipped bit makes it fail, and that password hiding round-trips at every length.

use proptest::prelude::*;
use tollgate_engine::radius::{
    attr, encode_reply, encode_request, hide_password, unhide_password, verify_request,
    verify_response, Code, Packet, VerifyError, MAX_PACKET_LEN, MAX_PASSWORD_LEN,
};

const SECRET: &[u8] = b"property-secret";

/// Runs everything the server does with a datagram; it must never panic, whatever the input.
fn exercise(datagram: &[u8]) {
    let Ok(packet) = Packet::decode(datagram) else {
        return;
    };
    assert!(packet.bytes().len() <= datagram.len());
    let _ = packet.attributes().count();
    let _ = packet.attribute(attr::USER_NAME);
    let _ = packet.message_authenticator();
    let _ = verify_response(packet, &[0; 16], SECRET, false);
    for require in [false, true] {
        if let Ok(verified) = verify_request(packet, SECRET, require) {
            if let Some(hidden) = verified.attribute(attr::USER_PASSWORD) {
                let mut out = [0u8; MAX_PASSWORD_LEN];
                let _ = unhide_password(hidden, SECRET, verified.authenticator(), &mut out);
            }
            let mut reply = Vec::with_capacity(MAX_PACKET_LEN);
            for code in [
                Code::AccessAccept,
                Code::AccessReject,
                Code::AccessChallenge,
            ] {
                if encode_reply(&mut reply, code, &verified, SECRET, &[(18, b"ok")]).is_ok() {
                    let p = Packet::decode(&reply).expect("our reply decodes");
                    verify_response(p, verified.authenticator(), SECRET, true)
                        .expect("our reply verifies");
                }
            }
        }
    }
}

/// Attribute lists the encoder accepts (no Message-Authenticator, values of at most 253
/// octets, few enough to stay under the packet limit).
fn attribute_lists() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    let typ = any::<u8>().prop_filter("encoder owns it", |t| *t != attr::MESSAGE_AUTHENTICATOR);
    prop::collection::vec((typ, prop::collection::vec(any::<u8>(), 0..=253)), 0..20)
        .prop_map(first_of_each_single)
}

/// The list without the second and later of each attribute RFC 2865 allows at most once
/// (a second is a decode error, tested in the codec's unit tests).
fn first_of_each_single(mut list: Vec<(u8, Vec<u8>)>) -> Vec<(u8, Vec<u8>)> {
    let single = [
        attr::USER_NAME,
        attr::USER_PASSWORD,
        attr::CHAP_PASSWORD,
        attr::STATE,
    ];
    let mut seen = Vec::new();
    list.retain(|(t, _)| {
        if !single.contains(t) || !seen.contains(t) {
            seen.push(*t);
            return true;
        }
        false
    });
    list
}

fn borrowed(list: &[(u8, Vec<u8>)]) -> Vec<(u8, &[u8])> {
    list.iter().map(|(t, v)| (*t, v.as_slice())).collect()
}

fn request_codes() -> impl Strategy<Value = Code> {
    prop_oneof![
        Just(Code::AccessRequest),
        Just(Code::AccountingRequest),
        Just(Code::StatusServer),
    ]
}

/// A valid Access-Request with a User-Password, Proxy-States and a Message-Authenticator.
fn valid_request(authenticator: &[u8; 16]) -> Vec<u8> {
    let mut hidden = [0u8; MAX_PASSWORD_LEN];
    let n = hide_password(b"hunter2", SECRET, authenticator, &mut hidden).unwrap();
    let mut out = Vec::new();
    encode_request(
        &mut out,
        Code::AccessRequest,
        1,
        authenticator,
        SECRET,
        &[
            (attr::USER_NAME, b"alice"),
            (attr::USER_PASSWORD, &hidden[..n]),
            (attr::PROXY_STATE, b"one"),
            (attr::PROXY_STATE, b"two"),
        ],
        true,
    )
    .unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..5000),
    ) {
        exercise(&bytes);
    }

    #[test]
    fn decode_never_panics_when_length_matches(
        code in any::<u8>(),
        authenticator in any::<[u8; 16]>(),
        body in prop::collection::vec(any::<u8>(), 0..600),
        padding in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        // Random bytes rarely have a plausible Length field, so set it to make the attribute
        // walk itself the thing under test.
        let len = u16::try_from(20 + body.len()).unwrap();
        let mut bytes = vec![code, 9];
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(&authenticator);
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(&padding);
        exercise(&bytes);
    }

    #[test]
    fn decode_never_panics_on_mutations_of_a_valid_packet(
        authenticator in any::<[u8; 16]>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        extra in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut bytes = valid_request(&authenticator);
        exercise(&bytes);
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        exercise(&bytes);
        bytes.extend_from_slice(&extra);
        exercise(&bytes);
        bytes.truncate(cut.index(bytes.len() + 1));
        exercise(&bytes);
    }

    #[test]
    fn encoded_requests_decode_to_what_was_encoded(
        code in request_codes(),
        identifier in any::<u8>(),
        authenticator in any::<[u8; 16]>(),
        attrs in attribute_lists(),
        with_mac in any::<bool>(),
    ) {
        let mut out = Vec::new();
        let list = borrowed(&attrs);
        let result =
            encode_request(&mut out, code, identifier, &authenticator, SECRET, &list, with_mac);
        let has_mac = with_mac || code == Code::StatusServer;
        let mac_len = if has_mac { 18 } else { 0 };
        let size: usize = 20 + mac_len + attrs.iter().map(|(_, v)| v.len() + 2).sum::<usize>();
        if size > MAX_PACKET_LEN {
            prop_assert!(result.is_err());
            return Ok(());
        }
        result.unwrap();
        let p = Packet::decode(&out).unwrap();
        prop_assert_eq!(p.code(), code);
        prop_assert_eq!(p.identifier(), identifier);
        prop_assert_eq!(p.bytes().len(), out.len());
        let mut got: Vec<(u8, Vec<u8>)> =
            p.attributes().map(|a| (a.typ, a.value.to_vec())).collect();
        if has_mac {
            prop_assert_eq!(got.remove(0).0, attr::MESSAGE_AUTHENTICATOR);
        }
        prop_assert_eq!(&got, &attrs);
        if code != Code::AccountingRequest {
            prop_assert_eq!(p.authenticator(), &authenticator);
        }
        // RFC 3579 §3.1: an EAP-Message without a Message-Authenticator is always refused.
        let unsigned = code == Code::AccessRequest && !has_mac;
        let eap_without_mac = unsigned && attrs.iter().any(|(t, _)| *t == attr::EAP_MESSAGE);
        // And Proxy-State without it is the BlastRADIUS shape, refused unless allowed.
        let proxy_without_mac = unsigned && attrs.iter().any(|(t, _)| *t == attr::PROXY_STATE);
        let verdict = verify_request(p, SECRET, has_mac);
        if eap_without_mac {
            prop_assert_eq!(verdict.unwrap_err(), VerifyError::MissingMessageAuthenticator);
        } else if proxy_without_mac {
            prop_assert_eq!(verdict.unwrap_err(), VerifyError::UnsignedProxyState);
        } else {
            prop_assert!(verdict.is_ok());
        }
    }

    #[test]
    fn encoded_replies_verify_and_every_bit_flip_breaks_them(
        authenticator in any::<[u8; 16]>(),
        code in prop_oneof![
            Just(Code::AccessAccept),
            Just(Code::AccessReject),
            Just(Code::AccessChallenge),
        ],
        attrs in prop::collection::vec(
            (any::<u8>().prop_filter("encoder owns it", |t| *t != attr::MESSAGE_AUTHENTICATOR),
             prop::collection::vec(any::<u8>(), 0..40)),
            0..6,
        ).prop_map(first_of_each_single),
        flip in any::<prop::sample::Index>(),
    ) {
        let request = valid_request(&authenticator);
        let verified = verify_request(Packet::decode(&request).unwrap(), SECRET, true).unwrap();
        let mut reply = Vec::with_capacity(MAX_PACKET_LEN);
        encode_reply(&mut reply, code, &verified, SECRET, &borrowed(&attrs)).unwrap();
        let p = Packet::decode(&reply).unwrap();
        prop_assert!(verify_response(p, &authenticator, SECRET, true).is_ok());

        let bit = flip.index(reply.len() * 8);
        let mut flipped = reply.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let still_accepted = match Packet::decode(&flipped) {
            Ok(p) => verify_response(p, &authenticator, SECRET, false).is_ok(),
            Err(_) => false,
        };
        prop_assert!(!still_accepted, "bit {} flipped and the reply still verified", bit);
    }

    #[test]
    fn hide_then_unhide_round_trips(
        mut password in prop::collection::vec(any::<u8>(), 0..=MAX_PASSWORD_LEN),
        authenticator in any::<[u8; 16]>(),
        secret in prop::collection::vec(any::<u8>(), 1..100),
    ) {
        // A trailing NUL is indistinguishable from padding, so the last octet is made non-NUL.
        if let Some(last) = password.last_mut() {
            if *last == 0 {
                *last = 1;
            }
        }
        let mut hidden = [0u8; MAX_PASSWORD_LEN];
        let n = hide_password(&password, &secret, &authenticator, &mut hidden).unwrap();
        prop_assert_eq!(n % 16, 0);
        prop_assert_eq!(n, password.len().div_ceil(16).max(1) * 16);
        let mut clear = [0u8; MAX_PASSWORD_LEN];
        let got = unhide_password(&hidden[..n], &secret, &authenticator, &mut clear).unwrap();
        prop_assert_eq!(got, password.as_slice());
    }
}

#[test]
fn empty_password_hides_as_sixteen_nuls() {
    let authenticator = [7u8; 16];
    let mut hidden = [0u8; MAX_PASSWORD_LEN];
    let n = hide_password(b"", SECRET, &authenticator, &mut hidden).unwrap();
    assert_eq!(n, 16);
    // Sixteen NULs XORed with the keystream are the keystream itself: MD5(secret ‖ RA).
    let mut clear = [0u8; MAX_PASSWORD_LEN];
    let n2 = hide_password(&[0u8; 16], SECRET, &authenticator, &mut clear).unwrap();
    assert_eq!(hidden[..n], clear[..n2]);
    let mut out = [0u8; MAX_PASSWORD_LEN];
    assert_eq!(
        unhide_password(&hidden[..n], SECRET, &authenticator, &mut out).unwrap(),
        b""
    );
}

#[test]
fn every_single_bit_flip_of_a_reply_is_caught() {
    // The property above samples one bit per case; this walks every bit of one reply.
    let authenticator = [0x42; 16];
    let request = valid_request(&authenticator);
    let verified = verify_request(Packet::decode(&request).unwrap(), SECRET, true).unwrap();
    let mut reply = Vec::with_capacity(MAX_PACKET_LEN);
    encode_reply(
        &mut reply,
        Code::AccessChallenge,
        &verified,
        SECRET,
        &[(attr::REPLY_MESSAGE, b"code?"), (attr::STATE, b"st")],
    )
    .unwrap();
    for bit in 0..reply.len() * 8 {
        let mut flipped = reply.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        if let Ok(p) = Packet::decode(&flipped) {
            assert!(
                verify_response(p, &authenticator, SECRET, false).is_err(),
                "bit {bit}"
            );
        }
    }
}
