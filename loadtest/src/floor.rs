//! The open-loop latency that a perfect server and a perfect harness would show on this
//! machine: the floor under any tail measured here (`tollgate-loadtest floor`).
//!
//! [`crate::hiccups`] records when each core was taken away from a spinning thread and for
//! how long. [`simulate`] plays an open-loop run against those stalls, measured on the two
//! cores at the same time: requests are due at a fixed rate; the harness sends each when
//! due, or, when its core is stalled then, all at once when the stall ends; the server
//! takes them in order, each needing `service` of its core's time, and does nothing while
//! its core is stalled. Latency counts from when a request was due, as the harness does.
//! Nothing else costs time: no system call, no wake-up, no other thread. So no real server
//! can do better with the same stalls, and a goal the floor already misses cannot be
//! reached on this machine.

use anyhow::{bail, Result};
use serde::Serialize;

use crate::hiccups::Hiccups;

/// Requests one simulation plays at most.
pub const MAX_REQUESTS: u64 = 100_000_000;

/// A stall: from when, and until when, in nanoseconds of the monotonic clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stall {
    /// Its beginning.
    pub from: u64,
    /// Its end.
    pub to: u64,
}

/// The stalls of one [`Hiccups`] measurement on the monotonic clock, in order, and the
/// span it covered.
pub fn stalls(h: &Hiccups) -> (Vec<Stall>, Stall) {
    let at = |us: u64| h.start_ns.saturating_add(us.saturating_mul(1_000));
    let list = h
        .gaps
        .iter()
        .map(|&[from, len]| Stall {
            from: at(from),
            to: at(from.saturating_add(len)),
        })
        .collect();
    let span = Stall {
        from: h.start_ns,
        to: at(h.duration_ms.saturating_mul(1_000)),
    };
    (list, span)
}

/// What the simulated run saw.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Floor {
    /// Requests played.
    pub requests: u64,
    /// Requests per second.
    pub rate: f64,
    /// Server time per request, in microseconds.
    pub service_us: f64,
    /// Seconds both measurements covered (the span played).
    pub seconds: f64,
    /// Latency percentiles, in microseconds.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// The longest.
    pub max_us: f64,
    /// Share of requests over 1 ms, in percent.
    pub over_1ms_pct: f64,
    /// Share of requests over 2 ms, in percent.
    pub over_2ms_pct: f64,
}

impl Floor {
    /// One line for people.
    pub fn summary(&self) -> String {
        format!(
            "a perfect server at {:.0}/s ({:.2} µs each) with these stalls: p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.2} ms; over 1 ms {:.2} %, over 2 ms {:.2} % ({} requests in {:.1} s)",
            self.rate,
            self.service_us,
            self.p50_us,
            self.p99_us,
            self.p999_us,
            self.max_us / 1e3,
            self.over_1ms_pct,
            self.over_2ms_pct,
            self.requests,
            self.seconds
        )
    }
}

/// Moves `t` forward past the stalls of `list` that hold it, starting the search at
/// `*next` (the stalls before it end before any time asked about from now on).
fn skip_stalls(list: &[Stall], next: &mut usize, t: u64) -> u64 {
    let mut t = t;
    while let Some(s) = list.get(*next) {
        if s.to <= t {
            *next += 1;
        } else if s.from <= t {
            t = s.to;
            *next += 1;
        } else {
            break;
        }
    }
    t
}

/// Plays requests due every `1/rate` seconds over `span`, with the harness's and the
/// server's stalls (each in order of time), and returns the latencies.
pub fn simulate(
    rate: f64,
    service_ns: u64,
    span: Stall,
    harness: &[Stall],
    server: &[Stall],
) -> Result<Floor> {
    if !(rate.is_finite() && rate > 0.0) {
        bail!("the rate must be a positive number");
    }
    if service_ns == 0 {
        bail!("the service time must be above zero");
    }
    let seconds = span.to.saturating_sub(span.from) as f64 / 1e9;
    let requests = (seconds * rate).floor() as u64;
    if requests == 0 {
        bail!("no request is due in {seconds:.3} s at {rate}/s");
    }
    if requests > MAX_REQUESTS {
        bail!("{requests} requests is more than {MAX_REQUESTS}: lower the rate");
    }
    let interval = 1e9 / rate;
    let mut latencies = Vec::with_capacity(requests as usize);
    let (mut h, mut s) = (0usize, 0usize);
    let mut free = span.from;
    for i in 0..requests {
        let due = span.from + (i as f64 * interval) as u64;
        let sent = skip_stalls(harness, &mut h, due);
        // Service: `service_ns` of the server core's time, none of it inside a stall.
        let mut t = skip_stalls(server, &mut s, sent.max(free));
        let mut left = service_ns;
        loop {
            let next_stall = server.get(s).map_or(u64::MAX, |st| st.from);
            if t.saturating_add(left) <= next_stall {
                t += left;
                break;
            }
            left -= next_stall - t;
            t = skip_stalls(server, &mut s, next_stall);
        }
        free = t;
        latencies.push(t - due);
    }
    latencies.sort_unstable();
    let n = latencies.len();
    let at = |q: f64| {
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        latencies[rank - 1] as f64 / 1e3
    };
    let over = |ns: u64| latencies.iter().filter(|&&l| l > ns).count() as f64 * 100.0 / n as f64;
    Ok(Floor {
        requests,
        rate,
        service_us: service_ns as f64 / 1e3,
        seconds,
        p50_us: at(0.5),
        p99_us: at(0.99),
        p999_us: at(0.999),
        max_us: latencies[n - 1] as f64 / 1e3,
        over_1ms_pct: over(1_000_000),
        over_2ms_pct: over(2_000_000),
    })
}

/// The floor for two measurements taken at the same time, one on the harness's core and
/// one on the server's: the span they both cover is played.
pub fn from_measurements(
    rate: f64,
    service_ns: u64,
    harness: &Hiccups,
    server: &Hiccups,
) -> Result<Floor> {
    let (h, h_span) = stalls(harness);
    let (s, s_span) = stalls(server);
    let span = Stall {
        from: h_span.from.max(s_span.from),
        to: h_span.to.min(s_span.to),
    };
    if span.to <= span.from.saturating_add(1_000_000_000) {
        bail!("the two measurements overlap by less than a second: run them at the same time");
    }
    simulate(rate, service_ns, span, &h, &s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const SECOND: u64 = 1_000_000_000;

    fn span(seconds: u64) -> Stall {
        Stall {
            from: 5 * SECOND,
            to: (5 + seconds) * SECOND,
        }
    }

    fn stall(at_ms: u64, len_ms: u64) -> Stall {
        Stall {
            from: 5 * SECOND + at_ms * MS,
            to: 5 * SECOND + (at_ms + len_ms) * MS,
        }
    }

    #[test]
    fn without_stalls_every_request_takes_its_service_time() {
        let f = simulate(100_000.0, 8_000, span(1), &[], &[]).unwrap();
        assert_eq!(f.requests, 100_000);
        assert_eq!((f.p50_us, f.p999_us, f.max_us), (8.0, 8.0, 8.0));
        assert_eq!(f.over_1ms_pct, 0.0);
    }

    #[test]
    fn a_server_stall_at_80_percent_load_takes_five_times_its_length_to_drain() {
        // 100,000/s, 8 µs each: a 5 ms stall leaves 500 requests waiting, drained at a
        // surplus of 20 % of the core, so waits above 2 ms go on for another 10 ms:
        // about 1,500 requests over 2 ms in all.
        let f = simulate(100_000.0, 8_000, span(1), &[], &[stall(500, 5)]).unwrap();
        let over_2ms = f.over_2ms_pct * f.requests as f64 / 100.0;
        assert!((1_470.0..=1_530.0).contains(&over_2ms), "{f:?}");
        assert!((5_000.0..=5_020.0).contains(&f.max_us), "{f:?}");
        assert_eq!(f.p50_us, 8.0);
        // Over 1 ms: while the wait drains from 4 ms to 1 ms, 15 ms more.
        let over_1ms = f.over_1ms_pct * f.requests as f64 / 100.0;
        assert!((1_970.0..=2_030.0).contains(&over_1ms), "{f:?}");
    }

    #[test]
    fn work_begun_before_a_stall_finishes_after_it() {
        // One request every 10 ms, 4 ms of service, a stall of 3 ms 1 ms into the first.
        let f = simulate(100.0, 4 * MS, span(1), &[], &[stall(1, 3)]).unwrap();
        assert_eq!(f.max_us, 7_000.0);
        assert_eq!(f.p50_us, 4_000.0);
    }

    #[test]
    fn a_harness_stall_sends_what_was_due_at_once_when_it_ends() {
        // At 50 % load, a 3 ms stall of the harness: the request due first waits the whole
        // stall and is then first in line.
        let f = simulate(100_000.0, 5_000, span(1), &[stall(200, 3)], &[]).unwrap();
        assert!((3_004.0..=3_006.0).contains(&f.max_us), "{f:?}");
        // Those due in the stall leave together and are served at twice the rate they
        // came: the one due x into the stall waits 3 ms - x/2, all 300 over 1 ms; the
        // 1.5 ms of work they leave drains at half the core, over 1 ms for 1 ms more.
        let over_1ms = f.over_1ms_pct * f.requests as f64 / 100.0;
        assert!((398.0..=402.0).contains(&over_1ms), "{f:?}");
    }

    #[test]
    fn measurements_are_played_over_the_span_they_share() {
        let h = |start_ns: u64, gaps: Vec<[u64; 2]>| Hiccups {
            duration_ms: 3_000,
            classes: Vec::new(),
            max_us: 0,
            start_ns,
            gaps,
        };
        // The server's measurement began 1 s after the harness's; its stall 100 ms after
        // its start is 1.1 s into the harness's.
        let harness = h(SECOND, vec![]);
        let server = h(2 * SECOND, vec![[100_000, 4_000]]);
        let f = from_measurements(1_000.0, 500_000, &harness, &server).unwrap();
        assert_eq!(f.seconds, 2.0);
        assert_eq!(f.requests, 2_000);
        assert!((4_000.0..=4_500.0).contains(&f.max_us), "{f:?}");
        let far = h(10 * SECOND, vec![]);
        assert!(from_measurements(1_000.0, 500_000, &harness, &far).is_err());
    }

    #[test]
    fn nonsense_is_refused() {
        assert!(simulate(0.0, 1, span(1), &[], &[]).is_err());
        assert!(simulate(f64::NAN, 1, span(1), &[], &[]).is_err());
        assert!(simulate(1e3, 0, span(1), &[], &[]).is_err());
        assert!(simulate(1e12, 1, span(1000), &[], &[]).is_err());
    }
}
