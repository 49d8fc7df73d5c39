//! The way of a decision's record from the thread that decided to the audit thread.
//!
//! This module owns the per-thread lanes, the fixed-size entry that travels in them, and
//! the audit thread that empties them. A thread that records a decision copies it, without
//! any text formatting or allocation (a user name longer than [`INLINE_NAME`] bytes is the
//! one exception), into its own lane: a vector preallocated for [`LANE_CAPACITY`] entries
//! behind a mutex that only the audit thread's swap ever contends. A full lane drops the
//! entry and counts it (`tollgate_audit_dropped_total{sink="trail",reason="queue_full"}`):
//! a login never waits for the audit trail.
//!
//! The audit thread swaps each lane's vector for an empty one, hands the entries to the
//! [`Outputs`] (which format and write them in batches), and sleeps [`PERIOD`] while entries
//! keep coming. Once a round finds nothing it parks until the next entry wakes it: under
//! load no login wakes it, and an idle server does not poll.
//!
//! What a crash loses: the entries of the last [`PERIOD`] at most, as the log's own
//! writer thread always did with its buffered lines.

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};
use std::thread::Thread;
use std::time::{Duration, SystemTime};

use metrics::Counter;
use tollgate_engine::login::{LoginMode, Outcome};

/// Entries one lane holds at most: at 100,000 decisions a second on one thread, more than
/// 80 ms of them, many times [`PERIOD`].
pub const LANE_CAPACITY: usize = 8192;

/// How long the audit thread sleeps between rounds while entries keep coming.
pub const PERIOD: Duration = Duration::from_millis(10);

/// User names up to this many bytes travel inside the entry.
pub const INLINE_NAME: usize = 64;

/// A user name as given, inside the entry when it is short enough.
#[derive(Clone, Debug)]
enum Name {
    Inline { len: u8, bytes: [u8; INLINE_NAME] },
    Spilled(Box<str>),
}

impl Name {
    fn new(name: &str) -> Name {
        if name.len() <= INLINE_NAME {
            let mut bytes = [0u8; INLINE_NAME];
            bytes[..name.len()].copy_from_slice(name.as_bytes());
            // INLINE_NAME fits a u8.
            Name::Inline {
                len: name.len() as u8,
                bytes,
            }
        } else {
            Name::Spilled(name.into())
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // The bytes are a prefix of a `&str` cut at its end: valid UTF-8.
            Name::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Name::Spilled(s) => s,
        }
    }
}

/// The number a client's name is known by in the trail: an entry carries it instead of
/// the name, so that recording a decision touches no shared reference count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientTag(u32);

impl ClientTag {
    /// The tag of no client: the name it stands for is empty.
    pub const NONE: ClientTag = ClientTag(u32::MAX);
}

/// One decision, as it waits in a lane.
#[derive(Clone, Debug)]
pub struct Entry {
    /// When the decision was recorded.
    pub time: SystemTime,
    /// Source address of the request.
    pub peer: IpAddr,
    /// Time from receipt to reply, in microseconds.
    pub latency_us: u64,
    client: ClientTag,
    /// Login mode of the client.
    pub mode: LoginMode,
    /// What was decided.
    pub outcome: Outcome,
    user: Name,
}

impl Entry {
    /// The entry of a decision on `user` from `client`.
    pub fn new(
        time: SystemTime,
        user: &str,
        client: ClientTag,
        peer: IpAddr,
        mode: LoginMode,
        outcome: Outcome,
        latency_us: u64,
    ) -> Entry {
        Entry {
            time,
            peer,
            latency_us,
            client,
            mode,
            outcome,
            user: Name::new(user),
        }
    }

    /// The user name as given in the request.
    pub fn user(&self) -> &str {
        self.user.as_str()
    }
}

/// Where the audit thread sends what it took from the lanes.
pub trait Outputs: Send + 'static {
    /// Takes one entry; `client` is its client's name.
    fn entry(&mut self, entry: &Entry, client: &str);
    /// Writes what the entries of this round left buffered.
    fn flush(&mut self);
}

/// One thread's lane.
struct Lane {
    entries: Mutex<Vec<Entry>>,
}

impl Lane {
    fn new() -> Lane {
        Lane {
            entries: Mutex::new(Vec::with_capacity(LANE_CAPACITY)),
        }
    }

    /// The lane's vector, locked. Every operation on it is a push, a length or a swap of
    /// the whole vector, so a panic while it was held cannot leave it half written.
    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the recording threads and the audit thread share.
struct Shared {
    /// Tells this trail's lanes from another's in a thread's lane slot.
    id: usize,
    lanes: Mutex<Vec<Arc<Lane>>>,
    clients: RwLock<Vec<Arc<str>>>,
    /// Set by the audit thread before it parks; the next entry clears it and wakes it.
    sleeping: AtomicBool,
    stop: AtomicBool,
    thread: OnceLock<Thread>,
    full: Counter,
}

/// Tells trails apart (a process runs one, a test may run several).
static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's lane, and the trail it belongs to.
    static LANE: RefCell<Option<(usize, Arc<Lane>)>> = const { RefCell::new(None) };
}

/// The recording end of the trail; dropping it lets the audit thread empty the lanes,
/// flush, and stop (the drop waits for that, [`DRAIN_AT_MOST`] at most).
pub struct Trail {
    shared: Arc<Shared>,
    thread: Thread,
    /// Disconnected when the audit thread has ended (in a mutex only to make the trail
    /// `Sync`; just the drop reads it).
    done: Mutex<mpsc::Receiver<()>>,
}

/// How long dropping a trail waits for the audit thread to write what it holds: a log that
/// nobody reads (a full pipe) must not hold up a server's exit for ever.
const DRAIN_AT_MOST: Duration = Duration::from_secs(5);

impl Trail {
    /// Starts the audit thread, which hands every entry to `outputs`.
    pub fn start(outputs: impl Outputs) -> std::io::Result<Trail> {
        let shared = Arc::new(Shared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            lanes: Mutex::new(Vec::new()),
            clients: RwLock::new(Vec::new()),
            sleeping: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            thread: OnceLock::new(),
            full: super::dropped_counter("trail", "queue_full"),
        });
        let for_thread = Arc::clone(&shared);
        let (ended, done) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tollgate-audit".to_owned())
            .spawn(move || {
                let _ended = ended;
                run(&for_thread, outputs);
            })?
            .thread()
            .clone();
        let _ = shared.thread.set(thread.clone());
        Ok(Trail {
            shared,
            thread,
            done: Mutex::new(done),
        })
    }

    /// The tag of the client named `name` (the same tag for the same name).
    pub fn client(&self, name: &str) -> ClientTag {
        let mut clients = self
            .shared
            .clients
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let at = match clients.iter().position(|c| &**c == name) {
            Some(at) => at,
            None => {
                clients.push(name.into());
                clients.len() - 1
            }
        };
        ClientTag(u32::try_from(at).unwrap_or(u32::MAX))
    }

    /// Queues an entry on the calling thread's lane, or drops and counts it when the lane
    /// is full.
    pub fn push(&self, entry: Entry) {
        let shared = &self.shared;
        let queued = LANE.with(|slot| {
            let mut slot = slot.borrow_mut();
            let lane = match &*slot {
                Some((id, lane)) if *id == shared.id => lane,
                _ => {
                    let lane = Arc::new(Lane::new());
                    shared
                        .lanes
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(Arc::clone(&lane));
                    &slot.insert((shared.id, lane)).1
                }
            };
            let mut entries = lane.lock();
            if entries.len() >= LANE_CAPACITY {
                return false;
            }
            entries.push(entry);
            true
        });
        if !queued {
            shared.full.increment(1);
            return;
        }
        // Pairs with the fence in `run`: either the audit thread sees this entry before
        // it parks, or this thread sees it parked and wakes it.
        fence(Ordering::SeqCst);
        if shared.sleeping.load(Ordering::Relaxed) && shared.sleeping.swap(false, Ordering::AcqRel)
        {
            if let Some(thread) = shared.thread.get() {
                thread.unpark();
            }
        }
    }
}

impl Drop for Trail {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.thread.unpark();
        // Returns once the thread has ended (its end of the channel is dropped), or after
        // DRAIN_AT_MOST with the thread left to finish on its own.
        let done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(mpsc::RecvTimeoutError::Timeout) = done.recv_timeout(DRAIN_AT_MOST) {
            tracing::warn!("the audit trail could not write its last records in time");
        }
    }
}

/// The audit thread: rounds of emptying the lanes until the trail is dropped and the
/// lanes are empty.
fn run(shared: &Shared, mut outputs: impl Outputs) {
    crate::sched::background();
    let mut spare: Vec<Entry> = Vec::with_capacity(LANE_CAPACITY);
    let mut lanes: Vec<Arc<Lane>> = Vec::new();
    loop {
        let stopping = shared.stop.load(Ordering::SeqCst);
        let taken = round(shared, &mut lanes, &mut spare, &mut outputs);
        if taken > 0 {
            if !stopping {
                std::thread::park_timeout(PERIOD);
            }
            continue;
        }
        if stopping {
            return;
        }
        shared.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // Every lane, not only those of the last round: a thread's first entry may be in a
        // lane registered since (the lane is registered before the entry is pushed).
        let pending = shared
            .lanes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|l| !l.lock().is_empty());
        if pending || shared.stop.load(Ordering::SeqCst) {
            shared.sleeping.store(false, Ordering::Relaxed);
            continue;
        }
        std::thread::park();
        shared.sleeping.store(false, Ordering::Relaxed);
    }
}

/// Empties every lane once into `outputs`; returns how many entries it took.
fn round(
    shared: &Shared,
    lanes: &mut Vec<Arc<Lane>>,
    spare: &mut Vec<Entry>,
    outputs: &mut impl Outputs,
) -> usize {
    lanes.clear();
    {
        let mut all = shared.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        // A lane whose thread has ended (the list holds its only reference) goes once it
        // is empty.
        all.retain(|l| Arc::strong_count(l) > 1 || !l.lock().is_empty());
        lanes.extend(all.iter().cloned());
    }
    let mut taken = 0;
    for lane in lanes.iter() {
        std::mem::swap(&mut *lane.lock(), spare);
        if spare.is_empty() {
            continue;
        }
        taken += spare.len();
        let clients = shared
            .clients
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        for entry in spare.iter() {
            let client = clients.get(entry.client.0 as usize).map_or("", |c| &**c);
            outputs.entry(entry, client);
        }
        drop(clients);
        spare.clear();
    }
    if taken > 0 {
        outputs.flush();
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::sync::mpsc;
    use tollgate_engine::login::RejectReason;

    /// Outputs that send what they get to the test.
    struct Collect(mpsc::Sender<(String, String, &'static str)>);

    impl Outputs for Collect {
        fn entry(&mut self, entry: &Entry, client: &str) {
            let _ = self.0.send((
                entry.user().to_owned(),
                client.to_owned(),
                entry.outcome.as_str(),
            ));
        }
        fn flush(&mut self) {}
    }

    fn entry(user: &str, client: ClientTag) -> Entry {
        Entry::new(
            SystemTime::UNIX_EPOCH,
            user,
            client,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            LoginMode::Append,
            Outcome::Reject(RejectReason::BadPasscode),
            7,
        )
    }

    #[test]
    fn names_short_and_long_come_out_as_they_went_in() {
        for name in [
            "",
            "alice",
            "é".repeat(32).as_str(),
            &"x".repeat(INLINE_NAME),
            &"y".repeat(253),
        ] {
            assert_eq!(Name::new(name).as_str(), name);
        }
        assert!(matches!(
            Name::new(&"x".repeat(INLINE_NAME)),
            Name::Inline { .. }
        ));
        assert!(matches!(
            Name::new(&"x".repeat(INLINE_NAME + 1)),
            Name::Spilled(_)
        ));
    }

    #[test]
    fn a_client_keeps_its_tag() {
        let (tx, _rx) = mpsc::channel();
        let trail = Trail::start(Collect(tx)).unwrap();
        let a = trail.client("vpn-a");
        let b = trail.client("vpn-b");
        assert_ne!(a, b);
        assert_eq!(trail.client("vpn-a"), a);
    }

    #[test]
    fn entries_of_several_threads_all_arrive_with_their_client_names() {
        let (tx, rx) = mpsc::channel();
        let trail = Arc::new(Trail::start(Collect(tx)).unwrap());
        let tag = trail.client("vpn");
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let trail = Arc::clone(&trail);
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        trail.push(entry(&format!("user-{t}-{i}"), tag));
                        if i % 100 == 0 {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Dropping the trail waits for the audit thread to empty every lane.
        drop(Arc::into_inner(trail).expect("the threads are done"));
        let got: Vec<_> = rx.try_iter().collect();
        assert_eq!(got.len(), 4000);
        assert!(got
            .iter()
            .all(|(_, client, result)| client == "vpn" && *result == "reject"));
        for t in 0..4 {
            // Each thread's entries arrive in the order it recorded them.
            let mine: Vec<_> = got
                .iter()
                .filter(|(u, _, _)| u.starts_with(&format!("user-{t}-")))
                .map(|(u, _, _)| u.clone())
                .collect();
            let expected: Vec<_> = (0..1000).map(|i| format!("user-{t}-{i}")).collect();
            assert_eq!(mine, expected);
        }
    }

    #[test]
    fn an_idle_trail_wakes_for_a_single_entry() {
        let (tx, rx) = mpsc::channel();
        let trail = Trail::start(Collect(tx)).unwrap();
        let tag = trail.client("vpn");
        let trail = Arc::new(trail);
        for i in 0..6 {
            // Long enough for the audit thread to find nothing and park.
            std::thread::sleep(PERIOD * 3);
            if i % 2 == 0 {
                trail.push(entry(&format!("u{i}"), tag));
            } else {
                // A thread's first entry, in a lane the audit thread has not seen yet.
                let trail = Arc::clone(&trail);
                std::thread::spawn(move || trail.push(entry(&format!("u{i}"), tag)))
                    .join()
                    .unwrap();
            }
            let (user, _, _) = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("a parked audit thread is woken by the next entry");
            assert_eq!(user, format!("u{i}"));
        }
    }

    #[test]
    fn a_full_lane_drops_without_waiting() {
        /// Outputs that hold the audit thread until told to go on.
        struct Held(mpsc::Receiver<()>, mpsc::Sender<usize>);
        impl Outputs for Held {
            fn entry(&mut self, _: &Entry, _: &str) {
                let _ = self.1.send(1);
            }
            fn flush(&mut self) {
                let _ = self.0.recv();
            }
        }
        let (go, held) = mpsc::channel();
        let (tx, rx) = mpsc::channel();
        let trail = Trail::start(Held(held, tx)).unwrap();
        let tag = trail.client("vpn");
        // The first entry is taken, then the thread waits in flush: the lane fills.
        trail.push(entry("first", tag));
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        for _ in 0..LANE_CAPACITY + 100 {
            trail.push(entry("more", tag));
        }
        go.send(()).unwrap();
        go.send(()).unwrap();
        drop(go);
        drop(trail);
        assert_eq!(rx.try_iter().count(), LANE_CAPACITY);
    }
}
