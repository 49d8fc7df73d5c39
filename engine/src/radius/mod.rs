//! The RADIUS codec: decoding, authenticating and encoding RADIUS packets.
//!
//! This module owns the wire format of RADIUS (RFC 2865, RFC 2866, RFC 2869, RFC 3579,
//! RFC 5080, RFC 5997) and nothing else: it turns a received datagram into a zero-copy
//! [`Packet`], checks its authenticity with the shared secret ([`verify_request`],
//! [`verify_response`]), reveals and hides User-Password values ([`unhide_password`],
//! [`hide_password`]) and writes replies and requests into a reused buffer ([`encode_reply`],
//! [`encode_request`]). It performs no I/O, reads no clock, draws no randomness (authenticators
//! for requests are passed in), never panics on any input and does not allocate on the decode,
//! verify, unhide or encode path.
//!
//! The usual server flow is [`Packet::decode`], then [`verify_request`], then
//! [`unhide_password`] on the User-Password value, then [`encode_reply`] with the verdict.

pub mod attr;
mod auth;
mod code;
mod encode;
mod error;
mod packet;
mod password;

pub use attr::{Attribute, Attributes};
pub use auth::{
    verify_request, verify_request_with, verify_response, MacKey, SignaturePolicy, Verified,
};
pub use code::Code;
pub use encode::{encode_reply, encode_reply_with, encode_request};
pub use error::{DecodeError, EncodeError, PasswordError, VerifyError};
pub use packet::{Packet, MAX_ATTRIBUTES, MAX_PACKET_LEN, MIN_PACKET_LEN};
pub use password::{hide_password, unhide_password, MAX_PASSWORD_LEN};

#[cfg(test)]
mod tests;
