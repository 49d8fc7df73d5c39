//! Configuration errors, each tied to the key path it concerns.

use std::path::PathBuf;

/// What is wrong with a configuration. Every variant is the operator's to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file asked for.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The TOML does not parse or does not fit the expected shape (unknown key, wrong type).
    #[error("{path}: {message}")]
    Syntax {
        /// Dotted key path, or `(top level)`.
        path: String,
        /// What the parser said.
        message: String,
    },
    /// A value parses but is not allowed.
    #[error("{path}: {message}")]
    Invalid {
        /// Dotted key path of the value.
        path: String,
        /// Why it is refused.
        message: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The key path the error concerns, when there is one.
    pub fn key_path(&self) -> Option<&str> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Syntax { path, .. } | ConfigError::Invalid { path, .. } => Some(path),
        }
    }
}
