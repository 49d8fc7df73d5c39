//! The duplicate-request cache of one RADIUS client (RFC 5080 §2.2.2).
//!
//! A request is known by its source address and port, identifier and Request
//! Authenticator. While it is being worked on, a retransmit joins it (is dropped, and the
//! one reply answers both); once answered, a retransmit within the window gets the cached
//! reply byte for byte, so a passcode is never checked twice. The cache is bounded both in
//! time and in entries.

use std::collections::{HashMap, VecDeque};
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

enum Slot {
    InProgress { since: Instant },
    Done { reply: Box<[u8]>, at: Instant },
}

impl Slot {
    fn born(&self) -> Instant {
        match self {
            Slot::InProgress { since } => *since,
            Slot::Done { at, .. } => *at,
        }
    }
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

/// Bounded cache of recent requests of one client.
pub struct DuplicateCache {
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
        DuplicateCache {
            slots: HashMap::with_hasher(Hasher::default()),
            order: VecDeque::new(),
            window,
            capacity: capacity.max(1),
        }
    }

    fn evict(&mut self, now: Instant) {
        while let Some(&(born, key)) = self.order.front() {
            let expired = now.saturating_duration_since(born) >= self.window;
            if !expired && self.slots.len() < self.capacity {
                break;
            }
            self.order.pop_front();
            if self.slots.get(&key).is_some_and(|s| s.born() == born) {
                self.slots.remove(&key);
            }
        }
        // The order queue can outgrow the map only by keys already gone; compact it then.
        if self.order.len() > self.capacity.saturating_mul(2) {
            let slots = &self.slots;
            self.order
                .retain(|(born, key)| slots.get(key).is_some_and(|s| s.born() == *born));
        }
    }

    /// Looks a request up, marking it in progress when it is new.
    pub fn begin(&mut self, key: DedupKey, now: Instant) -> Seen<'_> {
        self.evict(now);
        if self.slots.contains_key(&key) {
            return match &self.slots[&key] {
                Slot::InProgress { .. } => Seen::InProgress,
                Slot::Done { reply, .. } => Seen::Answered(reply),
            };
        }
        self.slots.insert(key, Slot::InProgress { since: now });
        self.order.push_back((now, key));
        Seen::New
    }

    /// Records the reply to a request, for its retransmits.
    pub fn finish(&mut self, key: DedupKey, reply: &[u8], now: Instant) {
        self.slots.insert(
            key,
            Slot::Done {
                reply: reply.into(),
                at: now,
            },
        );
        self.order.push_back((now, key));
        self.evict(now);
    }

    /// Forgets a request that will not be answered (shed, or its worker died), so that a
    /// retransmit is worked on afresh.
    pub fn abandon(&mut self, key: &DedupKey) {
        if matches!(self.slots.get(key), Some(Slot::InProgress { .. })) {
            self.slots.remove(key);
        }
    }

    /// Number of requests remembered.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
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
    fn capacity_bounds_the_cache() {
        let t0 = Instant::now();
        let mut c = DuplicateCache::new(Duration::from_secs(30), 10);
        for i in 0..=255u8 {
            let _ = c.begin(key(i), t0);
            c.finish(key(i), b"r", t0);
        }
        assert!(c.len() <= 10);
        assert!(c.order.len() <= 20 + 2);
        assert_eq!(c.begin(key(255), t0), Seen::Answered(b"r"));
    }
}
