//! The duplicate-request cache of one RADIUS client (RFC 5080 §2.2.2).
//!
//! A request is known by its source address and port, identifier and Request
//! Authenticator. While it is being worked on, a retransmit joins it (is dropped, and the
//! one reply answers both); once answered, a retransmit within the window gets the cached
//! reply byte for byte, so a passcode is never checked twice. The cache is bounded both in
//! time and in entries, and split into shards so that growing it never stalls a worker.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::state::Hasher;

/// Identity of a request for duplicate detection.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct DedupKey {
    /// Source address and port.
    pub peer: SocketAddr,
    /// RADIUS identifier.
    pub identifier: u8,
    /// Request Authenticator.
    pub authenticator: [u8; 16],
}

/// A request answered later than this after its first sight keeps its reply a whole window
/// from the answer (inline logins are answered within microseconds and keep one entry).
const RESTAMP_AFTER: Duration = Duration::from_secs(1);

/// A remembered request, with the time it was first seen: the window and the eviction
/// order both count from then, so a request is remembered once in `order`.
struct Slot {
    since: Instant,
    /// The reply, once answered.
    reply: Option<Box<[u8]>>,
}

/// What the cache knows of an arriving request.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen<'a> {
    /// First sight: it is now marked in progress.
    New,
    /// The same request is being worked on.
    InProgress,
    /// The same request was answered with these bytes.
    Answered(&'a [u8]),
}

/// Entries per shard that a cache aims at: a shard's table grows (and is rehashed, all at
/// once) in steps of at most about this many entries, a few tens of microseconds of work.
const SHARD_ENTRIES: usize = 1024;

/// Shards of one cache at most (an empty shard costs about a hundred bytes): up to
/// 1,048,576 entries a shard stays at about [`SHARD_ENTRIES`].
const MAX_SHARDS: usize = 1024;

/// Bounded cache of recent requests of one client.
///
/// It is split into shards by a hash of the key, each with its own table, eviction order
/// and share of the capacity. A single table of tens of thousands of entries doubles in one
/// step as it fills, rehashing every entry on the worker that happens to insert: measured
/// at 16 ms for the last doubling of a 65,536-entry cache at 95,000 requests/s, during
/// which every request waited. A shard doubles at about [`SHARD_ENTRIES`] entries at most
/// (for a capacity up to [`MAX_SHARDS`] times that).
/// Hashing spreads keys evenly, so the shards fill and age alike and the cache as a whole
/// keeps about the most recent `capacity` requests.
pub struct DuplicateCache {
    shards: Box<[Shard]>,
    hasher: Hasher,
}

/// One shard: a table, and the order its entries age in.
struct Shard {
    slots: HashMap<DedupKey, Slot, Hasher>,
    /// Insertion order, for eviction by age and by count. May hold keys whose slot was
    /// replaced or removed; those are recognised by their timestamp and skipped.
    order: VecDeque<(Instant, DedupKey)>,
    window: Duration,
    capacity: usize,
}

impl DuplicateCache {
    /// A cache that remembers requests for `window` and at most `capacity` of them.
    pub fn new(window: Duration, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let count = capacity.div_ceil(SHARD_ENTRIES).clamp(1, MAX_SHARDS);
        let hasher = Hasher::default();
        let shards = (0..count)
            .map(|i| Shard {
                slots: HashMap::with_hasher(hasher.clone()),
                order: VecDeque::new(),
                window,
                // The capacity split as evenly as it goes: the shards add up to it.
                capacity: capacity / count + usize::from(i < capacity % count),
            })
            .collect();
        DuplicateCache { shards, hasher }
    }

    fn shard(&mut self, key: &DedupKey) -> &mut Shard {
        let n = self.shards.len();
        let i = if n == 1 {
            0
        } else {
            // The table inside uses the low bits of the same hash; the shard takes the high
            // ones, so that both spread.
            (self.hasher.hash_one(key) >> 32) as usize % n
        };
        &mut self.shards[i]
    }

    /// Looks a request up, marking it in progress when it is new.
    pub fn begin(&mut self, key: DedupKey, now: Instant) -> Seen<'_> {
        self.shard(&key).begin(key, now)
    }

    /// Records the reply to a request, for its retransmits. The window counts from the
    /// request's first sight, or from now for one that took longer than
    /// [`RESTAMP_AFTER`] (a login held for a phone's approval), so that its reply is kept a
    /// whole window too. A request no longer remembered (evicted meanwhile) is remembered
    /// anew.
    pub fn finish(&mut self, key: DedupKey, reply: &[u8], now: Instant) {
        self.shard(&key).finish(key, reply, now);
    }

    /// Forgets a request that will not be answered (shed, or its worker died), so that a
    /// retransmit is worked on afresh.
    pub fn abandon(&mut self, key: &DedupKey) {
        self.shard(key).abandon(key);
    }

    /// Number of requests remembered.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.slots.len()).sum()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.slots.is_empty())
    }

    /// Entries in the eviction orders (stale ones included).
    #[cfg(test)]
    fn order_len(&self) -> usize {
        self.shards.iter().map(|s| s.order.len()).sum()
    }
}

impl Shard {
    fn evict(&mut self, now: Instant) {
        while let Some(&(born, key)) = self.order.front() {
            let expired = now.saturating_duration_since(born) >= self.window;
            if !expired && self.slots.len() < self.capacity {
                break;
            }
            self.order.pop_front();
            if let Entry::Occupied(slot) = self.slots.entry(key) {
                if slot.get().since == born {
                    slot.remove();
                }
            }
        }
        // The order queue can outgrow the map only by keys already gone; compact it then.
        if self.order.len() > self.capacity.saturating_mul(2) {
            let slots = &self.slots;
            self.order
                .retain(|(born, key)| slots.get(key).is_some_and(|s| s.since == *born));
        }
    }

    fn begin(&mut self, key: DedupKey, now: Instant) -> Seen<'_> {
        self.evict(now);
        match self.slots.entry(key) {
            Entry::Occupied(slot) => match &slot.into_mut().reply {
                None => Seen::InProgress,
                Some(reply) => Seen::Answered(reply),
            },
            Entry::Vacant(slot) => {
                slot.insert(Slot {
                    since: now,
                    reply: None,
                });
                self.order.push_back((now, key));
                Seen::New
            }
        }
    }

    fn finish(&mut self, key: DedupKey, reply: &[u8], now: Instant) {
        match self.slots.entry(key) {
            Entry::Occupied(slot) => {
                let slot = slot.into_mut();
                slot.reply = Some(reply.into());
                if now.saturating_duration_since(slot.since) >= RESTAMP_AFTER {
                    // The entry under the old time in `order` is now stale and skipped.
                    slot.since = now;
                    self.order.push_back((now, key));
                }
            }
            Entry::Vacant(slot) => {
                slot.insert(Slot {
                    since: now,
                    reply: Some(reply.into()),
                });
                self.order.push_back((now, key));
                self.evict(now);
            }
        }
    }

    fn abandon(&mut self, key: &DedupKey) {
        if let Entry::Occupied(slot) = self.slots.entry(*key) {
            if slot.get().reply.is_none() {
                slot.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u8) -> DedupKey {
        DedupKey {
            peer: "127.0.0.1:5000".parse().unwrap(),
            identifier: id,
            authenticator: [id; 16],
        }
    }

    #[test]
    fn retransmits_join_then_replay() {
        let t0 = Instant::now();
        let mut c = DuplicateCache::new(Duration::from_secs(30), 100);
        assert_eq!(c.begin(key(1), t0), Seen::New);
        assert_eq!(c.begin(key(1), t0), Seen::InProgress);
        c.finish(key(1), b"reply", t0);
        assert_eq!(
            c.begin(key(1), t0 + Duration::from_secs(29)),
            Seen::Answered(b"reply")
        );
        assert_eq!(c.begin(key(1), t0 + Duration::from_secs(31)), Seen::New);
    }

    #[test]
    fn another_authenticator_is_another_request() {
        let t0 = Instant::now();
        let mut c = DuplicateCache::new(Duration::from_secs(30), 100);
        assert_eq!(c.begin(key(1), t0), Seen::New);
        let mut other = key(1);
        other.authenticator[0] ^= 1;
        assert_eq!(c.begin(other, t0), Seen::New);
    }

    #[test]
    fn abandoned_requests_are_worked_on_again() {
        let t0 = Instant::now();
        let mut c = DuplicateCache::new(Duration::from_secs(30), 100);
        assert_eq!(c.begin(key(1), t0), Seen::New);
        c.abandon(&key(1));
        assert_eq!(c.begin(key(1), t0), Seen::New);
        c.finish(key(1), b"r", t0);
        c.abandon(&key(1));
        assert_eq!(
            c.begin(key(1), t0),
            Seen::Answered(b"r"),
            "answered entries stay"
        );
    }

    #[test]
    fn a_reply_that_took_long_is_kept_a_whole_window_from_the_answer() {
        let t0 = Instant::now();
        let mut c = DuplicateCache::new(Duration::from_secs(30), 100);
        assert_eq!(c.begin(key(1), t0), Seen::New);
        // Held 25 s for a phone, then answered.
        c.finish(key(1), b"late", t0 + Duration::from_secs(25));
        assert_eq!(
            c.begin(key(1), t0 + Duration::from_secs(50)),
            Seen::Answered(b"late")
        );
        assert_eq!(c.begin(key(1), t0 + Duration::from_secs(56)), Seen::New);
        // A quick answer keeps its one entry in the eviction order.
        let before = c.order_len();
        assert_eq!(c.begin(key(2), t0 + Duration::from_secs(56)), Seen::New);
        c.finish(key(2), b"quick", t0 + Duration::from_secs(56));
        assert_eq!(c.order_len(), before + 1);
    }

    #[test]
    fn capacity_bounds_the_cache() {
        let t0 = Instant::now();
        let mut c = DuplicateCache::new(Duration::from_secs(30), 10);
        for i in 0..=255u8 {
            let _ = c.begin(key(i), t0);
            c.finish(key(i), b"r", t0);
        }
        assert!(c.len() <= 10);
        assert!(c.order_len() <= 20 + 2);
        assert_eq!(c.begin(key(255), t0), Seen::Answered(b"r"));
    }

    fn numbered(n: u32) -> DedupKey {
        let mut authenticator = [0u8; 16];
        authenticator[..4].copy_from_slice(&n.to_be_bytes());
        DedupKey {
            peer: "192.0.2.1:1645".parse().unwrap(),
            identifier: n as u8,
            authenticator,
        }
    }

    #[test]
    fn the_shards_share_the_capacity_exactly() {
        for capacity in [
            1, 10, 1023, 1024, 1025, 65_536, 65_537, 1_000_000, 5_000_000,
        ] {
            let c = DuplicateCache::new(Duration::from_secs(30), capacity);
            let total: usize = c.shards.iter().map(|s| s.capacity).sum();
            assert_eq!(total, capacity, "{capacity}");
            assert!(c.shards.len() <= MAX_SHARDS);
            assert!(c.shards.iter().all(|s| s.capacity >= 1), "{capacity}");
            if capacity <= MAX_SHARDS * SHARD_ENTRIES {
                assert!(c.shards.iter().all(|s| s.capacity <= SHARD_ENTRIES));
            }
            assert!(
                capacity <= SHARD_ENTRIES || c.shards.len() > 1,
                "{capacity}"
            );
        }
    }

    #[test]
    fn a_full_sharded_cache_keeps_the_most_recent_requests() {
        let t0 = Instant::now();
        let capacity = 65_536;
        let mut c = DuplicateCache::new(Duration::from_secs(30), capacity);
        let n = 200_000u32;
        for i in 0..n {
            assert_eq!(c.begin(numbered(i), t0), Seen::New);
            c.finish(numbered(i), &i.to_be_bytes(), t0);
        }
        assert_eq!(c.len(), capacity, "every shard is full, none over");
        assert!(c.order_len() <= 2 * capacity + c.shards.len());
        // Hashing spreads keys evenly: the last third of a capacity's worth of requests
        // fills no shard, so all of them are still answered from the cache...
        for i in n - 20_000..n {
            assert_eq!(
                c.begin(numbered(i), t0),
                Seen::Answered(&i.to_be_bytes()),
                "{i}"
            );
        }
        // ...and the oldest are gone.
        assert_eq!(c.begin(numbered(0), t0), Seen::New);
    }
}
