//! Tollgate's HTTP portals.
//!
//! This crate owns what Tollgate says over HTTP. Today that is the push API of the mobile
//! app ([`push`]): a phone enrols its key, fetches the logins waiting for it and approves or
//! declines them with signed requests. The crate decides nothing about a login: it checks
//! that a request is well formed, authentic and fresh, and hands it to a backend
//! ([`PushBackend`]) that the server (`tollgate-actors`) implements. [`serve`] runs a router
//! over HTTPS (rustls) or plain HTTP, with a connection limit and a bounded drain.
//!
//! Metric names live in [`metrics`].

pub mod metrics;
pub mod push;
pub mod serve;

pub use push::{
    router, router_with_limits, BackendError, DecideError, Decided, DeviceInfo, KeyAlg, NewDevice,
    PendingChallenge, Platform, PushApiLimits, PushBackend,
};
pub use serve::{serve, serve_with, tls_config, ServeOptions, TlsConfigError};
