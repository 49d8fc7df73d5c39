//! Typed errors of the RADIUS codec.
//!
//! This module owns the four error enums that the codec returns: one for taking a datagram
//! apart ([`DecodeError`]), one for checking its authenticity ([`VerifyError`]), one for the
//! User-Password cipher ([`PasswordError`]) and one for building packets ([`EncodeError`]).
//! Every variant is a unit variant so that the errors are `Copy`, cost nothing to return on the
//! hot path, and map onto a small fixed set of metric labels through `as_str`.

use thiserror::Error;

/// Why a datagram could not be read as a RADIUS packet (RFC 2865 §3, §5; RFC 2869 §5.14).
#[derive(Error, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// The datagram is shorter than the 20-octet RADIUS header.
    #[error("datagram is shorter than the 20-octet RADIUS header")]
    TooShort,
    /// The Length field says fewer than 20 octets, which cannot even hold the header.
    #[error("Length field is below the 20-octet minimum")]
    LengthTooSmall,
    /// The Length field says more than 4096 octets, the largest packet RFC 2865 allows.
    #[error("Length field exceeds the 4096-octet maximum")]
    TooLong,
    /// The Length field is larger than the datagram that arrived, so the packet was truncated.
    #[error("Length field is larger than the datagram (packet truncated)")]
    Truncated,
    /// An attribute's Length octet is below 2, so it cannot even hold its own header.
    #[error("attribute length is below 2 octets")]
    AttributeTooShort,
    /// An attribute runs past the end of the packet given by the Length field.
    #[error("attribute runs past the end of the packet")]
    AttributeOverrun,
    /// The packet carries more attributes than [`MAX_ATTRIBUTES`](super::MAX_ATTRIBUTES).
    #[error("packet carries more than the allowed number of attributes")]
    TooManyAttributes,
    /// More than one Message-Authenticator attribute is present (RFC 3579 §3.2 allows one).
    #[error("packet carries more than one Message-Authenticator")]
    DuplicateMessageAuthenticator,
    /// A Message-Authenticator attribute whose length is not 18 octets.
    #[error("Message-Authenticator attribute is not 18 octets long")]
    BadMessageAuthenticatorLength,
    /// User-Name, User-Password, CHAP-Password or State appears more than once (RFC 2865
    /// §5.44 allows at most one of each): a server that picked one of two would invite the
    /// NAS and itself to disagree on who logged in.
    #[error("packet carries more than one User-Name, User-Password, CHAP-Password or State")]
    DuplicateAttribute,
}

impl DecodeError {
    /// A short snake_case label for this error, suitable as a bounded metrics label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::LengthTooSmall => "length_too_small",
            Self::TooLong => "too_long",
            Self::Truncated => "truncated",
            Self::AttributeTooShort => "attribute_too_short",
            Self::AttributeOverrun => "attribute_overrun",
            Self::TooManyAttributes => "too_many_attributes",
            Self::DuplicateMessageAuthenticator => "duplicate_message_authenticator",
            Self::BadMessageAuthenticatorLength => "bad_message_authenticator_length",
            Self::DuplicateAttribute => "duplicate_attribute",
        }
    }
}

/// Why a well-formed packet was not accepted as authentic.
#[derive(Error, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerifyError {
    /// The shared secret is empty; an empty secret authenticates nothing, so it is refused.
    #[error("shared secret is empty")]
    EmptySecret,
    /// The packet's code is not one this function knows how to authenticate.
    #[error("packet code is not supported here")]
    UnsupportedCode,
    /// A Message-Authenticator is required (by configuration, by an EAP-Message, or for
    /// Status-Server) but the packet has none.
    #[error("required Message-Authenticator is missing")]
    MissingMessageAuthenticator,
    /// The Message-Authenticator does not match the HMAC-MD5 computed with the shared secret.
    #[error("Message-Authenticator does not match")]
    BadMessageAuthenticator,
    /// The Response Authenticator of a reply does not match (RFC 2865 §3).
    #[error("Response Authenticator does not match")]
    BadResponseAuthenticator,
    /// The Request Authenticator of an Accounting-Request does not match (RFC 2866 §3).
    #[error("Request Authenticator does not match")]
    BadRequestAuthenticator,
    /// An Access-Request carries Proxy-State but no Message-Authenticator, from a client
    /// not explicitly allowed to send one so: the BlastRADIUS forgery (CVE-2024-3596) rides
    /// on exactly that shape.
    #[error("Proxy-State without Message-Authenticator")]
    UnsignedProxyState,
}

impl VerifyError {
    /// A short snake_case label for this error, suitable as a bounded metrics label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::EmptySecret => "empty_secret",
            Self::UnsupportedCode => "unsupported_code",
            Self::MissingMessageAuthenticator => "missing_message_authenticator",
            Self::BadMessageAuthenticator => "bad_message_authenticator",
            Self::BadResponseAuthenticator => "bad_response_authenticator",
            Self::BadRequestAuthenticator => "bad_request_authenticator",
            Self::UnsignedProxyState => "proxy_state_without_message_authenticator",
        }
    }
}

/// Why a User-Password could not be hidden or revealed (RFC 2865 §5.2).
#[derive(Error, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PasswordError {
    /// The shared secret is empty, which would leave the password protected by MD5 alone.
    #[error("shared secret is empty")]
    EmptySecret,
    /// The clear password is longer than [`MAX_PASSWORD_LEN`](super::MAX_PASSWORD_LEN) octets.
    #[error("password is longer than 128 octets")]
    PasswordTooLong,
    /// The hidden value is not a multiple of 16 octets between 16 and 128.
    #[error("hidden password is not a multiple of 16 octets between 16 and 128")]
    BadHiddenLength,
}

impl PasswordError {
    /// A short snake_case label for this error, suitable as a bounded metrics label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::EmptySecret => "empty_secret",
            Self::PasswordTooLong => "password_too_long",
            Self::BadHiddenLength => "bad_hidden_length",
        }
    }
}

/// Why a packet could not be encoded.
#[derive(Error, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncodeError {
    /// The shared secret is empty; the codec refuses to sign with it.
    #[error("shared secret is empty")]
    EmptySecret,
    /// The code is not a request this encoder can build (Access-Request, Accounting-Request,
    /// Status-Server).
    #[error("code is not a request the encoder supports")]
    UnsupportedCode,
    /// The reply code does not answer the request's code (for example an Access-Challenge to a
    /// Status-Server).
    #[error("reply code does not answer the request's code")]
    InvalidReplyCode,
    /// The caller passed a Message-Authenticator; the encoder computes and places it itself.
    #[error("Message-Authenticator is added by the encoder and cannot be passed in")]
    MessageAuthenticatorNotAllowed,
    /// An attribute value is longer than 253 octets, the most one attribute can carry.
    #[error("attribute value is longer than 253 octets")]
    AttributeTooLong,
    /// The packet would carry more than [`MAX_ATTRIBUTES`](super::MAX_ATTRIBUTES) attributes,
    /// which our own decoder would refuse.
    #[error("packet would carry more than the allowed number of attributes")]
    TooManyAttributes,
    /// The packet would be longer than 4096 octets.
    #[error("packet would be longer than 4096 octets")]
    PacketTooLong,
}

impl EncodeError {
    /// A short snake_case label for this error, suitable as a bounded metrics label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::EmptySecret => "empty_secret",
            Self::UnsupportedCode => "unsupported_code",
            Self::InvalidReplyCode => "invalid_reply_code",
            Self::MessageAuthenticatorNotAllowed => "message_authenticator_not_allowed",
            Self::AttributeTooLong => "attribute_too_long",
            Self::TooManyAttributes => "too_many_attributes",
            Self::PacketTooLong => "packet_too_long",
        }
    }
}
