//! RADIUS packet codes.
//!
//! This module owns the mapping between the Code octet of the header (RFC 2865 §3, RFC 2866,
//! RFC 5997) and the [`Code`] enum. Codes the server has no use for are kept as
//! [`Code::Other`] rather than rejected, so that decoding stays total and the decision about
//! an unexpected code is made by the caller.

/// The Code field of a RADIUS packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// Access-Request (1), RFC 2865 §4.1.
    AccessRequest,
    /// Access-Accept (2), RFC 2865 §4.2.
    AccessAccept,
    /// Access-Reject (3), RFC 2865 §4.3.
    AccessReject,
    /// Accounting-Request (4), RFC 2866 §4.1.
    AccountingRequest,
    /// Accounting-Response (5), RFC 2866 §4.2.
    AccountingResponse,
    /// Access-Challenge (11), RFC 2865 §4.4.
    AccessChallenge,
    /// Status-Server (12), RFC 5997.
    StatusServer,
    /// Status-Client (13), reserved by RFC 2865 §3.
    StatusClient,
    /// Any other code; never holds a value that has a named variant.
    Other(u8),
}

impl Code {
    /// Maps a Code octet to its variant; unknown values become [`Code::Other`].
    pub fn from_u8(v: u8) -> Code {
        match v {
            1 => Code::AccessRequest,
            2 => Code::AccessAccept,
            3 => Code::AccessReject,
            4 => Code::AccountingRequest,
            5 => Code::AccountingResponse,
            11 => Code::AccessChallenge,
            12 => Code::StatusServer,
            13 => Code::StatusClient,
            other => Code::Other(other),
        }
    }

    /// The Code octet as it appears on the wire.
    pub fn as_u8(self) -> u8 {
        match self {
            Code::AccessRequest => 1,
            Code::AccessAccept => 2,
            Code::AccessReject => 3,
            Code::AccountingRequest => 4,
            Code::AccountingResponse => 5,
            Code::AccessChallenge => 11,
            Code::StatusServer => 12,
            Code::StatusClient => 13,
            Code::Other(v) => v,
        }
    }

    /// The name RFC 2865 gives this code, or `None` for [`Code::Other`].
    pub fn name(self) -> Option<&'static str> {
        match self {
            Code::AccessRequest => Some("Access-Request"),
            Code::AccessAccept => Some("Access-Accept"),
            Code::AccessReject => Some("Access-Reject"),
            Code::AccountingRequest => Some("Accounting-Request"),
            Code::AccountingResponse => Some("Accounting-Response"),
            Code::AccessChallenge => Some("Access-Challenge"),
            Code::StatusServer => Some("Status-Server"),
            Code::StatusClient => Some("Status-Client"),
            Code::Other(_) => None,
        }
    }
}

impl From<u8> for Code {
    fn from(v: u8) -> Code {
        Code::from_u8(v)
    }
}

impl From<Code> for u8 {
    fn from(code: Code) -> u8 {
        code.as_u8()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_octet_round_trips() {
        for v in 0..=255u8 {
            assert_eq!(Code::from_u8(v).as_u8(), v);
            assert_eq!(u8::from(Code::from(v)), v);
        }
    }

    #[test]
    fn named_codes_are_never_other() {
        for v in [1u8, 2, 3, 4, 5, 11, 12, 13] {
            assert!(!matches!(Code::from_u8(v), Code::Other(_)));
            assert!(Code::from_u8(v).name().is_some());
        }
        assert_eq!(Code::from_u8(40), Code::Other(40));
        assert_eq!(Code::Other(40).name(), None);
    }
}
