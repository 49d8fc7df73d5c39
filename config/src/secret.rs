//! A RADIUS shared secret that never shows itself in logs.

use std::fmt;

use serde::{Deserialize, Deserializer};
use zeroize::Zeroizing;

/// A shared secret between Tollgate and one RADIUS client.
///
/// Its bytes are wiped from memory when dropped and its `Debug` form is redacted, so a
/// configuration can be logged whole without leaking it.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedSecret(Zeroizing<Vec<u8>>);

impl SharedSecret {
    /// Wraps secret bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        SharedSecret(Zeroizing::new(bytes.into()))
    }

    /// The secret bytes, for computing authenticators.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Whether the secret is empty (never allowed).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl SharedSecret {
    /// Reads a secret from a file, without its trailing line end.
    pub fn from_file(path: &std::path::Path) -> Result<SharedSecret, crate::ConfigError> {
        let text =
            Zeroizing::new(
                std::fs::read(path).map_err(|source| crate::ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?,
            );
        let trimmed = text
            .strip_suffix(b"\r\n")
            .or_else(|| text.strip_suffix(b"\n"))
            .unwrap_or(&text);
        Ok(SharedSecret::new(trimmed.to_vec()))
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for SharedSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Zeroizing::new(String::deserialize(d)?);
        Ok(SharedSecret::new(s.as_bytes().to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let s = SharedSecret::new(b"hunter2".to_vec());
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("redacted"));
    }
}
