//! Thread scheduling: which of the server's threads the kernel runs first when they
//! compete for a core.
//!
//! This module owns the scheduling policy of the process's threads (`[scheduling]` in the
//! configuration). The UDP workers answer logins inline and are what a NAS waits for;
//! everything else — the store thread's SQLite writes, the log and audit writers, the async
//! runtime (sessions, directory logins, portals, Argon2 on its blocking threads) — can wait
//! a little when the two compete for a core. So:
//!
//! - background threads lower their own priority (`background_nice`, 10 by default), which
//!   needs no privilege: the kernel then lets a UDP worker that wakes preempt them at once,
//!   instead of finishing a SQLite batch or a metrics drain first. A background thread that
//!   wakes after a sleep is still owed its share, though, and once the kernel has picked it
//!   it keeps the core until it sleeps or the next tick: so the long jobs of those threads
//!   come in short pieces too (the store thread's writes, `sync.rs`);
//! - UDP workers ask for a short time slice (`udp_slice_us`, 100 µs by default; Linux 6.12
//!   and later honour it, older kernels ignore it): a thread with a shorter slice preempts
//!   one with a longer slice when it wakes, so a datagram's arrival takes the core back from
//!   a kernel thread or another process's thread in microseconds rather than at the end of
//!   that thread's slice (several milliseconds at the default tick).
//!
//! There is deliberately no real-time option: a UDP worker under `SCHED_FIFO` kept busy by
//! load starves the kernel's own network thread on its core (`ksoftirqd`, which runs under
//! the normal policy), and replies then wait in the kernel for hundreds of milliseconds
//! (measured on the 2-core development machine; see ARCHITECTURE.md).
//!
//! A policy the kernel refuses never stops the server: the worker runs as an ordinary
//! thread and the refusal is logged.
//!
//! The scheduling calls have no safe wrapper in the crates the project uses, so this module
//! is one of the few allowed `unsafe`: each block passes plain integers or a struct it owns
//! for the length of the call.

#![allow(unsafe_code)]

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// The scheduling policy of the process, set once at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The nice value background threads give themselves (0 leaves them alone).
    pub background_nice: i32,
    /// The UDP workers' time slice; `None` keeps the kernel's default.
    pub udp_slice: Option<Duration>,
}

impl Policy {
    /// The policy the configuration asks for.
    pub fn from_config(c: &tollgate_config::SchedulingConfig) -> Policy {
        Policy {
            background_nice: c.background_nice,
            udp_slice: (c.udp_slice_us > 0).then(|| Duration::from_micros(c.udp_slice_us)),
        }
    }

    /// A policy that changes nothing (what threads get before [`configure`]).
    pub const fn unchanged() -> Policy {
        Policy {
            background_nice: 0,
            udp_slice: None,
        }
    }
}

static POLICY: OnceLock<Policy> = OnceLock::new();

/// Sets the process's policy; threads started afterwards follow it. Only the first call
/// counts (a process has one policy).
pub fn configure(policy: Policy) {
    let _ = POLICY.set(policy);
}

fn policy() -> Policy {
    POLICY.get().copied().unwrap_or(Policy::unchanged())
}

/// Lowers the calling thread's priority to the background level. Call it first thing in
/// every thread that is not a UDP worker.
pub fn background() {
    let nice = policy().background_nice;
    if nice == 0 {
        return;
    }
    if let Err(e) = set_nice(0, nice) {
        warn_once(&BACKGROUND_WARNED, "background_nice", &e);
    }
}

/// What [`udp_worker`] obtained for the calling thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Nothing was asked for.
    Default,
    /// The normal policy with this slice.
    Slice(Duration),
    /// The kernel refused the slice.
    Refused,
}

/// Gives the calling UDP worker thread its short slice, if one is configured.
pub fn udp_worker() -> Applied {
    match policy().udp_slice {
        None => Applied::Default,
        Some(slice) => match set_slice(slice) {
            Ok(()) => Applied::Slice(slice),
            Err(e) => {
                warn_once(&SLICE_WARNED, "udp_slice_us", &e);
                Applied::Refused
            }
        },
    }
}

/// Moves the calling thread to `SCHED_IDLE`: it runs only on a core no ordinary thread
/// wants, and any ordinary thread that wakes takes the core from it at once. Needs no
/// privilege (a thread may always lower itself; it cannot come back without
/// `CAP_SYS_NICE`, so only threads that stay there call this: the password checks). Where
/// the kernel refuses, the thread takes the lowest nice value (19) instead.
pub fn idle() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param that outlives the call; pid 0 is the caller.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        if !IDLE_WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %e, "password checks cannot run at idle priority; they run at nice 19");
        }
        let _ = set_nice(0, 19);
    }
}

/// The calling thread's scheduling policy (`libc::SCHED_OTHER`, `SCHED_IDLE`, …).
pub fn current_policy() -> i32 {
    // SAFETY: sched_getscheduler takes a plain integer; 0 is the caller.
    unsafe { libc::sched_getscheduler(0) }
}

static IDLE_WARNED: AtomicBool = AtomicBool::new(false);
static BACKGROUND_WARNED: AtomicBool = AtomicBool::new(false);
static SLICE_WARNED: AtomicBool = AtomicBool::new(false);

fn warn_once(flag: &AtomicBool, setting: &str, e: &io::Error) {
    if !flag.swap(true, Ordering::Relaxed) {
        tracing::warn!(error = %e, "scheduling.{setting} not applied; running with the default policy");
    }
}

/// Sets the nice value of thread `tid` (0: the calling thread; on Linux the nice value
/// belongs to each thread).
fn set_nice(tid: i32, nice: i32) -> io::Result<()> {
    let who = libc::id_t::try_from(tid).unwrap_or(0);
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, who, nice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `struct sched_attr` as of its first version (48 bytes), which every kernel with
/// `sched_setattr` accepts.
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
}

/// Asks for `slice` as the calling thread's time slice under the normal policy, keeping
/// its nice value.
fn set_slice(slice: Duration) -> io::Result<()> {
    // SAFETY: getpriority takes plain integers. -1 is also a valid nice value, so errno
    // would tell an error apart; for the calling thread it cannot fail.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_nice: nice,
        sched_runtime: u64::try_from(slice.as_nanos()).unwrap_or(u64::MAX),
        ..SchedAttr::default()
    };
    // SAFETY: `attr` is a valid, fully initialised sched_attr of the size it declares and
    // outlives the call; pid 0 is the calling thread; flags 0.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0u32) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The calling thread's slice as the kernel reports it (`None` where the kernel does not
/// say: before Linux 6.6 there is no per-thread slice).
pub fn current_slice() -> Option<Duration> {
    let mut attr = SchedAttr::default();
    // SAFETY: `attr` is writable and as large as the size passed; pid 0 is the caller.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            0,
            &mut attr as *mut SchedAttr,
            std::mem::size_of::<SchedAttr>() as u32,
            0u32,
        )
    };
    (rc == 0 && attr.sched_runtime > 0).then(|| Duration::from_nanos(attr.sched_runtime))
}

/// The calling thread's nice value.
pub fn current_nice() -> i32 {
    // SAFETY: getpriority takes plain integers.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the running kernel is at least `major.minor` (per-thread slices for the
    /// normal policy arrived in 6.12).
    fn kernel_at_least(major: u32, minor: u32) -> bool {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut parts = release
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|p| p.parse::<u32>().ok());
        let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        (a, b) >= (major, minor)
    }

    #[test]
    fn a_background_thread_lowers_only_itself() {
        let before = current_nice();
        assert!(before < 7, "the test runs at nice {before}");
        let inside = std::thread::spawn(|| {
            set_nice(0, 7).unwrap();
            current_nice()
        })
        .join()
        .unwrap();
        assert_eq!(inside, 7);
        assert_eq!(current_nice(), before, "the nice value is per thread");
    }

    #[test]
    fn a_slice_is_set_for_the_calling_thread_and_keeps_its_nice_value() {
        let (nice, slice) = std::thread::spawn(|| {
            set_nice(0, 3).unwrap();
            set_slice(Duration::from_micros(100)).unwrap();
            (current_nice(), current_slice())
        })
        .join()
        .unwrap();
        assert_eq!(nice, 3);
        if kernel_at_least(6, 12) {
            assert_eq!(slice, Some(Duration::from_micros(100)));
        }
        // The test thread itself is untouched.
        assert_ne!(current_slice(), Some(Duration::from_micros(100)));
    }

    #[test]
    fn the_configured_policy_follows_the_configuration() {
        let c = tollgate_config::SchedulingConfig::default();
        let p = Policy::from_config(&c);
        assert_eq!(p.background_nice, 10);
        assert_eq!(p.udp_slice, Some(Duration::from_micros(100)));
        let c = tollgate_config::SchedulingConfig {
            background_nice: 0,
            udp_slice_us: 0,
        };
        assert_eq!(Policy::from_config(&c), Policy::unchanged());
    }
}
