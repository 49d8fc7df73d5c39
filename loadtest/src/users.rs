//! The users a worker logs in as, and which of them are busy.
//!
//! Two requests of one user in flight at once would race for the same HOTP counter: the
//! later code could reach the server first, be accepted, and make the earlier one a replay.
//! So a user is handed to one request at a time and comes back when that request is
//! finished. The pool hands out the next free user in round-robin order, which spreads the
//! load over every user and keeps the codes each one sends in counter order.

/// One user as a run sees it: name, secrets, and the HOTP counter of its next code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The position in the state file, so that workers' partitions can be put back in order.
    pub index: usize,
    /// The User-Name.
    pub name: String,
    /// The HOTP seed.
    pub seed: Vec<u8>,
    /// The directory password, if the user has one.
    pub password: Option<String>,
    /// The counter of the next code to send; every counter below it was sent already.
    pub next_counter: u64,
    /// The counter of the newest code the server accepted, which a replay sends again.
    pub last_accepted: Option<u64>,
    /// Failed logins since the last accepted one, as the server's lockout rule counts them.
    pub failures: u32,
}

/// A worker's users with a busy flag each.
#[derive(Debug, Default)]
pub struct UserPool {
    users: Vec<User>,
    busy: Vec<bool>,
    busy_count: usize,
    cursor: usize,
}

impl UserPool {
    /// A pool in which every user is free.
    pub fn new(users: Vec<User>) -> Self {
        let busy = vec![false; users.len()];
        UserPool {
            users,
            busy,
            busy_count: 0,
            cursor: 0,
        }
    }

    /// How many users the pool holds.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the pool holds no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// How many users are handed out.
    pub fn busy_count(&self) -> usize {
        self.busy_count
    }

    /// Hands out the next free user after the previous one handed out that satisfies
    /// `eligible`, marking it busy; `None` if there is none.
    ///
    /// Busy users trail the cursor, so with fewer requests in flight than users the very
    /// next user is almost always free and the scan is short.
    pub fn acquire(&mut self, mut eligible: impl FnMut(&User) -> bool) -> Option<usize> {
        let n = self.users.len();
        if self.busy_count == n {
            return None;
        }
        for step in 0..n {
            let i = (self.cursor + step) % n;
            if !self.busy[i] && eligible(&self.users[i]) {
                self.busy[i] = true;
                self.busy_count += 1;
                self.cursor = (i + 1) % n;
                return Some(i);
            }
        }
        None
    }

    /// Gives a user back once its request is finished.
    pub fn release(&mut self, i: usize) {
        debug_assert!(self.busy[i], "user {i} released while free");
        if std::mem::replace(&mut self.busy[i], false) {
            self.busy_count -= 1;
        }
    }

    /// Whether user `i` is handed out.
    pub fn is_busy(&self, i: usize) -> bool {
        self.busy[i]
    }

    /// User `i`.
    pub fn get(&self, i: usize) -> &User {
        &self.users[i]
    }

    /// User `i`, to advance its counter or record an outcome.
    pub fn get_mut(&mut self, i: usize) -> &mut User {
        &mut self.users[i]
    }

    /// The users, for saving their counters at the end of a run.
    pub fn into_users(self) -> Vec<User> {
        self.users
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn users(n: usize) -> Vec<User> {
        (0..n)
            .map(|i| User {
                index: i,
                name: format!("u{i}"),
                seed: vec![1; 20],
                password: None,
                next_counter: 0,
                last_accepted: None,
                failures: 0,
            })
            .collect()
    }

    #[test]
    fn a_busy_user_is_never_handed_out() {
        // Random acquire/release sequences, checked against an independent busy set.
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for n in [1, 2, 5, 17] {
            let mut pool = UserPool::new(users(n));
            let mut held: Vec<usize> = Vec::new();
            for _ in 0..5_000 {
                if rng.gen_bool(0.55) {
                    match pool.acquire(|_| true) {
                        Some(i) => {
                            assert!(!held.contains(&i), "user {i} handed out twice");
                            held.push(i);
                        }
                        None => assert_eq!(held.len(), n, "refused with a free user"),
                    }
                } else if !held.is_empty() {
                    let i = held.swap_remove(rng.gen_range(0..held.len()));
                    pool.release(i);
                }
                assert_eq!(pool.busy_count(), held.len());
                for &i in &held {
                    assert!(pool.is_busy(i));
                }
            }
        }
    }

    #[test]
    fn users_are_handed_out_round_robin() {
        let mut pool = UserPool::new(users(4));
        let a = pool.acquire(|_| true).unwrap();
        let b = pool.acquire(|_| true).unwrap();
        pool.release(a);
        let c = pool.acquire(|_| true).unwrap();
        let d = pool.acquire(|_| true).unwrap();
        let e = pool.acquire(|_| true).unwrap();
        assert_eq!((a, b, c, d, e), (0, 1, 2, 3, 0));
        assert_eq!(pool.acquire(|_| true), None);
    }

    #[test]
    fn eligibility_skips_users_without_handing_them_out() {
        let mut list = users(3);
        list[1].last_accepted = Some(4);
        let mut pool = UserPool::new(list);
        assert_eq!(pool.acquire(|u| u.last_accepted.is_some()), Some(1));
        assert_eq!(pool.acquire(|u| u.last_accepted.is_some()), None);
        assert_eq!(pool.busy_count(), 1);
    }
}
