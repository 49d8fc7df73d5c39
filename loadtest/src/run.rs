//! Runs one phase of a load test (the warm-up or the measurement) with its workers, and
//! prints the progress line once a second.
//!
//! The coordinator binds every socket before any worker starts, so that a bad source
//! address fails the run at once with a clear error, deals sockets and users out to the
//! workers (each user to exactly one worker, so no two requests of a user can race), starts
//! them on one common instant and adds up what they report.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use tollgate_engine::otp::TokenParams;

use crate::mix::Mix;
use crate::push::approver::PushLink;
use crate::schedule::OpenSchedule;
use crate::stats::Stats;
use crate::sys::{cpu_times, CpuTimes};
use crate::users::User;
use crate::worker::{Pace, Worker, WorkerSetup};
use crate::LoginMode;

/// How the load is applied.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Load {
    /// Keep this many transactions in flight.
    Closed {
        /// `--concurrency`.
        concurrency: usize,
    },
    /// Start transactions at this many per second, whatever the server does.
    Open {
        /// `--rate`.
        rate: f64,
        /// `--spin`: wait for due sends by polling the sockets instead of sleeping.
        spin: bool,
    },
}

/// The server and how to reach it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's address (checked to be loopback).
    pub server: SocketAddr,
    /// The shared secret.
    pub secret: Arc<[u8]>,
    /// The simulated NAS addresses.
    pub sources: Vec<IpAddr>,
    /// Sockets per NAS address.
    pub sockets_per_source: usize,
    /// The users' token parameters.
    pub params: TokenParams,
    /// The server's HOTP look-ahead.
    pub lookahead: u64,
    /// See [`WorkerSetup::require_reply_ma`].
    pub require_reply_ma: bool,
    /// Push logins: the approvers (see [`WorkerSetup::push`]).
    pub push: Option<Arc<PushLink>>,
}

/// One phase: what to send, how fast and for how long.
#[derive(Debug, Clone)]
pub struct Phase {
    /// Shown in the progress line.
    pub label: &'static str,
    /// How a good login looks.
    pub mode: LoginMode,
    /// What to send.
    pub mix: Mix,
    /// How fast.
    pub load: Load,
    /// How long sending lasts.
    pub duration: Duration,
    /// At most this many transactions.
    pub max_transactions: Option<u64>,
    /// How long to wait for a reply.
    pub timeout: Duration,
    /// Worker threads.
    pub threads: usize,
    /// See [`WorkerSetup::lockout_guard`].
    pub lockout_guard: Option<u32>,
    /// See [`WorkerSetup::duplicate_percent`].
    pub duplicate_percent: u8,
    /// Push logins: the shortest and longest delay from a login's send to its approval
    /// (see [`WorkerSetup::approve_delay`]).
    pub approve_delay: (Duration, Duration),
    /// Whether to print the progress line.
    pub progress: bool,
}

/// What a phase measured.
#[derive(Debug)]
pub struct PhaseOutcome {
    /// Everything counted, added up over the workers.
    pub stats: Stats,
    /// Wall-clock time of the start.
    pub started_at: SystemTime,
    /// Wall-clock time of the end.
    pub ended_at: SystemTime,
    /// From the start until the last transaction was finished (replies drained, timeouts
    /// expired).
    pub elapsed: Duration,
    /// From the start until the last verified reply: the span throughput is computed on.
    pub active: Duration,
    /// From the start until the workers stopped starting transactions.
    pub sending: Duration,
    /// The harness's own CPU time during the phase.
    pub cpu: CpuTimes,
    /// Whether Ctrl-C cut the phase short.
    pub interrupted: bool,
    /// Worker threads used.
    pub threads: usize,
    /// Each second of the phase (the windows of the progress line).
    pub timeline: Vec<crate::stats::Second>,
}

/// Runs `phase` with `users`, and gives the users back with their counters advanced.
pub fn run_phase(
    target: &Target,
    phase: &Phase,
    users: Vec<User>,
    stop: &Arc<AtomicBool>,
) -> Result<(PhaseOutcome, Vec<User>)> {
    if users.is_empty() {
        bail!("there are no users to log in as");
    }
    let mut threads = phase.threads.max(1);
    if let Load::Closed { concurrency } = phase.load {
        threads = threads.min(concurrency.max(1));
    }
    threads = threads.min(users.len());
    let mut sockets = Vec::new();
    for &ip in &target.sources {
        for _ in 0..target.sockets_per_source {
            sockets.push(nas_socket(ip, target.server)?);
        }
    }
    if sockets.len() < threads {
        bail!(
            "{threads} worker threads need at least as many sockets, but there are {}: raise \
             --sources or --sockets-per-source",
            sockets.len()
        );
    }
    let mut worker_sockets: Vec<Vec<std::net::UdpSocket>> =
        (0..threads).map(|_| Vec::new()).collect();
    for (i, socket) in sockets.into_iter().enumerate() {
        worker_sockets[i % threads].push(socket);
    }
    let mut worker_users: Vec<Vec<User>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, user) in users.into_iter().enumerate() {
        worker_users[i % threads].push(user);
    }
    if let Load::Closed { concurrency } = phase.load {
        for w in 0..threads {
            let share = share(concurrency, threads, w);
            let ids = worker_sockets[w].len() * 256;
            if share > ids {
                bail!(
                    "concurrency {concurrency} needs more RADIUS identifiers than {} sockets \
                     have (256 each): raise --sources or --sockets-per-source",
                    worker_sockets.iter().map(Vec::len).sum::<usize>()
                );
            }
            if share > worker_users[w].len() && phase.progress {
                eprintln!(
                    "note: only {} users for concurrency {concurrency}: a user is never used \
                     by two requests at once, so fewer requests will be in flight",
                    worker_users.iter().map(Vec::len).sum::<usize>()
                );
                break;
            }
        }
    }

    // Every worker starts on the same instant, a moment from now, once all are spawned.
    let start = Instant::now() + Duration::from_millis(20);
    let started_at = SystemTime::now() + Duration::from_millis(20);
    let end = start + phase.duration;
    let started = Arc::new(AtomicU64::new(0));
    let (tx, rx) = mpsc::channel::<Stats>();
    let cpu_before = cpu_times();
    let mut setups = Vec::with_capacity(threads);
    for (w, (sockets, users)) in worker_sockets.into_iter().zip(worker_users).enumerate() {
        let pace = match phase.load {
            Load::Closed { concurrency } => Pace::Closed {
                concurrency: share(concurrency, threads, w),
            },
            Load::Open { rate, .. } => Pace::Open(OpenSchedule::new(start, rate, w, threads)),
        };
        setups.push(WorkerSetup {
            sockets,
            users,
            secret: Arc::clone(&target.secret),
            mode: phase.mode,
            mix: phase.mix,
            pace,
            spin: matches!(phase.load, Load::Open { spin: true, .. }),
            start,
            end,
            timeout: phase.timeout,
            max_transactions: phase.max_transactions,
            started: Arc::clone(&started),
            stop: Arc::clone(stop),
            lockout_guard: phase.lockout_guard,
            duplicate_percent: phase.duplicate_percent,
            approve_delay: phase.approve_delay,
            lookahead: target.lookahead,
            params: target.params,
            require_reply_ma: target.require_reply_ma,
            report: Some(tx.clone()),
            push: target.push.clone(),
        });
    }
    drop(tx);

    let mut total = Stats::new();
    let mut timeline = Vec::new();
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = setups
            .into_iter()
            .map(|setup| scope.spawn(move || Worker::new(setup)?.run()))
            .collect();
        // Workers report at start + k seconds; printing a little after that gives every
        // worker's report of the second time to arrive.
        let mut window = Stats::new();
        let mut next_print = start + Duration::from_millis(1100);
        let mut last_print = start;
        loop {
            let wait = next_print.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(s) => {
                    total.merge(&s);
                    window.merge(&s);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let now = Instant::now();
                    if window.counts.sent + window.counts.answered + window.counts.timeouts > 0 {
                        timeline.push(crate::stats::Second::of(now - start, &window));
                    }
                    break;
                }
            }
            let now = Instant::now();
            if now >= next_print {
                if phase.progress {
                    let mut line =
                        progress_line(phase.label, now - start, now - last_print, &window, &total);
                    if let Some(link) = &target.push {
                        line.push_str(&format!("  held {}", link.held()));
                    }
                    eprintln!("{line}");
                }
                timeline.push(crate::stats::Second::of(now - start, &window));
                window = Stats::new();
                last_print = now;
                next_print += Duration::from_secs(1);
            }
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("worker panicked")))
            })
            .collect::<Vec<_>>()
    });
    let finished = Instant::now();
    let ended_at = SystemTime::now();
    let cpu = cpu_times().since(&cpu_before);
    let mut users = Vec::new();
    let mut stopped = start;
    for result in results {
        let result = result.context("load worker failed")?;
        total.merge(&result.stats);
        users.extend(result.users);
        stopped = stopped.max(result.stopped_sending);
    }
    users.sort_by_key(|u| u.index);
    let active = total
        .last_reply
        .map_or(Duration::ZERO, |t| t.saturating_duration_since(start));
    Ok((
        PhaseOutcome {
            stats: total,
            started_at,
            ended_at,
            elapsed: finished.saturating_duration_since(start),
            active,
            sending: stopped.saturating_duration_since(start),
            cpu,
            interrupted: stop.load(Ordering::Relaxed),
            threads,
            timeline,
        },
        users,
    ))
}

/// The receive buffer asked for on every socket: room for a full socket's worth of replies
/// (256, each taking a few kilobytes of kernel memory on loopback) arriving while the worker
/// is busy. The kernel caps it at `net.core.rmem_max`.
const RECV_BUFFER: usize = 4 << 20;

/// A UDP socket of a simulated NAS: bound to `ip` (any port) and connected to `server`, so
/// that the kernel delivers only the server's datagrams to it.
fn nas_socket(ip: IpAddr, server: SocketAddr) -> Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(server),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .context("cannot create a UDP socket")?;
    // A smaller buffer only risks drops that the run then reports as timeouts.
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    socket
        .bind(&SocketAddr::new(ip, 0).into())
        .with_context(|| format!("cannot bind a UDP socket to {ip}"))?;
    socket
        .connect(&server.into())
        .with_context(|| format!("cannot connect a UDP socket to {server}"))?;
    Ok(socket.into())
}

/// Worker `w`'s share of `total` split over `workers`.
pub fn share(total: usize, workers: usize, w: usize) -> usize {
    total / workers + usize::from(w < total % workers)
}

/// The progress line: rates over the last interval, p99 and problem counts so far.
fn progress_line(
    label: &str,
    since_start: Duration,
    interval: Duration,
    window: &Stats,
    total: &Stats,
) -> String {
    let secs = interval.as_secs_f64().max(1e-3);
    let c = &total.counts;
    let p99 = if total.latency.is_empty() {
        "-".to_owned()
    } else {
        crate::report::format_us(total.latency.value_at_quantile(0.99))
    };
    let mut line = format!(
        "[{label} {:>4.0}s] sent {:>7.0}/s  answered {:>7.0}/s  p99 {p99:>8}  ok {}  failures {}  timeouts {}",
        since_start.as_secs_f64(),
        window.counts.sent as f64 / secs,
        window.counts.answered as f64 / secs,
        c.ok,
        c.failures,
        c.timeouts,
    );
    if c.bad_replies > 0 {
        line.push_str(&format!("  bad replies {}", c.bad_replies));
    }
    if c.late_sends > 0 {
        line.push_str(&format!(
            "  BEHIND: {} late sends (max {})",
            c.late_sends,
            crate::report::format_us(
                u64::try_from(total.max_lateness.as_micros()).unwrap_or(u64::MAX)
            )
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        for total in 0..50 {
            for workers in 1..7 {
                let shares: Vec<usize> = (0..workers).map(|w| share(total, workers, w)).collect();
                assert_eq!(shares.iter().sum::<usize>(), total);
                assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1);
            }
        }
    }
}
