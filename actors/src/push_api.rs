//! The server's side of the mobile app API: enrolment writes the store (and the directory
//! in memory at once, so the new device can sign its next request), and the pending logins
//! and decisions go to the push registry, whose sessions hold the logins.

use std::sync::Arc;

use tollgate_portals::{
    BackendError, DecideError, Decided, DeviceInfo, NewDevice, PendingChallenge, PushBackend,
};

use crate::delivery::outbox::Outbox;
use crate::radius::push::DecideError as RegistryError;
use crate::radius::Shared;
use crate::store::{DeviceRecord, Platform};

/// The mobile API's view of the server.
pub struct Backend {
    shared: Arc<Shared>,
    store: Arc<Outbox>,
}

impl Backend {
    /// A backend over the server's shared state and a store connection.
    pub fn new(shared: Arc<Shared>, store: Arc<Outbox>) -> Backend {
        Backend { shared, store }
    }
}

impl PushBackend for Backend {
    async fn enrol(&self, code: &str, device: NewDevice) -> Result<Option<String>, BackendError> {
        let mut raw = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
        let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let record = DeviceRecord {
            id,
            user_id: 0,
            name: device.name,
            platform: match device.platform {
                tollgate_portals::Platform::Fcm => Platform::Fcm,
                tollgate_portals::Platform::Apns => Platform::Apns,
                tollgate_portals::Platform::Poll => Platform::Poll,
            },
            push_token: device.push_token,
            key_alg: device.key_alg.as_str().to_owned(),
            public_key: device.public_key,
            created_at: 0,
        };
        let code = code.to_owned();
        let enrolled = self
            .store
            .run(move |s| {
                let Some(d) = s.enrol_device(&code, record)? else {
                    return Ok(None);
                };
                let all = s.devices(Some(d.user_id))?;
                Ok(Some((d, all)))
            })
            .await
            .map_err(|e| BackendError(e.to_string()))?;
        Ok(enrolled.map(|(d, all)| {
            tracing::info!(target: "tollgate::audit", device = %d.id, user_id = d.user_id, platform = d.platform.as_str(), "device enrolled");
            self.shared.directory.set_devices(d.user_id, all);
            d.id
        }))
    }

    fn device(&self, device_id: &str) -> Option<DeviceInfo> {
        self.shared.directory.device(device_id).map(|d| DeviceInfo {
            user_id: d.user_id,
            key: d.key.clone(),
        })
    }

    fn pending(&self, user_id: i64) -> Vec<PendingChallenge> {
        self.shared
            .push
            .pending(user_id, crate::unix_now())
            .into_iter()
            .map(|p| PendingChallenge {
                id: p.id.clone(),
                client: p.client.to_string(),
                created_at: p.created_at,
                expires_at: p.expires_at,
                numbers: p.numbers.clone(),
                context: format!("Login through {}", p.client),
            })
            .collect()
    }

    fn decide(
        &self,
        user_id: i64,
        challenge_id: &str,
        approve: bool,
        number: Option<u8>,
    ) -> Result<Decided, DecideError> {
        match self
            .shared
            .push
            .decide(user_id, challenge_id, approve, number, crate::unix_now())
        {
            Ok(true) => Ok(Decided::Approved),
            Ok(false) => Ok(Decided::Declined),
            Err(RegistryError::NotFound) => Err(DecideError::NotFound),
            Err(RegistryError::AlreadyDecided) => Err(DecideError::AlreadyDecided),
            Err(RegistryError::WrongNumber) => Err(DecideError::WrongNumber),
            Err(RegistryError::NumberRequired) => Err(DecideError::NumberRequired),
        }
    }
}
