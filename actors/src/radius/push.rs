//! Push approval of logins: the logins waiting for a phone, found by their id (the app's
//! decision) and by their user (the app's list of pending approvals).
//!
//! A push login is a [`SessionActor`](super::SessionActor) that holds the RADIUS request
//! (clients in append or passcode-only mode: the NAS retransmits and its retransmits join
//! the held request) or answers Access-Challenge with the number to pick (clients in
//! challenge mode) and waits for the second request. The phone's decision reaches it as a
//! message; nothing else waits on it. Their number is bounded by `login.max_sessions`, like
//! every session.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use ractor::ActorRef;

use super::SessionMsg;

/// A login waiting for the phone.
pub struct PendingPush {
    /// Random id the app names it by.
    pub id: String,
    /// The user's id.
    pub user_id: i64,
    /// The RADIUS client that asked.
    pub client: Arc<str>,
    /// Unix time it began.
    pub created_at: u64,
    /// Unix time it ends unapproved.
    pub expires_at: u64,
    /// The number shown at the login prompt (challenge mode), which the user must pick.
    pub number: Option<u8>,
    /// The numbers the phone offers (empty when there is no prompt to show one).
    pub numbers: Vec<u8>,
    session: ActorRef<SessionMsg>,
    decided: AtomicBool,
}

/// Why a decision was not taken.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DecideError {
    /// No such pending login for this user (or it ended).
    NotFound,
    /// Already approved or declined.
    AlreadyDecided,
    /// Approved with the wrong number: taken as a decline.
    WrongNumber,
    /// Approved without the number the prompt shows: nothing changed.
    NumberRequired,
}

/// The pending push logins.
#[derive(Default)]
pub struct PushRegistry {
    by_id: DashMap<String, Arc<PendingPush>>,
    by_user: DashMap<i64, Vec<String>>,
}

impl PushRegistry {
    /// Registers a pending login.
    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        &self,
        id: String,
        user_id: i64,
        client: Arc<str>,
        created_at: u64,
        expires_at: u64,
        number: Option<u8>,
        numbers: Vec<u8>,
        session: ActorRef<SessionMsg>,
    ) {
        let p = Arc::new(PendingPush {
            id: id.clone(),
            user_id,
            client,
            created_at,
            expires_at,
            number,
            numbers,
            session,
            decided: AtomicBool::new(false),
        });
        self.by_user.entry(user_id).or_default().push(id.clone());
        self.by_id.insert(id, p);
    }

    /// Forgets a login (its session ended).
    pub fn remove(&self, id: &str) {
        if let Some((_, p)) = self.by_id.remove(id) {
            if let dashmap::Entry::Occupied(mut e) = self.by_user.entry(p.user_id) {
                e.get_mut().retain(|i| i != id);
                if e.get().is_empty() {
                    e.remove();
                }
            }
        }
    }

    /// Forgets the login of a session that failed (a rare scan of every entry).
    pub fn forget_session(&self, session: ractor::ActorId) {
        let ids: Vec<String> = self
            .by_id
            .iter()
            .filter(|p| p.session.get_id() == session)
            .map(|p| p.id.clone())
            .collect();
        for id in ids {
            self.remove(&id);
        }
    }

    /// Logins waiting for `user_id`'s approval at `now`.
    pub fn pending(&self, user_id: i64, now: u64) -> Vec<Arc<PendingPush>> {
        let Some(ids) = self.by_user.get(&user_id).map(|v| v.clone()) else {
            return Vec::new();
        };
        ids.iter()
            .filter_map(|id| self.by_id.get(id).map(|p| Arc::clone(&p)))
            .filter(|p| now < p.expires_at && !p.decided.load(Ordering::Acquire))
            .collect()
    }

    /// Number of pending logins.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether none is pending.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Takes the phone's decision on login `id` of `user_id`. Once only: a second decision,
    /// or one for another user's login, changes nothing.
    pub fn decide(
        &self,
        user_id: i64,
        id: &str,
        approve: bool,
        number: Option<u8>,
        now: u64,
    ) -> Result<bool, DecideError> {
        let p = self
            .by_id
            .get(id)
            .map(|p| Arc::clone(&p))
            .filter(|p| p.user_id == user_id && now < p.expires_at)
            .ok_or(DecideError::NotFound)?;
        if approve && p.number.is_some() && number.is_none() {
            return Err(DecideError::NumberRequired);
        }
        if p.decided.swap(true, Ordering::AcqRel) {
            return Err(DecideError::AlreadyDecided);
        }
        let wrong = approve && p.number.is_some() && number != p.number;
        let approved = approve && !wrong;
        let _ = p.session.cast(SessionMsg::Pushed {
            approved,
            wrong_number: wrong,
        });
        if wrong {
            return Err(DecideError::WrongNumber);
        }
        Ok(approved)
    }
}
