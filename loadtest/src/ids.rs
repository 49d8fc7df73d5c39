//! RADIUS identifiers of one socket.
//!
//! A reply is matched to its request by source port and the one-octet Identifier, so an
//! identifier must not be reused while its request may still be answered. Each socket has
//! 256 of them; more concurrency needs more sockets. Free identifiers are handed out in the
//! order they were returned, so a timed-out identifier comes back only after every other
//! free one was used, which gives a late reply to it the longest possible time to arrive
//! and be discarded as stray before the identifier is in flight again.

use std::collections::VecDeque;

/// The identifiers of one socket that are not in flight, oldest-freed first.
#[derive(Debug, Clone)]
pub struct IdPool {
    free: VecDeque<u8>,
}

impl Default for IdPool {
    fn default() -> Self {
        Self::new()
    }
}

impl IdPool {
    /// A pool with all 256 identifiers free.
    pub fn new() -> Self {
        IdPool {
            free: (0..=u8::MAX).collect(),
        }
    }

    /// Takes a free identifier, or `None` when all 256 are in flight.
    pub fn acquire(&mut self) -> Option<u8> {
        self.free.pop_front()
    }

    /// Returns an identifier whose request is finished (answered or timed out).
    pub fn release(&mut self, id: u8) {
        debug_assert!(!self.free.contains(&id), "identifier {id} released twice");
        self.free.push_back(id);
    }

    /// How many identifiers are in flight.
    pub fn in_flight(&self) -> usize {
        256 - self.free.len()
    }

    /// Whether at least one identifier is free.
    pub fn has_free(&self) -> bool {
        !self.free.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn no_identifier_is_handed_out_twice_while_in_flight() {
        let mut pool = IdPool::new();
        let mut in_flight = HashSet::new();
        for _ in 0..256 {
            assert!(in_flight.insert(pool.acquire().unwrap()));
        }
        assert_eq!(pool.acquire(), None);
        assert_eq!(pool.in_flight(), 256);
        pool.release(7);
        in_flight.remove(&7);
        assert_eq!(pool.acquire(), Some(7));
    }

    #[test]
    fn a_released_identifier_waits_behind_every_other_free_one() {
        let mut pool = IdPool::new();
        let first = pool.acquire().unwrap();
        pool.release(first);
        let next: Vec<u8> = (0..255).map(|_| pool.acquire().unwrap()).collect();
        assert!(!next.contains(&first));
        assert_eq!(pool.acquire(), Some(first));
    }
}
