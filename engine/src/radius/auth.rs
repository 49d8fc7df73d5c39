//! Packet authentication: the Message-Authenticator and the Request/Response Authenticators.
//!
//! This module owns every use of the shared secret that proves who sent a packet: the
//! HMAC-MD5 Message-Authenticator of RFC 3579 §3.2 (with the Status-Server rules of RFC 5997),
//! the MD5 Response Authenticator of RFC 2865 §3 and the Accounting-Request Request
//! Authenticator of RFC 2866 §3. The digests are fed piece by piece so that nothing is copied
//! or allocated, and every comparison against a received value runs in constant time so that
//! response timing leaks nothing about the expected value.

use core::ops::Deref;

use hmac::digest::Key;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

use super::attr;
use super::code::Code;
use super::error::VerifyError;
use super::packet::{Packet, HEADER_PREFIX_LEN, MIN_PACKET_LEN};

type HmacMd5 = Hmac<Md5>;

/// The all-zero authenticator used while computing an Accounting-Request's authenticators.
pub(crate) const ZERO_AUTHENTICATOR: [u8; 16] = [0; 16];

/// A packet whose authenticity was checked against the shared secret.
///
/// Only [`verify_request`] and [`verify_response`] create one, so holding a `Verified` is
/// proof that the checks ran. It dereferences to the underlying [`Packet`].
#[derive(Copy, Clone, Debug)]
pub struct Verified<'a>(Packet<'a>);

impl<'a> Verified<'a> {
    /// The verified packet itself.
    pub fn packet(&self) -> Packet<'a> {
        self.0
    }
}

impl<'a> Deref for Verified<'a> {
    type Target = Packet<'a>;

    fn deref(&self) -> &Packet<'a> {
        &self.0
    }
}

/// The HMAC-MD5 key schedule of a shared secret, worked out once.
///
/// Every Message-Authenticator under a secret starts from the same two MD5 states (the
/// secret padded and XORed with `ipad` and `opad`, RFC 2104 §2): a server keeps one
/// `MacKey` per client and saves those two MD5 blocks on every check and every reply. It
/// holds what the secret holds, so it is kept and dropped like the secret, and never shown.
#[derive(Clone)]
pub struct MacKey(HmacMd5);

impl MacKey {
    /// The key schedule of `secret`.
    pub fn new(secret: &[u8]) -> MacKey {
        MacKey(hmac_md5(secret))
    }
}

impl core::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MacKey(..)")
    }
}

/// When an Access-Request must carry a Message-Authenticator: a client's policy.
///
/// A `bool` converts into the policy that requires it (`true`) or requires it only where
/// the protocol or the BlastRADIUS rule does (`false`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct SignaturePolicy {
    /// Every Access-Request must carry one.
    pub require_message_authenticator: bool,
    /// A request with Proxy-State but without Message-Authenticator is accepted. Off by
    /// default: such a request is the shape of the BlastRADIUS forgery, so it is dropped
    /// even from a client that does not require Message-Authenticator, unless that client
    /// is a proxy known to strip it (and so configured).
    pub allow_unsigned_proxy_state: bool,
}

impl From<bool> for SignaturePolicy {
    fn from(require_message_authenticator: bool) -> Self {
        SignaturePolicy {
            require_message_authenticator,
            allow_unsigned_proxy_state: false,
        }
    }
}

/// Server side: checks an incoming request with the client's shared secret.
///
/// * Access-Request: a Message-Authenticator, if present, must be the HMAC-MD5 of the packet
///   under the secret (RFC 3579 §3.2). If absent, the request is refused when the policy
///   requires one, when it carries an EAP-Message (RFC 3579 §3.1), or when it carries
///   Proxy-State and the policy does not allow that unsigned ([`VerifyError::UnsignedProxyState`]).
///   A request without one is otherwise accepted: its only protection is then the password
///   hiding, which is why deployments should require it.
/// * Status-Server: a Message-Authenticator is always required (RFC 5997 §3).
/// * Accounting-Request: the Request Authenticator must be the MD5 of the packet with a zero
///   authenticator followed by the secret (RFC 2866 §3); a Message-Authenticator, if present,
///   is checked too, computed over the packet with a zero authenticator.
/// * Any other code is refused with [`VerifyError::UnsupportedCode`].
pub fn verify_request<'a>(
    p: Packet<'a>,
    secret: &[u8],
    policy: impl Into<SignaturePolicy>,
) -> Result<Verified<'a>, VerifyError> {
    verify_request_with(p, secret, &MacKey::new(secret), policy)
}

/// [`verify_request`] with the secret's key schedule already made; `mac` must be
/// `MacKey::new(secret)`.
pub fn verify_request_with<'a>(
    p: Packet<'a>,
    secret: &[u8],
    mac: &MacKey,
    policy: impl Into<SignaturePolicy>,
) -> Result<Verified<'a>, VerifyError> {
    if secret.is_empty() {
        return Err(VerifyError::EmptySecret);
    }
    let policy = policy.into();
    match p.code() {
        Code::AccessRequest => {
            let required =
                policy.require_message_authenticator || p.attribute(attr::EAP_MESSAGE).is_some();
            if !required
                && p.message_authenticator().is_none()
                && !policy.allow_unsigned_proxy_state
                && p.attribute(attr::PROXY_STATE).is_some()
            {
                return Err(VerifyError::UnsignedProxyState);
            }
            check_message_authenticator(&p, p.authenticator(), mac, required)?;
        }
        Code::StatusServer => {
            check_message_authenticator(&p, p.authenticator(), mac, true)?;
        }
        Code::AccountingRequest => {
            let expected = packet_digest(p.bytes(), &ZERO_AUTHENTICATOR, secret);
            if !ct_eq(&expected, p.authenticator()) {
                return Err(VerifyError::BadRequestAuthenticator);
            }
            check_message_authenticator(&p, &ZERO_AUTHENTICATOR, mac, false)?;
        }
        _ => return Err(VerifyError::UnsupportedCode),
    }
    Ok(Verified(p))
}

/// Client side: checks a reply against the Request Authenticator we sent.
///
/// The Response Authenticator must be the MD5 of the reply with `request_authenticator` in
/// place of its own, followed by the secret (RFC 2865 §3, RFC 2866 §3). A
/// Message-Authenticator, computed with `request_authenticator` in the authenticator field
/// (RFC 3579 §3.2), is checked if present and required if `require_message_authenticator` is
/// set. Access-Accept, Access-Reject, Access-Challenge and Accounting-Response are supported.
/// Matching the Identifier to the outstanding request is left to the caller.
pub fn verify_response<'a>(
    p: Packet<'a>,
    request_authenticator: &[u8; 16],
    secret: &[u8],
    require_message_authenticator: bool,
) -> Result<Verified<'a>, VerifyError> {
    if secret.is_empty() {
        return Err(VerifyError::EmptySecret);
    }
    match p.code() {
        Code::AccessAccept
        | Code::AccessReject
        | Code::AccessChallenge
        | Code::AccountingResponse => {}
        _ => return Err(VerifyError::UnsupportedCode),
    }
    if require_message_authenticator && p.message_authenticator().is_none() {
        return Err(VerifyError::MissingMessageAuthenticator);
    }
    let expected = packet_digest(p.bytes(), request_authenticator, secret);
    if !ct_eq(&expected, p.authenticator()) {
        return Err(VerifyError::BadResponseAuthenticator);
    }
    check_message_authenticator(&p, request_authenticator, &MacKey::new(secret), false)?;
    Ok(Verified(p))
}

/// Checks the packet's Message-Authenticator, if any, computed with `authenticator` in the
/// header; a missing one is an error only when `required`.
fn check_message_authenticator(
    p: &Packet<'_>,
    authenticator: &[u8; 16],
    mac: &MacKey,
    required: bool,
) -> Result<(), VerifyError> {
    let (Some(offset), Some(received)) =
        (p.message_authenticator_offset(), p.message_authenticator())
    else {
        return if required {
            Err(VerifyError::MissingMessageAuthenticator)
        } else {
            Ok(())
        };
    };
    let expected = message_authenticator(p.bytes(), authenticator, offset, mac);
    if ct_eq(&expected, received) {
        Ok(())
    } else {
        Err(VerifyError::BadMessageAuthenticator)
    }
}

/// Compares two 16-octet values in constant time.
fn ct_eq(a: &[u8; 16], b: &[u8; 16]) -> bool {
    bool::from(a.ct_eq(b))
}

/// Returns `bytes[range]`, or nothing if the range does not fit.
///
/// Every caller passes ranges inside a packet the decoder or encoder has already bounded, so
/// the fallback never happens; if it did, the digest would simply not match and the packet
/// would be refused, which is the safe outcome.
fn part(bytes: &[u8], range: impl core::slice::SliceIndex<[u8], Output = [u8]>) -> &[u8] {
    bytes.get(range).unwrap_or_default()
}

/// MD5 over the packet with `authenticator` in place of its Authenticator field, followed by
/// the secret.
///
/// This one formula is the Response Authenticator of RFC 2865 §3 (given the Request
/// Authenticator) and the Accounting-Request Request Authenticator of RFC 2866 §3 (given
/// sixteen zero octets).
pub(crate) fn packet_digest(bytes: &[u8], authenticator: &[u8; 16], secret: &[u8]) -> [u8; 16] {
    Md5::new()
        .chain_update(part(bytes, ..HEADER_PREFIX_LEN))
        .chain_update(authenticator)
        .chain_update(part(bytes, MIN_PACKET_LEN..))
        .chain_update(secret)
        .finalize()
        .into()
}

/// HMAC-MD5 over the packet with `authenticator` in place of its Authenticator field and the
/// sixteen octets of the Message-Authenticator value at `value_offset` taken as zero
/// (RFC 3579 §3.2).
pub(crate) fn message_authenticator(
    bytes: &[u8],
    authenticator: &[u8; 16],
    value_offset: usize,
    key: &MacKey,
) -> [u8; 16] {
    let mut mac = key.0.clone();
    mac.update(part(bytes, ..HEADER_PREFIX_LEN));
    mac.update(authenticator);
    mac.update(part(bytes, MIN_PACKET_LEN..value_offset));
    mac.update(&ZERO_AUTHENTICATOR);
    mac.update(part(bytes, value_offset.saturating_add(16)..));
    mac.finalize().into_bytes().into()
}

/// An HMAC-MD5 instance keyed with `secret`.
fn hmac_md5(secret: &[u8]) -> HmacMd5 {
    // HMAC (RFC 2104 §2) first hashes a key longer than the 64-octet MD5 block and pads a
    // shorter one with zeros. Doing that here yields a key of exactly one block, which the
    // infallible constructor takes, so there is no error path for a failure that cannot occur.
    let mut key = Key::<HmacMd5>::default();
    if secret.len() > key.len() {
        let digest = Md5::digest(secret);
        if let Some(head) = key.get_mut(..digest.len()) {
            head.copy_from_slice(&digest);
        }
    } else if let Some(head) = key.get_mut(..secret.len()) {
        head.copy_from_slice(secret);
    }
    <HmacMd5 as hmac::digest::KeyInit>::new(&key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn hmac_md5_matches_rfc_2202_vectors() {
        // RFC 2202 §2, test cases 1, 2 and 6 (the last one uses an 80-octet key).
        let cases: [(&[u8], &[u8], &str); 3] = [
            (&[0x0b; 16], b"Hi There", "9294727a3638bb1c13f48ef8158bfc9d"),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "750c783e6ab0b503eaa86e310a5db738",
            ),
            (
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd",
            ),
        ];
        for (key, data, want) in cases {
            let mut mac = hmac_md5(key);
            mac.update(data);
            assert_eq!(mac.finalize().into_bytes().to_vec(), hex(want));
        }
    }

    #[test]
    fn hmac_md5_agrees_with_the_slice_constructor_for_every_key_length() {
        for n in 0..=200usize {
            let key: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
            let mut ours = hmac_md5(&key);
            ours.update(b"radius");
            let mut reference = HmacMd5::new_from_slice(&key).unwrap();
            reference.update(b"radius");
            assert_eq!(
                ours.finalize().into_bytes(),
                reference.finalize().into_bytes()
            );
        }
    }

    #[test]
    fn verified_derefs_to_its_packet() {
        let mut b = vec![4, 9, 0, 20];
        b.extend_from_slice(&[0; 16]);
        let digest = packet_digest(&b, &ZERO_AUTHENTICATOR, b"s");
        b[4..20].copy_from_slice(&digest);
        let v = verify_request(Packet::decode(&b).unwrap(), b"s", false).unwrap();
        assert_eq!(v.identifier(), 9);
        assert_eq!(v.packet().bytes(), &b[..]);
    }
}
