//! The verified-credential cache: Argon2 runs once per user and password, not per login.
//!
//! After a password verifies against its Argon2id hash, the cache keeps an HMAC-SHA-256 of
//! it under a key drawn at start-up and never written anywhere. A later login computes the
//! same HMAC (about a microsecond) and compares in constant time. The entry is bound to the
//! hash it was verified against, so a password change voids it even before the change is
//! seen, and it expires a TTL after the user's last login with it: a login in the second
//! half of an entry's life gives it a whole TTL again, so a user who logs in often never
//! waits for Argon2 again, and an entry unused for a TTL goes. Each TTL is cut by a random
//! part of up to a quarter, so that users who logged in together (after a restart, say) and
//! then stopped do not all need Argon2 again in the same second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

struct Entry {
    mac: [u8; 32],
    /// Moved later by a login in the second half of the entry's life (under the map's read
    /// lock, hence atomic).
    expires_ms: AtomicU64,
    /// The hash the password was verified against; compared by pointer.
    hash: Arc<str>,
}

/// Cache of recently verified passwords, keyed by user id.
pub struct CredentialCache {
    key: Zeroizing<[u8; 32]>,
    ttl_ms: u64,
    entries: DashMap<i64, Entry, crate::state::Hasher>,
}

impl CredentialCache {
    /// A cache whose entries live `ttl_secs`; 0 disables it.
    pub fn new(ttl_secs: u64) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        CredentialCache {
            key,
            ttl_ms: ttl_secs.saturating_mul(1000),
            entries: DashMap::with_hasher(crate::state::Hasher::default()),
        }
    }

    fn mac(&self, user_id: i64, password: &[u8]) -> [u8; 32] {
        let mut m = <HmacSha256 as Mac>::new_from_slice(self.key.as_ref())
            .expect("HMAC takes keys of any length");
        m.update(&user_id.to_le_bytes());
        m.update(password);
        m.finalize().into_bytes().into()
    }

    /// Whether `password` was verified for this user and hash, and used since, less than
    /// the TTL ago. A match in the second half of the entry's life renews it.
    pub fn check(&self, user_id: i64, hash: &Arc<str>, password: &[u8], now_ms: u64) -> bool {
        if self.ttl_ms == 0 {
            return false;
        }
        let Some(entry) = self.entries.get(&user_id) else {
            return false;
        };
        let expires_ms = entry.expires_ms.load(Ordering::Relaxed);
        if now_ms >= expires_ms || !Arc::ptr_eq(&entry.hash, hash) {
            return false;
        }
        let mac = self.mac(user_id, password);
        let good = bool::from(mac.ct_eq(&entry.mac));
        if good && expires_ms - now_ms < self.ttl_ms / 2 {
            entry
                .expires_ms
                .fetch_max(self.expiry(now_ms), Ordering::Relaxed);
        }
        good
    }

    /// When an entry used now expires: a TTL from now, less up to a quarter of jitter.
    fn expiry(&self, now_ms: u64) -> u64 {
        let jitter = rand::Rng::gen_range(&mut rand::thread_rng(), 0..=self.ttl_ms / 4);
        now_ms.saturating_add(self.ttl_ms - jitter)
    }

    /// Remembers a password that just verified against `hash`.
    pub fn remember(&self, user_id: i64, hash: &Arc<str>, password: &[u8], now_ms: u64) {
        if self.ttl_ms == 0 {
            return;
        }
        let entry = Entry {
            mac: self.mac(user_id, password),
            expires_ms: AtomicU64::new(self.expiry(now_ms)),
            hash: Arc::clone(hash),
        };
        self.entries.insert(user_id, entry);
    }

    /// Forgets a user's entry (password changed, user removed or disabled).
    pub fn forget(&self, user_id: i64) {
        self.entries.remove(&user_id);
    }

    /// Drops expired entries; called periodically so the map does not keep dead users.
    pub fn purge(&self, now_ms: u64) {
        self.entries
            .retain(|_, e| e.expires_ms.load(Ordering::Relaxed) > now_ms);
    }

    /// Number of entries, for metrics.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_only_the_right_password_for_the_ttl_and_hash() {
        let cache = CredentialCache::new(10);
        let hash: Arc<str> = Arc::from("$argon2id$h1");
        assert!(!cache.check(1, &hash, b"pw", 0));
        cache.remember(1, &hash, b"pw", 0);
        // The TTL is 10 s less up to a quarter of it; a login in its first quarter renews
        // nothing.
        assert!(cache.check(1, &hash, b"pw", 2_499));
        assert!(!cache.check(1, &hash, b"pW", 1));
        assert!(!cache.check(2, &hash, b"pw", 1));
        assert!(!cache.check(1, &hash, b"pw", 10_000));
        let changed: Arc<str> = Arc::from("$argon2id$h1");
        assert!(
            !cache.check(1, &changed, b"pw", 1),
            "a new hash voids the entry"
        );
        cache.forget(1);
        assert!(!cache.check(1, &hash, b"pw", 1));
    }

    #[test]
    fn a_login_late_in_an_entrys_life_renews_it_and_a_wrong_one_does_not() {
        let cache = CredentialCache::new(10);
        let hash: Arc<str> = Arc::from("h");
        cache.remember(1, &hash, b"pw", 0);
        // Early in its life (at least 7.5 s of 10 left) a login renews nothing...
        assert!(cache.check(1, &hash, b"pw", 2_000));
        // ...and late in it, a wrong password renews nothing either.
        assert!(!cache.check(1, &hash, b"nope", 7_000));
        assert!(!cache.check(1, &hash, b"pw", 10_000));
        cache.remember(1, &hash, b"pw", 0);
        // A right one at 7 s (past half of the longest TTL) keeps it past 10 s: logged in
        // every 7 s, the user never needs the slow check again.
        let mut now = 0;
        for _ in 0..10 {
            now += 7_000;
            assert!(cache.check(1, &hash, b"pw", now), "at {now} ms");
        }
        // Unused for a whole TTL, it goes.
        assert!(!cache.check(1, &hash, b"pw", now + 10_000));
        cache.purge(now + 10_000);
        assert!(cache.is_empty());
    }

    #[test]
    fn a_zero_ttl_disables_the_cache() {
        let cache = CredentialCache::new(0);
        let hash: Arc<str> = Arc::from("h");
        cache.remember(1, &hash, b"pw", 0);
        assert!(!cache.check(1, &hash, b"pw", 0));
        assert!(cache.is_empty());
    }
}
