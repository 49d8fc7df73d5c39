//! A challenge session: the state between an Access-Challenge and the Access-Request that
//! answers it.
//!
//! The State attribute is the session's name. It is random (chosen by the caller from a
//! cryptographic source), used once, valid for a limited time, and bound to the RADIUS client
//! and the user it was issued to, so a State seen on the wire cannot be replayed from another
//! NAS or for another user.

use subtle::ConstantTimeEq;

/// Length of the State we issue: 16 random octets are 128 bits, beyond guessing.
pub const STATE_LEN: usize = 16;

/// Why an answer to a challenge is refused.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The session's time ran out before the answer came.
    #[error("challenge expired")]
    Expired,
    /// The answer came from another RADIUS client than the one challenged.
    #[error("challenge answered by another client")]
    WrongClient,
    /// The answer names another user than the one challenged.
    #[error("challenge answered for another user")]
    WrongUser,
    /// The session was already answered once.
    #[error("challenge already answered")]
    Used,
}

/// One pending challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChallengeSession {
    /// The State sent in the Access-Challenge.
    pub state: [u8; STATE_LEN],
    /// The configured name of the RADIUS client challenged.
    pub client: String,
    /// The user name as it appeared in the first request.
    pub user: String,
    /// Unix time after which the session is void.
    pub expires_at: u64,
    used: bool,
}

impl ChallengeSession {
    /// Opens a session at `now` that lasts `ttl_secs`.
    pub fn new(state: [u8; STATE_LEN], client: &str, user: &str, now: u64, ttl_secs: u64) -> Self {
        ChallengeSession {
            state,
            client: client.to_owned(),
            user: user.to_owned(),
            expires_at: now.saturating_add(ttl_secs),
            used: false,
        }
    }

    /// Whether the session is void at `now`.
    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.expires_at
    }

    /// Consumes the session for an answer from `client` for `user` at `now`.
    ///
    /// The session is spent whatever the outcome, so that a State is never accepted twice.
    pub fn redeem(&mut self, client: &str, user: &str, now: u64) -> Result<(), SessionError> {
        let was_used = std::mem::replace(&mut self.used, true);
        if was_used {
            return Err(SessionError::Used);
        }
        if self.is_expired(now) {
            return Err(SessionError::Expired);
        }
        if client != self.client {
            return Err(SessionError::WrongClient);
        }
        // User names are compared without case, as the directory does, and in constant time
        // for equal lengths.
        let a = user.to_ascii_lowercase();
        let b = self.user.to_ascii_lowercase();
        if a.len() != b.len() || !bool::from(a.as_bytes().ct_eq(b.as_bytes())) {
            return Err(SessionError::WrongUser);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> ChallengeSession {
        ChallengeSession::new([7; STATE_LEN], "vpn1", "Alice", 1000, 60)
    }

    #[test]
    fn a_session_is_redeemed_once() {
        let mut s = session();
        assert_eq!(s.redeem("vpn1", "alice", 1010), Ok(()));
        assert_eq!(s.redeem("vpn1", "alice", 1011), Err(SessionError::Used));
    }

    #[test]
    fn a_session_is_bound_to_client_user_and_time() {
        assert_eq!(
            session().redeem("vpn2", "alice", 1010),
            Err(SessionError::WrongClient)
        );
        assert_eq!(
            session().redeem("vpn1", "bob", 1010),
            Err(SessionError::WrongUser)
        );
        assert_eq!(
            session().redeem("vpn1", "alice", 1060),
            Err(SessionError::Expired)
        );
        // A refused answer still spends the session.
        let mut s = session();
        let _ = s.redeem("vpn1", "bob", 1010);
        assert_eq!(s.redeem("vpn1", "alice", 1010), Err(SessionError::Used));
    }
}
