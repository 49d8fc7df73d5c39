//! The contract between the push API and the server: [`PushBackend`] and the values that
//! cross it. The API only ever calls the backend with input it has already checked (a well
//! formed body, a key that parses, a signature that verifies); the backend owns every
//! decision about devices and logins.

use std::future::Future;

use serde::Serialize;
use tollgate_engine::push::DeviceKey;

/// What the server does for the push API. `device`, `pending` and `decide` are called on the
/// request's task and must be quick in-memory calls; `enrol` may write to the store.
pub trait PushBackend: Send + Sync + 'static {
    /// Consumes the one-time enrolment `code` and stores `device` for the code's user.
    /// Returns the new device's id, or `Ok(None)` when the code is unknown, used or expired.
    fn enrol(
        &self,
        code: &str,
        device: NewDevice,
    ) -> impl Future<Output = Result<Option<String>, BackendError>> + Send;

    /// The key and owner of an enrolled device.
    fn device(&self, device_id: &str) -> Option<DeviceInfo>;

    /// The challenges of `user_id` still waiting for an answer.
    fn pending(&self, user_id: i64) -> Vec<PendingChallenge>;

    /// Approves or declines challenge `challenge_id` of `user_id`. `number` is the number the
    /// user picked (number matching); a wrong one declines the challenge and returns
    /// [`DecideError::WrongNumber`].
    fn decide(
        &self,
        user_id: i64,
        challenge_id: &str,
        approve: bool,
        number: Option<u8>,
    ) -> Result<Decided, DecideError>;
}

/// Where a device's notifications go.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Firebase Cloud Messaging (Android).
    Fcm,
    /// Apple Push Notification service (iOS).
    Apns,
    /// No push: the app polls `GET /v1/challenges`.
    Poll,
}

impl Platform {
    /// `fcm`, `apns` or `poll`.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Fcm => "fcm",
            Platform::Apns => "apns",
            Platform::Poll => "poll",
        }
    }
}

/// The algorithm of a device key.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyAlg {
    /// Ed25519.
    Ed25519,
    /// ECDSA over P-256 with SHA-256.
    P256,
}

impl KeyAlg {
    /// `ed25519` or `p256`, the names [`DeviceKey::parse`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlg::Ed25519 => "ed25519",
            KeyAlg::P256 => "p256",
        }
    }
}

/// A device that proved it holds its key, to be stored by [`PushBackend::enrol`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDevice {
    /// The name the app gave (`Pixel 8`), 1 to 64 characters, no control characters.
    pub name: String,
    /// Where its notifications go.
    pub platform: Platform,
    /// FCM registration token or APNs device token; present exactly when the platform
    /// pushes.
    pub push_token: Option<String>,
    /// The key's algorithm.
    pub key_alg: KeyAlg,
    /// The public key as [`DeviceKey::to_bytes`] writes it (P-256 uncompressed), so that
    /// [`DeviceKey::parse`] reads it back.
    pub public_key: Vec<u8>,
}

/// An enrolled device, as the API needs it to check a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The owner.
    pub user_id: i64,
    /// The public key its requests are signed with.
    pub key: DeviceKey,
}

/// A login waiting for the user's answer, as the app shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PendingChallenge {
    /// Opaque id, used in `POST /v1/challenges/{id}`.
    pub id: String,
    /// The name of the RADIUS client (the VPN) that asked.
    pub client: String,
    /// Unix time the login began.
    pub created_at: u64,
    /// Unix time after which it is refused.
    pub expires_at: u64,
    /// The three numbers the app offers; the right one is shown at the login prompt.
    /// Empty when the login has no prompt to show one (a client that holds the request
    /// while the phone answers): then an approval carries no number.
    pub numbers: Vec<u8>,
    /// A line for the user (where the login comes from).
    pub context: String,
}

/// What a decision did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Decided {
    /// The login is let in.
    Approved,
    /// The login is refused.
    Declined,
}

/// Why a decision was not taken as asked.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    /// The user has no pending challenge with that id (it never was, or it expired).
    #[error("no pending challenge with this id")]
    NotFound,
    /// The challenge was answered already.
    #[error("the challenge was already decided")]
    AlreadyDecided,
    /// An approval carried the wrong number; the challenge is now declined.
    #[error("wrong number")]
    WrongNumber,
    /// An approval carried no number where the login prompt shows one; nothing changed.
    #[error("approving needs the number shown at the login prompt")]
    NumberRequired,
}

/// The backend failed (a store write, for instance). The text goes to the log, never to the
/// app.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("push backend: {0}")]
pub struct BackendError(pub String);
