//! What a run counts and measures.
//!
//! Each worker keeps a [`Stats`] of its own (no sharing on the hot path) and hands a copy
//! to the coordinator once a second, then starts afresh; the coordinator adds them up. The
//! latency histograms are HDR histograms in microseconds, so percentiles stay exact to
//! three significant digits from one microsecond to two minutes, whatever the distribution.
//! Each second's sum is also kept as a [`Second`], the run's timeline.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::mix::Kind;

/// The largest latency a histogram records, in microseconds; larger values are clamped.
pub const MAX_LATENCY_US: u64 = 120_000_000;

/// A fresh latency histogram (µs, three significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant bounds are valid")
}

/// Records one latency, clamped to the histogram's range.
pub fn record(h: &mut Histogram<u64>, latency: Duration) {
    let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    h.saturating_record(us.clamp(1, MAX_LATENCY_US));
}

/// Defines a struct of `u64` counters that can be added up field by field.
macro_rules! counters {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident,)* }) => {
        $(#[$meta])*
        #[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: u64,)*
        }

        impl $name {
            /// Adds every counter of `other` to this one.
            pub fn add(&mut self, other: &$name) {
                $(self.$field += other.$field;)*
            }
        }
    };
}

counters! {
    /// Run-wide counters. A transaction is one login (two datagrams in challenge mode) or
    /// one probe; each ends exactly once, as `ok`, `failures`, `timeouts`,
    /// `dropped_as_expected` or `send_errors`.
    pub struct Counts {
        /// Transactions started.
        pub started,
        /// Datagrams sent.
        pub sent,
        /// Replies that decoded, matched an outstanding identifier and passed
        /// `verify_response` (Response Authenticator and Message-Authenticator).
        pub answered,
        /// Verified Access-Accepts.
        pub accepts,
        /// Verified Access-Rejects.
        pub rejects,
        /// Verified Access-Challenges.
        pub challenges,
        /// Transactions that ended as their kind expects.
        pub ok,
        /// Transactions that got a verified reply other than the expected one (for instance
        /// a reject in an accept scenario), or any reply to a probe the server should drop.
        pub failures,
        /// Transactions whose reply did not come within the timeout.
        pub timeouts,
        /// Probes (bad secret, malformed) that got no reply, as they should.
        pub dropped_as_expected,
        /// Replies to probes that should have been dropped (also counted in `failures`).
        pub unexpected_replies,
        /// Datagrams that did not decode or failed verification (wrong authenticator,
        /// missing Message-Authenticator, unexpected code); the request kept waiting.
        pub bad_replies,
        /// Replies whose identifier was not in flight, for instance after a timeout.
        pub stray_replies,
        /// Datagrams the kernel refused to send, and ICMP errors reported on a socket.
        pub send_errors,
        /// Open loop: sends that left more than 1 ms after their intended time.
        pub late_sends,
        /// Failure kinds sent as good logins because no eligible user was free (a replay
        /// needs a user with an accepted code; any failure kind needs a user far from lockout).
        pub substituted,
        /// `--duplicates`: datagrams sent a second time at once, as a NAS retransmits (not
        /// in `sent`).
        pub duplicates_sent,
        /// Verified replies to a duplicate after its first copy was answered.
        pub duplicate_replies,
        /// Of those, replies whose code differs from the first reply's: the server answered
        /// one request twice, differently (counted in `failures` too).
        pub duplicate_mismatches,
    }
}

counters! {
    /// Counters of one kind of transaction.
    pub struct KindCounts {
        /// Transactions started.
        pub started,
        /// Ended as expected.
        pub ok,
        /// Ended with a wrong verified reply (or any reply, for probes).
        pub failed,
        /// Ended without a reply although one was expected.
        pub timeouts,
        /// Ended without a reply, as expected.
        pub dropped_as_expected,
        /// Final replies that were Access-Accept.
        pub accepts,
        /// Final replies that were Access-Reject.
        pub rejects,
        /// Final replies that were Access-Challenge.
        pub challenges,
    }
}

/// Everything one worker (or the whole run) counted and measured.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Run-wide counters.
    pub counts: Counts,
    /// Counters by kind, indexed by [`Kind::index`].
    pub kinds: [KindCounts; crate::mix::KINDS],
    /// Latency of each answered datagram: from its intended send time in an open loop,
    /// from the actual send otherwise.
    pub latency: Histogram<u64>,
    /// Latency of each answered transaction, from its first datagram to its final reply
    /// (differs from `latency` only in challenge mode).
    pub login_latency: Histogram<u64>,
    /// Push logins: from the moment the approval left (its POST was sent) to the
    /// Access-Accept.
    pub approval_latency: Histogram<u64>,
    /// Push logins: the most held at once (sent and not yet finally answered) over every
    /// worker, as seen by the worker that sent one.
    pub held_max: u64,
    /// Push logins: the integral of this worker's held logins over time, in login·µs; the
    /// workers' sum over the phase's length is the mean held at once.
    pub held_us: u64,
    /// The largest lateness of an open-loop send.
    pub max_lateness: Duration,
    /// When the last verified reply arrived.
    pub last_reply: Option<Instant>,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// Nothing counted yet.
    pub fn new() -> Self {
        Stats {
            counts: Counts::default(),
            kinds: [KindCounts::default(); crate::mix::KINDS],
            latency: new_histogram(),
            login_latency: new_histogram(),
            approval_latency: new_histogram(),
            held_max: 0,
            held_us: 0,
            max_lateness: Duration::ZERO,
            last_reply: None,
        }
    }

    /// The counters of one kind.
    pub fn kind(&mut self, kind: Kind) -> &mut KindCounts {
        &mut self.kinds[kind.index()]
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Stats) {
        self.counts.add(&other.counts);
        for (a, b) in self.kinds.iter_mut().zip(&other.kinds) {
            a.add(b);
        }
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.login_latency.add(&other.login_latency);
        let _ = self.approval_latency.add(&other.approval_latency);
        self.held_max = self.held_max.max(other.held_max);
        self.held_us = self.held_us.saturating_add(other.held_us);
        self.max_lateness = self.max_lateness.max(other.max_lateness);
        self.last_reply = self.last_reply.max(other.last_reply);
    }

    /// Returns what was counted so far and starts afresh.
    pub fn take(&mut self) -> Stats {
        std::mem::take(self)
    }
}

/// One second of a run, as the progress line shows it: what was sent in it, what ended in
/// it and how, and the latency of the replies that arrived in it. Fault scripts read the
/// series to see when a fault began to cost and when it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// Seconds from the start of the phase to the end of this window.
    pub at_secs: f64,
    /// Datagrams sent.
    pub sent: u64,
    /// Replies received and verified.
    pub answered: u64,
    /// Transactions that ended as expected.
    pub ok: u64,
    /// Transactions that ended otherwise (a wrong answer).
    pub failures: u64,
    /// Transactions that ended without the reply they expected.
    pub timeouts: u64,
    /// Median latency of the replies received (µs; 0 when none).
    pub p50_us: u64,
    /// Largest latency of the replies received (µs; 0 when none).
    pub max_us: u64,
}

impl Second {
    /// The summary of one window of `stats`, ending `at` after the start.
    pub fn of(at: Duration, stats: &Stats) -> Second {
        let c = &stats.counts;
        let (p50_us, max_us) = if stats.latency.is_empty() {
            (0, 0)
        } else {
            (stats.latency.value_at_quantile(0.5), stats.latency.max())
        };
        Second {
            at_secs: (at.as_secs_f64() * 1000.0).round() / 1000.0,
            sent: c.sent,
            answered: c.answered,
            ok: c.ok,
            failures: c.failures,
            timeouts: c.timeouts,
            p50_us,
            max_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_counts_and_histograms() {
        let mut a = Stats::new();
        a.counts.sent = 2;
        a.kind(Kind::Replay).ok = 1;
        record(&mut a.latency, Duration::from_micros(100));
        let mut b = Stats::new();
        b.counts.sent = 3;
        b.kind(Kind::Replay).ok = 4;
        record(&mut b.latency, Duration::from_micros(300));
        record(&mut b.latency, Duration::from_secs(1_000));
        b.max_lateness = Duration::from_millis(2);
        a.merge(&b);
        assert_eq!(a.counts.sent, 5);
        assert_eq!(a.kinds[Kind::Replay.index()].ok, 5);
        assert_eq!(a.latency.len(), 3);
        assert_eq!(
            a.latency.max(),
            a.latency.highest_equivalent(MAX_LATENCY_US)
        );
        assert_eq!(a.max_lateness, Duration::from_millis(2));
        let taken = a.take();
        assert_eq!(taken.counts.sent, 5);
        assert_eq!(a.counts.sent, 0);
        assert_eq!(a.latency.len(), 0);
    }
}
