//! Fuzz target for the server's whole RADIUS path.
//!
//! Each input is treated as a received datagram: it is decoded, verified with a fixed shared
//! secret, its User-Password is revealed, and a reply is encoded. Any panic is a finding, and
//! so is a broken invariant checked below: a decoded packet never reaches past the datagram,
//! and every reply we encode decodes and verifies as its own client would check it.
//!
//! Random bytes almost never carry a valid Message-Authenticator, but an Access-Request without
//! one passes `verify_request` when it is not required, so the unhide and encode paths are
//! reached as soon as the fuzzer finds a well-formed Access-Request.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_engine::radius::{
    attr, encode_reply, unhide_password, verify_request, verify_response, Code, Packet,
    MAX_PACKET_LEN, MAX_PASSWORD_LEN,
};

const SECRET: &[u8] = b"fuzzing-secret";

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Packet::decode(data) else {
        return;
    };
    assert!(packet.bytes().len() <= data.len());
    assert!(packet.attributes().count() <= tollgate_engine::radius::MAX_ATTRIBUTES);

    // A reply path check on arbitrary input must fail cleanly, never panic.
    let _ = verify_response(packet, &[0; 16], SECRET, false);

    let Ok(verified) = verify_request(packet, SECRET, false) else {
        return;
    };
    if let Some(hidden) = verified.attribute(attr::USER_PASSWORD) {
        let mut clear = [0u8; MAX_PASSWORD_LEN];
        if let Ok(password) = unhide_password(hidden, SECRET, verified.authenticator(), &mut clear)
        {
            assert!(password.len() <= hidden.len());
        }
    }

    let mut reply = Vec::with_capacity(MAX_PACKET_LEN);
    let state = verified.attribute(attr::STATE).unwrap_or_default();
    let attrs: [(u8, &[u8]); 2] = [(attr::REPLY_MESSAGE, b"fuzz"), (attr::STATE, state)];
    for code in [
        Code::AccessAccept,
        Code::AccessReject,
        Code::AccessChallenge,
    ] {
        if encode_reply(&mut reply, code, &verified, SECRET, &attrs).is_ok() {
            assert!(reply.len() <= MAX_PACKET_LEN);
            let decoded = Packet::decode(&reply).expect("our own reply decodes");
            verify_response(decoded, verified.authenticator(), SECRET, true)
                .expect("our own reply verifies");
        } else {
            assert!(reply.is_empty());
        }
    }
});
