//! The machine's own stalls: how long a thread that never sleeps is kept off its core.
//!
//! A load test's tail latency is bounded below by the stalls of the machine it runs on:
//! when a core is taken away for 3 ms (by a kernel thread, an interrupt, or the hypervisor
//! running another guest on the same physical CPU), everything waiting on that core waits
//! 3 ms, and at 80 % load the queue that builds up meanwhile takes about five times as long
//! to drain. [`measure`] spins on the calling thread, reading the monotonic clock, and
//! counts every gap between two consecutive reads by size. Pin the thread (`taskset`) to
//! the core to be measured; run it on an otherwise idle machine, or it measures the other
//! work too. It also keeps each gap's time and length (up to [`MAX_GAPS`]), on the
//! monotonic clock, so that [`crate::floor`] can lay the gaps of two cores measured at once
//! side by side.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Gaps kept with their times at most (the counts go on past it).
pub const MAX_GAPS: usize = 1_000_000;

/// Lower bounds of the gap classes counted, in microseconds.
pub const CLASSES_US: [u64; 7] = [20, 100, 500, 1_000, 2_000, 5_000, 10_000];

/// Gaps of one class: those at least as long as its bound and shorter than the next.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Class {
    /// The lower bound, in microseconds.
    pub from_us: u64,
    /// How many gaps.
    pub count: u64,
    /// Their total length, in microseconds.
    pub total_us: u64,
}

/// What a measurement saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hiccups {
    /// How long the thread spun, in milliseconds.
    pub duration_ms: u64,
    /// Gaps by class, shortest first.
    pub classes: Vec<Class>,
    /// The longest gap, in microseconds.
    pub max_us: u64,
    /// When the thread began to spin, in nanoseconds of `CLOCK_MONOTONIC` (the same clock
    /// for every process of the machine).
    pub start_ns: u64,
    /// Each gap of at least the first class's length, in order: when it began, in
    /// microseconds after `start_ns`, and how long it was, in microseconds.
    pub gaps: Vec<[u64; 2]>,
}

impl Hiccups {
    /// Gaps at least `us` long, and their total length in microseconds.
    pub fn at_least(&self, us: u64) -> (u64, u64) {
        self.classes
            .iter()
            .filter(|c| c.from_us >= us)
            .fold((0, 0), |(n, t), c| (n + c.count, t + c.total_us))
    }

    /// One line for people: gaps over 1 ms and over 2 ms, and the longest.
    pub fn summary(&self) -> String {
        let (n1, t1) = self.at_least(1_000);
        let (n2, t2) = self.at_least(2_000);
        format!(
            "{n1} stalls >= 1 ms ({:.1} ms in all), {n2} >= 2 ms ({:.1} ms), longest {:.2} ms in {:.1} s",
            t1 as f64 / 1e3,
            t2 as f64 / 1e3,
            self.max_us as f64 / 1e3,
            self.duration_ms as f64 / 1e3
        )
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Counts a gap of `gap` into `counts` (one per class of [`CLASSES_US`]).
fn count(counts: &mut [Class; CLASSES_US.len()], gap: Duration) {
    let us = u64::try_from(gap.as_micros()).unwrap_or(u64::MAX);
    if let Some(i) = CLASSES_US.iter().rposition(|&from| us >= from) {
        counts[i].count += 1;
        counts[i].total_us = counts[i].total_us.saturating_add(us);
    }
}

/// Spins on the calling thread for `duration` and reports the gaps between consecutive
/// clock reads.
pub fn measure(duration: Duration) -> Hiccups {
    let mut counts = CLASSES_US.map(|from_us| Class {
        from_us,
        ..Class::default()
    });
    let mut gaps = Vec::new();
    let start_ns = crate::sys::monotonic_ns();
    let start = Instant::now();
    let end = start + duration;
    let mut last = start;
    let mut max = Duration::ZERO;
    while last < end {
        let now = Instant::now();
        let gap = now - last;
        if gap >= Duration::from_micros(CLASSES_US[0]) {
            count(&mut counts, gap);
            max = max.max(gap);
            if gaps.len() < MAX_GAPS {
                gaps.push([micros(last - start), micros(gap)]);
            }
        }
        last = now;
    }
    Hiccups {
        duration_ms: u64::try_from((last - start).as_millis()).unwrap_or(u64::MAX),
        classes: counts.to_vec(),
        max_us: micros(max),
        start_ns,
        gaps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_fall_into_the_class_of_their_length() {
        let mut counts = CLASSES_US.map(|from_us| Class {
            from_us,
            ..Class::default()
        });
        for us in [19, 20, 99, 100, 1_000, 1_999, 2_000, 50_000] {
            count(&mut counts, Duration::from_micros(us));
        }
        let got: Vec<(u64, u64)> = counts.iter().map(|c| (c.count, c.total_us)).collect();
        assert_eq!(
            got,
            [
                (2, 119),
                (1, 100),
                (0, 0),
                (2, 2_999),
                (1, 2_000),
                (0, 0),
                (1, 50_000)
            ]
        );
        let h = Hiccups {
            duration_ms: 1_000,
            classes: counts.to_vec(),
            max_us: 50_000,
            start_ns: 0,
            gaps: Vec::new(),
        };
        assert_eq!(h.at_least(1_000), (4, 54_999));
        assert_eq!(h.at_least(2_000), (2, 52_000));
        assert_eq!(
            h.summary(),
            "4 stalls >= 1 ms (55.0 ms in all), 2 >= 2 ms (52.0 ms), longest 50.00 ms in 1.0 s"
        );
    }

    /// Pins the calling thread to CPU 0.
    #[allow(unsafe_code)]
    fn pin_to_cpu0() {
        // SAFETY: cpu_set_t is plain old data; the set lives across the call, and pid 0 is
        // the calling thread.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            assert_eq!(
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
                0
            );
        }
    }

    #[test]
    fn a_thread_sharing_the_core_shows_as_stalls() {
        // A second busy thread on the same core takes it away in time slices: the
        // measuring thread sees each as a gap.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hog = {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                pin_to_cpu0();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        };
        let h = std::thread::spawn(|| {
            pin_to_cpu0();
            measure(Duration::from_millis(300))
        })
        .join()
        .unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        hog.join().unwrap();
        // Half the core went to the other thread, in slices of well over 100 µs.
        let (n, total_us) = h.at_least(100);
        assert!(n >= 5, "{h:?}");
        assert!(total_us >= 50_000, "{h:?}");
    }

    #[test]
    fn a_measurement_lasts_as_long_as_asked_and_sees_only_real_gaps() {
        let h = measure(Duration::from_millis(50));
        assert!(h.duration_ms >= 50, "{h:?}");
        let seen: u64 = h.classes.iter().map(|c| c.count).sum();
        let total: u64 = h.classes.iter().map(|c| c.total_us).sum();
        // However busy the machine, the gaps cannot add up to more than the time spun.
        assert!(total <= (h.duration_ms + 1) * 1_000, "{h:?}");
        assert!(h.max_us as u128 <= (h.duration_ms as u128 + 1) * 1_000);
        assert!(seen == 0 || h.max_us >= 20, "{h:?}");
        // Every gap counted is listed, in order, within the time spun.
        assert_eq!(h.gaps.len() as u64, seen);
        assert!(
            h.gaps.windows(2).all(|w| w[0][0] + w[0][1] <= w[1][0]),
            "{h:?}"
        );
        assert!(h
            .gaps
            .iter()
            .all(|g| g[1] >= 20 && g[0] + g[1] <= (h.duration_ms + 1) * 1_000));
    }
}
