//! The nonces of signed requests, remembered for as long as a replay of their request could
//! still pass the timestamp check.
//!
//! A signed request carries a timestamp `t` and is accepted while `|t - now| ≤ MAX_SKEW_SECS`.
//! Its nonce is kept until `max(now, t) + MAX_SKEW_SECS`: past that time `t` is stale, so a
//! replay of the same signed bytes fails the timestamp check and the nonce need not be kept.
//! The time is the same wall clock the timestamp check reads, so the two move together; a
//! clock that steps back only keeps nonces longer than needed.
//!
//! The cache is bounded twice. A global cap bounds its memory: when it is reached, new
//! requests are refused (503) rather than older nonces forgotten early, because forgetting a
//! nonce before its request has gone stale would let that request be replayed. A cap per
//! device keeps one device (a buggy app, or a stolen key) from filling the global cap and so
//! locking every other device out; that device alone is refused (429) until its own nonces
//! age out. Only requests whose signature verified are remembered, so nobody without an
//! enrolled key can fill either cap.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use tollgate_engine::push::MAX_SKEW_SECS;

/// Why a nonce was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NonceRefused {
    /// The device used this nonce within the window.
    Replay,
    /// The device has as many nonces as it may keep.
    DeviceFull,
    /// The cache holds as many nonces as it may.
    Full,
}

/// One remembered nonce in the expiry heap: (expiry, device, nonce).
type Expiry = Reverse<(u64, Arc<str>, Arc<str>)>;

/// The remembered nonces, per device, with their expiry times in one heap so that pruning
/// takes only what is due.
#[derive(Debug)]
pub(crate) struct NonceCache {
    per_device: HashMap<Arc<str>, HashSet<Arc<str>>>,
    /// Min-heap of (expiry, device, nonce): every entry of `per_device` has exactly one entry
    /// here, so `expiries.len()` is the number of nonces held.
    expiries: BinaryHeap<Expiry>,
    max_total: usize,
    max_per_device: usize,
}

impl NonceCache {
    pub(crate) fn new(max_total: usize, max_per_device: usize) -> NonceCache {
        NonceCache {
            per_device: HashMap::new(),
            expiries: BinaryHeap::new(),
            max_total,
            max_per_device,
        }
    }

    /// Accepts `nonce` of `device` for a request stamped `timestamp` (already checked to be
    /// fresh) at wall-clock time `now`, and remembers it; refuses a nonce the device already
    /// used within the window.
    pub(crate) fn check_and_remember(
        &mut self,
        device: &str,
        nonce: &str,
        timestamp: u64,
        now: u64,
    ) -> Result<(), NonceRefused> {
        self.prune(now);
        let held = self.per_device.get(device);
        if held.is_some_and(|nonces| nonces.contains(nonce)) {
            return Err(NonceRefused::Replay);
        }
        if self.expiries.len() >= self.max_total {
            return Err(NonceRefused::Full);
        }
        if held.is_some_and(|nonces| nonces.len() >= self.max_per_device) {
            return Err(NonceRefused::DeviceFull);
        }
        let nonce: Arc<str> = Arc::from(nonce);
        let device: Arc<str> = match self.per_device.get_key_value(device) {
            Some((key, _)) => Arc::clone(key),
            None => Arc::from(device),
        };
        let expiry = now.max(timestamp).saturating_add(MAX_SKEW_SECS);
        self.per_device
            .entry(Arc::clone(&device))
            .or_default()
            .insert(Arc::clone(&nonce));
        self.expiries.push(Reverse((expiry, device, nonce)));
        Ok(())
    }

    /// Forgets the nonces whose requests are stale at `now`.
    pub(crate) fn prune(&mut self, now: u64) {
        while let Some(Reverse((expiry, _, _))) = self.expiries.peek() {
            if *expiry >= now {
                break;
            }
            let Some(Reverse((_, device, nonce))) = self.expiries.pop() else {
                break;
            };
            if let Some(nonces) = self.per_device.get_mut(&device) {
                nonces.remove(&nonce);
                if nonces.is_empty() {
                    self.per_device.remove(&device);
                }
            }
        }
    }

    /// How many nonces are held.
    pub(crate) fn len(&self) -> usize {
        self.expiries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_800_000_000;

    #[test]
    fn a_nonce_is_refused_while_its_request_could_be_replayed() {
        let mut cache = NonceCache::new(100, 10);
        assert_eq!(cache.check_and_remember("d1", "nonce-aa", T, T), Ok(()));
        assert_eq!(
            cache.check_and_remember("d1", "nonce-aa", T, T + MAX_SKEW_SECS),
            Err(NonceRefused::Replay),
            "still refused at the last second the timestamp is fresh"
        );
        // Another device may use the same nonce: nonces are per device.
        assert_eq!(cache.check_and_remember("d2", "nonce-aa", T, T), Ok(()));
        // Once the timestamp is stale the nonce is forgotten.
        cache.prune(T + MAX_SKEW_SECS + 1);
        assert_eq!(cache.len(), 0);
        assert!(cache.per_device.is_empty(), "empty devices are dropped");
    }

    #[test]
    fn a_timestamp_ahead_of_the_clock_keeps_its_nonce_longer() {
        let mut cache = NonceCache::new(100, 10);
        let ahead = T + MAX_SKEW_SECS;
        cache.check_and_remember("d", "nonce-bb", ahead, T).unwrap();
        cache.prune(T + MAX_SKEW_SECS + 1);
        assert_eq!(
            cache.check_and_remember("d", "nonce-bb", ahead, ahead + MAX_SKEW_SECS),
            Err(NonceRefused::Replay),
            "a request stamped in the future stays fresh until its stamp plus the skew"
        );
    }

    #[test]
    fn a_full_cache_refuses_rather_than_forgets() {
        let mut cache = NonceCache::new(2, 10);
        cache.check_and_remember("d1", "nonce-01", T, T).unwrap();
        cache.check_and_remember("d2", "nonce-02", T, T).unwrap();
        assert_eq!(
            cache.check_and_remember("d3", "nonce-03", T, T),
            Err(NonceRefused::Full)
        );
        // The earlier nonces are all still refused.
        assert_eq!(
            cache.check_and_remember("d1", "nonce-01", T, T),
            Err(NonceRefused::Replay)
        );
        // After they age out there is room again.
        assert_eq!(
            cache.check_and_remember("d3", "nonce-03", T + 400, T + 400),
            Ok(())
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn one_device_cannot_take_the_whole_cache() {
        let mut cache = NonceCache::new(100, 2);
        cache.check_and_remember("d1", "nonce-01", T, T).unwrap();
        cache.check_and_remember("d1", "nonce-02", T, T).unwrap();
        assert_eq!(
            cache.check_and_remember("d1", "nonce-03", T, T),
            Err(NonceRefused::DeviceFull)
        );
        assert_eq!(cache.check_and_remember("d2", "nonce-03", T, T), Ok(()));
    }

    #[test]
    fn pruning_follows_expiry_not_insertion_order() {
        let mut cache = NonceCache::new(100, 10);
        cache
            .check_and_remember("d", "late-one", T + 100, T)
            .unwrap();
        cache
            .check_and_remember("d", "early-one", T - 100, T)
            .unwrap();
        cache.check_and_remember("d", "middle-1", T, T).unwrap();
        cache.prune(T + MAX_SKEW_SECS + 1);
        assert_eq!(cache.len(), 1);
        assert_eq!(
            cache.check_and_remember("d", "late-one", T + 100, T + MAX_SKEW_SECS + 1),
            Err(NonceRefused::Replay)
        );
    }
}
