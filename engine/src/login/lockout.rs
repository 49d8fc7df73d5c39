//! The lockout rule: after a number of consecutive failed logins a user is refused until an
//! unlock time passes or an administrator unlocks them.

/// How many consecutive failures lock a user, and for how long.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Consecutive failures that lock the user; 0 disables lockout.
    pub threshold: u32,
    /// Seconds a lock lasts; 0 means until an administrator unlocks the user.
    pub duration_secs: u64,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            threshold: 5,
            duration_secs: 900,
        }
    }
}

/// Per-user failure count and lock, persisted by the server.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct LockoutState {
    /// Consecutive failed logins since the last success or unlock.
    pub failures: u32,
    /// Unix time until which the user is locked; `Some(u64::MAX)` locks until unlocked.
    pub locked_until: Option<u64>,
}

impl LockoutState {
    /// Whether the user is locked at `now` (unix seconds).
    pub fn is_locked(&self, now: u64) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }

    /// Records a failed login and locks the user when the threshold is reached.
    /// Returns true when this failure is the one that locked the user.
    pub fn record_failure(&mut self, now: u64, policy: &LockoutPolicy) -> bool {
        // A lock that has run out starts a fresh count, so that one more mistake after the
        // unlock time does not lock the user again at once.
        if self.locked_until.is_some() && !self.is_locked(now) {
            *self = LockoutState::default();
        }
        self.failures = self.failures.saturating_add(1);
        if policy.threshold > 0 && self.failures >= policy.threshold && !self.is_locked(now) {
            self.locked_until = Some(if policy.duration_secs == 0 {
                u64::MAX
            } else {
                now.saturating_add(policy.duration_secs)
            });
            return true;
        }
        false
    }

    /// Records a successful login: the failure count starts again from zero.
    pub fn record_success(&mut self) {
        *self = LockoutState::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_threshold_and_unlocks_after_duration() {
        let policy = LockoutPolicy {
            threshold: 3,
            duration_secs: 60,
        };
        let mut state = LockoutState::default();
        assert!(!state.record_failure(100, &policy));
        assert!(!state.record_failure(101, &policy));
        assert!(state.record_failure(102, &policy));
        assert!(state.is_locked(102));
        assert!(state.is_locked(161));
        assert!(!state.is_locked(162));
        // After expiry, a new failure starts a new count instead of relocking.
        assert!(!state.record_failure(170, &policy));
        assert_eq!(state.failures, 1);
    }

    #[test]
    fn success_resets_and_zero_threshold_never_locks() {
        let policy = LockoutPolicy {
            threshold: 0,
            duration_secs: 60,
        };
        let mut state = LockoutState::default();
        for t in 0..100 {
            assert!(!state.record_failure(t, &policy));
        }
        assert!(!state.is_locked(100));
        state.record_success();
        assert_eq!(state, LockoutState::default());
    }

    #[test]
    fn zero_duration_locks_until_unlocked() {
        let policy = LockoutPolicy {
            threshold: 1,
            duration_secs: 0,
        };
        let mut state = LockoutState::default();
        assert!(state.record_failure(5, &policy));
        assert!(state.is_locked(u64::MAX - 1));
    }
}
