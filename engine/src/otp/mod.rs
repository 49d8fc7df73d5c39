//! The one-time-passcode core: HOTP (RFC 4226) and TOTP (RFC 6238) code generation,
//! verification against a window of counters with replay protection and clock-drift
//! learning, two-code resynchronisation, base32 secrets and `otpauth://` enrolment URIs.
//!
//! Everything here is sans-io: the caller passes the key, the token's persisted
//! [`TokenState`] and the current time in unix seconds, and gets back a [`Verdict`] holding
//! the state to persist. Nothing reads the clock or a random number generator, and the
//! verification path neither allocates nor panics, because it runs once per RADIUS packet
//! on input chosen by whoever sent that packet.

pub mod base32;
mod hotp;
mod uri;
mod verify;

use std::fmt;

pub use hotp::{code_at, current_code, hotp, totp_counter};
pub use uri::otpauth_uri;
pub use verify::{fence, resync, verify};

/// The HMAC hash function a token uses.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC-SHA-1, the RFC 4226 default and what almost every authenticator app uses.
    Sha1,
    /// HMAC-SHA-256, allowed for TOTP by RFC 6238.
    Sha256,
    /// HMAC-SHA-512, allowed for TOTP by RFC 6238.
    Sha512,
}

impl Algorithm {
    /// The canonical upper-case name, as written in `otpauth://` URIs: `"SHA1"`, `"SHA256"`
    /// or `"SHA512"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    /// Parses an algorithm name case-insensitively (`"sha1"`, `"SHA256"`, `"Sha512"`), and
    /// returns `None` for anything else.
    pub fn parse(s: &str) -> Option<Algorithm> {
        [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a token is time-based or event-based.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A time-based token (RFC 6238) whose counter is `(now - t0) / period`.
    Totp {
        /// The length of one time step in seconds, `1..=3600`.
        period: u32,
        /// The unix time at which counting starts (RFC 6238 `T0`, almost always 0).
        t0: u64,
    },
    /// An event-based token (RFC 4226) whose counter advances on every button press.
    Hotp,
}

/// The fixed, enrolment-time parameters of a token.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TokenParams {
    /// Time-based or event-based, with the time step for TOTP.
    pub kind: TokenKind,
    /// The HMAC hash function.
    pub algorithm: Algorithm,
    /// The number of decimal digits in a code, `6..=8`.
    pub digits: u8,
}

/// The smallest number of digits a code may have (RFC 4226 requires at least six).
pub const MIN_DIGITS: u8 = 6;
/// The largest number of digits a code may have; eight is where authenticator apps stop and
/// what the fixed `[u8; 8]` output buffers hold.
pub const MAX_DIGITS: u8 = 8;
/// The longest TOTP time step accepted, one hour; longer steps would make a code usable for
/// so long that it stops being one-time in any useful sense.
pub const MAX_PERIOD: u32 = 3600;

impl TokenParams {
    /// Checks that the parameters are ones this module can serve: `digits` in `6..=8` and,
    /// for TOTP, `period` in `1..=3600`.
    ///
    /// [`verify`] and [`resync`] accept nothing for parameters that fail this check, so the
    /// server should call it when it loads a token rather than learn about it at login.
    pub fn validate(&self) -> Result<(), ParamsError> {
        if !(MIN_DIGITS..=MAX_DIGITS).contains(&self.digits) {
            return Err(ParamsError::Digits(self.digits));
        }
        if let TokenKind::Totp { period, .. } = self.kind {
            if !(1..=MAX_PERIOD).contains(&period) {
                return Err(ParamsError::Period(period));
            }
        }
        Ok(())
    }
}

impl Default for TokenParams {
    /// The parameters every authenticator app assumes when a URI leaves them out: TOTP,
    /// SHA-1, six digits, 30-second steps counted from the unix epoch.
    fn default() -> Self {
        TokenParams {
            kind: TokenKind::Totp { period: 30, t0: 0 },
            algorithm: Algorithm::Sha1,
            digits: 6,
        }
    }
}

/// Why [`TokenParams::validate`] refused a set of parameters.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// The number of digits is outside `6..=8`.
    #[error("a code must have 6 to 8 digits, not {0}")]
    Digits(u8),
    /// The TOTP time step is outside `1..=3600` seconds.
    #[error("a TOTP time step must be 1 to 3600 seconds, not {0}")]
    Period(u32),
}

/// Per-token mutable state, persisted by the server after every accept.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct TokenState {
    /// The smallest counter that may still be accepted: every counter below it was used (or
    /// skipped) and is refused as a replay. HOTP starts at its configured counter, TOTP at 0.
    pub next_counter: u64,
    /// TOTP clock drift in time steps, learnt from accepted codes (HOTP: unused, 0).
    pub drift: i64,
}

/// How tolerant verification is of clock drift and skipped button presses.
#[derive(Copy, Clone, Debug)]
pub struct VerifyPolicy {
    /// TOTP: how many time steps either side of the expected counter are accepted.
    pub totp_window: u32,
    /// HOTP: how many counters past `next_counter` are accepted, to cover button presses
    /// that never reached the server.
    pub hotp_lookahead: u32,
    /// TOTP: the largest drift, in time steps, that verification may learn from a single
    /// accepted code; [`resync`] is the way to teach a larger one, which verification then
    /// keeps (it may shrink it, never grow it).
    pub max_drift: u32,
    /// How many counters [`resync`] searches (TOTP: either side of now; HOTP: forward).
    pub resync_window: u32,
}

impl Default for VerifyPolicy {
    /// One step either way for TOTP, ten presses of look-ahead for HOTP, at most ten steps
    /// of learnt drift and a resynchronisation search of a hundred counters.
    fn default() -> Self {
        VerifyPolicy {
            totp_window: 1,
            hotp_lookahead: 10,
            max_drift: 10,
            resync_window: 100,
        }
    }
}

/// The outcome of [`verify`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The code matched a counter that had not been used yet.
    Accepted {
        /// The counter the code matched.
        counter: u64,
        /// The new state to persist before answering the client, so that the code cannot
        /// be accepted a second time.
        state: TokenState,
    },
    /// The code was refused; the state is unchanged.
    Rejected(RejectReason),
}

/// Why [`verify`] refused a code, for the audit log; the client is told only "reject".
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The code is not exactly `digits` ASCII digits, so nothing was computed.
    Malformed,
    /// The code matches no counter in the window (or the token parameters are invalid).
    NoMatch,
    /// The code matches a counter below `next_counter`: it was already used or skipped.
    Replayed,
}

impl RejectReason {
    /// A stable snake-case name for logs and metrics: `"malformed"`, `"no_match"` or
    /// `"replayed"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::NoMatch => "no_match",
            RejectReason::Replayed => "replayed",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_round_trip_case_insensitively() {
        for a in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            assert_eq!(Algorithm::parse(a.as_str()), Some(a));
            assert_eq!(Algorithm::parse(&a.as_str().to_lowercase()), Some(a));
        }
        assert_eq!(Algorithm::parse("Sha256"), Some(Algorithm::Sha256));
        assert_eq!(Algorithm::parse("SHA-1"), None);
        assert_eq!(Algorithm::parse(""), None);
        assert_eq!(Algorithm::parse("MD5"), None);
    }

    #[test]
    fn validate_bounds() {
        let mut p = TokenParams::default();
        assert_eq!(p.validate(), Ok(()));
        for d in [0, 5, 9, 255] {
            p.digits = d;
            assert_eq!(p.validate(), Err(ParamsError::Digits(d)));
        }
        p.digits = 8;
        assert_eq!(p.validate(), Ok(()));
        for period in [0, 3601, u32::MAX] {
            p.kind = TokenKind::Totp { period, t0: 0 };
            assert_eq!(p.validate(), Err(ParamsError::Period(period)));
        }
        p.kind = TokenKind::Totp {
            period: 3600,
            t0: u64::MAX,
        };
        assert_eq!(p.validate(), Ok(()));
        p.kind = TokenKind::Hotp;
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn reject_reason_names() {
        assert_eq!(RejectReason::Malformed.as_str(), "malformed");
        assert_eq!(RejectReason::NoMatch.as_str(), "no_match");
        assert_eq!(RejectReason::Replayed.to_string(), "replayed");
    }
}
