//! One load worker: an event loop over a share of the sockets and users.
//!
//! A worker owns its sockets (each bound to a simulated NAS address and connected to the
//! server, so the kernel drops datagrams from anyone else), its users, and a table of the
//! requests in flight per socket and identifier. It sends when the pace allows (a free
//! concurrency slot in a closed loop, a due time in an open loop), waits for replies with
//! `epoll` (through `mio`), checks every reply (decode, identifier, Response Authenticator
//! and Message-Authenticator), and expires requests whose reply did not come in time.
//!
//! Nothing is shared with other workers on the hot path except two atomics (the run-wide
//! transaction budget and the stop flag); counts and histograms are handed to the
//! coordinator once a second. Buffers are reused, so a request costs no allocation.
//!
//! In the push scenario the worker also tells the approvers ([`crate::push::approver`]) of
//! each login it sends (with the approval delay it draws), of the number an
//! Access-Challenge shows, and of each login's end; it measures approval → Access-Accept
//! and integrates the logins it holds over time.

use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use tollgate_engine::otp::{code_at, hotp, TokenParams};
use tollgate_engine::radius::{
    attr, verify_response, Code, Packet, MAX_PACKET_LEN, MAX_PASSWORD_LEN,
};

use crate::ids::IdPool;
use crate::mix::{Kind, Mix, Picker};
use crate::packet::{encode_access_request, encode_malformed, AccessRequest};
use crate::push::approver::{numbers_in, PushLink};
use crate::schedule::{lateness, OpenSchedule};
use crate::stats::{record, Stats};
use crate::users::{User, UserPool};
use crate::LoginMode;

/// How often a worker hands its counts to the coordinator.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);

/// A spinning open loop polls without sleeping while its next send is due within this
/// long; a longer gap (a low rate, or every user busy) still sleeps on the timer.
pub const SPIN_WITHIN: Duration = Duration::from_millis(2);

/// The token of the open loop's send timer; sockets use their index.
const TIMER: Token = Token(usize::MAX);

/// What a step of a transaction expects the server to answer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Access-Accept.
    Accept,
    /// Access-Reject.
    Reject,
    /// Access-Challenge with a State.
    Challenge,
    /// No reply at all: the server must drop the datagram.
    Nothing,
}

/// The reply expected for `kind` in `mode` at step `leg` (0: the first datagram, 1: the
/// answer to a challenge).
pub fn expected(kind: Kind, mode: LoginMode, leg: u8) -> Expect {
    if !kind.expects_reply() {
        return Expect::Nothing;
    }
    // An unknown user or a wrong password is refused at once; every other kind has the
    // right password, so in challenge mode its first step is answered with a challenge.
    let two_steps = mode.two_steps() && !matches!(kind, Kind::UnknownUser | Kind::WrongPassword);
    if two_steps && leg == 0 {
        return Expect::Challenge;
    }
    match kind {
        Kind::Good => Expect::Accept,
        _ => Expect::Reject,
    }
}

/// How a worker paces its sends.
#[derive(Debug, Clone)]
pub enum Pace {
    /// Keep this many transactions that expect a reply in flight.
    Closed {
        /// The worker's share of `--concurrency`.
        concurrency: usize,
    },
    /// Send on a timetable.
    Open(OpenSchedule),
}

/// Everything a worker needs, prepared by the coordinator.
pub struct WorkerSetup {
    /// Bound, connected, non-blocking sockets, one per simulated NAS socket.
    pub sockets: Vec<std::net::UdpSocket>,
    /// The users this worker logs in as (no other worker has them).
    pub users: Vec<User>,
    /// The shared secret.
    pub secret: Arc<[u8]>,
    /// How a good login looks.
    pub mode: LoginMode,
    /// What to send.
    pub mix: Mix,
    /// When to send.
    pub pace: Pace,
    /// Open loop: poll instead of sleeping while a send is due soon (see [`SPIN_WITHIN`]).
    pub spin: bool,
    /// When sending starts (the same instant for every worker).
    pub start: Instant,
    /// When sending stops; transactions in flight then are still finished.
    pub end: Instant,
    /// How long to wait for a reply.
    pub timeout: Duration,
    /// The run-wide limit on transactions started, if any.
    pub max_transactions: Option<u64>,
    /// Transactions started by every worker, shared.
    pub started: Arc<AtomicU64>,
    /// Set on Ctrl-C: stop sending and finish what is in flight.
    pub stop: Arc<AtomicBool>,
    /// Failure kinds go only to users with fewer failures than this since their last
    /// accepted login (`None`: no such care, as in the pure reject scenario).
    pub lockout_guard: Option<u32>,
    /// Push logins: each is approved after a delay drawn uniformly between these two.
    pub approve_delay: (Duration, Duration),
    /// How many counters past the next one the server accepts (its HOTP look-ahead).
    pub lookahead: u64,
    /// The users' token parameters.
    pub params: TokenParams,
    /// Whether a reply without a Message-Authenticator is refused (as it should be: only
    /// servers from before the BlastRADIUS fixes, such as FreeRADIUS before 3.2.5, omit it).
    pub require_reply_ma: bool,
    /// Percent of the transactions that expect a reply whose every datagram is sent twice
    /// at once, as a NAS retransmits (`--duplicates`).
    pub duplicate_percent: u8,
    /// Where to hand the counts once a second; without it they are returned at the end.
    pub report: Option<Sender<Stats>>,
    /// Push logins: the approvers, which approve each login after the delay the worker
    /// draws, and count the logins held at once.
    pub push: Option<Arc<PushLink>>,
}

/// What a worker hands back when it is done.
#[derive(Debug)]
pub struct WorkerResult {
    /// Its users, with their counters advanced.
    pub users: Vec<User>,
    /// What it counted since its last report.
    pub stats: Stats,
    /// When it stopped starting transactions.
    pub stopped_sending: Instant,
}

/// A free slot of the in-flight table.
const FREE: u32 = u32::MAX;
/// A slot whose transaction is answered but whose identifier is kept from reuse, because a
/// second reply (to a duplicate of its datagram) may still come.
const KEPT: u32 = u32::MAX - 1;

/// How long an answered duplicated datagram's identifier is kept (at most the timeout):
/// far longer than the server takes to answer the second copy (it answers it from its
/// cache, or drops it, at once), short enough that busy sockets do not run out of
/// identifiers. A reply later than this verifies against no request and is counted as a bad
/// reply, not taken for another's answer.
const KEEP_FOR: Duration = Duration::from_millis(250);

/// One identifier of one socket: the datagram in flight with it, if any.
#[derive(Copy, Clone, Debug)]
struct Slot {
    /// The transaction, or [`FREE`].
    txn: u32,
    /// The send's sequence number, which tells a live deadline from a stale one.
    seq: u64,
    /// The Request Authenticator, needed to verify the reply.
    authenticator: [u8; 16],
    /// Where the latency of this datagram is measured from.
    measure_from: Instant,
    /// [`KEPT`] slots: the code of the first reply, which a reply to the duplicate must
    /// repeat.
    first_code: u8,
}

/// A socket with its identifiers and in-flight table.
struct Sock {
    socket: UdpSocket,
    ids: IdPool,
    slots: Vec<Slot>,
    nas: IpAddr,
}

/// One login (or probe) in progress.
#[derive(Debug)]
struct Txn {
    kind: Kind,
    user: Option<usize>,
    leg: u8,
    /// The intended (open loop) or actual start, for the login latency.
    started: Instant,
    /// The HOTP counter of the good code sent, once sent.
    counter: Option<u64>,
    /// The socket every datagram of the transaction uses, as a NAS would.
    sock: usize,
    /// The State of the challenge to answer.
    state: Vec<u8>,
    /// Whether each datagram is sent twice (`--duplicates`).
    twice: bool,
}

/// When a datagram times out.
#[derive(Copy, Clone, Debug)]
struct Deadline {
    at: Instant,
    sock: usize,
    id: u8,
    seq: u64,
}

/// Why starting a transaction did or did not work.
enum Start {
    Started,
    /// No free user or identifier: wait for something in flight to finish.
    Blocked,
    /// The budget is spent or the run is over.
    Exhausted,
}

/// How a transaction ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum End {
    Ok,
    Failed,
    Timeout,
    Dropped,
    SendError,
}

/// The running worker.
pub struct Worker {
    mode: LoginMode,
    secret: Arc<[u8]>,
    wrong_secret: Vec<u8>,
    pace: Pace,
    spin: bool,
    start: Instant,
    end: Instant,
    timeout: Duration,
    max_transactions: Option<u64>,
    started: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    lockout_guard: Option<u32>,
    approve_delay: (Duration, Duration),
    lookahead: u64,
    params: TokenParams,
    require_reply_ma: bool,
    duplicate_percent: u8,
    report: Option<Sender<Stats>>,
    push: Option<Arc<PushLink>>,
    /// Identifiers of answered duplicated datagrams, kept from reuse until their second
    /// reply can no longer come, oldest first.
    kept: VecDeque<Deadline>,
    /// Push logins of this worker held now, and since when (for the time integral).
    held: u64,
    held_since: Instant,

    socks: Vec<Sock>,
    users: UserPool,
    txns: Vec<Txn>,
    free_txns: Vec<usize>,
    deadlines: VecDeque<Deadline>,
    /// Transactions in flight that expect a reply (the closed loop's concurrency).
    expecting: usize,
    /// All transactions in flight, probes included.
    active: usize,
    stats: Stats,
    picker: Picker,
    /// A kind drawn but not started for lack of a user or identifier; it goes next.
    pending: Option<Kind>,
    rng: StdRng,
    out: Vec<u8>,
    seq: u64,
    next_sock: usize,
    sending: bool,
    blocked: bool,
    stopped_sending: Instant,
    unknown_seq: u32,
    name_buf: String,
    /// When the reply being handled reached its socket (the end of a login's latency).
    answered_at: Instant,
}

impl Worker {
    /// Prepares a worker; nothing is sent before [`Worker::run`].
    pub fn new(setup: WorkerSetup) -> io::Result<Worker> {
        let mut socks = Vec::with_capacity(setup.sockets.len());
        for socket in setup.sockets {
            let nas = socket.local_addr()?.ip();
            socket.set_nonblocking(true)?;
            // A reply's latency ends when it reaches the socket, as the kernel stamps it, not
            // when this loop gets round to reading it: a busy harness must not lengthen the
            // server's latency. Without stamps (an old kernel) the read time stands in.
            let _ = crate::sys::enable_arrival_stamps(socket.as_raw_fd());
            socks.push(Sock {
                socket: UdpSocket::from_std(socket),
                ids: IdPool::new(),
                slots: vec![
                    Slot {
                        txn: FREE,
                        seq: 0,
                        authenticator: [0; 16],
                        measure_from: setup.start,
                        first_code: 0,
                    };
                    256
                ],
                nas,
            });
        }
        let mut wrong_secret = setup.secret.to_vec();
        wrong_secret.extend_from_slice(b"-but-wrong");
        Ok(Worker {
            mode: setup.mode,
            secret: setup.secret,
            wrong_secret,
            pace: setup.pace,
            spin: setup.spin,
            start: setup.start,
            end: setup.end,
            timeout: setup.timeout,
            max_transactions: setup.max_transactions,
            started: setup.started,
            stop: setup.stop,
            lockout_guard: setup.lockout_guard,
            approve_delay: setup.approve_delay,
            lookahead: setup.lookahead,
            params: setup.params,
            require_reply_ma: setup.require_reply_ma,
            duplicate_percent: setup.duplicate_percent,
            kept: VecDeque::new(),
            report: setup.report,
            push: setup.push,
            held: 0,
            held_since: setup.start,
            socks,
            users: UserPool::new(setup.users),
            txns: Vec::new(),
            free_txns: Vec::new(),
            deadlines: VecDeque::new(),
            expecting: 0,
            active: 0,
            stats: Stats::new(),
            picker: Picker::new(&setup.mix),
            pending: None,
            rng: StdRng::from_entropy(),
            out: Vec::with_capacity(MAX_PACKET_LEN),
            seq: 0,
            next_sock: 0,
            sending: true,
            blocked: false,
            stopped_sending: setup.end,
            unknown_seq: 0,
            name_buf: String::with_capacity(32),
            answered_at: setup.start,
        })
    }

    /// Runs until the end of the phase (or the budget, or Ctrl-C) and until every
    /// transaction in flight is answered or timed out.
    pub fn run(mut self) -> io::Result<WorkerResult> {
        let mut poll = Poll::new()?;
        let mut events = Events::with_capacity(1024);
        for (i, s) in self.socks.iter_mut().enumerate() {
            poll.registry()
                .register(&mut s.socket, Token(i), Interest::READABLE)?;
        }
        // The open loop wakes for its due sends on a timerfd: epoll_wait alone counts in
        // milliseconds, and sleeping in short steps instead would cost a core's worth of
        // wake-ups at high rates and timestamp replies late.
        let timer = match self.pace {
            Pace::Open(_) => {
                crate::sys::fine_timer_slack();
                let timer = crate::sys::Timer::new()?;
                poll.registry().register(
                    &mut mio::unix::SourceFd(&timer.fd()),
                    TIMER,
                    Interest::READABLE,
                )?;
                Some(timer)
            }
            Pace::Closed { .. } => None,
        };
        let mut armed_for: Option<Instant> = None;
        // One buffer for every datagram received; one byte more than the largest packet,
        // so that an oversized datagram shows as such instead of being cut to fit.
        let mut buf = vec![0u8; MAX_PACKET_LEN + 1];
        let now = Instant::now();
        if now < self.start {
            std::thread::sleep(self.start - now);
        }
        let mut next_report = self.start + REPORT_EVERY;
        loop {
            let now = Instant::now();
            self.expire(now);
            if self.sending {
                self.check_stop(now);
            }
            if self.sending {
                self.fill(now);
            }
            if now >= next_report {
                if let Some(tx) = &self.report {
                    // A coordinator that went away only means nobody watches the progress.
                    let _ = tx.send(self.stats.take());
                }
                while next_report <= now {
                    next_report += REPORT_EVERY;
                }
            }
            if !self.sending && self.active == 0 {
                break;
            }
            let (wake, precise) = self.next_wake(next_report);
            let spinning =
                precise && self.spin && wake.saturating_duration_since(now) <= SPIN_WITHIN;
            let timeout = if spinning {
                Duration::ZERO
            } else {
                if let (Some(timer), true) = (&timer, precise) {
                    if armed_for != Some(wake) {
                        timer.arm_at(wake)?;
                        armed_for = Some(wake);
                    }
                }
                // With the timer armed for the precise wake, epoll's own timeout (rounded
                // up to whole milliseconds) is only a backstop.
                let wait = wake.saturating_duration_since(Instant::now());
                if precise && timer.is_some() {
                    wait + Duration::from_millis(1)
                } else {
                    wait
                }
            };
            match poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                match (event.token(), &timer) {
                    (TIMER, Some(timer)) => {
                        timer.clear();
                        armed_for = None;
                    }
                    (token, _) => self.drain(token.0, &mut buf),
                }
            }
        }
        Ok(WorkerResult {
            users: self.users.into_users(),
            stats: self.stats,
            stopped_sending: self.stopped_sending,
        })
    }

    /// Reads every datagram waiting on socket `s` (readiness is edge-triggered).
    fn drain(&mut self, s: usize, buf: &mut [u8]) {
        loop {
            match crate::sys::recv_stamped(self.socks[s].socket.as_raw_fd(), buf) {
                Ok((n, stamp)) => {
                    let now = Instant::now();
                    let arrived = stamp.map_or(now, |t| {
                        crate::sys::instant_of(t, now, std::time::SystemTime::now())
                    });
                    self.on_datagram(s, &buf[..n], arrived, now);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // An ICMP error (nobody listens on the server port) is reported once on a
                // connected socket; the request it belongs to will time out.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    self.stats.counts.send_errors += 1;
                }
                Err(_) => {
                    self.stats.counts.send_errors += 1;
                    return;
                }
            }
        }
    }

    /// The next instant the loop must wake for, and whether it is a due send that wants
    /// better than millisecond precision.
    fn next_wake(&mut self, next_report: Instant) -> (Instant, bool) {
        // Deadlines of datagrams already answered are left in the queue; dropping them here
        // keeps them from waking the loop for nothing.
        while let Some(d) = self.deadlines.front() {
            let slot = &self.socks[d.sock].slots[usize::from(d.id)];
            if slot.txn != FREE && slot.txn != KEPT && slot.seq == d.seq {
                break;
            }
            self.deadlines.pop_front();
        }
        let mut wake = next_report;
        if let Some(d) = self.deadlines.front() {
            wake = wake.min(d.at);
        }
        if let Some(k) = self.kept.front() {
            wake = wake.min(k.at);
        }
        let mut precise = false;
        if self.sending {
            wake = wake.min(self.end);
            if let Pace::Open(schedule) = &self.pace {
                if !self.blocked && schedule.due() <= wake {
                    wake = schedule.due();
                    precise = true;
                }
            }
        }
        (wake, precise)
    }

    /// Stops sending at the end of the phase or on Ctrl-C.
    fn check_stop(&mut self, now: Instant) {
        let done = match &self.pace {
            Pace::Open(schedule) => schedule.due() >= self.end,
            Pace::Closed { .. } => false,
        };
        if done || now >= self.end || self.stop.load(Ordering::Relaxed) {
            self.stop_sending(now);
        }
    }

    fn stop_sending(&mut self, now: Instant) {
        if self.sending {
            self.sending = false;
            self.pending = None;
            self.stopped_sending = now;
        }
    }

    /// Starts every transaction the pace allows now.
    fn fill(&mut self, now: Instant) {
        while self.sending && !self.blocked {
            let intended = match &self.pace {
                Pace::Closed { concurrency } => {
                    if self.expecting >= *concurrency {
                        return;
                    }
                    now
                }
                Pace::Open(schedule) => {
                    let due = schedule.due();
                    if due > now {
                        return;
                    }
                    if due >= self.end {
                        self.stop_sending(now);
                        return;
                    }
                    due
                }
            };
            match self.try_start(intended, now) {
                Start::Started => {
                    if let Pace::Open(schedule) = &mut self.pace {
                        schedule.advance();
                    }
                }
                Start::Blocked => {
                    self.blocked = true;
                    return;
                }
                Start::Exhausted => return,
            }
        }
    }

    /// Starts one transaction intended for `intended`.
    fn try_start(&mut self, intended: Instant, now: Instant) -> Start {
        if let Some(max) = self.max_transactions {
            if self.started.load(Ordering::Relaxed) >= max {
                self.stop_sending(now);
                return Start::Exhausted;
            }
        }
        let drawn = self
            .pending
            .take()
            .unwrap_or_else(|| self.picker.next_kind());
        let Some(sock) = self.free_socket() else {
            self.pending = Some(drawn);
            return Start::Blocked;
        };
        let (kind, user) = if drawn.needs_user() {
            match self.pick_user(drawn) {
                Some((kind, user)) => (kind, Some(user)),
                None => {
                    self.pending = Some(drawn);
                    return Start::Blocked;
                }
            }
        } else {
            (drawn, None)
        };
        if let Some(max) = self.max_transactions {
            if self.started.fetch_add(1, Ordering::Relaxed) >= max {
                if let Some(u) = user {
                    self.users.release(u);
                }
                self.stop_sending(now);
                return Start::Exhausted;
            }
        }
        if kind != drawn {
            self.stats.counts.substituted += 1;
        }
        let t = self.alloc_txn(kind, user, intended, sock);
        self.txns[t].twice = kind.expects_reply()
            && self.duplicate_percent > 0
            && self.rng.gen_range(0..100u8) < self.duplicate_percent;
        self.active += 1;
        if kind.expects_reply() {
            self.expecting += 1;
        }
        self.stats.counts.started += 1;
        self.stats.kind(kind).started += 1;
        if matches!(self.pace, Pace::Open(_)) {
            if let Some(late) = lateness(intended, now) {
                self.stats.counts.late_sends += 1;
                self.stats.max_lateness = self.stats.max_lateness.max(late);
            }
        }
        if let Some(u) = user {
            self.push_begin(u, now);
        }
        if !self.transmit(t, sock, intended, now) {
            self.finish(t, End::SendError, None, now);
        }
        Start::Started
    }

    /// Push logins: queues the approval of user `u`'s login after a random delay, and
    /// counts it as held.
    fn push_begin(&mut self, u: usize, now: Instant) {
        let Some(link) = self.push.clone() else {
            return;
        };
        let (min, max) = (
            u64::try_from(self.approve_delay.0.as_micros()).unwrap_or(u64::MAX),
            u64::try_from(self.approve_delay.1.as_micros()).unwrap_or(u64::MAX),
        );
        let delay = Duration::from_micros(if max > min {
            self.rng.gen_range(min..=max)
        } else {
            min
        });
        self.held_tick(now);
        self.held += 1;
        let index = self.users.get(u).index;
        let held = link.begin(index, now, delay, now + self.timeout);
        self.stats.held_max = self.stats.held_max.max(held);
    }

    /// Push logins: user `u`'s login ended with `reply`; measures approval → accept.
    fn push_end(&mut self, u: usize, reply: Option<Code>, now: Instant) {
        let Some(link) = self.push.clone() else {
            return;
        };
        self.held_tick(now);
        self.held = self.held.saturating_sub(1);
        let approved_at = link.end(self.users.get(u).index);
        if let (Some(Code::AccessAccept), Some(at)) = (reply, approved_at) {
            record(
                &mut self.stats.approval_latency,
                now.saturating_duration_since(at),
            );
        }
    }

    /// Adds the logins held since the last change to the time integral.
    fn held_tick(&mut self, now: Instant) {
        let span = now.saturating_duration_since(self.held_since);
        let us = u64::try_from(span.as_micros()).unwrap_or(u64::MAX);
        self.stats.held_us = self
            .stats
            .held_us
            .saturating_add(self.held.saturating_mul(us));
        self.held_since = self.held_since.max(now);
    }

    /// A socket with a free identifier, round-robin so that every simulated NAS gets its
    /// share of the load.
    fn free_socket(&mut self) -> Option<usize> {
        let n = self.socks.len();
        (0..n)
            .map(|step| (self.next_sock + step) % n)
            .find(|&s| self.socks[s].ids.has_free())
            .inspect(|&s| self.next_sock = (s + 1) % n)
    }

    /// A free user fit for `kind`; a failure kind that finds none falls back to a good
    /// login (counted as substituted), so that the mix never locks a user out.
    fn pick_user(&mut self, kind: Kind) -> Option<(Kind, usize)> {
        let guard = self.lockout_guard;
        let far_from_lockout = move |u: &User| guard.is_none_or(|g| u.failures < g);
        let found = match kind {
            Kind::Good => return self.users.acquire(|_| true).map(|u| (Kind::Good, u)),
            Kind::WrongCode | Kind::WrongPassword => self.users.acquire(far_from_lockout),
            Kind::Replay => {
                let (params, lookahead) = (self.params, self.lookahead);
                self.users
                    .acquire(|u| far_from_lockout(u) && replayable(u, &params, lookahead))
            }
            _ => None,
        };
        match found {
            Some(u) => Some((kind, u)),
            None => self.users.acquire(|_| true).map(|u| (Kind::Good, u)),
        }
    }

    fn alloc_txn(
        &mut self,
        kind: Kind,
        user: Option<usize>,
        started: Instant,
        sock: usize,
    ) -> usize {
        let fresh = Txn {
            kind,
            user,
            leg: 0,
            started,
            counter: None,
            sock,
            state: Vec::new(),
            twice: false,
        };
        match self.free_txns.pop() {
            Some(t) => {
                // Keep the State buffer's allocation for the next challenge.
                let state = std::mem::take(&mut self.txns[t].state);
                self.txns[t] = Txn { state, ..fresh };
                self.txns[t].state.clear();
                t
            }
            None => {
                self.txns.push(fresh);
                self.txns.len() - 1
            }
        }
    }

    /// Builds and sends the current step of transaction `t` on socket `s`; false if it
    /// could not be sent (the identifier is given back).
    fn transmit(&mut self, t: usize, s: usize, measure_from: Instant, now: Instant) -> bool {
        let Some(id) = self.socks[s].ids.acquire() else {
            return false;
        };
        let mut authenticator = [0u8; 16];
        self.rng.fill_bytes(&mut authenticator);
        let nas = self.socks[s].nas;
        let sent = self.build(t, id, &authenticator, nas).is_ok()
            && self.socks[s].socket.send(&self.out).is_ok();
        if !sent {
            self.socks[s].ids.release(id);
            return false;
        }
        if self.txns[t].twice && self.socks[s].socket.send(&self.out).is_ok() {
            self.stats.counts.duplicates_sent += 1;
        }
        self.seq += 1;
        self.socks[s].slots[usize::from(id)] = Slot {
            txn: t as u32,
            seq: self.seq,
            authenticator,
            measure_from,
            first_code: 0,
        };
        self.deadlines.push_back(Deadline {
            at: now + self.timeout,
            sock: s,
            id,
            seq: self.seq,
        });
        self.stats.counts.sent += 1;
        true
    }

    /// Writes the datagram of the current step of transaction `t` into `self.out`.
    fn build(
        &mut self,
        t: usize,
        id: u8,
        authenticator: &[u8; 16],
        nas: IpAddr,
    ) -> Result<(), crate::packet::BuildError> {
        let (kind, leg, user) = (self.txns[t].kind, self.txns[t].leg, self.txns[t].user);
        if kind == Kind::Malformed {
            encode_malformed(&mut self.out, id, authenticator);
            return Ok(());
        }
        let wants_password = match self.mode {
            LoginMode::Append | LoginMode::Pap | LoginMode::PushAppend => true,
            LoginMode::Challenge | LoginMode::PushChallenge => leg == 0,
            LoginMode::Passcode => false,
        };
        // A push login's second step is the user pressing Enter: an empty password.
        let wants_code = match self.mode {
            LoginMode::Append | LoginMode::Passcode => true,
            LoginMode::Challenge => leg == 1,
            LoginMode::Pap | LoginMode::PushAppend | LoginMode::PushChallenge => false,
        };
        let mut code = [0u8; 8];
        let mut code_len = 0;
        if wants_code {
            code_len = match (kind, user) {
                (Kind::Good, Some(u)) => {
                    // The counter is spent as soon as its code leaves: if the reply is lost
                    // the server may have accepted it, and the next code is in its window
                    // either way.
                    let user = self.users.get_mut(u);
                    let counter = user.next_counter;
                    user.next_counter += 1;
                    self.txns[t].counter = Some(counter);
                    code_at(&user.seed, &self.params, counter, &mut code).len()
                }
                (Kind::WrongCode, Some(u)) => wrong_code(
                    &mut self.rng,
                    self.users.get(u),
                    &self.params,
                    self.lookahead,
                    &mut code,
                ),
                (Kind::Replay, Some(u)) => {
                    let user = self.users.get(u);
                    let counter = user.last_accepted.unwrap_or_default();
                    code_at(&user.seed, &self.params, counter, &mut code).len()
                }
                _ => {
                    code[..6].copy_from_slice(b"000000");
                    6
                }
            };
        }
        let mut field = [0u8; MAX_PASSWORD_LEN];
        let mut len = 0;
        if wants_password {
            let password: &[u8] = match user {
                Some(u) => self
                    .users
                    .get(u)
                    .password
                    .as_deref()
                    .unwrap_or("")
                    .as_bytes(),
                None => b"not-anybody's-password",
            };
            len = append(&mut field, len, password);
            if kind == Kind::WrongPassword
                || (self.mode == LoginMode::Pap && kind == Kind::WrongCode)
            {
                // Plain PAP has no code to get wrong, so the password is wrong instead.
                len = append(&mut field, len, b"-wrong");
            }
        }
        len = append(&mut field, len, &code[..code_len]);
        if user.is_none() {
            use std::fmt::Write;
            self.unknown_seq = self.unknown_seq.wrapping_add(1);
            self.name_buf.clear();
            let _ = write!(self.name_buf, "loadtest-nobody-{}", self.unknown_seq % 4096);
        }
        let name: &[u8] = match user {
            Some(u) => self.users.get(u).name.as_bytes(),
            None => self.name_buf.as_bytes(),
        };
        let txn = &self.txns[t];
        let request = AccessRequest {
            identifier: id,
            authenticator: *authenticator,
            user_name: name,
            password_field: &field[..len],
            state: (leg == 1).then_some(txn.state.as_slice()),
            nas,
        };
        let secret: &[u8] = if kind == Kind::BadSecret {
            &self.wrong_secret
        } else {
            &self.secret
        };
        encode_access_request(&mut self.out, &request, secret)
    }

    /// Handles a datagram on socket `s` that arrived at `arrived` and is read at `now`.
    fn on_datagram(&mut self, s: usize, bytes: &[u8], arrived: Instant, now: Instant) {
        let Ok(packet) = Packet::decode(bytes) else {
            self.stats.counts.bad_replies += 1;
            return;
        };
        let id = packet.identifier();
        let slot = self.socks[s].slots[usize::from(id)];
        if slot.txn == FREE {
            self.stats.counts.stray_replies += 1;
            return;
        }
        if slot.txn == KEPT {
            self.on_duplicate_reply(packet, &slot);
            return;
        }
        let t = slot.txn as usize;
        if !self.txns[t].kind.expects_reply() {
            // The server should have dropped this datagram; any answer at all is a fault.
            self.stats.counts.unexpected_replies += 1;
            self.free_slot(s, id);
            self.finish(t, End::Failed, None, now);
            return;
        }
        // A reply that fails verification is not the server's answer (or a broken one);
        // the request keeps waiting for a good reply until its deadline.
        let Ok(reply) = verify_response(
            packet,
            &slot.authenticator,
            &self.secret,
            self.require_reply_ma,
        ) else {
            self.stats.counts.bad_replies += 1;
            return;
        };
        let code = reply.code();
        match code {
            Code::AccessAccept => self.stats.counts.accepts += 1,
            Code::AccessReject => self.stats.counts.rejects += 1,
            Code::AccessChallenge => self.stats.counts.challenges += 1,
            _ => {
                self.stats.counts.bad_replies += 1;
                return;
            }
        }
        self.stats.counts.answered += 1;
        record(
            &mut self.stats.latency,
            arrived.saturating_duration_since(slot.measure_from),
        );
        self.stats.last_reply = Some(now);
        let txn = &mut self.txns[t];
        txn.state.clear();
        if code == Code::AccessChallenge {
            if let Some(state) = reply.attribute(attr::STATE) {
                txn.state.extend_from_slice(state);
            }
            // Number matching: the prompt shows the number to pick on the phone.
            if let (LoginMode::PushChallenge, Some(link), Some(u)) =
                (self.mode, &self.push, txn.user)
            {
                let shown = numbers_in(reply.attribute(attr::REPLY_MESSAGE).unwrap_or_default());
                link.show_prompt(self.users.get(u).index, &shown);
            }
        }
        if self.txns[t].twice {
            self.keep_slot(s, id, code, now);
        } else {
            self.free_slot(s, id);
        }
        self.answered_at = arrived;
        self.step(t, Some(code), now);
    }

    /// A reply for an answered datagram that was sent twice: it must verify, and repeat
    /// the first reply's code (RFC 5080 section 2.2.2: a duplicate gets the same answer,
    /// or none).
    fn on_duplicate_reply(&mut self, packet: Packet<'_>, slot: &Slot) {
        match verify_response(
            packet,
            &slot.authenticator,
            &self.secret,
            self.require_reply_ma,
        ) {
            Ok(reply) => {
                self.stats.counts.duplicate_replies += 1;
                if reply.code().as_u8() != slot.first_code {
                    self.stats.counts.duplicate_mismatches += 1;
                    self.stats.counts.failures += 1;
                }
            }
            Err(_) => self.stats.counts.bad_replies += 1,
        }
    }

    /// Keeps identifier `id` of socket `s` from reuse for [`KEEP_FOR`] after its first
    /// reply (`code`), so that a reply to its duplicate cannot be taken for another
    /// request's.
    fn keep_slot(&mut self, s: usize, id: u8, code: Code, now: Instant) {
        let slot = &mut self.socks[s].slots[usize::from(id)];
        slot.txn = KEPT;
        slot.first_code = code.as_u8();
        self.kept.push_back(Deadline {
            at: now + KEEP_FOR.min(self.timeout),
            sock: s,
            id,
            seq: slot.seq,
        });
    }

    /// Moves transaction `t` on after a reply (or, with `None`, a timeout).
    fn step(&mut self, t: usize, reply: Option<Code>, now: Instant) {
        let txn = &self.txns[t];
        let expect = expected(txn.kind, self.mode, txn.leg);
        match (expect, reply) {
            (Expect::Challenge, Some(Code::AccessChallenge)) if !txn.state.is_empty() => {
                // The answer goes out at once from the same NAS socket, as a NAS relays the
                // user's passcode; its latency is measured from this send.
                let s = txn.sock;
                self.txns[t].leg = 1;
                if !self.transmit(t, s, now, now) {
                    self.finish(t, End::SendError, None, now);
                }
            }
            (Expect::Nothing, None) => self.finish(t, End::Dropped, None, now),
            (_, None) => self.finish(t, End::Timeout, None, now),
            (expect, Some(code)) => {
                let ok = matches!(
                    (expect, code),
                    (Expect::Accept, Code::AccessAccept) | (Expect::Reject, Code::AccessReject)
                );
                let end = if ok { End::Ok } else { End::Failed };
                self.finish(t, end, Some(code), now);
            }
        }
    }

    /// Ends transaction `t`: counts it, updates its user and frees it.
    fn finish(&mut self, t: usize, end: End, reply: Option<Code>, now: Instant) {
        let (kind, user, counter, started) = {
            let txn = &self.txns[t];
            (txn.kind, txn.user, txn.counter, txn.started)
        };
        let counts = &mut self.stats.counts;
        let per_kind = &mut self.stats.kinds[kind.index()];
        match end {
            End::Ok => {
                counts.ok += 1;
                per_kind.ok += 1;
            }
            End::Failed => {
                counts.failures += 1;
                per_kind.failed += 1;
            }
            End::Timeout => {
                counts.timeouts += 1;
                per_kind.timeouts += 1;
            }
            End::Dropped => {
                counts.dropped_as_expected += 1;
                per_kind.dropped_as_expected += 1;
            }
            End::SendError => counts.send_errors += 1,
        }
        match reply {
            Some(Code::AccessAccept) => per_kind.accepts += 1,
            Some(Code::AccessReject) => per_kind.rejects += 1,
            Some(Code::AccessChallenge) => per_kind.challenges += 1,
            _ => {}
        }
        if reply.is_some() {
            record(
                &mut self.stats.login_latency,
                self.answered_at.saturating_duration_since(started),
            );
        }
        if let Some(u) = user {
            self.push_end(u, reply, now);
            // Track failures the way the server's lockout rule does: an accept clears them,
            // a reject adds one. A failure kind that timed out may have been counted by the
            // server, so it is assumed to have been.
            let record = self.users.get_mut(u);
            match reply {
                Some(Code::AccessAccept) => {
                    record.failures = 0;
                    if kind == Kind::Good && counter.is_some() {
                        record.last_accepted = counter;
                    }
                }
                Some(Code::AccessReject) => {
                    record.failures += 1;
                    // A refused code was not consumed (the server advances a counter only
                    // on an accepted code), so the next login sends it again. Advancing
                    // instead would let a stretch of refusals, such as an overloaded server
                    // shedding logins, push the harness out of the server's look-ahead window.
                    if let (Kind::Good, Some(c)) = (kind, counter) {
                        if record.next_counter == c + 1 {
                            record.next_counter = c;
                        }
                    }
                }
                None if end == End::Timeout && kind.counts_as_failure() => record.failures += 1,
                _ => {}
            }
            self.users.release(u);
        }
        self.active -= 1;
        if kind.expects_reply() {
            self.expecting -= 1;
        }
        self.free_txns.push(t);
        self.blocked = false;
    }

    /// Gives identifier `id` of socket `s` back.
    fn free_slot(&mut self, s: usize, id: u8) {
        let sock = &mut self.socks[s];
        sock.slots[usize::from(id)].txn = FREE;
        sock.ids.release(id);
        self.blocked = false;
    }

    /// Times out every datagram whose deadline has passed.
    fn expire(&mut self, now: Instant) {
        while let Some(k) = self.kept.front().copied() {
            if k.at > now {
                break;
            }
            self.kept.pop_front();
            let slot = &self.socks[k.sock].slots[usize::from(k.id)];
            if slot.txn == KEPT && slot.seq == k.seq {
                self.free_slot(k.sock, k.id);
            }
        }
        while let Some(d) = self.deadlines.front().copied() {
            if d.at > now {
                return;
            }
            self.deadlines.pop_front();
            let slot = self.socks[d.sock].slots[usize::from(d.id)];
            if slot.txn == FREE || slot.txn == KEPT || slot.seq != d.seq {
                continue;
            }
            self.free_slot(d.sock, d.id);
            self.step(slot.txn as usize, None, now);
        }
    }
}

/// Appends `bytes` to the password field, as much as fits.
fn append(field: &mut [u8; MAX_PASSWORD_LEN], len: usize, bytes: &[u8]) -> usize {
    let n = bytes.len().min(MAX_PASSWORD_LEN - len);
    field[len..len + n].copy_from_slice(&bytes[..n]);
    len + n
}

/// Whether replaying the user's last accepted code is a clean test: it must exist, and it
/// must not happen to equal one of the codes the server would accept now, or the "replay"
/// would be a valid login that moves the server's counter past ours.
pub fn replayable(user: &User, params: &TokenParams, lookahead: u64) -> bool {
    let Some(old) = user.last_accepted else {
        return false;
    };
    let old_code = hotp(&user.seed, old, params.algorithm, params.digits);
    (0..=lookahead).all(|i| {
        hotp(
            &user.seed,
            user.next_counter + i,
            params.algorithm,
            params.digits,
        ) != old_code
    })
}

/// Writes a code the server will refuse into `out` and returns its length: random, and
/// different from every code in the server's window, so that a "wrong" code can never be
/// accepted by chance and move the server's counter.
pub fn wrong_code(
    rng: &mut impl Rng,
    user: &User,
    params: &TokenParams,
    lookahead: u64,
    out: &mut [u8; 8],
) -> usize {
    let digits = params.digits.min(8);
    let modulus = 10u32.pow(u32::from(digits));
    let window: Vec<u32> = (0..=lookahead)
        .map(|i| hotp(&user.seed, user.next_counter + i, params.algorithm, digits))
        .collect();
    let mut value = rng.gen_range(0..modulus);
    while window.contains(&value) {
        value = rng.gen_range(0..modulus);
    }
    let used = &mut out[..usize::from(digits)];
    for slot in used.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
    usize::from(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn user() -> User {
        User {
            index: 0,
            name: "u".into(),
            seed: b"12345678901234567890".to_vec(),
            password: None,
            next_counter: 5,
            last_accepted: Some(4),
            failures: 0,
        }
    }

    #[test]
    fn every_kind_expects_the_right_answer_in_every_mode() {
        use Expect::*;
        for mode in [
            LoginMode::Append,
            LoginMode::Passcode,
            LoginMode::Pap,
            LoginMode::PushAppend,
        ] {
            assert_eq!(expected(Kind::Good, mode, 0), Accept);
            assert_eq!(expected(Kind::WrongCode, mode, 0), Reject);
            assert_eq!(expected(Kind::Replay, mode, 0), Reject);
            assert_eq!(expected(Kind::UnknownUser, mode, 0), Reject);
            assert_eq!(expected(Kind::WrongPassword, mode, 0), Reject);
            assert_eq!(expected(Kind::BadSecret, mode, 0), Nothing);
            assert_eq!(expected(Kind::Malformed, mode, 0), Nothing);
        }
        let c = LoginMode::Challenge;
        assert_eq!(expected(Kind::Good, c, 0), Challenge);
        assert_eq!(expected(Kind::Good, c, 1), Accept);
        assert_eq!(expected(Kind::WrongCode, c, 0), Challenge);
        assert_eq!(expected(Kind::WrongCode, c, 1), Reject);
        assert_eq!(expected(Kind::UnknownUser, c, 0), Reject);
        assert_eq!(expected(Kind::WrongPassword, c, 0), Reject);
        let p = LoginMode::PushChallenge;
        assert_eq!(expected(Kind::Good, p, 0), Challenge);
        assert_eq!(expected(Kind::Good, p, 1), Accept);
    }

    #[test]
    fn a_wrong_code_is_never_in_the_window() {
        let params = crate::state::token_params();
        let u = user();
        let window: Vec<String> = (5..=15)
            .map(|c| {
                let mut b = [0u8; 8];
                String::from_utf8(code_at(&u.seed, &params, c, &mut b).to_vec()).unwrap()
            })
            .collect();
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..2_000 {
            let mut out = [0u8; 8];
            let n = wrong_code(&mut rng, &u, &params, 10, &mut out);
            let code = std::str::from_utf8(&out[..n]).unwrap();
            assert_eq!(code.len(), 6);
            assert!(!window.iter().any(|w| w == code));
        }
    }

    #[test]
    fn only_users_with_an_accepted_code_can_replay() {
        let params = crate::state::token_params();
        let mut u = user();
        assert!(replayable(&u, &params, 10));
        u.last_accepted = None;
        assert!(!replayable(&u, &params, 10));
    }
}
