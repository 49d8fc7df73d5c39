//! Tollgate's composition root: every task and actor of the server, the embedded store,
//! and the `tollgate` command line.
//!
//! [`server::Server::start`] builds the whole tree from a validated configuration: the
//! store thread, the directory in memory, the [`radius::RadiusSupervisor`] with one client
//! actor per RADIUS client, the session supervisor, and the UDP listeners. Nothing here
//! parses RADIUS or decides a login: that is `tollgate_engine`. Every queue that network
//! load can fill is bounded by an admission gate, and what a full gate turns away is
//! counted in [`metrics`].

pub mod audit;
pub mod cli;
pub mod delivery;
#[cfg(fuzzing)]
pub mod fuzzing;
pub mod ldap;
pub mod metrics;
pub mod process;
pub mod push_api;
pub mod radius;
pub mod sched;
pub mod server;
pub mod state;
pub mod store;
pub mod sync;

/// Seconds since the Unix epoch, as the OTP core takes time.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
