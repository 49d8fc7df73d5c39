//! The run's results: the text summary on standard output and the JSON report (`--json`).
//!
//! The JSON report holds the run's configuration, its start and end times, every counter
//! (run-wide and per kind), latency percentiles in microseconds, throughput, the open
//! loop's lateness, the harness's own CPU time and a verdict, so that scripts (such as
//! `compare-freeradius.sh`) can read any figure without parsing text.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::mix::Kind;
use crate::run::{Load, PhaseOutcome};
use crate::stats::{Counts, KindCounts};
use crate::sys::{rfc3339, unix_ms};

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Values recorded.
    pub count: u64,
    /// Smallest.
    pub min: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

impl Percentiles {
    /// The percentiles of a histogram (all zero when it is empty).
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles {
                count: 0,
                min: 0,
                mean: 0.0,
                p50: 0,
                p90: 0,
                p99: 0,
                p999: 0,
                max: 0,
            };
        }
        Percentiles {
            count: h.len(),
            min: h.min(),
            mean: (h.mean() * 10.0).round() / 10.0,
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// The load part of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum LoadReport {
    /// A closed loop.
    Closed {
        /// Transactions kept in flight.
        concurrency: usize,
    },
    /// An open loop.
    Open {
        /// Transactions started per second.
        rate_per_sec: f64,
    },
}

impl From<Load> for LoadReport {
    fn from(load: Load) -> Self {
        match load {
            Load::Closed { concurrency } => LoadReport::Closed { concurrency },
            Load::Open { rate } => LoadReport::Open { rate_per_sec: rate },
        }
    }
}

/// The run's configuration, as given on the command line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigReport {
    /// The server's address.
    pub server: String,
    /// `--scenario`.
    pub scenario: String,
    /// How a good login looks (`append`, `challenge`, `passcode`, `pap`).
    pub login: String,
    /// The mix as `kind=weight,...`.
    pub mix: String,
    /// Closed or open loop.
    pub load: LoadReport,
    /// `--duration` in seconds.
    pub duration_secs: f64,
    /// `--max-requests`.
    pub max_requests: Option<u64>,
    /// `--sources`.
    pub sources: usize,
    /// The first source address.
    pub source_base: String,
    /// `--sockets-per-source`.
    pub sockets_per_source: usize,
    /// `--timeout-ms`.
    pub timeout_ms: u64,
    /// Worker threads actually used.
    pub threads: usize,
    /// `--warmup`.
    pub warmup: bool,
    /// Users in the state file.
    pub users: usize,
    /// `--lockout-guard` (absent when not applied).
    pub lockout_guard: Option<u32>,
    /// `--hotp-lookahead`.
    pub hotp_lookahead: u64,
    /// Whether replies without a Message-Authenticator counted as bad.
    pub reply_message_authenticator_required: bool,
}

/// Throughput over the span from the start to the last verified reply.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Datagrams sent per second.
    pub sent_per_sec: f64,
    /// Verified replies per second.
    pub answered_per_sec: f64,
    /// Access-Accepts per second.
    pub accepts_per_sec: f64,
    /// Transactions that ended as expected, per second.
    pub ok_per_sec: f64,
}

/// The open loop's adherence to its timetable.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OpenLoopReport {
    /// The requested rate.
    pub rate_per_sec: f64,
    /// Transactions started (each at or after its intended time).
    pub started: u64,
    /// Transactions that left more than 1 ms after their intended time.
    pub late_sends: u64,
    /// The largest lateness, in microseconds.
    pub max_lateness_us: u64,
    /// Whether the harness fell behind its timetable at all.
    pub behind: bool,
}

/// The harness's own CPU use during the measurement (from `getrusage`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CpuReport {
    /// User time in seconds.
    pub user_secs: f64,
    /// System time in seconds.
    pub system_secs: f64,
    /// CPU time per datagram sent, in microseconds.
    pub per_datagram_us: f64,
    /// CPU time over wall time: 1.0 is one core fully busy.
    pub cores_used: f64,
}

/// A short summary of the warm-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarmupReport {
    /// Users logged in once.
    pub users: u64,
    /// Counters of the warm-up.
    pub counts: Counts,
    /// Seconds it took.
    pub elapsed_secs: f64,
    /// Latency of its logins (mostly Argon2 on the server).
    pub latency_us: Percentiles,
}

impl WarmupReport {
    /// Summarises a warm-up phase.
    pub fn of(outcome: &PhaseOutcome) -> WarmupReport {
        WarmupReport {
            users: outcome.stats.counts.started,
            counts: outcome.stats.counts,
            elapsed_secs: round3(outcome.elapsed.as_secs_f64()),
            latency_us: Percentiles::of(&outcome.stats.login_latency),
        }
    }
}

/// The whole JSON report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `tollgate-loadtest`.
    pub tool: String,
    /// The harness's version.
    pub version: String,
    /// When the measurement started (RFC 3339, UTC).
    pub started_at: String,
    /// When it ended.
    pub ended_at: String,
    /// The start in milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// The end in milliseconds since the Unix epoch.
    pub ended_unix_ms: u64,
    /// The configuration.
    pub config: ConfigReport,
    /// The warm-up, if one ran.
    pub warmup: Option<WarmupReport>,
    /// Seconds from the start until everything in flight was finished.
    pub elapsed_secs: f64,
    /// Seconds from the start until the last verified reply.
    pub active_secs: f64,
    /// Seconds during which transactions were started.
    pub sending_secs: f64,
    /// Whether Ctrl-C cut the run short.
    pub interrupted: bool,
    /// Throughput.
    pub throughput: Throughput,
    /// Run-wide counters.
    pub counts: Counts,
    /// Counters per kind of transaction, by kind name.
    pub by_kind: BTreeMap<String, KindCounts>,
    /// Latency of each answered datagram in microseconds (open loop: from the intended
    /// send time).
    pub latency_us: Percentiles,
    /// Latency of each answered transaction, first send to final reply (challenge mode
    /// only; otherwise the same as `latency_us`).
    pub login_latency_us: Option<Percentiles>,
    /// The open loop's timetable, for open-loop runs.
    pub open_loop: Option<OpenLoopReport>,
    /// The harness's own CPU use.
    pub harness_cpu: CpuReport,
    /// True when every transaction ended as expected: no failures, timeouts, bad replies
    /// or send errors.
    pub passed: bool,
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

impl Report {
    /// Builds the report of a measurement phase.
    pub fn build(
        config: ConfigReport,
        warmup: Option<WarmupReport>,
        outcome: &PhaseOutcome,
    ) -> Report {
        let stats = &outcome.stats;
        let c = stats.counts;
        let active = outcome.active.as_secs_f64();
        let per_sec = |n: u64| {
            if active > 0.0 {
                round1(n as f64 / active)
            } else {
                0.0
            }
        };
        let by_kind = Kind::ALL
            .iter()
            .filter(|k| stats.kinds[k.index()].started > 0)
            .map(|k| (k.name().to_owned(), stats.kinds[k.index()]))
            .collect();
        let open_loop = match config.load {
            LoadReport::Open { rate_per_sec } => Some(OpenLoopReport {
                rate_per_sec,
                started: c.started,
                late_sends: c.late_sends,
                max_lateness_us: u64::try_from(stats.max_lateness.as_micros()).unwrap_or(u64::MAX),
                behind: c.late_sends > 0,
            }),
            LoadReport::Closed { .. } => None,
        };
        let cpu = outcome.cpu;
        let elapsed = outcome.elapsed.as_secs_f64();
        let harness_cpu = CpuReport {
            user_secs: round3(cpu.user.as_secs_f64()),
            system_secs: round3(cpu.system.as_secs_f64()),
            per_datagram_us: if c.sent > 0 {
                round1(cpu.total().as_secs_f64() * 1e6 / c.sent as f64)
            } else {
                0.0
            },
            cores_used: if elapsed > 0.0 {
                round3(cpu.total().as_secs_f64() / elapsed)
            } else {
                0.0
            },
        };
        let login_latency_us =
            (config.login == "challenge").then(|| Percentiles::of(&stats.login_latency));
        Report {
            tool: "tollgate-loadtest".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: rfc3339(outcome.started_at),
            ended_at: rfc3339(outcome.ended_at),
            started_unix_ms: unix_ms(outcome.started_at),
            ended_unix_ms: unix_ms(outcome.ended_at),
            config,
            warmup,
            elapsed_secs: round3(elapsed),
            active_secs: round3(active),
            sending_secs: round3(outcome.sending.as_secs_f64()),
            interrupted: outcome.interrupted,
            throughput: Throughput {
                sent_per_sec: per_sec(c.sent),
                answered_per_sec: per_sec(c.answered),
                accepts_per_sec: per_sec(c.accepts),
                ok_per_sec: per_sec(c.ok),
            },
            counts: c,
            by_kind,
            latency_us: Percentiles::of(&stats.latency),
            login_latency_us,
            open_loop,
            harness_cpu,
            passed: c.failures == 0 && c.timeouts == 0 && c.bad_replies == 0 && c.send_errors == 0,
        }
    }

    /// The human-readable summary printed at the end of a run.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let c = &self.counts;
        let load = match self.config.load {
            LoadReport::Closed { concurrency } => format!("closed loop, concurrency {concurrency}"),
            LoadReport::Open { rate_per_sec } => format!("open loop, {rate_per_sec}/s"),
        };
        let _ = writeln!(
            s,
            "scenario {} ({} logins), {load}, {:.1} s, {} users, {} sources x {} sockets",
            self.config.scenario,
            self.config.login,
            self.sending_secs,
            self.config.users,
            self.config.sources,
            self.config.sockets_per_source
        );
        let _ = writeln!(
            s,
            "throughput   {:.0} answered/s, {:.0} accepts/s, {:.0} sent/s",
            self.throughput.answered_per_sec,
            self.throughput.accepts_per_sec,
            self.throughput.sent_per_sec
        );
        let l = &self.latency_us;
        let _ = writeln!(
            s,
            "latency      p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  ({} replies)",
            format_us(l.p50),
            format_us(l.p90),
            format_us(l.p99),
            format_us(l.p999),
            format_us(l.max),
            l.count
        );
        if let Some(l) = &self.login_latency_us {
            let _ = writeln!(
                s,
                "login        p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                format_us(l.p50),
                format_us(l.p90),
                format_us(l.p99),
                format_us(l.p999),
                format_us(l.max)
            );
        }
        let _ = writeln!(
            s,
            "transactions {} started, {} ok, {} failures, {} timeouts, {} dropped as expected",
            c.started, c.ok, c.failures, c.timeouts, c.dropped_as_expected
        );
        let _ = writeln!(
            s,
            "replies      {} verified ({} accept, {} reject, {} challenge), {} bad, {} stray, {} unexpected",
            c.answered, c.accepts, c.rejects, c.challenges, c.bad_replies, c.stray_replies, c.unexpected_replies
        );
        if self.by_kind.len() > 1 || self.by_kind.keys().any(|k| k != "accept") {
            for (name, k) in &self.by_kind {
                let _ = writeln!(
                    s,
                    "  {name:<13}{:>8} started {:>8} ok {:>6} failed {:>6} timeouts   (accept {}, reject {}, challenge {}, no reply {})",
                    k.started, k.ok, k.failed, k.timeouts, k.accepts, k.rejects, k.challenges, k.dropped_as_expected
                );
            }
        }
        if c.send_errors > 0 || c.substituted > 0 {
            let _ = writeln!(
                s,
                "other        {} send errors, {} failure kinds sent as good logins (no eligible user free)",
                c.send_errors, c.substituted
            );
        }
        if let Some(o) = &self.open_loop {
            if o.behind {
                let _ = writeln!(
                    s,
                    "open loop    BEHIND SCHEDULE: {} of {} sends left more than 1 ms late (max {}); latencies include that wait",
                    o.late_sends,
                    o.started,
                    format_us(o.max_lateness_us)
                );
            } else {
                let _ = writeln!(
                    s,
                    "open loop    on schedule: {} sends, none more than 1 ms late",
                    o.started
                );
            }
        }
        let _ = writeln!(
            s,
            "harness cpu  {:.2} s user + {:.2} s system = {:.2} cores, {:.1} µs per datagram",
            self.harness_cpu.user_secs,
            self.harness_cpu.system_secs,
            self.harness_cpu.cores_used,
            self.harness_cpu.per_datagram_us
        );
        if self.interrupted {
            let _ = writeln!(s, "interrupted  stopped early by a signal");
        }
        let _ = write!(
            s,
            "verdict      {}",
            if self.passed {
                "PASS: every transaction ended as expected"
            } else {
                "FAIL: see failures, timeouts and bad replies above"
            }
        );
        s
    }
}

/// Formats microseconds for people: `850µs`, `1.25ms`, `2.3s`.
pub fn format_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{record, Stats};
    use crate::sys::CpuTimes;
    use std::time::{Duration, SystemTime};

    fn config(load: LoadReport) -> ConfigReport {
        ConfigReport {
            server: "127.0.0.1:1812".into(),
            scenario: "mix".into(),
            login: "append".into(),
            mix: "accept=80,reject=20".into(),
            load,
            duration_secs: 10.0,
            max_requests: None,
            sources: 4,
            source_base: "127.0.0.2".into(),
            sockets_per_source: 2,
            timeout_ms: 1000,
            threads: 1,
            warmup: true,
            users: 100,
            lockout_guard: Some(3),
            hotp_lookahead: 10,
            reply_message_authenticator_required: true,
        }
    }

    fn outcome() -> PhaseOutcome {
        let mut stats = Stats::new();
        stats.counts.started = 10;
        stats.counts.sent = 10;
        stats.counts.answered = 9;
        stats.counts.accepts = 8;
        stats.counts.rejects = 1;
        stats.counts.ok = 9;
        stats.counts.timeouts = 1;
        stats.counts.late_sends = 2;
        stats.kind(Kind::Good).started = 8;
        stats.kind(Kind::WrongCode).started = 2;
        for us in [100, 200, 300, 400, 500, 600, 700, 800, 10_000] {
            record(&mut stats.latency, Duration::from_micros(us));
        }
        stats.max_lateness = Duration::from_micros(1500);
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        PhaseOutcome {
            stats,
            started_at: t,
            ended_at: t + Duration::from_secs(2),
            elapsed: Duration::from_secs(2),
            active: Duration::from_secs(1),
            sending: Duration::from_secs(1),
            cpu: CpuTimes {
                user: Duration::from_millis(300),
                system: Duration::from_millis(100),
            },
            interrupted: false,
            threads: 1,
        }
    }

    #[test]
    fn the_json_report_has_its_documented_shape() {
        let report = Report::build(
            config(LoadReport::Open { rate_per_sec: 10.0 }),
            None,
            &outcome(),
        );
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        for key in [
            "tool",
            "version",
            "started_at",
            "ended_at",
            "started_unix_ms",
            "ended_unix_ms",
            "config",
            "warmup",
            "elapsed_secs",
            "active_secs",
            "throughput",
            "counts",
            "by_kind",
            "latency_us",
            "open_loop",
            "harness_cpu",
            "passed",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        assert_eq!(json["started_at"], "2023-11-14T22:13:20.000Z");
        assert_eq!(json["config"]["load"]["mode"], "open");
        assert_eq!(json["config"]["load"]["rate_per_sec"], 10.0);
        for key in [
            "started",
            "sent",
            "answered",
            "accepts",
            "rejects",
            "challenges",
            "ok",
            "failures",
            "timeouts",
            "dropped_as_expected",
            "unexpected_replies",
            "bad_replies",
            "stray_replies",
            "send_errors",
            "late_sends",
        ] {
            assert!(json["counts"].get(key).is_some(), "missing counts.{key}");
        }
        assert_eq!(json["counts"]["timeouts"], 1);
        assert_eq!(json["by_kind"]["accept"]["started"], 8);
        assert_eq!(json["by_kind"]["reject"]["started"], 2);
        assert!(json["by_kind"].get("replay").is_none());
        for key in ["count", "min", "mean", "p50", "p90", "p99", "p999", "max"] {
            assert!(
                json["latency_us"][key].is_number(),
                "missing latency_us.{key}"
            );
        }
        assert_eq!(json["latency_us"]["count"], 9);
        assert_eq!(json["latency_us"]["p50"], 500);
        assert!(json["latency_us"]["max"].as_u64().unwrap() >= 10_000);
        assert_eq!(json["throughput"]["answered_per_sec"], 9.0);
        assert_eq!(json["open_loop"]["late_sends"], 2);
        assert_eq!(json["open_loop"]["max_lateness_us"], 1500);
        assert_eq!(json["open_loop"]["behind"], true);
        assert_eq!(json["harness_cpu"]["user_secs"], 0.3);
        assert_eq!(json["harness_cpu"]["per_datagram_us"], 40000.0);
        assert_eq!(json["harness_cpu"]["cores_used"], 0.2);
        assert_eq!(json["passed"], false);
        assert!(json["login_latency_us"].is_null());
        // The report reads back as it was written.
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
        assert!(report.summary().contains("BEHIND SCHEDULE"));
    }

    #[test]
    fn a_closed_loop_report_has_no_timetable() {
        let report = Report::build(
            config(LoadReport::Closed { concurrency: 8 }),
            None,
            &outcome(),
        );
        let json = serde_json::to_value(&report).unwrap();
        assert!(json["open_loop"].is_null());
        assert_eq!(json["config"]["load"]["concurrency"], 8);
    }

    #[test]
    fn microseconds_are_formatted_for_people() {
        assert_eq!(format_us(850), "850µs");
        assert_eq!(format_us(1_250), "1.25ms");
        assert_eq!(format_us(2_300_000), "2.30s");
    }
}
