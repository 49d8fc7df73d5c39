//! A request on its way through the server, and the settings of the client it came from.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use ractor::ActorRef;
use tokio::net::UdpSocket;
use tokio::sync::OwnedSemaphorePermit;
use tollgate_config::{ClientAddress, SharedSecret};
use tollgate_engine::login::LoginMode;

use super::{ClientMsg, DedupKey};

/// Everything the server needs to know about one RADIUS client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSettings {
    /// Name in logs and metrics.
    pub name: Arc<str>,
    /// Source address or network.
    pub address: ClientAddress,
    /// Shared secret.
    pub secret: SharedSecret,
    /// Login mode.
    pub mode: LoginMode,
    /// Drop requests without Message-Authenticator.
    pub require_message_authenticator: bool,
    /// Requests per second allowed; 0 means no limit.
    pub rate_limit: u32,
}

/// One received request, from admission to reply.
///
/// The admission permit inside is what bounds the work queued for a client: it is released
/// when the job is dropped, answered or not. A job that is dropped unanswered after it was
/// entered in the duplicate cache tells its client actor, so that a retransmit is worked on
/// again instead of waiting for a reply that will never come.
pub struct Job {
    /// The datagram.
    pub bytes: Vec<u8>,
    /// Where it came from.
    pub peer: SocketAddr,
    /// The socket it came in on, which the reply leaves by.
    pub socket: Arc<UdpSocket>,
    /// When it was received.
    pub received: Instant,
    permit: Option<OwnedSemaphorePermit>,
    pending: Option<(ActorRef<ClientMsg>, DedupKey)>,
}

impl Job {
    /// A job holding an admission permit.
    pub fn new(
        bytes: Vec<u8>,
        peer: SocketAddr,
        socket: Arc<UdpSocket>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Self {
        Job {
            bytes,
            peer,
            socket,
            received: Instant::now(),
            permit,
            pending: None,
        }
    }

    /// Marks the job as entered in `owner`'s duplicate cache under `key`.
    pub fn mark_pending(&mut self, owner: ActorRef<ClientMsg>, key: DedupKey) {
        self.pending = Some((owner, key));
    }

    /// Marks the job as answered: dropping it no longer abandons anything.
    pub fn settle(&mut self) -> Option<DedupKey> {
        self.pending.take().map(|(_, key)| key)
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if let Some((owner, key)) = self.pending.take() {
            // The owner may be gone (restarted); then its cache went with it.
            let _ = owner.cast(ClientMsg::Abandoned(key));
        }
        drop(self.permit.take());
    }
}
