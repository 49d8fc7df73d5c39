//! The RADIUS side of the server: UDP listeners, the client table, one [`ClientActor`]
//! per configured RADIUS client under the [`RadiusSupervisor`], and the challenge
//! [`SessionActor`]s under their own supervisor.
//!
//! The path of a request: a UDP worker thread receives a datagram, finds the client by
//! source address, verifies, deduplicates and decodes it, and runs the login inline when
//! every step is CPU work (the common case); the reply leaves from the same thread. A slow
//! password check, opening a challenge or answering one is handed to the client's actor
//! with a permit from that client's admission gate (or shed and counted when the gate is
//! full); a slow password check then runs on a blocking thread and a challenge answer in
//! its session actor, and both report back with [`ClientMsg::Completed`]. The permit
//! travels with the request and is released when it is answered or dropped, which bounds
//! every mailbox on the way.

mod batch;
mod client;
mod core;
mod dedup;
mod job;
mod login;
pub mod push;
mod session;
mod supervisor;
mod table;
mod worker;

pub use self::core::{ClientCore, Meters};
pub use client::{ClientActor, ClientMsg};
pub use dedup::{DedupKey, DuplicateCache, Seen};
pub use job::{ClientSettings, Job};
pub use login::{Decision, Progress, Shared};
pub use session::{
    PushOpened, PushWait, SentCode, SessionActor, SessionMsg, SessionRegistry, SessionSupervisor,
};
pub use supervisor::{RadiusSupervisor, RadiusSupervisorArgs, RadiusSupervisorMsg};
pub use table::{ClientSlot, ClientTable};
pub use worker::{bind_sockets, spawn_workers, WorkerContext};
