//! `devices.json`: the phones `push-setup` enrolled, one per user of the run's state.
//!
//! It holds each user's device id and Ed25519 private key (base64 of its 32 bytes), and the
//! mobile API's address the devices were enrolled with, so that `run --scenario push` needs
//! no more options than the other scenarios. It holds private keys, so it is written with
//! mode 0600, through a temporary file and a rename.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::app::Device;
use crate::users::User;

/// The format version of `devices.json`.
pub const DEVICES_VERSION: u32 = 1;

/// One enrolled phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// The user it approves for.
    pub user: String,
    /// The id the server gave it.
    pub device_id: String,
    /// The private key: standard base64 of the 32-byte Ed25519 secret.
    pub key: String,
}

/// The whole of `devices.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicesFile {
    /// [`DEVICES_VERSION`].
    pub version: u32,
    /// The mobile API the devices were enrolled with (`IP:PORT`).
    pub api: String,
    /// When `push-setup` wrote it (RFC 3339, UTC).
    pub created_at: String,
    /// One record per user.
    pub devices: Vec<DeviceRecord>,
}

/// The path of `devices.json` in `dir`.
pub fn devices_path(dir: &Path) -> PathBuf {
    dir.join("devices.json")
}

/// Writes `dir/devices.json` (mode 0600).
pub fn save(dir: &Path, file: &DevicesFile) -> Result<()> {
    let path = devices_path(dir);
    let tmp = dir.join("devices.json.tmp");
    let text = serde_json::to_string_pretty(file)?;
    crate::state::write_private(&tmp, text.as_bytes(), true)?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot replace {}", path.display()))
}

/// Reads `dir/devices.json`.
pub fn load(dir: &Path) -> Result<DevicesFile> {
    let path = devices_path(dir);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (run `tollgate-loadtest push-setup --dir {}` first)",
            path.display(),
            dir.display()
        )
    })?;
    let file: DevicesFile =
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))?;
    if file.version != DEVICES_VERSION {
        bail!(
            "{} has version {}, this harness reads version {DEVICES_VERSION}",
            path.display(),
            file.version
        );
    }
    Ok(file)
}

impl DevicesFile {
    /// The device of every user, in the order of `users` (their indices in the state file).
    pub fn for_users(&self, users: &[User]) -> Result<Vec<Device>> {
        let by_user: HashMap<&str, &DeviceRecord> =
            self.devices.iter().map(|d| (d.user.as_str(), d)).collect();
        users
            .iter()
            .map(|u| {
                let record = by_user.get(u.name.as_str()).with_context(|| {
                    format!(
                        "user {} has no device in devices.json: run push-setup again with --force",
                        u.name
                    )
                })?;
                let key = Device::key_from_b64(&record.key)
                    .with_context(|| format!("devices.json: the key of {} is damaged", u.name))?;
                Device::new(record.device_id.clone(), key)
                    .with_context(|| format!("devices.json: device of {}", u.name))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_kept_privately_and_matched_to_users() {
        let dir = tempfile::tempdir().unwrap();
        let key = crate::push::app::new_key();
        let device = Device::new("abc123".into(), key).unwrap();
        let file = DevicesFile {
            version: DEVICES_VERSION,
            api: "127.0.0.1:8443".into(),
            created_at: "now".into(),
            devices: vec![DeviceRecord {
                user: "lt000002".into(),
                device_id: device.id.clone(),
                key: device.key_b64(),
            }],
        };
        save(dir.path(), &file).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(devices_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = load(dir.path()).unwrap();
        assert_eq!(back, file);
        let user = |name: &str| User {
            index: 0,
            name: name.into(),
            seed: Vec::new(),
            password: None,
            next_counter: 0,
            last_accepted: None,
            failures: 0,
        };
        let devices = back.for_users(&[user("lt000002")]).unwrap();
        assert_eq!(devices[0].id, "abc123");
        assert_eq!(devices[0].key_b64(), device.key_b64());
        let err = back.for_users(&[user("lt000003")]).unwrap_err();
        assert!(err.to_string().contains("lt000003"), "{err}");
    }
}
