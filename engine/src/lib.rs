//! The sans-io core of Tollgate.
//!
//! This crate owns everything about a login that can be decided from bytes, keys, a clock
//! reading and random bytes handed in by the caller: the RADIUS codec ([`radius`]), the
//! one-time-passcode core ([`otp`]), the login decisions ([`login`]) and what a phone signs
//! to approve a login ([`push`]). It performs no I/O,
//! never reads the clock or the operating system's random number generator, and depends on
//! no other workspace crate, so that every protocol path can be tested deterministically.

pub mod login;
pub mod otp;
pub mod push;
pub mod radius;
