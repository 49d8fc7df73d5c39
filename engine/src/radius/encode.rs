//! Encoding of replies and requests into a caller-supplied buffer.
//!
//! This module owns building packets on the wire: the header, the attributes, the Length
//! field and the authenticators. Every reply carries a Message-Authenticator as its first
//! attribute (RFC 3579 §3.2, and the mitigation for the "Blast-RADIUS" forgery, which relies on
//! attacker-chosen content ahead of it), followed by the caller's attributes and then the
//! request's Proxy-State attributes in their original order (RFC 2865 §5.33).
//!
//! Packets are written into a `Vec<u8>` the caller reuses. The encoder reserves
//! [`MAX_PACKET_LEN`] octets before writing, and every limit is checked before the octets that
//! would break it are appended, so the buffer grows at most once, on its first use (or never,
//! if it was made with `Vec::with_capacity(MAX_PACKET_LEN)`), and is never reallocated.

use super::attr::{self, MAX_VALUE_LEN};
use super::auth::{message_authenticator, packet_digest, MacKey, Verified, ZERO_AUTHENTICATOR};
use super::code::Code;
use super::error::EncodeError;
use super::packet::{MAX_ATTRIBUTES, MAX_PACKET_LEN, MIN_PACKET_LEN};

/// Where the Message-Authenticator value sits when it is the first attribute.
const FIRST_ATTRIBUTE_VALUE: usize = MIN_PACKET_LEN + 2;

/// Encode a reply (Accept / Reject / Challenge, or Access-Accept to a Status-Server) to
/// `request` into `out` (cleared first): header, then Message-Authenticator FIRST, then
/// `attributes` in order, then every Proxy-State of the request copied in order; the
/// Message-Authenticator is computed over the reply with the request's authenticator in the
/// authenticator field (RFC 3579 §3.2), then the Response Authenticator (RFC 2865 §3).
///
/// An Access-Request may be answered with Access-Accept, Access-Reject or Access-Challenge,
/// and a Status-Server with Access-Accept (RFC 5997 §3); any other pairing is
/// [`EncodeError::InvalidReplyCode`]. `attributes` must not contain a Message-Authenticator.
/// On error `out` is left empty. `out` is grown to [`MAX_PACKET_LEN`] on its first use and
/// never reallocated afterwards, so a reused buffer makes this allocation-free.
pub fn encode_reply(
    out: &mut Vec<u8>,
    code: Code,
    request: &Verified<'_>,
    secret: &[u8],
    attributes: &[(u8, &[u8])],
) -> Result<(), EncodeError> {
    encode_reply_with(out, code, request, secret, &MacKey::new(secret), attributes)
}

/// [`encode_reply`] with the secret's key schedule already made; `mac` must be
/// `MacKey::new(secret)`.
pub fn encode_reply_with(
    out: &mut Vec<u8>,
    code: Code,
    request: &Verified<'_>,
    secret: &[u8],
    mac: &MacKey,
    attributes: &[(u8, &[u8])],
) -> Result<(), EncodeError> {
    let result = write_reply(out, code, request, secret, mac, attributes);
    if result.is_err() {
        out.clear();
    }
    result
}

/// Encode a request (used by our load harness and `radius-test` client).
///
/// For Access-Request and Status-Server the given authenticator is used and, if
/// `message_authenticator` is true, a Message-Authenticator is placed first and computed; for
/// Accounting-Request the Request Authenticator is computed (RFC 2866 §3). The caller hides the
/// User-Password itself with [`hide_password`](super::hide_password), using the same
/// authenticator.
///
/// A Status-Server always gets a Message-Authenticator, whatever the flag says, because
/// RFC 5997 §3 requires one and receivers (ours included) drop it otherwise. For an
/// Accounting-Request the given `authenticator` is ignored; if a Message-Authenticator is
/// asked for, it is computed with a zero authenticator before the Request Authenticator
/// covers the whole packet. `attributes` must not contain a Message-Authenticator. On error
/// `out` is left empty.
pub fn encode_request(
    out: &mut Vec<u8>,
    code: Code,
    identifier: u8,
    authenticator: &[u8; 16],
    secret: &[u8],
    attributes: &[(u8, &[u8])],
    message_authenticator: bool,
) -> Result<(), EncodeError> {
    let result = write_request(
        out,
        code,
        identifier,
        authenticator,
        secret,
        attributes,
        message_authenticator,
    );
    if result.is_err() {
        out.clear();
    }
    result
}

fn write_reply(
    out: &mut Vec<u8>,
    code: Code,
    request: &Verified<'_>,
    secret: &[u8],
    key: &MacKey,
    attributes: &[(u8, &[u8])],
) -> Result<(), EncodeError> {
    if secret.is_empty() {
        return Err(EncodeError::EmptySecret);
    }
    let allowed = match request.code() {
        Code::AccessRequest => matches!(
            code,
            Code::AccessAccept | Code::AccessReject | Code::AccessChallenge
        ),
        Code::StatusServer => code == Code::AccessAccept,
        _ => false,
    };
    if !allowed {
        return Err(EncodeError::InvalidReplyCode);
    }
    let request_authenticator = request.authenticator();
    let mut w = Writer::start(out, code, request.identifier(), request_authenticator);
    w.push_message_authenticator()?;
    w.push_all(attributes)?;
    for proxy_state in request.attributes_of(attr::PROXY_STATE) {
        w.push(attr::PROXY_STATE, proxy_state)?;
    }
    w.finish_length()?;
    // The Message-Authenticator is computed first because the Response Authenticator covers
    // it; at this point the header still holds the Request Authenticator, as RFC 3579 §3.2
    // requires for replies.
    let mac = message_authenticator(out, request_authenticator, FIRST_ATTRIBUTE_VALUE, key);
    write_at(out, FIRST_ATTRIBUTE_VALUE, &mac);
    let response_authenticator = packet_digest(out, request_authenticator, secret);
    write_at(out, 4, &response_authenticator);
    Ok(())
}

fn write_request(
    out: &mut Vec<u8>,
    code: Code,
    identifier: u8,
    authenticator: &[u8; 16],
    secret: &[u8],
    attributes: &[(u8, &[u8])],
    message_authenticator_wanted: bool,
) -> Result<(), EncodeError> {
    if secret.is_empty() {
        return Err(EncodeError::EmptySecret);
    }
    let (header_authenticator, with_mac) = match code {
        Code::AccessRequest => (authenticator, message_authenticator_wanted),
        Code::StatusServer => (authenticator, true),
        Code::AccountingRequest => (&ZERO_AUTHENTICATOR, message_authenticator_wanted),
        _ => return Err(EncodeError::UnsupportedCode),
    };
    let mut w = Writer::start(out, code, identifier, header_authenticator);
    if with_mac {
        w.push_message_authenticator()?;
    }
    w.push_all(attributes)?;
    w.finish_length()?;
    if with_mac {
        let key = MacKey::new(secret);
        let mac = message_authenticator(out, header_authenticator, FIRST_ATTRIBUTE_VALUE, &key);
        write_at(out, FIRST_ATTRIBUTE_VALUE, &mac);
    }
    if code == Code::AccountingRequest {
        // RFC 2866 §3: the Request Authenticator is the MD5 of the packet with a zero
        // authenticator, which is what the header holds until this line.
        let request_authenticator = packet_digest(out, &ZERO_AUTHENTICATOR, secret);
        write_at(out, 4, &request_authenticator);
    }
    Ok(())
}

/// Overwrites `out[offset..offset + 16]`, a field the encoder has already reserved.
fn write_at(out: &mut [u8], offset: usize, value: &[u8; 16]) {
    if let Some(field) = out.get_mut(offset..offset + value.len()) {
        field.copy_from_slice(value);
    }
}

/// Appends a packet to a buffer while enforcing the size limits before each write.
struct Writer<'v> {
    out: &'v mut Vec<u8>,
    attributes: usize,
}

impl<'v> Writer<'v> {
    /// Clears `out` and writes a header whose Length is filled in by `finish_length`.
    fn start(out: &'v mut Vec<u8>, code: Code, identifier: u8, authenticator: &[u8; 16]) -> Self {
        out.clear();
        // Reserving the largest packet up front means the buffer grows at most once in its
        // life, on its first use, and is never reallocated after that.
        out.reserve(MAX_PACKET_LEN);
        out.extend_from_slice(&[code.as_u8(), identifier, 0, 0]);
        out.extend_from_slice(authenticator);
        Writer { out, attributes: 0 }
    }

    /// Appends one attribute, refusing values or packets that break the protocol's limits.
    fn push(&mut self, typ: u8, value: &[u8]) -> Result<(), EncodeError> {
        if value.len() > MAX_VALUE_LEN {
            return Err(EncodeError::AttributeTooLong);
        }
        // The Length octet counts the Type and Length octets as well as the value.
        let Ok(len) = u8::try_from(value.len() + 2) else {
            return Err(EncodeError::AttributeTooLong);
        };
        if self.attributes >= MAX_ATTRIBUTES {
            return Err(EncodeError::TooManyAttributes);
        }
        if self.out.len() + usize::from(len) > MAX_PACKET_LEN {
            return Err(EncodeError::PacketTooLong);
        }
        self.out.extend_from_slice(&[typ, len]);
        self.out.extend_from_slice(value);
        self.attributes += 1;
        Ok(())
    }

    /// Appends the caller's attributes, which may not include a Message-Authenticator since
    /// the encoder places and computes that one itself.
    fn push_all(&mut self, attributes: &[(u8, &[u8])]) -> Result<(), EncodeError> {
        for &(typ, value) in attributes {
            if typ == attr::MESSAGE_AUTHENTICATOR {
                return Err(EncodeError::MessageAuthenticatorNotAllowed);
            }
            self.push(typ, value)?;
        }
        Ok(())
    }

    /// Appends a zeroed Message-Authenticator to be computed once the packet is complete.
    fn push_message_authenticator(&mut self) -> Result<(), EncodeError> {
        self.push(attr::MESSAGE_AUTHENTICATOR, &ZERO_AUTHENTICATOR)
    }

    /// Writes the Length field now that every attribute is in place.
    fn finish_length(&mut self) -> Result<(), EncodeError> {
        let Ok(len) = u16::try_from(self.out.len()) else {
            return Err(EncodeError::PacketTooLong);
        };
        if let Some(field) = self.out.get_mut(2..4) {
            field.copy_from_slice(&len.to_be_bytes());
        }
        Ok(())
    }
}
