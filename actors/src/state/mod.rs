//! The server's in-memory view of the embedded directory: users, their tokens, the
//! per-user runtime state, and the verified-credential cache.
//!
//! Reads on the per-packet path touch only this module's maps and locks; the store is
//! reached through the write-behind set in [`Directory::take_dirty`], which the store task
//! drains a few times a second.

mod credentials;
mod directory;

pub use credentials::CredentialCache;
pub use directory::{
    DayCheck, DeviceEntry, Directory, PasscodeCheck, PasswordCheck, TokenEntry, UserEntry,
};
