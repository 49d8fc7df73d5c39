//! The open loop's timetable.
//!
//! In an open loop, request `i` of the run is due at `start + i / rate`, whatever happened
//! to the requests before it. Latency is measured from that intended time, not from the
//! moment the datagram actually left: if the server (or the harness) falls behind, the wait
//! shows up in the latency instead of being hidden by a sender that politely slowed down
//! (the "coordinated omission" of closed-loop benchmarks). A send that leaves more than
//! [`LATE_AFTER`] after its intended time is counted as late, so a harness that cannot keep
//! up says so.

use std::time::{Duration, Instant};

/// How far behind its intended time a send may leave before it counts as late.
pub const LATE_AFTER: Duration = Duration::from_millis(1);

/// The offset of request `index` from the start of the run at `rate` requests per second.
pub fn intended_offset(index: u64, rate: f64) -> Duration {
    // Computed from the index each time instead of by adding a period repeatedly, so that
    // rounding never accumulates over millions of requests.
    Duration::from_secs_f64(index as f64 / rate)
}

/// How many requests fall into `duration`: those whose intended offset is below it.
pub fn scheduled_count(duration: Duration, rate: f64) -> u64 {
    let exact = duration.as_secs_f64() * rate;
    // Floating-point products like 0.3 * 10 come out as 2.9999…; a nanosecond of slack
    // keeps them on the integer they stand for.
    let slack = 1e-9 * rate;
    (exact - slack).ceil().max(0.0) as u64
}

/// How late a send at `actual` is for its `intended` time, if it is late at all.
pub fn lateness(intended: Instant, actual: Instant) -> Option<Duration> {
    let behind = actual.saturating_duration_since(intended);
    (behind > LATE_AFTER).then_some(behind)
}

/// One worker's share of the timetable: with `workers` workers, worker `w` sends requests
/// `w`, `w + workers`, `w + 2 * workers`, … of the run.
#[derive(Debug, Clone)]
pub struct OpenSchedule {
    start: Instant,
    rate: f64,
    stride: u64,
    next_index: u64,
}

impl OpenSchedule {
    /// The share of worker `worker` out of `workers` of a run starting at `start`.
    pub fn new(start: Instant, rate: f64, worker: usize, workers: usize) -> Self {
        OpenSchedule {
            start,
            rate,
            stride: workers.max(1) as u64,
            next_index: worker as u64,
        }
    }

    /// The run-wide index of the next request of this worker.
    pub fn index(&self) -> u64 {
        self.next_index
    }

    /// When the next request of this worker is due.
    pub fn due(&self) -> Instant {
        self.start + intended_offset(self.next_index, self.rate)
    }

    /// Moves on to this worker's following request.
    pub fn advance(&mut self) {
        self.next_index += self.stride;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intended_times_follow_the_rate_exactly() {
        assert_eq!(intended_offset(0, 1000.0), Duration::ZERO);
        assert_eq!(intended_offset(1, 1000.0), Duration::from_millis(1));
        assert_eq!(intended_offset(1000, 1000.0), Duration::from_secs(1));
        assert_eq!(intended_offset(3, 4.0), Duration::from_millis(750));
        // No drift after many periods: the millionth request of 30000/s is due at 33.33 s.
        let d = intended_offset(1_000_000, 30_000.0);
        assert!((d.as_secs_f64() - 33.333_333_333).abs() < 1e-6, "{d:?}");
        let mut previous = Duration::ZERO;
        for i in 1..10_000 {
            let d = intended_offset(i, 7_777.7);
            assert!(d > previous);
            previous = d;
        }
    }

    #[test]
    fn the_count_of_a_duration_includes_its_start_and_excludes_its_end() {
        assert_eq!(scheduled_count(Duration::from_secs(1), 1000.0), 1000);
        assert_eq!(scheduled_count(Duration::from_millis(300), 10.0), 3);
        assert_eq!(scheduled_count(Duration::from_millis(301), 10.0), 4);
        assert_eq!(scheduled_count(Duration::ZERO, 10.0), 0);
        for n in 0..1000 {
            let d = Duration::from_secs(2);
            let rate = 1.0 + f64::from(n) * 3.7;
            let count = scheduled_count(d, rate);
            // Request count - 1 is inside the duration and request count is not.
            if count > 0 {
                assert!(intended_offset(count - 1, rate) < d);
            }
            assert!(intended_offset(count, rate) >= d - Duration::from_nanos(1));
        }
    }

    #[test]
    fn workers_interleave_their_shares() {
        let start = Instant::now();
        let mut a = OpenSchedule::new(start, 100.0, 0, 2);
        let mut b = OpenSchedule::new(start, 100.0, 1, 2);
        let mut due = Vec::new();
        for _ in 0..3 {
            due.push(a.due() - start);
            due.push(b.due() - start);
            a.advance();
            b.advance();
        }
        let ms: Vec<u128> = due.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 10, 20, 30, 40, 50]);
        assert_eq!(a.index(), 6);
    }

    #[test]
    fn lateness_counts_only_beyond_the_threshold() {
        let t = Instant::now();
        assert_eq!(lateness(t, t), None);
        assert_eq!(lateness(t + Duration::from_millis(5), t), None);
        assert_eq!(lateness(t, t + LATE_AFTER), None);
        assert_eq!(
            lateness(t, t + Duration::from_millis(3)),
            Some(Duration::from_millis(3))
        );
    }
}
