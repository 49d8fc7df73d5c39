//! The store's part of push approval: users' enrolled devices (their public keys and push
//! addresses) and the one-time enrolment codes that let a device enrol.

use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

use super::{now_unix, Change, Store, StoreError};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    platform TEXT NOT NULL,
    push_token TEXT,
    key_alg TEXT NOT NULL,
    public_key BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS devices_user ON devices(user_id);
CREATE TABLE IF NOT EXISTS enrolment_codes (
    code_hash BLOB PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
);
";

/// Where a device's push notifications go.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Platform {
    /// Firebase Cloud Messaging (Android).
    Fcm,
    /// Apple Push Notification service (iOS).
    Apns,
    /// No push: the app polls for pending approvals.
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

    /// Parses `fcm`, `apns` or `poll`.
    pub fn parse(s: &str) -> Option<Platform> {
        match s {
            "fcm" => Some(Platform::Fcm),
            "apns" => Some(Platform::Apns),
            "poll" => Some(Platform::Poll),
            _ => None,
        }
    }
}

/// An enrolled device.
#[derive(Clone, Debug)]
pub struct DeviceRecord {
    /// Opaque id (random, given to the app).
    pub id: String,
    /// Owner.
    pub user_id: i64,
    /// Name the app gave (`Pixel 8`).
    pub name: String,
    /// Push platform.
    pub platform: Platform,
    /// FCM registration token or APNs device token.
    pub push_token: Option<String>,
    /// `ed25519` or `p256`.
    pub key_alg: String,
    /// The public key's bytes.
    pub public_key: Vec<u8>,
    /// Unix time of enrolment.
    pub created_at: i64,
}

fn code_hash(code: &str) -> Vec<u8> {
    Sha256::digest(code.trim().to_ascii_uppercase().as_bytes()).to_vec()
}

impl Store {
    /// Records a one-time enrolment code for `user` (only its hash is kept).
    pub fn add_enrolment_code(
        &mut self,
        user: &str,
        code: &str,
        ttl_secs: i64,
    ) -> Result<(), StoreError> {
        let u = self.require_user(user)?;
        let now = now_unix();
        self.conn.execute(
            "DELETE FROM enrolment_codes WHERE expires_at < ?1",
            params![now],
        )?;
        self.conn.execute(
            "INSERT INTO enrolment_codes (code_hash, user_id, expires_at) VALUES (?1, ?2, ?3)",
            params![code_hash(code), u.id, now + ttl_secs],
        )?;
        Ok(())
    }

    /// Consumes an enrolment code and enrols the device with it, in one transaction.
    /// `None` when the code is unknown, used or expired.
    pub fn enrol_device(
        &mut self,
        code: &str,
        device: DeviceRecord,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        let tx = self.conn.transaction()?;
        let user_id: Option<i64> = tx
            .query_row(
                "DELETE FROM enrolment_codes WHERE code_hash = ?1 AND expires_at >= ?2 RETURNING user_id",
                params![code_hash(code), now_unix()],
                |r| r.get(0),
            )
            .optional()?;
        let Some(user_id) = user_id else {
            return Ok(None);
        };
        let device = DeviceRecord {
            user_id,
            created_at: now_unix(),
            ..device
        };
        tx.execute(
            "INSERT INTO devices (id, user_id, name, platform, push_token, key_alg, public_key, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                device.id,
                device.user_id,
                device.name,
                device.platform.as_str(),
                device.push_token,
                device.key_alg,
                device.public_key,
                device.created_at
            ],
        )?;
        Store::log_change(&tx, Change::User(user_id))?;
        tx.commit()?;
        Ok(Some(device))
    }

    fn row_to_device(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceRecord> {
        Ok(DeviceRecord {
            id: r.get(0)?,
            user_id: r.get(1)?,
            name: r.get(2)?,
            platform: Platform::parse(&r.get::<_, String>(3)?).unwrap_or(Platform::Poll),
            push_token: r.get(4)?,
            key_alg: r.get(5)?,
            public_key: r.get(6)?,
            created_at: r.get(7)?,
        })
    }

    /// The devices of one user, or of everyone.
    pub fn devices(&self, user: Option<i64>) -> Result<Vec<DeviceRecord>, StoreError> {
        let cols = "id, user_id, name, platform, push_token, key_alg, public_key, created_at";
        let mut out = Vec::new();
        match user {
            Some(id) => {
                let mut stmt = self.conn.prepare_cached(&format!(
                    "SELECT {cols} FROM devices WHERE user_id = ?1 ORDER BY created_at"
                ))?;
                for d in stmt.query_map(params![id], Store::row_to_device)? {
                    out.push(d?);
                }
            }
            None => {
                let mut stmt = self
                    .conn
                    .prepare_cached(&format!("SELECT {cols} FROM devices ORDER BY user_id"))?;
                for d in stmt.query_map([], Store::row_to_device)? {
                    out.push(d?);
                }
            }
        }
        Ok(out)
    }

    /// Removes a device.
    pub fn remove_device(&mut self, id: &str) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let user: Option<i64> = tx
            .query_row(
                "DELETE FROM devices WHERE id = ?1 RETURNING user_id",
                params![id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(user) = user else {
            return Err(StoreError::Invalid(format!("no device with id {id}")));
        };
        Store::log_change(&tx, Change::User(user))?;
        tx.commit()?;
        Ok(())
    }

    /// Forgets a push token that the push service says no longer reaches an app (the app
    /// was removed, or its token renewed): the devices holding it keep their keys, so
    /// their users can still approve by polling, but no notification is sent to it again.
    /// The messages still waiting for that token (push messages only) are removed with it.
    /// Returns how many devices held it.
    pub fn forget_push_token(&mut self, token: &str) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM outbox WHERE destination = ?1 AND channel IN ('fcm', 'apns')",
            params![token],
        )?;
        let users: Vec<i64> = {
            let mut stmt = tx.prepare(
                "UPDATE devices SET push_token = NULL WHERE push_token = ?1 RETURNING user_id",
            )?;
            let rows = stmt.query_map(params![token], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for user in &users {
            Store::log_change(&tx, Change::User(*user))?;
        }
        tx.commit()?;
        Ok(users.len())
    }
}
