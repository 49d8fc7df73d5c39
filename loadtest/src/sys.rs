//! The little the harness needs from the operating system beyond plain sockets: its own CPU
//! time (`getrusage`), wall-clock timestamps for reports, a fine timer for the open loop, and
//! the kernel's arrival stamp of each reply (`SO_TIMESTAMPNS`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// CPU time a process has used so far.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Time spent running the harness's own code.
    pub user: Duration,
    /// Time spent in the kernel on its behalf (mostly the socket system calls).
    pub system: Duration,
}

impl CpuTimes {
    /// User plus system time.
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// The CPU time used between `earlier` and `self`.
    pub fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// The CPU time of this process and all its threads, from `getrusage(RUSAGE_SELF)`.
#[allow(unsafe_code)]
pub fn cpu_times() -> CpuTimes {
    // SAFETY: `rusage` is plain old data for which all-zero bytes are a valid value, and
    // getrusage(2) only writes into the struct we pass, which lives for the whole call.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return CpuTimes::default();
        }
        usage
    };
    let to_duration = |tv: libc::timeval| {
        Duration::new(
            u64::try_from(tv.tv_sec).unwrap_or(0),
            u32::try_from(tv.tv_usec).unwrap_or(0).saturating_mul(1000),
        )
    };
    CpuTimes {
        user: to_duration(usage.ru_utime),
        system: to_duration(usage.ru_stime),
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process of the machine (unlike
/// `Instant`, which cannot be compared across processes).
#[allow(unsafe_code)]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only into `ts`, which lives across the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    u64::try_from(ts.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(ts.tv_nsec).unwrap_or(0))
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Formats a time as RFC 3339 in UTC with milliseconds, e.g. `2024-05-01T12:34:56.789Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let ms = unix_ms(t);
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`), so that no date crate is needed for one timestamp format.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Asks the kernel to wake the calling thread within a microsecond of the time it asked
/// for, instead of the default 50 µs of timer slack, so that the open loop's short sleeps
/// between sends stay short. Failure only makes the schedule a little coarser.
#[allow(unsafe_code)]
pub fn fine_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong, 0, 0, 0);
    }
}

/// A monotonic-clock timer with nanosecond resolution that `epoll` can wait on (Linux
/// `timerfd`), because `epoll_wait` itself counts in whole milliseconds, too coarse for an
/// open loop sending every few tens of microseconds.
#[derive(Debug)]
pub struct Timer {
    file: std::fs::File,
}

impl Timer {
    /// A disarmed, non-blocking timer.
    #[allow(unsafe_code)]
    pub fn new() -> std::io::Result<Timer> {
        use std::os::fd::{FromRawFd, OwnedFd};
        // SAFETY: timerfd_create takes plain integers; on success it returns a new file
        // descriptor that nothing else owns, so handing it to OwnedFd is sound.
        let file = unsafe {
            let fd = libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            );
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            std::fs::File::from(OwnedFd::from_raw_fd(fd))
        };
        Ok(Timer { file })
    }

    /// Makes the timer fire at `at` (at once if that has passed).
    #[allow(unsafe_code)]
    pub fn arm_at(&self, at: std::time::Instant) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        // A zero value would disarm the timer, so a time already past fires in 1 ns.
        let wait = at
            .saturating_duration_since(std::time::Instant::now())
            .max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: libc::time_t::try_from(wait.as_secs()).unwrap_or(libc::time_t::MAX),
                // Below one billion, so it fits every platform's c_long.
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: the descriptor is our open timerfd, `spec` is a valid itimerspec that
        // outlives the call, and a null old-value pointer is allowed.
        let rc =
            unsafe { libc::timerfd_settime(self.file.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Consumes a firing, so that the next one wakes `epoll` again.
    pub fn clear(&self) {
        use std::io::Read;
        let mut expirations = [0u8; 8];
        // Nothing to read (the timer has not fired) is fine too.
        let _ = (&self.file).read(&mut expirations);
    }

    /// The descriptor, to register with `epoll`.
    pub fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.file.as_raw_fd()
    }
}

/// Asks the kernel to stamp every datagram that reaches socket `fd` with its arrival time
/// (read back by [`recv_stamped`]).
pub fn enable_arrival_stamps(fd: std::os::fd::RawFd) -> std::io::Result<()> {
    tollgate_netstamp::enable(fd)
}

/// Receives one datagram from socket `fd` (without waiting) into `buf`: its length, and the
/// time the kernel says it arrived, if the socket stamps arrivals.
pub fn recv_stamped(
    fd: std::os::fd::RawFd,
    buf: &mut [u8],
) -> std::io::Result<(usize, Option<SystemTime>)> {
    tollgate_netstamp::recv(fd, buf, libc::MSG_DONTWAIT)
}

/// The instant on the monotonic clock of an event the wall clock stamped `stamp`, read
/// `now` (monotonic) and `wall_now`: never later than `now`.
pub fn instant_of(
    stamp: SystemTime,
    now: std::time::Instant,
    wall_now: SystemTime,
) -> std::time::Instant {
    let ago = wall_now.duration_since(stamp).unwrap_or(Duration::ZERO);
    now.checked_sub(ago).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_123); // leap day 2000
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_735_689_599); // last second of 2024
        assert_eq!(rfc3339(t), "2024-12-31T23:59:59.000Z");
    }

    #[test]
    fn the_timer_fires_when_armed() {
        let timer = Timer::new().unwrap();
        let at = std::time::Instant::now() + Duration::from_millis(3);
        timer.arm_at(at).unwrap();
        let mut fds = [libc::pollfd {
            fd: timer.fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let n = poll_once(&mut fds, 2_000);
        assert_eq!(n, 1);
        assert!(std::time::Instant::now() >= at);
        timer.clear();
        assert_eq!(poll_once(&mut fds, 0), 0, "cleared timer is still readable");
    }

    #[allow(unsafe_code)]
    fn poll_once(fds: &mut [libc::pollfd; 1], timeout_ms: i32) -> i32 {
        // SAFETY: one valid pollfd that lives across the call.
        unsafe { libc::poll(fds.as_mut_ptr(), 1, timeout_ms) }
    }

    #[test]
    fn cpu_time_moves_forward() {
        let before = cpu_times();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = cpu_times();
        assert!(after.total() >= before.total());
    }

    #[test]
    fn a_stamp_maps_to_the_monotonic_clock_and_never_ahead_of_now() {
        let now = std::time::Instant::now();
        let wall = SystemTime::now();
        let at = instant_of(wall - Duration::from_micros(700), now, wall);
        assert_eq!(now - at, Duration::from_micros(700));
        // A stamp from the future (the wall clock stepped back) reads as now.
        assert_eq!(instant_of(wall + Duration::from_secs(5), now, wall), now);
    }
}
