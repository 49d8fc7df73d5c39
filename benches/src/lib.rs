//! Shared fixtures of Tollgate's micro-benchmarks.
//!
//! Every benchmark and the allocation test measure the same thing: one realistic
//! Access-Request from a client in append mode (the password and the current TOTP code typed
//! into one field), built from a fixed shared secret, a fixed 20-byte TOTP seed and a fixed
//! clock reading, so that two runs of a benchmark time exactly the same work. The per-packet
//! path itself lives here too ([`per_packet_path`]), so that the benchmark that times it and
//! the test that counts its allocations cannot drift apart.

use tollgate_engine::login::{reply_code, split_appended, Outcome, RejectReason};
use tollgate_engine::otp::{self, TokenParams, TokenState, Verdict, VerifyPolicy};
use tollgate_engine::radius::{
    attr, encode_reply, encode_request, hide_password, unhide_password, verify_request, Code,
    DecodeError, EncodeError, Packet, PasswordError, VerifyError, MAX_PACKET_LEN, MAX_PASSWORD_LEN,
};
use zeroize::Zeroize;

/// The RADIUS shared secret between the NAS and the server.
pub const SECRET: &[u8] = b"bench-shared-secret-7f3a";

/// The user's TOTP seed: 20 octets, the size of an HMAC-SHA-1 key that authenticator apps
/// are usually enrolled with.
pub const TOTP_SEED: [u8; 20] = [
    0x3d, 0xc6, 0xca, 0xa4, 0x82, 0x4a, 0x6d, 0x28, 0x87, 0x67, 0xb2, 0x33, 0x1e, 0x20, 0xb4, 0x31,
    0x66, 0xcb, 0x85, 0xd9,
];

/// The clock reading, in unix seconds, at which every request is built and checked.
pub const NOW: u64 = 1_700_000_000;

/// The clock reading in milliseconds, for the credential cache.
pub const NOW_MS: u64 = NOW * 1000;

/// The user logging in.
pub const USER_NAME: &[u8] = b"alice@example.org";

/// The user's directory password, which precedes the passcode in User-Password.
pub const PASSWORD: &[u8] = b"Correct-Horse-Battery-9";

/// The Identifier of the request.
pub const IDENTIFIER: u8 = 42;

/// The Request Authenticator; a NAS draws it at random, a benchmark needs it fixed.
pub const REQUEST_AUTHENTICATOR: [u8; 16] = [
    0x8a, 0x1f, 0x52, 0x0c, 0xe4, 0x77, 0x19, 0xb0, 0x3e, 0x95, 0x61, 0xd2, 0x0b, 0xac, 0x48, 0xf7,
];

/// The NAS-IP-Address of the client (192.0.2.10, a documentation address).
pub const NAS_IP_ADDRESS: [u8; 4] = [192, 0, 2, 10];

/// The NAS-Port the user connected on.
pub const NAS_PORT: u32 = 17;

/// The Calling-Station-Id, the MAC address of the user's device as a NAS writes it.
pub const CALLING_STATION_ID: &[u8] = b"02-00-5E-10-00-01";

/// The token parameters: TOTP with HMAC-SHA-1, six digits and 30-second steps.
pub fn token_params() -> TokenParams {
    TokenParams::default()
}

/// The verification policy: one time step either side of now, as the server defaults to.
pub fn verify_policy() -> VerifyPolicy {
    VerifyPolicy {
        totp_window: 1,
        ..VerifyPolicy::default()
    }
}

/// A fresh token state whose `next_counter` is 0, so that every code in the window is new.
///
/// Benchmarks pass this same state on every iteration and drop the state an accept returns,
/// so every iteration accepts. The replay rule still runs in full; it simply never sees the
/// counter the previous iteration used, as it would if the server forgot to persist it.
pub fn token_state() -> TokenState {
    TokenState::default()
}

/// Anything that can stop a fixture from being built or the per-packet path from answering.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The datagram is not a structurally valid RADIUS packet.
    #[error("decode: {0}")]
    Decode(#[from] DecodeError),
    /// The datagram does not verify against the shared secret.
    #[error("verify: {0}")]
    Verify(#[from] VerifyError),
    /// The User-Password could not be hidden or revealed.
    #[error("user-password: {0}")]
    Password(#[from] PasswordError),
    /// A packet could not be encoded.
    #[error("encode: {0}")]
    Encode(#[from] EncodeError),
    /// The request carries no User-Password.
    #[error("the request carries no User-Password")]
    MissingUserPassword,
    /// The decision table discards the request instead of answering it.
    #[error("the request gets no reply")]
    NoReply,
    /// The token parameters produced no code, so no request can be built.
    #[error("the token parameters produce no code")]
    NoCode,
}

/// The requests every benchmark works on.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// The current TOTP code at [`NOW`], as ASCII digits.
    pub passcode: Vec<u8>,
    /// A six-digit code that matches no counter of the window, as ASCII digits.
    pub wrong_passcode: Vec<u8>,
    /// [`PASSWORD`] followed by [`Fixture::passcode`]: the User-Password field in clear.
    pub field: Vec<u8>,
    /// The Access-Request carrying the right passcode.
    pub accept_request: Vec<u8>,
    /// The Access-Request carrying [`Fixture::wrong_passcode`].
    pub reject_request: Vec<u8>,
}

impl Fixture {
    /// Builds both requests from the fixed secret, seed and clock reading.
    pub fn new() -> Result<Fixture, BenchError> {
        let params = token_params();
        let raw = otp::totp_counter(NOW, 30, 0);
        let passcode = code_at(&params, raw)?;
        // A wrong code is picked among repeated digits so that, by construction, it differs
        // from the code of every counter the window checks and is refused as no match.
        let mut window = Vec::new();
        for counter in raw.saturating_sub(1)..=raw.saturating_add(1) {
            window.push(code_at(&params, counter)?);
        }
        let wrong_passcode = (b'0'..=b'9')
            .map(|digit| vec![digit; usize::from(params.digits)])
            .find(|candidate| !window.contains(candidate))
            .ok_or(BenchError::NoCode)?;
        let field = [PASSWORD, &passcode].concat();
        let wrong_field = [PASSWORD, &wrong_passcode].concat();
        Ok(Fixture {
            accept_request: access_request(&field)?,
            reject_request: access_request(&wrong_field)?,
            passcode,
            wrong_passcode,
            field,
        })
    }
}

/// The code of the fixed seed at `counter`, as ASCII digits.
fn code_at(params: &TokenParams, counter: u64) -> Result<Vec<u8>, BenchError> {
    let mut out = [0u8; 8];
    let code = otp::code_at(&TOTP_SEED, params, counter, &mut out);
    if code.is_empty() {
        return Err(BenchError::NoCode);
    }
    Ok(code.to_vec())
}

/// Builds an Access-Request as a NAS in append mode sends it: Message-Authenticator first,
/// then User-Name, User-Password (`field` hidden with [`SECRET`]), NAS-IP-Address, NAS-Port
/// and Calling-Station-Id.
pub fn access_request(field: &[u8]) -> Result<Vec<u8>, BenchError> {
    let mut hidden = [0u8; MAX_PASSWORD_LEN];
    let hidden_len = hide_password(field, SECRET, &REQUEST_AUTHENTICATOR, &mut hidden)?;
    let hidden = hidden.get(..hidden_len).unwrap_or_default();
    let nas_port = NAS_PORT.to_be_bytes();
    let attributes: [(u8, &[u8]); 5] = [
        (attr::USER_NAME, USER_NAME),
        (attr::USER_PASSWORD, hidden),
        (attr::NAS_IP_ADDRESS, &NAS_IP_ADDRESS),
        (attr::NAS_PORT, &nas_port),
        (attr::CALLING_STATION_ID, CALLING_STATION_ID),
    ];
    let mut out = Vec::new();
    encode_request(
        &mut out,
        Code::AccessRequest,
        IDENTIFIER,
        &REQUEST_AUTHENTICATOR,
        SECRET,
        &attributes,
        true,
    )?;
    Ok(out)
}

/// A reply buffer grown to the largest packet, so that encoding into it never allocates.
pub fn reply_buffer() -> Vec<u8> {
    Vec::with_capacity(MAX_PACKET_LEN)
}

/// Decides a login from the clear User-Password field: split off the passcode, then check
/// it against the window of the token.
///
/// The directory password is not checked here: that check is an Argon2 verification or a
/// credential-cache hit, timed on its own by the `passwords` benchmark, and the engine has
/// no part in it.
pub fn decide(field: &[u8], state: &TokenState) -> Outcome {
    let params = token_params();
    let Some((_password, passcode)) = split_appended(field, params.digits) else {
        return Outcome::Reject(RejectReason::Malformed);
    };
    match otp::verify(&TOTP_SEED, &params, state, passcode, NOW, &verify_policy()) {
        Verdict::Accepted { .. } => Outcome::Accept,
        Verdict::Rejected(otp::RejectReason::Malformed) => Outcome::Reject(RejectReason::Malformed),
        Verdict::Rejected(otp::RejectReason::NoMatch) => Outcome::Reject(RejectReason::BadPasscode),
        Verdict::Rejected(otp::RejectReason::Replayed) => {
            Outcome::Reject(RejectReason::ReplayedPasscode)
        }
    }
}

/// The whole per-packet path of an append-mode login, writing the reply into `reply`:
/// decode, verify the Message-Authenticator, reveal User-Password, split off the passcode,
/// verify it, pick the reply code and encode the reply.
///
/// The clear field is wiped before returning, as the server does. The token state an accept
/// would persist is dropped (see [`token_state`]). Returns what was concluded, so that
/// callers can check that the path they time is the one they meant to time.
pub fn per_packet_path(
    datagram: &[u8],
    state: &TokenState,
    reply: &mut Vec<u8>,
) -> Result<Outcome, BenchError> {
    let packet = Packet::decode(datagram)?;
    let request = verify_request(packet, SECRET, true)?;
    let hidden = request
        .attribute(attr::USER_PASSWORD)
        .ok_or(BenchError::MissingUserPassword)?;
    let mut clear = [0u8; MAX_PASSWORD_LEN];
    let outcome = unhide_password(hidden, SECRET, request.authenticator(), &mut clear)
        .map(|field| decide(field, state));
    clear.zeroize();
    let outcome = outcome?;
    let code = reply_code(request.code(), outcome).ok_or(BenchError::NoReply)?;
    encode_reply(reply, code, &request, SECRET, &[])?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_engine::radius::verify_response;

    #[test]
    fn the_right_passcode_is_accepted_and_the_wrong_one_refused() {
        let fixture = Fixture::new().unwrap();
        assert_ne!(fixture.passcode, fixture.wrong_passcode);
        let mut reply = reply_buffer();
        let outcome = per_packet_path(&fixture.accept_request, &token_state(), &mut reply).unwrap();
        assert_eq!(outcome, Outcome::Accept);
        let answer = Packet::decode(&reply).unwrap();
        let answer = verify_response(answer, &REQUEST_AUTHENTICATOR, SECRET, true).unwrap();
        assert_eq!(answer.code(), Code::AccessAccept);
        assert_eq!(answer.identifier(), IDENTIFIER);

        let outcome = per_packet_path(&fixture.reject_request, &token_state(), &mut reply).unwrap();
        assert_eq!(outcome, Outcome::Reject(RejectReason::BadPasscode));
        let answer = Packet::decode(&reply).unwrap();
        let answer = verify_response(answer, &REQUEST_AUTHENTICATOR, SECRET, true).unwrap();
        assert_eq!(answer.code(), Code::AccessReject);
    }

    #[test]
    fn the_request_carries_every_attribute_with_the_authenticator_first() {
        let fixture = Fixture::new().unwrap();
        let packet = Packet::decode(&fixture.accept_request).unwrap();
        let types: Vec<u8> = packet.attributes().map(|a| a.typ).collect();
        assert_eq!(
            types,
            [
                attr::MESSAGE_AUTHENTICATOR,
                attr::USER_NAME,
                attr::USER_PASSWORD,
                attr::NAS_IP_ADDRESS,
                attr::NAS_PORT,
                attr::CALLING_STATION_ID,
            ]
        );
        let mut clear = [0u8; MAX_PASSWORD_LEN];
        let hidden = packet.attribute(attr::USER_PASSWORD).unwrap();
        let field = unhide_password(hidden, SECRET, &REQUEST_AUTHENTICATOR, &mut clear).unwrap();
        assert_eq!(field, &fixture.field[..]);
    }

    #[test]
    fn a_persisted_state_turns_the_same_request_into_a_replay() {
        let fixture = Fixture::new().unwrap();
        let raw = otp::totp_counter(NOW, 30, 0);
        let used = TokenState {
            next_counter: raw + 1,
            drift: 0,
        };
        let mut reply = reply_buffer();
        let outcome = per_packet_path(&fixture.accept_request, &used, &mut reply).unwrap();
        assert_eq!(outcome, Outcome::Reject(RejectReason::ReplayedPasscode));
    }
}
