//! The approvers: simulated apps that approve each held login after a random delay, and
//! the [`PushLink`] through which the RADIUS workers hand them their logins.
//!
//! A worker that sends a push login calls [`PushLink::begin`] with the delay it drew; that
//! queues an approval for the user, due that long after the send. Approver threads (each
//! with its own keep-alive connection to the API) take due approvals off the queue in order
//! of their due time, list the user's pending challenges with a signed `GET
//! /v1/challenges`, and approve each with a signed `POST /v1/challenges/{id}`. A user has
//! one login in flight at most, so the pending list names that login; if it is still empty
//! (the server may still be checking the password with Argon2) the approval is polled
//! again a little later, until the login's timeout. Number matching takes the number from
//! the Access-Challenge's prompt, which the worker hands over with
//! [`PushLink::show_prompt`].
//!
//! The link also counts the logins held at once (sent and not yet finally answered) across
//! every worker, and keeps per user the moment its approval left, so that the worker can
//! measure approval → Access-Accept when the accept arrives. Per-user state is atomics
//! only; the queue and the approvers' counters sit behind mutexes taken once per login
//! step, far from the datagram path's rate.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::app::{self, AppError, Challenge, Device};
use super::http::Conn;
use crate::report::AppCounts;
use crate::stats::{new_histogram, record};

/// How soon an approval that found no pending challenge looks again; the wait doubles with
/// each empty look, up to [`POLL_AGAIN_MAX`] (a login waiting behind the server's password
/// checks should not cost it a signed request every few milliseconds).
pub const POLL_AGAIN: Duration = Duration::from_millis(10);
/// The longest wait between two looks.
pub const POLL_AGAIN_MAX: Duration = Duration::from_millis(100);
/// How soon an approval that waits for the prompt's number looks again.
pub const NUMBER_AGAIN: Duration = Duration::from_millis(1);
/// Numbers of a prompt kept for number matching.
const MAX_SHOWN: usize = 7;

/// How the apps behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushConfig {
    /// The mobile API (loopback, plain HTTP).
    pub api: SocketAddr,
    /// The shortest delay from a login's send to its approval.
    pub approve_min: Duration,
    /// The longest delay.
    pub approve_max: Duration,
    /// Approver threads, each with one connection.
    pub approvers: usize,
    /// How long an HTTP request may take.
    pub http_timeout: Duration,
}

/// What the approvers counted.
#[derive(Debug, Clone)]
pub struct AppStats {
    /// The counts that go into the report as they are.
    pub counts: AppCounts,
    /// Failed requests by kind: `HTTP <status>` for an unexpected status, `connect`, `io`,
    /// `closed`, `malformed`, `too-large` for transport failures, `bad-answer` for a body
    /// that did not say what it should.
    pub errors: BTreeMap<String, u64>,
    /// The first error, for the summary.
    pub first_error: Option<String>,
    /// From an approval's due time until it was first worked on.
    pub lateness: Histogram<u64>,
    /// Round trips of the polls.
    pub poll_rtt: Histogram<u64>,
    /// Round trips of the approvals.
    pub approve_rtt: Histogram<u64>,
}

impl Default for AppStats {
    fn default() -> Self {
        AppStats::new()
    }
}

impl AppStats {
    /// Nothing counted yet.
    pub fn new() -> AppStats {
        AppStats {
            counts: AppCounts::default(),
            errors: BTreeMap::new(),
            first_error: None,
            lateness: new_histogram(),
            poll_rtt: new_histogram(),
            approve_rtt: new_histogram(),
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &AppStats) {
        self.counts.merge(&other.counts);
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        // Same bounds everywhere, so adding cannot fail.
        let _ = self.lateness.add(&other.lateness);
        let _ = self.poll_rtt.add(&other.poll_rtt);
        let _ = self.approve_rtt.add(&other.approve_rtt);
    }

    /// Every failed request.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Counts a failed request.
    fn error(&mut self, what: &str, e: &AppError) {
        let kind = match e {
            AppError::Http(h) => h.kind().to_owned(),
            AppError::Status { status, .. } => format!("HTTP {status}"),
            AppError::BadAnswer(_) => "bad-answer".to_owned(),
        };
        *self.errors.entry(kind).or_default() += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{what}: {e}"));
        }
    }
}

/// One approval waiting in the queue.
#[derive(Debug)]
struct Job {
    due: Instant,
    seq: u64,
    user: usize,
    serial: u64,
    /// When the login's own timeout ends the attempt.
    deadline: Instant,
    /// Whether its lateness was measured (on the first look only).
    looked: bool,
    /// Looks that found nothing pending.
    empty: u32,
    /// Challenges found and waiting for the prompt's number.
    found: Vec<Challenge>,
}

impl PartialEq for Job {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Job {}
impl PartialOrd for Job {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Job {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

#[derive(Debug, Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Job>>,
    seq: u64,
    closing: bool,
}

/// A user's login as the apps see it.
#[derive(Debug, Default)]
struct UserSlot {
    /// The last serial handed out.
    serials: AtomicU64,
    /// The serial of the login in flight; 0 when none.
    login: AtomicU64,
    /// The numbers the prompt showed, packed by [`pack_shown`]; 0 while unknown.
    shown: AtomicU64,
    /// When the approval left and for which login, packed by [`pack_sent`]; 0 before.
    approval_sent: AtomicU64,
}

/// Bits of a login's serial kept beside the time its approval left.
const SERIAL_BITS: u32 = 24;
const SERIAL_MASK: u64 = (1 << SERIAL_BITS) - 1;

/// Packs the microseconds since the link's base at which login `serial`'s approval left
/// into one word, so that an approval of an earlier login still in flight can never be
/// taken for the current one's.
fn pack_sent(micros: u64, serial: u64) -> u64 {
    (micros.saturating_add(1).min(u64::MAX >> SERIAL_BITS) << SERIAL_BITS) | (serial & SERIAL_MASK)
}

/// The microseconds of [`pack_sent`], if the word is login `serial`'s.
fn unpack_sent(word: u64, serial: u64) -> Option<u64> {
    let micros = (word >> SERIAL_BITS).checked_sub(1)?;
    (word & SERIAL_MASK == serial & SERIAL_MASK).then_some(micros)
}

/// Packs up to [`MAX_SHOWN`] numbers and a "known" mark into a word.
fn pack_shown(numbers: &[u8]) -> u64 {
    let n = numbers.len().min(MAX_SHOWN);
    let mut word = (1u64 << 63) | ((n as u64) << 56);
    for (i, &b) in numbers.iter().take(n).enumerate() {
        word |= u64::from(b) << (8 * i);
    }
    word
}

/// The numbers of [`pack_shown`]; `None` while unknown.
fn unpack_shown(word: u64) -> Option<Vec<u8>> {
    if word & (1 << 63) == 0 {
        return None;
    }
    let n = ((word >> 56) & 0x7f) as usize;
    Some(
        (0..n.min(MAX_SHOWN))
            .map(|i| (word >> (8 * i)) as u8)
            .collect(),
    )
}

/// The wait before the next look after `empty` looks found nothing.
pub fn poll_again(empty: u32) -> Duration {
    POLL_AGAIN
        .saturating_mul(1 << empty.min(16))
        .min(POLL_AGAIN_MAX)
}

/// Every number (0 to 255) written in `text`, in order: what a person reads off a prompt.
pub fn numbers_in(text: &[u8]) -> Vec<u8> {
    text.split(|b| !b.is_ascii_digit())
        .filter(|run| !run.is_empty() && run.len() <= 3)
        .filter_map(|run| std::str::from_utf8(run).ok()?.parse::<u8>().ok())
        .collect()
}

/// What the workers and the approvers share.
#[derive(Debug)]
pub struct PushLink {
    config: PushConfig,
    devices: Vec<Device>,
    slots: Vec<UserSlot>,
    base: Instant,
    queue: Mutex<Queue>,
    ready: Condvar,
    held: AtomicU64,
    stats: Mutex<AppStats>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PushLink {
    /// A link for `devices`, one per user in the order of the state file.
    pub fn new(config: PushConfig, devices: Vec<Device>) -> Arc<PushLink> {
        let slots = devices.iter().map(|_| UserSlot::default()).collect();
        Arc::new(PushLink {
            config,
            devices,
            slots,
            base: Instant::now(),
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            held: AtomicU64::new(0),
            stats: Mutex::new(AppStats::new()),
        })
    }

    /// The apps' settings.
    pub fn config(&self) -> &PushConfig {
        &self.config
    }

    /// Logins held right now, over every worker.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// A login of `user` (index in the state file) was sent at `now`: queues its approval
    /// `delay` later, to be given up at `deadline`. Returns how many logins are held now,
    /// this one included.
    pub fn begin(&self, user: usize, now: Instant, delay: Duration, deadline: Instant) -> u64 {
        let held = self.held.fetch_add(1, Ordering::Relaxed) + 1;
        let Some(slot) = self.slots.get(user) else {
            return held;
        };
        let serial = slot.serials.fetch_add(1, Ordering::Relaxed) + 1;
        slot.shown.store(0, Ordering::Relaxed);
        slot.approval_sent.store(0, Ordering::Relaxed);
        slot.login.store(serial, Ordering::Release);
        self.push(Job {
            due: now + delay,
            seq: 0,
            user,
            serial,
            deadline,
            looked: false,
            empty: 0,
            found: Vec::new(),
        });
        held
    }

    /// The Access-Challenge of `user`'s login showed `numbers` (number matching).
    pub fn show_prompt(&self, user: usize, numbers: &[u8]) {
        if let Some(slot) = self.slots.get(user) {
            slot.shown.store(pack_shown(numbers), Ordering::Release);
        }
    }

    /// `user`'s login ended: its approval, if not sent yet, is dropped. Returns when the
    /// approval left, if it did.
    pub fn end(&self, user: usize) -> Option<Instant> {
        self.held.fetch_sub(1, Ordering::Relaxed);
        let slot = self.slots.get(user)?;
        let serial = slot.login.swap(0, Ordering::AcqRel);
        let micros = unpack_sent(slot.approval_sent.swap(0, Ordering::Acquire), serial)?;
        Some(self.base + Duration::from_micros(micros))
    }

    /// Returns what the approvers counted since the last call, and starts afresh.
    pub fn take_stats(&self) -> AppStats {
        std::mem::take(&mut *lock(&self.stats))
    }

    fn push(&self, mut job: Job) {
        let mut q = lock(&self.queue);
        if q.closing {
            return;
        }
        q.seq += 1;
        job.seq = q.seq;
        q.heap.push(Reverse(job));
        drop(q);
        self.ready.notify_one();
    }

    /// The next due approval, waiting for it; `None` once the link closes.
    fn next_job(&self) -> Option<Job> {
        let mut q = lock(&self.queue);
        loop {
            if q.closing {
                return None;
            }
            let now = Instant::now();
            let due = q.heap.peek().map(|Reverse(j)| j.due);
            match due {
                None => q = self.ready.wait(q).unwrap_or_else(PoisonError::into_inner),
                Some(due) if due > now => {
                    q = self
                        .ready
                        .wait_timeout(q, due - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                Some(_) => return q.heap.pop().map(|Reverse(j)| j),
            }
        }
    }

    fn close(&self) {
        let mut q = lock(&self.queue);
        q.closing = true;
        q.heap.clear();
        drop(q);
        self.ready.notify_all();
    }

    /// Works on one approval; gives it back when it must be looked at again.
    fn work(
        &self,
        job: Job,
        conn: &mut Conn,
        rng: &mut StdRng,
        stats: &mut AppStats,
    ) -> Option<Job> {
        let mut job = job;
        let (Some(slot), Some(device)) = (self.slots.get(job.user), self.devices.get(job.user))
        else {
            return None;
        };
        let now = Instant::now();
        if !job.looked {
            job.looked = true;
            record(&mut stats.lateness, now.saturating_duration_since(job.due));
        }
        if slot.login.load(Ordering::Acquire) != job.serial {
            stats.counts.abandoned += 1;
            return None;
        }
        let polled = job.found.is_empty();
        let challenges = if polled {
            stats.counts.polls += 1;
            let started = Instant::now();
            let answer = device
                .send(conn, rng, "GET", "/v1/challenges", b"", || {})
                .map_err(AppError::from)
                .and_then(app::parse_challenges);
            match answer {
                Ok(list) => {
                    record(&mut stats.poll_rtt, started.elapsed());
                    list
                }
                Err(e) => {
                    stats.error("GET /v1/challenges", &e);
                    return None;
                }
            }
        } else {
            std::mem::take(&mut job.found)
        };
        let now = Instant::now();
        if challenges.is_empty() {
            stats.counts.empty_polls += 1;
            if now >= job.deadline {
                stats.counts.not_found += 1;
                return None;
            }
            job.due = now + poll_again(job.empty);
            job.empty = job.empty.saturating_add(1);
            return Some(job);
        }
        if polled {
            stats.counts.extra_challenges += challenges.len().saturating_sub(1) as u64;
        }
        let shown = unpack_shown(slot.shown.load(Ordering::Acquire));
        let mut waiting = Vec::new();
        for challenge in challenges {
            let number = if challenge.numbers.is_empty() {
                None
            } else {
                match &shown {
                    // The Access-Challenge has not been read yet.
                    None => {
                        waiting.push(challenge);
                        continue;
                    }
                    Some(shown) => match app::pick_number(&challenge.numbers, shown) {
                        Some(n) => Some(n),
                        None => {
                            stats.counts.number_unknown += 1;
                            continue;
                        }
                    },
                }
            };
            let (path, body) = app::approval(&challenge.id, number);
            stats.counts.approvals += 1;
            let mut started = Instant::now();
            let answer = device
                .send(conn, rng, "POST", &path, body.as_bytes(), || {
                    started = Instant::now();
                    let micros = u64::try_from(started.duration_since(self.base).as_micros())
                        .unwrap_or(u64::MAX);
                    slot.approval_sent
                        .store(pack_sent(micros, job.serial), Ordering::Release);
                })
                .map_err(AppError::from)
                .and_then(app::parse_approved);
            match answer {
                Ok(()) => {
                    stats.counts.approved += 1;
                    record(&mut stats.approve_rtt, started.elapsed());
                }
                Err(e) => stats.error("POST /v1/challenges/{id}", &e),
            }
        }
        if waiting.is_empty() {
            return None;
        }
        if Instant::now() >= job.deadline {
            stats.counts.number_unknown += waiting.len() as u64;
            return None;
        }
        job.found = waiting;
        job.due = Instant::now() + NUMBER_AGAIN;
        Some(job)
    }
}

/// The running approver threads.
#[derive(Debug)]
pub struct Approvers {
    link: Arc<PushLink>,
    threads: Vec<JoinHandle<()>>,
}

impl Approvers {
    /// Starts `link.config().approvers` threads.
    pub fn start(link: &Arc<PushLink>) -> std::io::Result<Approvers> {
        let mut started = Approvers {
            link: Arc::clone(link),
            threads: Vec::new(),
        };
        for i in 0..link.config.approvers.max(1) {
            let link = Arc::clone(link);
            let spawned = std::thread::Builder::new()
                .name(format!("approver-{i}"))
                .spawn(move || approver(&link));
            match spawned {
                Ok(handle) => started.threads.push(handle),
                Err(e) => {
                    drop(started);
                    return Err(e);
                }
            }
        }
        Ok(started)
    }

    /// Stops the threads once they finish what they are sending; approvals still queued
    /// are dropped (their logins are over). Dropping the approvers does the same.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Approvers {
    fn drop(&mut self) {
        self.link.close();
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
    }
}

/// One approver thread: its own connection, its own counters merged after every step.
fn approver(link: &PushLink) {
    let mut conn = Conn::new(link.config.api, link.config.http_timeout);
    let mut rng = StdRng::from_entropy();
    let mut stats = AppStats::new();
    while let Some(job) = link.next_job() {
        if let Some(again) = link.work(job, &mut conn, &mut rng, &mut stats) {
            link.push(again);
        }
        lock(&link.stats).merge(&stats);
        stats = AppStats::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One approver, approving at once, against an address nobody answers on.
    fn immediate_config() -> PushConfig {
        PushConfig {
            api: "127.0.0.1:9".parse().unwrap(),
            approve_min: Duration::ZERO,
            approve_max: Duration::ZERO,
            approvers: 1,
            http_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn prompts_are_read_like_a_person_would() {
        assert_eq!(
            numbers_in(b"Approve the login on your phone (pick 42), then press Enter"),
            vec![42]
        );
        assert_eq!(numbers_in(b"pick 7 of 3 or 999 or 1234"), vec![7, 3]);
        assert!(numbers_in(b"").is_empty());
        for shown in [&[][..], &[42], &[1, 2, 3, 4, 5, 6, 7]] {
            assert_eq!(unpack_shown(pack_shown(shown)).unwrap(), shown);
        }
        assert_eq!(unpack_shown(pack_shown(&[1; 9])).unwrap().len(), MAX_SHOWN);
        assert_eq!(unpack_shown(0), None);
    }

    #[test]
    fn empty_looks_back_off() {
        let waits: Vec<u128> = (0..6).map(|i| poll_again(i).as_millis()).collect();
        assert_eq!(waits, vec![10, 20, 40, 80, 100, 100]);
        assert_eq!(poll_again(u32::MAX), POLL_AGAIN_MAX);
    }

    #[test]
    fn a_login_that_ends_drops_its_approval_and_reports_when_it_left() {
        let link = PushLink::new(
            immediate_config(),
            vec![Device::new("d0".into(), app::new_key()).unwrap()],
        );
        let now = Instant::now();
        assert_eq!(link.begin(0, now, Duration::from_secs(60), now), 1);
        assert_eq!(link.held(), 1);
        // An approval of an earlier login is not this one's.
        link.slots[0]
            .approval_sent
            .store(pack_sent(4_000, 0), Ordering::Release);
        assert_eq!(link.end(0), None);
        link.begin(0, now, Duration::from_secs(60), now);
        link.slots[0]
            .approval_sent
            .store(pack_sent(5_000, 2), Ordering::Release);
        let sent = link.end(0).unwrap();
        assert_eq!(sent, link.base + Duration::from_millis(5));
        assert_eq!(link.held(), 0);
        assert_eq!(unpack_sent(0, 0), None);
        assert_eq!(unpack_sent(pack_sent(0, 1 << 30), 1 << 30), Some(0));
        // The queued approval finds its login over and does nothing.
        let job = lock(&link.queue).heap.pop().unwrap().0;
        let mut conn = Conn::new(link.config.api, Duration::from_millis(10));
        let mut stats = AppStats::new();
        let mut rng = StdRng::seed_from_u64(1);
        assert!(link.work(job, &mut conn, &mut rng, &mut stats).is_none());
        assert_eq!((stats.counts.abandoned, stats.counts.polls), (1, 0));
    }

    #[test]
    fn approvals_come_off_the_queue_in_due_order() {
        let link = PushLink::new(
            immediate_config(),
            (0..3)
                .map(|i| Device::new(format!("d{i}"), app::new_key()).unwrap())
                .collect(),
        );
        let now = Instant::now();
        for (user, ms) in [(0, 30), (1, 10), (2, 20)] {
            link.begin(user, now, Duration::from_millis(ms), now);
        }
        let order: Vec<usize> = (0..3).map(|_| link.next_job().unwrap().user).collect();
        assert_eq!(order, vec![1, 2, 0]);
        assert!(Instant::now() >= now + Duration::from_millis(30));
        link.close();
        assert!(link.next_job().is_none());
    }
}
