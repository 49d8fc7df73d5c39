//! A request that left the fast path, and the settings of the client it came from.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::OwnedSemaphorePermit;
use tollgate_config::{ClientAddress, SharedSecret};
use tollgate_engine::login::LoginMode;

use super::{ClientCore, DedupKey};

/// Everything the server needs to know about one RADIUS client.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// Name in logs and metrics.
    pub name: Arc<str>,
    /// Source address or network.
    pub address: ClientAddress,
    /// Shared secret.
    pub secret: SharedSecret,
    /// The secret's HMAC-MD5 key schedule (`MacKey::new(secret)`), made once.
    pub mac: tollgate_engine::radius::MacKey,
    /// Login mode.
    pub mode: LoginMode,
    /// Drop requests without Message-Authenticator.
    pub require_message_authenticator: bool,
    /// Accept Proxy-State without Message-Authenticator (see the engine's
    /// `SignaturePolicy`); only clients of the configuration file can set it.
    pub allow_unsigned_proxy_state: bool,
    /// Requests per second allowed; 0 means no limit.
    pub rate_limit: u32,
}

/// Settings are equal when everything an admin sets is: `mac` follows from `secret`.
impl PartialEq for ClientSettings {
    fn eq(&self, other: &ClientSettings) -> bool {
        self.name == other.name
            && self.address == other.address
            && self.secret == other.secret
            && self.mode == other.mode
            && self.require_message_authenticator == other.require_message_authenticator
            && self.allow_unsigned_proxy_state == other.allow_unsigned_proxy_state
            && self.rate_limit == other.rate_limit
    }
}

impl Eq for ClientSettings {}

impl ClientSettings {
    /// When this client's requests must carry a Message-Authenticator.
    pub fn signature_policy(&self) -> tollgate_engine::radius::SignaturePolicy {
        tollgate_engine::radius::SignaturePolicy {
            require_message_authenticator: self.require_message_authenticator,
            allow_unsigned_proxy_state: self.allow_unsigned_proxy_state,
        }
    }
}

/// One request handed from a UDP worker to its client's actor, until it is answered.
///
/// The admission permit inside bounds the work queued for a client: it is released when
/// the job is dropped, answered or not. A job dropped unanswered takes its entry out of the
/// duplicate cache, so that the NAS's retransmit is worked on afresh instead of being
/// joined to a request that will never be answered.
pub struct Job {
    /// The datagram.
    pub bytes: Vec<u8>,
    /// Where it came from.
    pub peer: SocketAddr,
    /// The socket it came in on, which the reply leaves by.
    pub socket: Arc<UdpSocket>,
    /// When it was received.
    pub received: Instant,
    /// The client core it was verified with (its secret verifies the reply too).
    pub core: Arc<ClientCore>,
    permit: Option<OwnedSemaphorePermit>,
    pending: Option<DedupKey>,
}

impl Job {
    /// A job for a datagram entered in `core`'s duplicate cache under `key`.
    pub fn new(
        bytes: Vec<u8>,
        peer: SocketAddr,
        socket: Arc<UdpSocket>,
        received: Instant,
        core: Arc<ClientCore>,
        key: DedupKey,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Self {
        Job {
            bytes,
            peer,
            socket,
            received,
            core,
            permit,
            pending: Some(key),
        }
    }

    /// Gives the client's admission permit back: for a request held for long (a push
    /// login), which the session bound counts instead.
    pub fn release_admission(&mut self) {
        self.permit = None;
    }

    /// Marks the job as answered and returns its duplicate-cache key.
    pub fn settle(&mut self) -> Option<DedupKey> {
        self.pending.take()
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if let Some(key) = self.pending.take() {
            self.core.dedup().abandon(&key);
        }
        drop(self.permit.take());
    }
}
