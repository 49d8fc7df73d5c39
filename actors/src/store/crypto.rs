//! The master key and the encryption of every seed and shared secret at rest.
//!
//! The key lives in `master.key` beside the database, created on first use with mode 0600
//! and refused if anyone but the owner can read it. Records are sealed with AES-256-GCM
//! under a fresh random nonce, with the record's kind and id as associated data, so a
//! ciphertext copied onto another row does not open.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use zeroize::Zeroizing;

use super::StoreError;

const KEY_FILE_PREFIX: &str = "tollgate-master-key-v1:";
const NONCE_LEN: usize = 12;

/// The key that seals seeds and secrets in the store.
pub struct MasterKey {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// Loads the key file at `path`, creating it with a new random key when absent.
    /// Returns the key and whether it was created now.
    pub fn load_or_create(path: &Path) -> Result<(MasterKey, bool), StoreError> {
        match fs::metadata(path) {
            Ok(meta) => {
                if meta.permissions().mode() & 0o077 != 0 {
                    return Err(StoreError::KeyFile {
                        path: path.to_owned(),
                        reason: format!(
                            "is readable by others (mode {:o}); run chmod 600 on it",
                            meta.permissions().mode() & 0o777
                        ),
                    });
                }
                let text =
                    Zeroizing::new(fs::read_to_string(path).map_err(|e| StoreError::KeyFile {
                        path: path.to_owned(),
                        reason: e.to_string(),
                    })?);
                let key = parse_key(text.trim()).ok_or_else(|| StoreError::KeyFile {
                    path: path.to_owned(),
                    reason: "is not a Tollgate master key".to_owned(),
                })?;
                Ok((MasterKey::from_bytes(&key), false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = Zeroizing::new([0u8; 32]);
                rand::rngs::OsRng.fill_bytes(key.as_mut());
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| StoreError::KeyFile {
                        path: path.to_owned(),
                        reason: e.to_string(),
                    })?;
                let text = Zeroizing::new(format!("{KEY_FILE_PREFIX}{}\n", hex(key.as_ref())));
                file.write_all(text.as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| StoreError::KeyFile {
                        path: path.to_owned(),
                        reason: e.to_string(),
                    })?;
                Ok((MasterKey::from_bytes(&key), true))
            }
            Err(e) => Err(StoreError::KeyFile {
                path: path.to_owned(),
                reason: e.to_string(),
            }),
        }
    }

    fn from_bytes(key: &[u8; 32]) -> MasterKey {
        MasterKey {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// Seals `plain` for the record named by `aad` (e.g. `token:42`): nonce || ciphertext.
    pub fn seal(&self, aad: &str, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: aad.as_bytes(),
                },
            )
            // AES-GCM encryption fails only for inputs of gigabytes; our records are tiny.
            .expect("AES-GCM encryption of a small record cannot fail");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a record sealed for `aad`; fails if the key, the record or its place differ.
    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(StoreError::Decrypt(aad.to_owned()));
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: aad.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| StoreError::Decrypt(aad.to_owned()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_key(text: &str) -> Option<[u8; 32]> {
    let hexpart = text.strip_prefix(KEY_FILE_PREFIX)?;
    if hexpart.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, chunk) in hexpart.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(chunk).ok()?;
        key[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let (k1, created) = MasterKey::load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let sealed = k1.seal("token:1", b"seed bytes");
        let (k2, created) = MasterKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(&k2.open("token:1", &sealed).unwrap()[..], b"seed bytes");
    }

    #[test]
    fn a_record_does_not_open_in_another_place_or_when_altered() {
        let dir = tempfile::tempdir().unwrap();
        let (k, _) = MasterKey::load_or_create(&dir.path().join("k")).unwrap();
        let mut sealed = k.seal("token:1", b"seed");
        assert!(k.open("token:2", &sealed).is_err());
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(k.open("token:1", &sealed).is_err());
        assert!(k.open("token:1", &[1, 2, 3]).is_err());
    }

    #[test]
    fn a_readable_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        MasterKey::load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
