//! The reply decision table: which RADIUS reply answers which request and outcome.
//!
//! It is written once, as one `match` over (request code, outcome), so that no path of the
//! server can invent a reply of its own. A `None` means the request is silently discarded,
//! as RFC 2865 asks for packets the server does not answer.

use crate::radius::Code;

/// Why a login was refused. It goes to the audit log and to metrics labels, never to the
/// NAS: every one of them answers the same plain Access-Reject, so that an attacker cannot
/// tell an unknown user from a wrong password from a wrong passcode.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// No such user in the directory.
    UnknownUser,
    /// The user exists but is disabled.
    Disabled,
    /// The user is locked out after too many failures.
    LockedOut,
    /// The directory password is wrong (or empty).
    BadPassword,
    /// The user has no usable token.
    NoToken,
    /// The passcode is not a code of any of the user's tokens.
    BadPasscode,
    /// The passcode was already used.
    ReplayedPasscode,
    /// User-Password could not be read as the client's login mode requires.
    Malformed,
    /// A State that names no live challenge, or one bound to another client or user.
    UnknownState,
    /// The challenge was answered too late.
    ChallengeExpired,
    /// The server has too many challenge sessions open to start one more.
    SessionsFull,
    /// The password check could not be admitted because the server is saturated.
    Overloaded,
    /// The directory's group rules refuse this user.
    NotPermitted,
    /// The directory says the account has expired.
    Expired,
    /// The directory says the password has expired or must be changed.
    PasswordExpired,
    /// No directory server answered in time.
    DirectoryUnavailable,
    /// The passcode was right but its use could not be recorded (the token record written
    /// back to the directory, or the used-code journal), so it is refused rather than left
    /// usable twice.
    TokenWriteFailed,
    /// A delivered code could not be sent: the destination asked for too many, the user
    /// has no number or address, or the outbox is full.
    DeliveryFailed,
    /// The user's preload day code has expired or was already used.
    CodeExpired,
    /// The user declined the login on their phone (they report it as not theirs).
    PushDeclined,
    /// Nobody approved the login on the phone in time.
    PushTimeout,
    /// The user has no enrolled device to approve on.
    NoDevice,
}

impl RejectReason {
    /// Short label for audit lines and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::UnknownUser => "unknown_user",
            RejectReason::Disabled => "disabled",
            RejectReason::LockedOut => "locked_out",
            RejectReason::BadPassword => "bad_password",
            RejectReason::NoToken => "no_token",
            RejectReason::BadPasscode => "bad_passcode",
            RejectReason::ReplayedPasscode => "replayed_passcode",
            RejectReason::Malformed => "malformed",
            RejectReason::UnknownState => "unknown_state",
            RejectReason::ChallengeExpired => "challenge_expired",
            RejectReason::SessionsFull => "sessions_full",
            RejectReason::Overloaded => "overloaded",
            RejectReason::NotPermitted => "not_permitted",
            RejectReason::Expired => "expired",
            RejectReason::PasswordExpired => "password_expired",
            RejectReason::DirectoryUnavailable => "directory_unavailable",
            RejectReason::TokenWriteFailed => "token_write_failed",
            RejectReason::DeliveryFailed => "delivery_failed",
            RejectReason::CodeExpired => "code_expired",
            RejectReason::PushDeclined => "push_declined",
            RejectReason::PushTimeout => "push_timeout",
            RejectReason::NoDevice => "no_device",
        }
    }

    /// Whether this refusal counts towards the user's lockout. Only a wrong secret typed by
    /// someone counts; refusals caused by the server or by a state the user already is in
    /// (locked, disabled) do not, so that overload cannot lock users out.
    pub fn counts_towards_lockout(self) -> bool {
        matches!(
            self,
            RejectReason::BadPassword
                | RejectReason::BadPasscode
                | RejectReason::ReplayedPasscode
                | RejectReason::Malformed
        )
    }
}

/// What the server concluded about one request.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Both factors are right.
    Accept,
    /// The login is refused.
    Reject(RejectReason),
    /// The password is right; the passcode is asked for in a second round.
    Challenge,
    /// A Status-Server probe: the server is alive.
    Alive,
}

impl Outcome {
    /// Short label for audit lines and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Accept => "accept",
            Outcome::Reject(_) => "reject",
            Outcome::Challenge => "challenge",
            Outcome::Alive => "alive",
        }
    }
}

/// The reply code for `request` when the server concluded `outcome`, or `None` when the
/// request is discarded without a reply.
pub fn reply_code(request: Code, outcome: Outcome) -> Option<Code> {
    match (request, outcome) {
        (Code::AccessRequest, Outcome::Accept) => Some(Code::AccessAccept),
        (Code::AccessRequest, Outcome::Reject(_)) => Some(Code::AccessReject),
        (Code::AccessRequest, Outcome::Challenge) => Some(Code::AccessChallenge),
        // RFC 5997 §3: Status-Server sent to an authentication port is answered with
        // Access-Accept.
        (Code::StatusServer, Outcome::Alive) => Some(Code::AccessAccept),
        // Every other pairing is a bug in the caller or a request we do not serve; RFC 2865
        // §3 has such packets silently discarded.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REASONS: [RejectReason; 22] = [
        RejectReason::UnknownUser,
        RejectReason::Disabled,
        RejectReason::LockedOut,
        RejectReason::BadPassword,
        RejectReason::NoToken,
        RejectReason::BadPasscode,
        RejectReason::ReplayedPasscode,
        RejectReason::Malformed,
        RejectReason::UnknownState,
        RejectReason::ChallengeExpired,
        RejectReason::SessionsFull,
        RejectReason::Overloaded,
        RejectReason::NotPermitted,
        RejectReason::Expired,
        RejectReason::PasswordExpired,
        RejectReason::DirectoryUnavailable,
        RejectReason::TokenWriteFailed,
        RejectReason::DeliveryFailed,
        RejectReason::CodeExpired,
        RejectReason::PushDeclined,
        RejectReason::PushTimeout,
        RejectReason::NoDevice,
    ];

    /// Every row of the table, written out.
    #[test]
    fn the_table_row_by_row() {
        let rows: &[(Code, Outcome, Option<Code>)] = &[
            (
                Code::AccessRequest,
                Outcome::Accept,
                Some(Code::AccessAccept),
            ),
            (
                Code::AccessRequest,
                Outcome::Challenge,
                Some(Code::AccessChallenge),
            ),
            (Code::AccessRequest, Outcome::Alive, None),
            (Code::StatusServer, Outcome::Alive, Some(Code::AccessAccept)),
            (Code::StatusServer, Outcome::Accept, None),
            (Code::StatusServer, Outcome::Challenge, None),
            (Code::AccountingRequest, Outcome::Accept, None),
            (Code::AccessAccept, Outcome::Accept, None),
            (Code::Other(200), Outcome::Alive, None),
        ];
        for &(request, outcome, expected) in rows {
            assert_eq!(
                reply_code(request, outcome),
                expected,
                "{request:?} {outcome:?}"
            );
        }
        // Every reason answers the same Access-Reject, so the NAS learns nothing of why.
        for reason in REASONS {
            assert_eq!(
                reply_code(Code::AccessRequest, Outcome::Reject(reason)),
                Some(Code::AccessReject)
            );
            assert_eq!(
                reply_code(Code::StatusServer, Outcome::Reject(reason)),
                None
            );
        }
    }

    #[test]
    fn reason_labels_are_distinct() {
        let mut labels: Vec<_> = REASONS.iter().map(|r| r.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), REASONS.len());
    }

    #[test]
    fn server_side_refusals_never_lock_users() {
        assert!(!RejectReason::Overloaded.counts_towards_lockout());
        assert!(!RejectReason::SessionsFull.counts_towards_lockout());
        assert!(!RejectReason::LockedOut.counts_towards_lockout());
        assert!(RejectReason::BadPasscode.counts_towards_lockout());
        assert!(RejectReason::BadPassword.counts_towards_lockout());
    }
}
