//! The duplicate-request cache of one RADIUS client (RFC 5080 §2.2.2).
//!
//! A request is known by its source address and port, identifier and Request
//! Authenticator. While it is being worked on, a retransmit joins it (is dropped, and the
//! one reply answers both); once answered, a retransmit within the window gets the cached
//! reply byte for byte, so a passcode is never checked twice. The cache is bounded both in
//! time and in entries.
//!
//! Requests are kept in a ring in the order they were first seen, so that the oldest is
//! always the next to go, and found through small hash tables (shards) that hold only each
//! entry's place in the ring and 32 bits of its hash. Every request costs one insertion at
//! the ring's head and, once the cache is full, one removal at its tail, and neither moves
//! any other entry: the ring grows in chunks of fixed size as it first fills, a shard's
//! table grows only in small steps, and the reply of a new entry is written into the buffer
//! its slot held before, so a full cache allocates nothing.

use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::ops::{Index, IndexMut};
use std::time::{Duration, Instant};

use hashbrown::HashTable;

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
/// once) in steps of at most about this many entries, a few microseconds of work.
const SHARD_ENTRIES: usize = 1024;

/// Shards of one cache at most (an empty shard costs a few tens of bytes): up to
/// 1,048,576 entries a shard stays at about [`SHARD_ENTRIES`].
const MAX_SHARDS: usize = 1024;

/// Where a request lives in the ring, as a shard's table holds it: the ring slot and the
/// low 32 bits of the key's hash, from which the table's own hash is made again when it
/// grows (so growing never reads the ring), and which a lookup compares before it reads the
/// ring's key.
#[derive(Copy, Clone)]
struct Place {
    slot: u32,
    tag: u32,
}

/// The table hash of a tag: a multiplication spreads its 32 bits over the 64 the table
/// uses (its top bits choose among the candidates of a group, the low ones the group).
fn table_hash(tag: u32) -> u64 {
    u64::from(tag).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// What a ring slot holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing: never used, expired, forgotten, or moved to the head.
    Vacant,
    /// Being worked on.
    InProgress,
    /// Answered with the bytes in `reply`.
    Answered,
}

/// One slot of the ring.
struct Entry {
    key: DedupKey,
    /// The key's full hash (shard and tag).
    hash: u64,
    /// When the request was first seen (or answered, for one that took long): the window
    /// counts from then.
    since: Instant,
    state: State,
    /// The reply, when answered. Its buffer stays with the slot for the next occupant.
    reply: Vec<u8>,
}

/// Slots per chunk of the ring: a chunk is allocated when the ring first reaches it and
/// never moves, so a cache costs memory as it fills, not as configured.
const CHUNK: usize = 4096;

/// The ring's slots, in chunks of [`CHUNK`], numbered from zero.
#[derive(Default)]
struct Ring {
    chunks: Vec<Vec<Entry>>,
    /// Slots written at least once.
    len: usize,
}

impl Ring {
    fn len(&self) -> usize {
        self.len
    }

    /// Adds the next slot; `capacity` bounds the size of its chunk.
    fn push(&mut self, entry: Entry, capacity: usize) {
        if self.len % CHUNK == 0 {
            self.chunks
                .push(Vec::with_capacity(CHUNK.min(capacity - self.len)));
        }
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.push(entry);
        }
        self.len += 1;
    }
}

impl Index<usize> for Ring {
    type Output = Entry;
    fn index(&self, slot: usize) -> &Entry {
        &self.chunks[slot / CHUNK][slot % CHUNK]
    }
}

impl IndexMut<usize> for Ring {
    fn index_mut(&mut self, slot: usize) -> &mut Entry {
        &mut self.chunks[slot / CHUNK][slot % CHUNK]
    }
}

/// Bounded cache of recent requests of one client.
pub struct DuplicateCache {
    /// The ring: up to `capacity` slots, filled up by pushing, then reused.
    ring: Ring,
    capacity: usize,
    /// Sequence number of the oldest slot still counted (its slot is `tail % capacity`)
    /// and of the next slot to write; the ring holds `head - tail` slots, some of them
    /// possibly vacant.
    tail: u64,
    head: u64,
    /// Entries not vacant.
    live: usize,
    /// The index: for each live entry, its place, in the shard its hash chooses.
    shards: Box<[HashTable<Place>]>,
    window: Duration,
    hasher: Hasher,
}

impl DuplicateCache {
    /// A cache that remembers requests for `window` and at most `capacity` of them.
    pub fn new(window: Duration, capacity: usize) -> Self {
        let capacity = capacity.clamp(1, u32::MAX as usize);
        let count = capacity.div_ceil(SHARD_ENTRIES).clamp(1, MAX_SHARDS);
        DuplicateCache {
            ring: Ring::default(),
            capacity,
            tail: 0,
            head: 0,
            live: 0,
            shards: (0..count).map(|_| HashTable::new()).collect(),
            window,
            hasher: Hasher::default(),
        }
    }

    fn slot_of(&self, seq: u64) -> usize {
        (seq % self.capacity as u64) as usize
    }

    /// The shard of a hash: its high bits (the tag is made of the low ones).
    fn shard_of(&self, hash: u64) -> usize {
        ((hash >> 32) as usize) % self.shards.len()
    }

    /// The ring slot of a live request, if remembered.
    fn find(&self, key: &DedupKey, hash: u64) -> Option<usize> {
        let tag = hash as u32;
        let ring = &self.ring;
        self.shards[self.shard_of(hash)]
            .find(table_hash(tag), |p| {
                p.tag == tag && ring[p.slot as usize].key == *key
            })
            .map(|p| p.slot as usize)
    }

    /// Takes the request in `slot` out of the index and marks the slot vacant.
    fn vacate(&mut self, slot: usize) {
        let entry = &mut self.ring[slot];
        if entry.state == State::Vacant {
            return;
        }
        entry.state = State::Vacant;
        // The bytes go; the buffer stays for the slot's next occupant.
        entry.reply.clear();
        let hash = entry.hash;
        let shard = self.shard_of(hash);
        if let Ok(found) =
            self.shards[shard].find_entry(table_hash(hash as u32), |p| p.slot as usize == slot)
        {
            found.remove();
        }
        self.live -= 1;
    }

    /// Forgets the request in `slot` ahead of its turn: the slot stays in the ring, vacant,
    /// until the tail passes it, unless it is the newest, which the head takes back (with
    /// any vacant ones before it) for the next request.
    fn forget(&mut self, slot: usize) {
        self.vacate(slot);
        while self.head > self.tail && self.ring[self.slot_of(self.head - 1)].state == State::Vacant
        {
            self.head -= 1;
        }
    }

    /// Drops the oldest slots while they are vacant or out of their window, and, with
    /// `room`, one more when the ring is full, so that the head has a slot to write.
    fn evict(&mut self, now: Instant, room: bool) {
        while self.tail < self.head {
            let slot = self.slot_of(self.tail);
            let entry = &self.ring[slot];
            let expired = now.saturating_duration_since(entry.since) >= self.window;
            let full = room && self.head - self.tail >= self.capacity as u64;
            if entry.state != State::Vacant && !expired && !full {
                break;
            }
            self.vacate(slot);
            self.tail += 1;
        }
    }

    /// Writes a new entry at the head, after making room, and indexes it.
    fn push(&mut self, key: DedupKey, hash: u64, now: Instant, reply: Option<&[u8]>) {
        self.evict(now, true);
        let slot = self.slot_of(self.head);
        let state = if reply.is_some() {
            State::Answered
        } else {
            State::InProgress
        };
        if slot == self.ring.len() {
            self.ring.push(
                Entry {
                    key,
                    hash,
                    since: now,
                    state,
                    reply: reply.map(<[u8]>::to_vec).unwrap_or_default(),
                },
                self.capacity,
            );
        } else {
            let entry = &mut self.ring[slot];
            debug_assert!(entry.state == State::Vacant);
            entry.key = key;
            entry.hash = hash;
            entry.since = now;
            entry.state = state;
            entry.reply.clear();
            entry.reply.extend_from_slice(reply.unwrap_or_default());
        }
        self.head += 1;
        self.live += 1;
        let tag = hash as u32;
        let shard = self.shard_of(hash);
        self.shards[shard].insert_unique(
            table_hash(tag),
            Place {
                slot: slot as u32,
                tag,
            },
            |p| table_hash(p.tag),
        );
    }

    /// Looks a request up, marking it in progress when it is new.
    pub fn begin(&mut self, key: DedupKey, now: Instant) -> Seen<'_> {
        self.evict(now, false);
        let hash = self.hasher.hash_one(key);
        let found = self.find(&key, hash);
        if let Some(slot) = found {
            // The tail goes in the order of first sight, which the arrival stamps follow
            // only roughly: an entry behind one that is younger may outlive its window.
            if now.saturating_duration_since(self.ring[slot].since) < self.window {
                let entry = &self.ring[slot];
                return match entry.state {
                    State::Answered => Seen::Answered(&entry.reply),
                    _ => Seen::InProgress,
                };
            }
            self.forget(slot);
        }
        self.push(key, hash, now, None);
        Seen::New
    }

    /// Records the reply to a request, for its retransmits. The window counts from the
    /// request's first sight, or from now for one that took longer than
    /// [`RESTAMP_AFTER`] (a login held for a phone's approval): such a request moves to the
    /// ring's head, so that its reply is kept a whole window too. A request no longer
    /// remembered (evicted meanwhile) is remembered anew.
    pub fn finish(&mut self, key: DedupKey, reply: &[u8], now: Instant) {
        let hash = self.hasher.hash_one(key);
        if let Some(slot) = self.find(&key, hash) {
            let entry = &mut self.ring[slot];
            if now.saturating_duration_since(entry.since) < RESTAMP_AFTER {
                entry.state = State::Answered;
                entry.reply.clear();
                entry.reply.extend_from_slice(reply);
                return;
            }
            self.forget(slot);
        }
        self.push(key, hash, now, Some(reply));
    }

    /// Forgets a request that will not be answered (shed, or its worker died), so that a
    /// retransmit is worked on afresh. An answered request stays.
    pub fn abandon(&mut self, key: &DedupKey) {
        let hash = self.hasher.hash_one(key);
        if let Some(slot) = self.find(key, hash) {
            if self.ring[slot].state == State::InProgress {
                self.forget(slot);
            }
        }
    }

    /// Number of requests remembered.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Slots between the tail and the head, vacant ones included.
    #[cfg(test)]
    fn order_len(&self) -> usize {
        (self.head - self.tail) as usize
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
    fn the_index_stays_in_small_shards() {
        for capacity in [1, 10, 1023, 1024, 1025, 65_536, 1_000_000, 5_000_000] {
            let c = DuplicateCache::new(Duration::from_secs(30), capacity);
            assert!(c.shards.len() <= MAX_SHARDS, "{capacity}");
            assert_eq!(
                c.shards.len(),
                capacity.div_ceil(SHARD_ENTRIES).min(MAX_SHARDS),
                "{capacity}"
            );
        }
        let t0 = Instant::now();
        let mut c = DuplicateCache::new(Duration::from_secs(30), 65_536);
        for i in 0..200_000u32 {
            let _ = c.begin(numbered(i), t0);
            c.finish(numbered(i), b"r", t0);
        }
        let largest = c.shards.iter().map(HashTable::len).max().unwrap();
        let total: usize = c.shards.iter().map(HashTable::len).sum();
        assert_eq!(total, 65_536);
        // Hashing spreads keys evenly: no shard much above its share.
        assert!(largest < 2 * SHARD_ENTRIES, "{largest}");
    }

    #[test]
    fn a_full_cache_keeps_exactly_the_most_recent_requests() {
        let t0 = Instant::now();
        let capacity = 65_536;
        let mut c = DuplicateCache::new(Duration::from_secs(30), capacity);
        let n = 200_000u32;
        for i in 0..n {
            assert_eq!(c.begin(numbered(i), t0), Seen::New);
            c.finish(numbered(i), &i.to_be_bytes(), t0);
        }
        assert_eq!(c.len(), capacity);
        assert_eq!(c.order_len(), capacity);
        assert_eq!(
            c.ring.len(),
            capacity,
            "the ring never grows past its capacity"
        );
        // The last `capacity` requests are all answered from the cache (looking them up
        // does not change what is kept)...
        for i in n - capacity as u32..n {
            assert_eq!(
                c.begin(numbered(i), t0),
                Seen::Answered(&i.to_be_bytes()),
                "{i}"
            );
        }
        // ...and the one before them is gone.
        assert_eq!(c.begin(numbered(n - capacity as u32 - 1), t0), Seen::New);
    }

    #[test]
    fn a_reused_slot_holds_only_its_own_reply() {
        let t0 = Instant::now();
        let mut c = DuplicateCache::new(Duration::from_secs(30), 2);
        for (i, reply) in [&b"a long first reply"[..], b"x", b"yz"].iter().enumerate() {
            let k = numbered(i as u32);
            assert_eq!(c.begin(k, t0), Seen::New);
            c.finish(k, reply, t0);
        }
        assert_eq!(c.begin(numbered(0), t0), Seen::New);
        assert_eq!(c.begin(numbered(2), t0), Seen::Answered(b"yz"));
    }

    #[test]
    fn expired_requests_are_forgotten_even_behind_a_younger_one() {
        let t0 = Instant::now();
        let w = Duration::from_secs(30);
        let mut c = DuplicateCache::new(w, 100);
        // The first arrival stamp is later than the second's: the ring's order is not
        // quite the order of the stamps.
        assert_eq!(c.begin(numbered(1), t0 + Duration::from_secs(5)), Seen::New);
        c.finish(numbered(1), b"one", t0 + Duration::from_secs(5));
        assert_eq!(c.begin(numbered(2), t0), Seen::New);
        c.finish(numbered(2), b"two", t0);
        assert_eq!(c.begin(numbered(2), t0 + w), Seen::New, "out of its window");
        assert_eq!(
            c.begin(numbered(1), t0 + w),
            Seen::Answered(b"one"),
            "still within its own"
        );
    }

    mod model {
        use super::*;
        use proptest::prelude::*;
        use std::collections::VecDeque;

        /// A request's key, first sight and reply, as the model keeps it.
        type Remembered = (u32, Instant, Option<Vec<u8>>);

        /// The cache's rules in their plainest form: the slots in the order they were
        /// taken, a forgotten request leaving its slot empty until it is the oldest or
        /// the newest, searched from end to end.
        struct Model {
            slots: VecDeque<Option<Remembered>>,
            window: Duration,
            capacity: usize,
        }

        impl Model {
            fn evict(&mut self, now: Instant, room: bool) {
                while let Some(front) = self.slots.front() {
                    let gone = front.as_ref().is_none_or(|(_, since, _)| {
                        now.saturating_duration_since(*since) >= self.window
                    });
                    let full = room && self.slots.len() >= self.capacity;
                    if !gone && !full {
                        break;
                    }
                    self.slots.pop_front();
                }
            }
            fn position(&self, k: u32) -> Option<usize> {
                self.slots
                    .iter()
                    .position(|s| s.as_ref().is_some_and(|(key, _, _)| *key == k))
            }
            fn forget(&mut self, i: usize) {
                self.slots[i] = None;
                while self.slots.back().is_some_and(Option::is_none) {
                    self.slots.pop_back();
                }
            }
            fn push(&mut self, k: u32, now: Instant, reply: Option<Vec<u8>>) {
                self.evict(now, true);
                self.slots.push_back(Some((k, now, reply)));
            }
            fn begin(&mut self, k: u32, now: Instant) -> Option<Option<Vec<u8>>> {
                self.evict(now, false);
                if let Some(i) = self.position(k) {
                    return self.slots[i].as_ref().map(|(_, _, reply)| reply.clone());
                }
                self.push(k, now, None);
                None
            }
            fn finish(&mut self, k: u32, reply: Vec<u8>, now: Instant) {
                if let Some(i) = self.position(k) {
                    let (_, since, kept) = self.slots[i].as_mut().unwrap();
                    if now.saturating_duration_since(*since) < RESTAMP_AFTER {
                        *kept = Some(reply);
                        return;
                    }
                    self.forget(i);
                }
                self.push(k, now, Some(reply));
            }
            fn abandon(&mut self, k: u32) {
                if let Some(i) = self.position(k) {
                    if self.slots[i].as_ref().is_some_and(|(_, _, r)| r.is_none()) {
                        self.forget(i);
                    }
                }
            }
            fn len(&self) -> usize {
                self.slots.iter().flatten().count()
            }
        }

        #[derive(Debug, Clone)]
        enum Op {
            Begin(u32),
            Finish(u32, Vec<u8>),
            Abandon(u32),
            /// Time passes, in milliseconds.
            Wait(u64),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (0..24u32).prop_map(Op::Begin),
                3 => (0..24u32, proptest::collection::vec(any::<u8>(), 0..40))
                    .prop_map(|(k, r)| Op::Finish(k, r)),
                1 => (0..24u32).prop_map(Op::Abandon),
                2 => (0..1_500u64).prop_map(Op::Wait),
            ]
        }

        proptest! {
            /// With time only moving forward, the cache answers every lookup as the model
            /// does, and holds as many requests.
            #[test]
            fn the_cache_behaves_as_its_model(
                capacity in 1..12usize,
                ops in proptest::collection::vec(op(), 0..300),
            ) {
                let window = Duration::from_secs(3);
                let mut now = Instant::now();
                let mut cache = DuplicateCache::new(window, capacity);
                let mut model = Model { slots: VecDeque::new(), window, capacity };
                for op in ops {
                    match op {
                        Op::Begin(k) => {
                            let expected = match model.begin(k, now) {
                                None => Seen::New,
                                Some(None) => Seen::InProgress,
                                Some(Some(_)) => Seen::Answered(&[]),
                            };
                            let reply = model
                                .position(k)
                                .and_then(|i| model.slots[i].as_ref().and_then(|s| s.2.clone()));
                            let got = cache.begin(numbered(k), now);
                            match (&got, &expected) {
                                (Seen::Answered(bytes), Seen::Answered(_)) => {
                                    prop_assert_eq!(Some(bytes.to_vec()), reply)
                                }
                                _ => prop_assert_eq!(&got, &expected),
                            }
                        }
                        Op::Finish(k, reply) => {
                            cache.finish(numbered(k), &reply, now);
                            model.finish(k, reply, now);
                        }
                        Op::Abandon(k) => {
                            cache.abandon(&numbered(k));
                            model.abandon(k);
                        }
                        Op::Wait(ms) => now += Duration::from_millis(ms),
                    }
                    prop_assert_eq!(cache.len(), model.len());
                    prop_assert_eq!(cache.order_len(), model.slots.len());
                    prop_assert!(cache.len() <= capacity);
                }
            }
        }
    }
}
