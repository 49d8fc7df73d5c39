//! The RADIUS side of the server: UDP listeners, the client table, one [`ClientActor`]
//! per configured RADIUS client under the [`RadiusSupervisor`], and the challenge
//! [`SessionActor`]s under their own supervisor.
//!
//! The path of a request: a listener receives a datagram, finds the client by source
//! address, takes an admission permit from that client's gate (or sheds the packet and
//! counts it) and casts the packet to the client actor. The actor verifies, deduplicates
//! and decodes it, and runs the login inline when every step is CPU-only; a slow password
//! check goes to a blocking thread and a challenge answer to its session actor, and both
//! report back with [`ClientMsg::Completed`]. The permit travels with the request and is
//! released when it is answered or dropped, which bounds every mailbox on the way.

mod client;
mod dedup;
mod job;
mod listener;
mod login;
mod session;
mod supervisor;
mod table;

pub use client::{ClientActor, ClientMsg};
pub use dedup::{DedupKey, DuplicateCache, Seen};
pub use job::{ClientSettings, Job};
pub use listener::run_listener;
pub use login::Shared;
pub use session::{SessionActor, SessionMsg, SessionRegistry, SessionSupervisor};
pub use supervisor::{RadiusSupervisor, RadiusSupervisorArgs, RadiusSupervisorMsg};
pub use table::{ClientSlot, ClientTable};
