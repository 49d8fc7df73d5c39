//! The used-code journal: what single use must survive a crash.
//!
//! Runtime state reaches SQLite behind the logins, every 200 ms (`sync.rs`). A process
//! killed in between would forget the counters it advanced, and a code accepted just
//! before the kill would be accepted again after the restart. So every change that makes a
//! code unusable (a token's counter, a day code marked used) and every change of a user's
//! lockout is recorded here **before the reply that depends on it is built**, by the thread
//! that decided it, under the lock that made the decision.
//!
//! A segment is a file preallocated to its full size and mapped shared into memory; a
//! writer reserves 32 bytes with one atomic addition and copies its record there. A store
//! into a shared file mapping is in the kernel's page cache the moment it is made, and the
//! page cache outlives the process: SIGKILL, an OOM kill or a panic at any instant loses
//! nothing that a NAS was told. It costs no system call, so a login pays a copy of 32
//! bytes. (The first version wrote each received batch's records with one `write(2)`; in
//! an open loop at 100,000 requests/s a batch is one or two datagrams, and that system call
//! per batch cost the server its headroom.) Where a file system cannot preallocate, the
//! segment is written with `write(2)` per record instead, since a store into a mapped page
//! with no block behind it would kill the process with SIGBUS on a full disk.
//!
//! Power loss or a kernel crash can lose what was not yet written back to the disk; the
//! restart then applies [`tollgate_engine::otp::fence`] to every TOTP token (see
//! [`read_leftover`] and `sync::recover_journal`). Nothing here calls `fsync`.
//!
//! The journal is a series of segment files `used-<generation>.journal` in the data
//! directory. The store thread rotates it before each flush of runtime state
//! ([`Journal::rotate`]) and deletes the segments that flush covered once SQLite has
//! committed it ([`Journal::retire`]). Why that loses nothing: a change is put in the
//! write-behind set before its record is written, and a writer picks the segment at the
//! moment it writes; so a record that lands in a segment taken out of service was in the
//! write-behind set before the store thread took it, and reaches SQLite in that flush.
//! At start-up, `sync::recover_journal` applies whatever segments a crash left, then
//! deletes them. Preallocation also means a full disk does not refuse the records of a
//! segment already opened: logins go on while the store's own writes fail and are retried.
//! A new segment needs its 4 MiB; when the disk cannot give them, the rotation fails (and
//! is counted), the segment in service stays in service, and its segments are retired once
//! space returns and a flush commits. Should it fill first (131,071 records), logins that
//! need a record are refused (`token_write_failed`): never accepted unrecorded.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tollgate_engine::login::LockoutState;
use tollgate_engine::otp::TokenState;

/// One record: what became unusable, or a user's lockout state.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A token's replay state after an accept: every counter below `state.next_counter`
    /// is used.
    Token {
        /// Store id of the token.
        id: i64,
        /// Its state after the accept.
        state: TokenState,
    },
    /// A user's day code (the one issued at `issued_at`) was used.
    DayCode {
        /// Store id of the user.
        user_id: i64,
        /// When the used code was issued.
        issued_at: i64,
    },
    /// A user's failure count and lock changed.
    Lockout {
        /// Store id of the user.
        user_id: i64,
        /// The new state.
        state: LockoutState,
    },
}

/// Bytes of one record, and of a segment's header.
pub const RECORD_LEN: usize = 32;

/// A slot no record was written to.
const ZERO_RECORD: [u8; RECORD_LEN] = [0; RECORD_LEN];

const KIND_TOKEN: u8 = 1;
const KIND_DAY_CODE: u8 = 2;
const KIND_LOCKOUT: u8 = 3;

/// A segment's first record: magic, format version, the boot it was written in.
const MAGIC: &[u8; 4] = b"TGUJ";
const VERSION: u8 = 1;

/// Size of a segment: 131,071 records after the header, more than a flush interval (200 ms)
/// sees at four times the server's highest measured rate. A full segment refuses records
/// (and so the logins that need them) until the next rotation.
const SEGMENT_LEN: usize = 4 << 20;

/// Bytes of a memory page, the unit in which a new segment is touched before service.
const PAGE: usize = 4096;

impl Entry {
    /// The record's 32 bytes: kind, flags, two reserved bytes, a checksum of the other 28
    /// bytes, then three little-endian 64-bit fields.
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let (kind, flags, a, b, c) = match *self {
            Entry::Token { id, state } => (
                KIND_TOKEN,
                0,
                id as u64,
                state.next_counter,
                state.drift as u64,
            ),
            Entry::DayCode { user_id, issued_at } => {
                (KIND_DAY_CODE, 0, user_id as u64, issued_at as u64, 0)
            }
            Entry::Lockout { user_id, state } => (
                KIND_LOCKOUT,
                u8::from(state.locked_until.is_some()),
                user_id as u64,
                u64::from(state.failures),
                state.locked_until.unwrap_or(0),
            ),
        };
        let mut out = [0u8; RECORD_LEN];
        out[0] = kind;
        out[1] = flags;
        out[8..16].copy_from_slice(&a.to_le_bytes());
        out[16..24].copy_from_slice(&b.to_le_bytes());
        out[24..32].copy_from_slice(&c.to_le_bytes());
        let sum = checksum(&out);
        out[4..8].copy_from_slice(&sum.to_le_bytes());
        out
    }

    /// Reads a record back; `None` for anything torn, altered or unknown.
    pub fn decode(bytes: &[u8]) -> Option<Entry> {
        let bytes: &[u8; RECORD_LEN] = bytes.try_into().ok()?;
        let stored = u32::from_le_bytes(bytes[4..8].try_into().ok()?);
        if stored != checksum(bytes) || bytes[2] != 0 || bytes[3] != 0 {
            return None;
        }
        let field = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or_default());
        let (a, b, c) = (field(8), field(16), field(24));
        match (bytes[0], bytes[1]) {
            (KIND_TOKEN, 0) => Some(Entry::Token {
                id: a as i64,
                state: TokenState {
                    next_counter: b,
                    drift: c as i64,
                },
            }),
            (KIND_DAY_CODE, 0) if c == 0 => Some(Entry::DayCode {
                user_id: a as i64,
                issued_at: b as i64,
            }),
            (KIND_LOCKOUT, locked @ (0 | 1)) => Some(Entry::Lockout {
                user_id: a as i64,
                state: LockoutState {
                    failures: u32::try_from(b).ok()?,
                    locked_until: (locked == 1).then_some(c),
                },
            }),
            _ => None,
        }
    }
}

/// FNV-1a over the record without its checksum field: enough to tell a torn or zeroed
/// record from a written one (this guards against a partial write, not against an attacker,
/// who would need write access to the data directory).
fn checksum(record: &[u8; RECORD_LEN]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for (i, b) in record.iter().enumerate() {
        if (4..8).contains(&i) {
            continue;
        }
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Why the journal could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A segment could not be created, written or removed.
    #[error("used-code journal {path}: {source}")]
    Io {
        /// The segment.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The segment in service is full (more records within one flush interval than it
    /// holds): the record is refused until the store thread starts the next one.
    #[error("used-code journal {0}: the segment is full until the next rotation")]
    Full(PathBuf),
}

/// The segment being written.
struct Segment {
    path: PathBuf,
    generation: u64,
    sink: Sink,
}

/// How a segment's records reach the kernel.
enum Sink {
    /// The whole preallocated file mapped shared; `next` is the offset of the next free
    /// record, advanced by one atomic addition per record, so that concurrent writers copy
    /// into disjoint slots.
    Mapped {
        map: memmap2::MmapRaw,
        next: AtomicUsize,
    },
    /// `write(2)` per record, appended (where the file system cannot preallocate);
    /// `written` counts the bytes of records (the header excluded).
    Appended { file: File, written: AtomicU64 },
}

struct Inner {
    dir: PathBuf,
    /// Swapped by the store thread; writers load it at the moment they write.
    active: ArcSwap<Segment>,
}

/// The journal of a data directory, or a disabled one (tests and commands that accept no
/// code). Cheap to clone.
#[derive(Clone, Default)]
pub struct Journal {
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Some(i) => f
                .debug_struct("Journal")
                .field("dir", &i.dir)
                .field("generation", &i.active.load().generation)
                .finish(),
            None => f.write_str("Journal(disabled)"),
        }
    }
}

impl Journal {
    /// A journal that records nothing.
    pub fn disabled() -> Journal {
        Journal { inner: None }
    }

    /// Opens a new segment in `dir`, after every segment already there (which
    /// `sync::recover_journal` applies and removes first).
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        let next = segments(dir)?.last().map_or(1, |(g, _)| g + 1);
        let segment = Segment::create(dir, next)?;
        Ok(Journal {
            inner: Some(Arc::new(Inner {
                dir: dir.to_owned(),
                active: ArcSwap::from_pointee(segment),
            })),
        })
    }

    /// Records `entry` before returning: once this returns `Ok`, the record outlives the
    /// process. An error means it may not; the caller refuses what needed it.
    pub fn record(&self, entry: Entry) -> Result<(), JournalError> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let result = inner.active.load().append(&entry.encode());
        if result.is_err() {
            metrics::counter!(crate::metrics::JOURNAL_ERRORS_TOTAL).increment(1);
        }
        result
    }

    /// Starts a new segment and returns the generation of the one it replaces, or `None`
    /// when that one holds no record (it then stays in service). Called by the store
    /// thread before it takes the write-behind set.
    pub fn rotate(&self) -> Result<Option<u64>, JournalError> {
        let Some(inner) = &self.inner else {
            return Ok(None);
        };
        let current = inner.active.load();
        if !current.has_records() {
            return Ok(None);
        }
        let fresh = Segment::create(&inner.dir, current.generation + 1)?;
        let old = inner.active.swap(Arc::new(fresh));
        Ok(Some(old.generation))
    }

    /// Deletes every segment up to `generation` (inclusive): a flush of runtime state that
    /// began after that segment left service has committed.
    pub fn retire(&self, generation: u64) -> Result<(), JournalError> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        for (g, path) in segments(&inner.dir)? {
            if g <= generation && g != inner.active.load().generation {
                std::fs::remove_file(&path).map_err(|source| JournalError::Io { path, source })?;
            }
        }
        Ok(())
    }

    /// At a clean stop, after the last flush committed: deletes every segment, the one in
    /// service too unless something was recorded in it after that flush began (it is then
    /// left for the next start to apply).
    pub fn close_clean(&self) -> Result<(), JournalError> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let active = inner.active.load();
        for (g, path) in segments(&inner.dir)? {
            if g == active.generation && active.has_records() {
                continue;
            }
            std::fs::remove_file(&path).map_err(|source| JournalError::Io { path, source })?;
        }
        Ok(())
    }
}

impl Segment {
    /// Creates the segment under a temporary name and renames it into place once its
    /// header is written and its blocks reserved: a process killed in between leaves no
    /// segment without a header, which [`read_leftover`] must read as written in another
    /// boot.
    fn create(dir: &Path, generation: u64) -> Result<Segment, JournalError> {
        let path = segment_path(dir, generation);
        let temporary = path.with_extension(TEMPORARY);
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        let _ = std::fs::remove_file(&temporary);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(io)?;
        let mut header = [0u8; RECORD_LEN];
        header[..4].copy_from_slice(MAGIC);
        header[4] = VERSION;
        header[8..24].copy_from_slice(&boot_id().unwrap_or_default());
        // A segment that cannot be made whole (no space for its header or its blocks) is
        // not put in service: the one in service stays there, and nothing half-made stays
        // behind.
        let discard = |e: std::io::Error| {
            let _ = std::fs::remove_file(&temporary);
            io(e)
        };
        file.write_all(&header).map_err(discard)?;
        let sink = match preallocate(&file) {
            Ok(()) => {
                let map = memmap2::MmapOptions::new()
                    .len(SEGMENT_LEN)
                    .map_raw(&file)
                    .map_err(discard)?;
                prefault(&map);
                Sink::Mapped {
                    map,
                    next: AtomicUsize::new(RECORD_LEN),
                }
            }
            // A full disk (or quota) refuses the segment: writing it record by record would
            // only move the failure into the logins.
            Err(e) if !cannot_preallocate(&e) => return Err(discard(e)),
            Err(e) => {
                tracing::warn!(error = %e, "journal segment not preallocated; writing it record by record");
                Sink::Appended {
                    file,
                    written: AtomicU64::new(0),
                }
            }
        };
        std::fs::rename(&temporary, &path).map_err(discard)?;
        Ok(Segment {
            path,
            generation,
            sink,
        })
    }

    /// Whether a record was written (or a slot for one taken) since the segment opened.
    fn has_records(&self) -> bool {
        match &self.sink {
            Sink::Mapped { next, .. } => next.load(Ordering::Acquire) > RECORD_LEN,
            Sink::Appended { written, .. } => written.load(Ordering::Acquire) > 0,
        }
    }

    /// Writes one record.
    #[allow(unsafe_code)]
    fn append(&self, record: &[u8; RECORD_LEN]) -> Result<(), JournalError> {
        match &self.sink {
            Sink::Mapped { map, next } => {
                let at = next.fetch_add(RECORD_LEN, Ordering::Relaxed);
                if at + RECORD_LEN > map.len() {
                    // Keep `next` from creeping towards overflow while the segment is full.
                    next.store(map.len(), Ordering::Relaxed);
                    return Err(JournalError::Full(self.path.clone()));
                }
                // SAFETY: `at..at + RECORD_LEN` lies within the mapping (checked above), and
                // the atomic addition gave it to this call alone, so no other thread reads
                // or writes these bytes while they are copied; the mapping lives as long as
                // `self`, which the caller's `Arc` keeps alive.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        record.as_ptr(),
                        map.as_mut_ptr().add(at),
                        RECORD_LEN,
                    );
                }
            }
            Sink::Appended { file, written } => {
                (&*file)
                    .write_all(record)
                    .map_err(|source| JournalError::Io {
                        path: self.path.clone(),
                        source,
                    })?;
                written.fetch_add(RECORD_LEN as u64, Ordering::Release);
            }
        }
        Ok(())
    }
}

/// Touches every page of a new segment's mapping, so that the page faults (and the file
/// system's work behind a first write to a page) happen here, on the store thread, and not
/// in a UDP worker in the middle of a login: a worker that stalled on one let a queue build
/// in an open loop at 100,000 requests/s. A segment lives a few hundred milliseconds, far
/// less than the kernel lets dirty pages wait, so its pages are normally never written to
/// the disk at all: they go with the file.
#[allow(unsafe_code)]
fn prefault(map: &memmap2::MmapRaw) {
    // The header page is written already.
    for page in (PAGE..map.len()).step_by(PAGE) {
        // SAFETY: `page` lies within the mapping; the segment is not in service yet, so no
        // other thread touches it, and the byte written is the zero the file holds there.
        unsafe { map.as_mut_ptr().add(page).write_volatile(0) };
        if page % (64 * PAGE) == 0 {
            // About a hundred microseconds of faults at a time, then the core goes back
            // to whoever wants it (see ARCHITECTURE.md, "Who gets the core").
            std::thread::yield_now();
        }
    }
}

/// Reserves every block of a segment and extends it to [`SEGMENT_LEN`] (the bytes past
/// the header read as zeros), so that a store into its mapping never needs a block the
/// disk may not have.
#[allow(unsafe_code)]
fn preallocate(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: fallocate(2) on a descriptor this function borrows; it reads no memory of ours.
    let r = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, SEGMENT_LEN as libc::off_t) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether `fallocate(2)` failed because the file system does not preallocate (the
/// record-by-record fallback then applies), rather than for want of space or another fault.
fn cannot_preallocate(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
    )
}

fn segment_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("used-{generation:016x}.journal"))
}

/// The extension of a segment still being created.
const TEMPORARY: &str = "journal-new";

/// The segments in `dir`, oldest first.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let io = |source| JournalError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let Some(hex) = name
            .to_str()
            .and_then(|n| n.strip_prefix("used-"))
            .and_then(|n| n.strip_suffix(".journal"))
        else {
            continue;
        };
        if let Ok(g) = u64::from_str_radix(hex, 16) {
            out.push((g, entry.path()));
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// This boot of the machine (Linux's random boot id): a segment written in another boot
/// may have lost what the kernel had not yet written back.
fn boot_id() -> Option<[u8; 16]> {
    let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let hex: String = text.trim().chars().filter(|c| *c != '-').collect();
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// What a crash left in the journal, merged: the furthest state of each token, the
/// strictest lockout of each user, every day code used.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Leftover {
    /// Token states, by token id.
    pub tokens: Vec<(i64, TokenState)>,
    /// Lockout states, by user id.
    pub lockouts: Vec<(i64, LockoutState)>,
    /// Day codes used: (user id, issued at).
    pub day_codes: Vec<(i64, i64)>,
    /// Whether a segment was written in an earlier boot of the machine (or in a boot that
    /// cannot be told): then the last records before the crash may never have reached the
    /// disk, and the caller must fence TOTP tokens.
    pub other_boot: bool,
    /// Segments read.
    pub segments: usize,
    /// Records read.
    pub records: usize,
    /// Records skipped as torn or unreadable (the tail of a segment cut by power loss).
    pub skipped: usize,
}

/// Reads every segment in `dir` into one [`Leftover`]. The caller applies it to the store,
/// commits, and then calls [`remove_segments`].
pub fn read_leftover(dir: &Path) -> Result<Leftover, JournalError> {
    use std::collections::HashMap;
    let mut tokens: HashMap<i64, TokenState> = HashMap::new();
    let mut lockouts: HashMap<i64, LockoutState> = HashMap::new();
    let mut day_codes = std::collections::BTreeSet::new();
    let mut out = Leftover::default();
    let this_boot = boot_id();
    for (_, path) in segments(dir)? {
        let bytes = std::fs::read(&path).map_err(|source| JournalError::Io {
            path: path.clone(),
            source,
        })?;
        out.segments += 1;
        let mut chunks = bytes.chunks(RECORD_LEN);
        let header = chunks.next().unwrap_or_default();
        let written_in = (header.len() == RECORD_LEN && &header[..4] == MAGIC)
            .then(|| <[u8; 16]>::try_from(&header[8..24]).ok())
            .flatten();
        // A segment without a whole header cannot be told apart from one whose data power
        // loss took (a process crash cannot leave one: see `Segment::create`).
        if this_boot.is_none() || written_in != this_boot || written_in == Some([0; 16]) {
            out.other_boot = true;
        }
        // A segment is preallocated: past its last record it holds only zeros, which are
        // skipped whole (a zero record inside is a slot whose writer died before copying).
        let records: Vec<&[u8]> = chunks.collect();
        let used = records
            .iter()
            .rposition(|c| *c != ZERO_RECORD.as_slice())
            .map_or(0, |i| i + 1);
        for chunk in &records[..used] {
            if *chunk == ZERO_RECORD.as_slice() {
                continue;
            }
            match Entry::decode(chunk) {
                Some(entry) => {
                    out.records += 1;
                    match entry {
                        Entry::Token { id, state } => {
                            let t = tokens.entry(id).or_insert(state);
                            if state.next_counter >= t.next_counter {
                                *t = state;
                            }
                        }
                        Entry::DayCode { user_id, issued_at } => {
                            day_codes.insert((user_id, issued_at));
                        }
                        Entry::Lockout { user_id, state } => {
                            // One user's records are in order (taken under the user's
                            // lock), but the strictest state is kept all the same: a
                            // merge that errs can only keep a count too high, never
                            // forget a failure.
                            let l = lockouts.entry(user_id).or_insert(state);
                            l.failures = l.failures.max(state.failures);
                            l.locked_until = l.locked_until.max(state.locked_until);
                        }
                    }
                }
                None => out.skipped += 1,
            }
        }
    }
    out.tokens = tokens.into_iter().collect();
    out.tokens.sort_unstable_by_key(|(id, _)| *id);
    out.lockouts = lockouts.into_iter().collect();
    out.lockouts.sort_unstable_by_key(|(id, _)| *id);
    out.day_codes = day_codes.into_iter().collect();
    Ok(out)
}

/// Removes every segment in `dir` (after their content was committed to the store), and
/// any segment left half-created.
pub fn remove_segments(dir: &Path) -> Result<(), JournalError> {
    for (_, path) in segments(dir)? {
        std::fs::remove_file(&path).map_err(|source| JournalError::Io { path, source })?;
    }
    let io = |source| JournalError::Io {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let half_created = path.extension().is_some_and(|e| e == TEMPORARY)
            && path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("used-"));
        if half_created {
            std::fs::remove_file(&path).map_err(|source| JournalError::Io { path, source })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn token(id: i64, next: u64) -> Entry {
        Entry::Token {
            id,
            state: TokenState {
                next_counter: next,
                drift: -2,
            },
        }
    }

    #[test]
    fn records_read_back_as_written() {
        let entries = [
            token(7, 1_000_000_123),
            Entry::DayCode {
                user_id: 3,
                issued_at: 1_700_000_000,
            },
            Entry::Lockout {
                user_id: 9,
                state: LockoutState {
                    failures: 4,
                    locked_until: Some(u64::MAX),
                },
            },
            Entry::Lockout {
                user_id: 9,
                state: LockoutState::default(),
            },
        ];
        for e in entries {
            assert_eq!(Entry::decode(&e.encode()), Some(e));
        }
    }

    #[test]
    fn a_torn_or_altered_record_is_refused() {
        let good = token(1, 5).encode();
        for i in 0..RECORD_LEN {
            let mut bad = good;
            bad[i] ^= 0x40;
            assert_eq!(Entry::decode(&bad), None, "byte {i} altered");
        }
        assert_eq!(Entry::decode(&good[..31]), None);
        assert_eq!(Entry::decode(&[0u8; RECORD_LEN]), None);
    }

    #[test]
    fn a_crash_leaves_what_was_written_and_a_rotation_retires_it() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        journal.record(token(1, 10)).unwrap();
        journal.record(token(1, 12)).unwrap();
        journal.record(token(2, 3)).unwrap();
        journal
            .record(Entry::DayCode {
                user_id: 5,
                issued_at: 100,
            })
            .unwrap();
        // The process dies here: no flush, no clean close. What was recorded is in the
        // file already, read by another open of it.
        let left = read_leftover(dir.path()).unwrap();
        assert_eq!(
            left.tokens,
            vec![
                (
                    1,
                    TokenState {
                        next_counter: 12,
                        drift: -2
                    }
                ),
                (
                    2,
                    TokenState {
                        next_counter: 3,
                        drift: -2
                    }
                )
            ]
        );
        assert_eq!(left.day_codes, vec![(5, 100)]);
        assert_eq!((left.records, left.skipped, left.segments), (4, 0, 1));
        assert!(!left.other_boot, "written in this boot");

        // A rotation moves writers to a new segment; retiring the old one keeps the new.
        let old = journal.rotate().unwrap().expect("the segment held records");
        journal.record(token(3, 1)).unwrap();
        journal.retire(old).unwrap();
        let left = read_leftover(dir.path()).unwrap();
        assert_eq!(left.segments, 1);
        assert_eq!(left.tokens.len(), 1);
        assert_eq!(journal.rotate().unwrap().map(|g| g > old), Some(true));
        // An empty segment stays in service.
        assert_eq!(journal.rotate().unwrap(), None);
        journal.close_clean().unwrap();
        assert_eq!(read_leftover(dir.path()).unwrap().segments, 0);
    }

    #[test]
    fn a_torn_tail_is_skipped_and_failures_are_never_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        let lock = |failures, locked_until| Entry::Lockout {
            user_id: 4,
            state: LockoutState {
                failures,
                locked_until,
            },
        };
        journal.record(lock(3, Some(50))).unwrap();
        journal.record(lock(1, None)).unwrap();
        drop(journal);
        let path = segments(dir.path()).unwrap()[0].1.clone();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&token(8, 9).encode()[..20]).unwrap();
        let left = read_leftover(dir.path()).unwrap();
        assert_eq!(left.skipped, 1);
        assert_eq!(
            left.lockouts,
            vec![(
                4,
                LockoutState {
                    failures: 3,
                    locked_until: Some(50)
                }
            )]
        );
        remove_segments(dir.path()).unwrap();
        assert_eq!(read_leftover(dir.path()).unwrap().segments, 0);
    }

    #[test]
    fn a_segment_of_another_boot_asks_for_the_fence() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        journal.record(token(1, 1)).unwrap();
        drop(journal);
        let path = segments(dir.path()).unwrap()[0].1.clone();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        assert!(read_leftover(dir.path()).unwrap().other_boot);
    }

    #[test]
    fn a_half_created_segment_is_ignored_and_removed_but_a_headerless_one_asks_for_the_fence() {
        let dir = tempfile::tempdir().unwrap();
        let half = dir.path().join("used-0000000000000003.journal-new");
        std::fs::write(&half, b"").unwrap();
        let left = read_leftover(dir.path()).unwrap();
        assert_eq!((left.segments, left.other_boot), (0, false));
        remove_segments(dir.path()).unwrap();
        assert!(!half.exists());
        // A segment whose header never reached the disk.
        std::fs::write(segment_path(dir.path(), 4), b"").unwrap();
        let left = read_leftover(dir.path()).unwrap();
        assert_eq!((left.segments, left.other_boot), (1, true));
    }

    #[test]
    fn a_disabled_journal_records_nothing() {
        let journal = Journal::disabled();
        journal.record(token(1, 1)).unwrap();
        assert_eq!(journal.rotate().unwrap(), None);
    }

    #[test]
    fn a_full_segment_refuses_records_until_the_next_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        let room = SEGMENT_LEN / RECORD_LEN - 1;
        for i in 0..room {
            journal.record(token(1, i as u64)).unwrap();
        }
        assert!(matches!(
            journal.record(token(1, 0)),
            Err(JournalError::Full(_))
        ));
        assert!(matches!(
            journal.record(token(1, 0)),
            Err(JournalError::Full(_))
        ));
        let left = read_leftover(dir.path()).unwrap();
        assert_eq!((left.records, left.skipped), (room, 0));
        assert_eq!(left.tokens[0].1.next_counter, room as u64 - 1);
        journal.rotate().unwrap().expect("a rotation");
        journal.record(token(2, 1)).unwrap();
    }

    /// Writers on several threads at once each get a slot of their own: every record is
    /// read back whole.
    #[test]
    fn concurrent_writers_never_overwrite_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        std::thread::scope(|s| {
            for t in 0..4i64 {
                let journal = &journal;
                s.spawn(move || {
                    for i in 0..5_000u64 {
                        journal.record(token(t, i)).unwrap();
                    }
                });
            }
        });
        let left = read_leftover(dir.path()).unwrap();
        assert_eq!((left.records, left.skipped), (20_000, 0));
        for t in 0..4i64 {
            let state = left.tokens.iter().find(|(id, _)| *id == t).unwrap().1;
            assert_eq!(state.next_counter, 4_999);
        }
    }

    proptest! {
        #[test]
        fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = Entry::decode(&bytes);
        }

        #[test]
        fn every_entry_round_trips(kind in 0u8..3, a in any::<i64>(), b in any::<u64>(), c in any::<i64>(), locked in any::<bool>()) {
            let e = match kind {
                0 => Entry::Token { id: a, state: TokenState { next_counter: b, drift: c } },
                1 => Entry::DayCode { user_id: a, issued_at: c },
                _ => Entry::Lockout { user_id: a, state: LockoutState { failures: b as u32, locked_until: locked.then_some(c as u64) } },
            };
            prop_assert_eq!(Entry::decode(&e.encode()), Some(e));
        }
    }
}
