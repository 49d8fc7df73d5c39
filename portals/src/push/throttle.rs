//! How often one network address may try to enrol a device.
//!
//! An enrolment code has 120 random bits, so guessing one is hopeless; what the limit
//! protects is the server: every attempt costs a signature check and a write to the store.
//! Attempts are counted per source address in one-minute windows (an IPv6 address counts
//! as its /64, the block one host is usually given, so that a host cannot step through its
//! own addresses). Successful attempts count too: a phone enrols once.
//!
//! The table of addresses is bounded. When it is full of addresses seen this minute, a new
//! address is refused until the minute turns, rather than an old one forgotten early (which
//! would reset its count): a flood from many addresses then slows enrolment for everyone
//! for at most a minute, and costs nothing more.

use std::collections::HashMap;
use std::net::IpAddr;

/// Why an attempt was refused, and when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Throttled {
    /// This address used its attempts for the minute.
    Address {
        /// Seconds until the minute turns.
        retry_after: u32,
    },
    /// Too many addresses tried this minute.
    Full {
        /// Seconds until the minute turns.
        retry_after: u32,
    },
}

/// Attempts per address in the current minute.
#[derive(Debug)]
pub(crate) struct EnrolThrottle {
    per_minute: u32,
    max_addresses: usize,
    /// Address (an IPv6 address cut to its /64) → (minute, attempts in it).
    windows: HashMap<IpAddr, (u64, u32)>,
}

impl EnrolThrottle {
    /// At most `per_minute` attempts per address (0: no limit), with at most
    /// `max_addresses` addresses remembered.
    pub(crate) fn new(per_minute: u32, max_addresses: usize) -> EnrolThrottle {
        EnrolThrottle {
            per_minute,
            max_addresses: max_addresses.max(1),
            windows: HashMap::new(),
        }
    }

    /// Counts an attempt from `address` at unix time `now`, or says why it is refused.
    pub(crate) fn admit(&mut self, address: IpAddr, now: u64) -> Result<(), Throttled> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let minute = now / 60;
        let retry_after = (60 - now % 60) as u32;
        let key = block(address);
        if !self.windows.contains_key(&key) && self.windows.len() >= self.max_addresses {
            self.windows.retain(|_, (m, _)| *m == minute);
            if self.windows.len() >= self.max_addresses {
                return Err(Throttled::Full { retry_after });
            }
        }
        let (m, count) = self.windows.entry(key).or_insert((minute, 0));
        if *m != minute {
            *m = minute;
            *count = 0;
        }
        if *count >= self.per_minute {
            return Err(Throttled::Address { retry_after });
        }
        *count += 1;
        Ok(())
    }
}

/// The block an address is counted under: itself for IPv4, its /64 for IPv6 (an
/// IPv4-mapped IPv6 address counts as the IPv4 address).
fn block(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_gets_its_attempts_per_minute_and_no_more() {
        let mut t = EnrolThrottle::new(3, 100);
        let now = 1_800_000_010; // 10 s into a minute
        for _ in 0..3 {
            t.admit(ip("192.0.2.1"), now).unwrap();
        }
        assert_eq!(
            t.admit(ip("192.0.2.1"), now + 5),
            Err(Throttled::Address { retry_after: 45 })
        );
        // Another address is not affected; the next minute starts afresh.
        t.admit(ip("192.0.2.2"), now).unwrap();
        t.admit(ip("192.0.2.1"), now + 50).unwrap();
    }

    #[test]
    fn an_ipv6_host_counts_as_its_64() {
        let mut t = EnrolThrottle::new(2, 100);
        let now = 1_800_000_000;
        t.admit(ip("2001:db8:1:2::1"), now).unwrap();
        t.admit(ip("2001:db8:1:2:ffff::9"), now).unwrap();
        assert!(t.admit(ip("2001:db8:1:2::abcd"), now).is_err());
        t.admit(ip("2001:db8:1:3::1"), now).unwrap();
        // A mapped IPv4 address is that IPv4 address.
        t.admit(ip("198.51.100.7"), now).unwrap();
        t.admit(ip("::ffff:198.51.100.7"), now).unwrap();
        assert!(t.admit(ip("198.51.100.7"), now).is_err());
    }

    #[test]
    fn a_full_table_refuses_new_addresses_until_the_minute_turns() {
        let mut t = EnrolThrottle::new(5, 2);
        let now = 1_800_000_000;
        t.admit(ip("192.0.2.1"), now).unwrap();
        t.admit(ip("192.0.2.2"), now).unwrap();
        assert_eq!(
            t.admit(ip("192.0.2.3"), now + 1),
            Err(Throttled::Full { retry_after: 59 })
        );
        // Addresses already counted go on.
        t.admit(ip("192.0.2.1"), now + 2).unwrap();
        // Next minute the stale entries make room.
        t.admit(ip("192.0.2.3"), now + 60).unwrap();
    }

    #[test]
    fn zero_means_no_limit() {
        let mut t = EnrolThrottle::new(0, 1);
        for i in 0..1000u32 {
            t.admit(IpAddr::from(i.to_be_bytes()), 0).unwrap();
        }
    }

    proptest! {
        /// Whatever the sequence of attempts, no address gets more than `per_minute` in a
        /// minute and the table never grows past its bound.
        #[test]
        fn never_more_than_the_limit(
            per_minute in 1u32..5,
            max in 1usize..6,
            attempts in proptest::collection::vec((0u8..8, 0u64..180), 0..200),
        ) {
            let mut t = EnrolThrottle::new(per_minute, max);
            let mut attempts = attempts;
            attempts.sort_by_key(|a| a.1);
            let mut admitted: HashMap<(u8, u64), u32> = HashMap::new();
            for (host, at) in attempts {
                if t.admit(IpAddr::from([10, 0, 0, host]), at).is_ok() {
                    *admitted.entry((host, at / 60)).or_default() += 1;
                }
                prop_assert!(t.windows.len() <= max);
            }
            prop_assert!(admitted.values().all(|&n| n <= per_minute));
        }
    }
}
