//! The server's in-memory view of the embedded directory: users, their tokens, the
//! per-user runtime state, and the verified-credential cache.
//!
//! Reads on the per-packet path touch only this module's maps and locks; the store is
//! reached through the write-behind set in [`Directory::take_dirty`], which the store task
//! drains a few times a second.

mod check_pool;
mod credentials;
mod directory;
pub mod journal;

/// The hasher of the maps read on every request (users by name and id, the credential
/// cache, the duplicate cache): foldhash, seeded at random per map, some times faster than
/// the standard SipHash on these short keys. Every key it sees comes from a request whose
/// shared secret verified, or from the store, so the weaker flooding resistance of a fast
/// hash is not exposed to strangers.
pub type Hasher = foldhash::fast::RandomState;

pub use check_pool::CheckPool;
pub use credentials::CredentialCache;
pub use directory::{
    DayCheck, DeviceEntry, Directory, DirtyState, PasscodeCheck, PasswordCheck, SlowCheck,
    TokenEntry, UserEntry,
};
pub use journal::Journal;
