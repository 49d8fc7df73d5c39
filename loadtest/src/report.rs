//! The run's results: the text summary on standard output and the JSON report (`--json`).
//!
//! The JSON report holds the run's configuration, its start and end times, every counter
//! (run-wide and per kind), latency percentiles in microseconds, throughput, the open
//! loop's lateness, the harness's own CPU time and a verdict, so that scripts (such as
//! `compare-freeradius.sh`) can read any figure without parsing text. A push run adds a
//! `push` object: the logins held at once, approval → Access-Accept, the apps' round trips
//! and lateness, and their HTTP errors.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::mix::Kind;
use crate::push::approver::{AppStats, PushConfig};
use crate::run::{Load, PhaseOutcome};
use crate::stats::{Counts, KindCounts, Second};
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
        /// Whether the harness polled instead of sleeping between sends (`--spin`).
        #[serde(default)]
        spin: bool,
    },
}

impl From<Load> for LoadReport {
    fn from(load: Load) -> Self {
        match load {
            Load::Closed { concurrency } => LoadReport::Closed { concurrency },
            Load::Open { rate, spin } => LoadReport::Open {
                rate_per_sec: rate,
                spin,
            },
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
    /// `--duplicates`.
    #[serde(default)]
    pub duplicates_percent: u8,
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

/// Logins held at once: sent and not yet finally answered (for a push login, mostly the
/// time the server holds it for the phone).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeldReport {
    /// The most at any moment.
    pub max: u64,
    /// The mean over time, from the start until the last login finished.
    pub mean: f64,
}

/// What the simulated apps did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppCounts {
    /// `GET /v1/challenges` sent.
    pub polls: u64,
    /// Polls that found the login not pending yet (looked again 10 ms later, then 20, 40,
    /// up to every 100 ms).
    pub empty_polls: u64,
    /// Approvals sent.
    pub approvals: u64,
    /// Approvals the API answered `approved`.
    pub approved: u64,
    /// Logins that ended before their approval was sent (for instance a reject).
    pub abandoned: u64,
    /// Logins never seen pending before their timeout.
    pub not_found: u64,
    /// Challenges to number-match whose number the prompt did not settle.
    pub number_unknown: u64,
    /// Pending challenges beyond the one expected (approved as well).
    pub extra_challenges: u64,
}

impl AppCounts {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &AppCounts) {
        self.polls += other.polls;
        self.empty_polls += other.empty_polls;
        self.approvals += other.approvals;
        self.approved += other.approved;
        self.abandoned += other.abandoned;
        self.not_found += other.not_found;
        self.number_unknown += other.number_unknown;
        self.extra_challenges += other.extra_challenges;
    }
}

/// The push scenario's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushReport {
    /// The mobile API.
    pub api: String,
    /// `--approve-min-ms`.
    pub approve_min_ms: u64,
    /// `--approve-max-ms`.
    pub approve_max_ms: u64,
    /// `--approvers`.
    pub approvers: usize,
    /// Logins held at once.
    pub held: HeldReport,
    /// From the moment an approval's POST left to the Access-Accept.
    pub approval_to_accept_us: Percentiles,
    /// From an approval's due time until an app worked on it (a backlog of approvers
    /// shows here, and lengthens the login latency by as much).
    pub approval_lateness_us: Percentiles,
    /// Round trips of `GET /v1/challenges`.
    pub poll_rtt_us: Percentiles,
    /// Round trips of `POST /v1/challenges/{id}`.
    pub approve_rtt_us: Percentiles,
    /// What the apps did.
    pub app: AppCounts,
    /// Failed requests by kind: `HTTP <status>`, `connect`, `io`, `closed`, `malformed`,
    /// `too-large`, `bad-answer`.
    pub http_errors: BTreeMap<String, u64>,
    /// The first failed request, as text.
    pub first_http_error: Option<String>,
}

impl PushReport {
    /// The push figures of a phase: the workers' part from `outcome`, the apps' from `app`.
    pub fn build(config: &PushConfig, outcome: &PhaseOutcome, app: &AppStats) -> PushReport {
        let stats = &outcome.stats;
        let elapsed_us = outcome.elapsed.as_secs_f64() * 1e6;
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        PushReport {
            api: config.api.to_string(),
            approve_min_ms: ms(config.approve_min),
            approve_max_ms: ms(config.approve_max),
            approvers: config.approvers,
            held: HeldReport {
                max: stats.held_max,
                mean: if elapsed_us > 0.0 {
                    round1(stats.held_us as f64 / elapsed_us)
                } else {
                    0.0
                },
            },
            approval_to_accept_us: Percentiles::of(&stats.approval_latency),
            approval_lateness_us: Percentiles::of(&app.lateness),
            poll_rtt_us: Percentiles::of(&app.poll_rtt),
            approve_rtt_us: Percentiles::of(&app.approve_rtt),
            app: app.counts,
            http_errors: app.errors.clone(),
            first_http_error: app.first_error.clone(),
        }
    }

    /// Whether the apps did their part without a fault.
    pub fn clean(&self) -> bool {
        self.http_errors.is_empty() && self.app.not_found == 0 && self.app.number_unknown == 0
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
    /// The push scenario's figures.
    pub push: Option<PushReport>,
    /// Second by second: what was sent and how it ended.
    #[serde(default)]
    pub timeline: Vec<Second>,
    /// True when every transaction ended as expected: no failures, timeouts, bad replies
    /// or send errors (and, in a push run, no HTTP error and no login the apps could not
    /// find or number-match).
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
            LoadReport::Open { rate_per_sec, .. } => Some(OpenLoopReport {
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
        let two_or_held = config.login == "challenge" || config.login.starts_with("push");
        let login_latency_us = two_or_held.then(|| Percentiles::of(&stats.login_latency));
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
            push: None,
            timeline: outcome.timeline.clone(),
            passed: c.failures == 0
                && c.timeouts == 0
                && c.bad_replies == 0
                && c.send_errors == 0
                && c.duplicate_mismatches == 0,
        }
    }

    /// Adds the push figures, which also decide the verdict.
    pub fn with_push(mut self, push: PushReport) -> Report {
        self.passed = self.passed && push.clean();
        self.push = Some(push);
        self
    }

    /// The human-readable summary printed at the end of a run.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let c = &self.counts;
        let load = match self.config.load {
            LoadReport::Closed { concurrency } => format!("closed loop, concurrency {concurrency}"),
            LoadReport::Open { rate_per_sec, spin } => format!(
                "open loop, {rate_per_sec}/s{}",
                if spin { " (spinning)" } else { "" }
            ),
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
        if c.duplicates_sent > 0 {
            let _ = writeln!(
                s,
                "duplicates   {} sent, {} answered again ({} with another code)",
                c.duplicates_sent, c.duplicate_replies, c.duplicate_mismatches
            );
        }
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
        if let Some(p) = &self.push {
            push_summary(&mut s, p);
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
                "FAIL: see failures, timeouts, bad replies (and the apps' errors) above"
            }
        );
        s
    }
}

/// The push lines of the summary.
fn push_summary(s: &mut String, p: &PushReport) {
    let _ = writeln!(
        s,
        "held         max {} at once, mean {:.1} (approval after {} to {}, {} approvers)",
        p.held.max,
        p.held.mean,
        format_us(p.approve_min_ms * 1000),
        format_us(p.approve_max_ms * 1000),
        p.approvers
    );
    let l = &p.approval_to_accept_us;
    let _ = writeln!(
        s,
        "approval→ok  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  ({} accepts after an approval)",
        format_us(l.p50),
        format_us(l.p90),
        format_us(l.p99),
        format_us(l.p999),
        format_us(l.max),
        l.count
    );
    let _ = writeln!(
        s,
        "app http     poll p50 {} p99 {}; approve p50 {} p99 {}; late p99 {} max {}",
        format_us(p.poll_rtt_us.p50),
        format_us(p.poll_rtt_us.p99),
        format_us(p.approve_rtt_us.p50),
        format_us(p.approve_rtt_us.p99),
        format_us(p.approval_lateness_us.p99),
        format_us(p.approval_lateness_us.max),
    );
    if p.approval_lateness_us.p99 > 10_000 {
        let _ = writeln!(
            s,
            "app late     approvals started up to {} after their time (p99 {}); the login latency \
             includes it: raise --approvers, or the server's API is slow",
            format_us(p.approval_lateness_us.max),
            format_us(p.approval_lateness_us.p99)
        );
    }
    let a = &p.app;
    let _ = writeln!(
        s,
        "app          {} polls ({} found nothing yet), {} approvals ({} approved), {} ended before approval, {} never pending, {} numbers unknown, {} extra",
        a.polls, a.empty_polls, a.approvals, a.approved, a.abandoned, a.not_found, a.number_unknown, a.extra_challenges
    );
    if p.http_errors.is_empty() {
        let _ = writeln!(s, "http errors  none");
    } else {
        let list: Vec<String> = p
            .http_errors
            .iter()
            .map(|(k, v)| format!("{k} × {v}"))
            .collect();
        let _ = writeln!(
            s,
            "http errors  {} (first: {})",
            list.join(", "),
            p.first_http_error.as_deref().unwrap_or("?")
        );
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

    fn config_of(login: &str) -> ConfigReport {
        ConfigReport {
            login: login.into(),
            ..config(LoadReport::Closed { concurrency: 10 })
        }
    }

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
            duplicates_percent: 0,
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
        let timeline = vec![Second::of(Duration::from_secs(1), &stats)];
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
            timeline,
        }
    }

    #[test]
    fn the_json_report_has_its_documented_shape() {
        let report = Report::build(
            config(LoadReport::Open {
                rate_per_sec: 10.0,
                spin: false,
            }),
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
        let second = &json["timeline"][0];
        assert_eq!(second["at_secs"], 1.0);
        assert_eq!(second["sent"], 10);
        assert_eq!(second["answered"], 9);
        assert_eq!(second["timeouts"], 1);
        assert_eq!(second["p50_us"], 500);
        assert!(second["max_us"].as_u64().unwrap() >= 10_000);
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
    fn a_push_report_adds_its_figures_and_its_errors_fail_the_run() {
        let mut out = outcome();
        out.stats.counts.timeouts = 0;
        out.stats.held_max = 7;
        // 5 logins held on average over the 2 s the phase lasted.
        out.stats.held_us = 10_000_000;
        record(&mut out.stats.approval_latency, Duration::from_millis(3));
        let config = PushConfig {
            api: "127.0.0.1:8443".parse().unwrap(),
            approve_min: Duration::from_millis(50),
            approve_max: Duration::from_millis(200),
            approvers: 8,
            http_timeout: Duration::from_secs(10),
        };
        let mut cfg = config_of("push-append");
        cfg.scenario = "push".into();
        let mut app = AppStats::new();
        app.counts.polls = 8;
        app.counts.approvals = 8;
        app.counts.approved = 8;
        let clean = Report::build(cfg.clone(), None, &out)
            .with_push(PushReport::build(&config, &out, &app));
        assert!(clean.passed);
        let json = serde_json::to_value(&clean).unwrap();
        assert_eq!(json["push"]["held"]["max"], 7);
        assert_eq!(json["push"]["held"]["mean"], 5.0);
        assert_eq!(json["push"]["approve_min_ms"], 50);
        assert_eq!(json["push"]["approval_to_accept_us"]["count"], 1);
        assert_eq!(json["push"]["app"]["approved"], 8);
        assert!(json["login_latency_us"].is_object());
        assert!(clean
            .summary()
            .contains("held         max 7 at once, mean 5.0"));
        assert!(clean.summary().contains("http errors  none"));

        app.errors.insert("HTTP 429".into(), 2);
        app.first_error = Some("GET /v1/challenges: HTTP 429: {}".into());
        let failed =
            Report::build(cfg, None, &out).with_push(PushReport::build(&config, &out, &app));
        assert!(!failed.passed);
        assert!(
            failed.summary().contains("HTTP 429 × 2"),
            "{}",
            failed.summary()
        );
        let back: Report = serde_json::from_value(serde_json::to_value(&failed).unwrap()).unwrap();
        assert_eq!(back, failed);
    }

    #[test]
    fn microseconds_are_formatted_for_people() {
        assert_eq!(format_us(850), "850µs");
        assert_eq!(format_us(1_250), "1.25ms");
        assert_eq!(format_us(2_300_000), "2.30s");
    }
}
