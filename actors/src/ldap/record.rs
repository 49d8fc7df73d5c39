//! Token records kept in a directory attribute (`telexNumber` by default).
//!
//! A value is `tollgate$1$<base64>`: three `$`-separated parts, as the Telex Number syntax
//! asks, all in PrintableString characters. The base64 part is the record (seed,
//! parameters, counter floor, drift) sealed with AES-256-GCM under the master key, with
//! the domain and the user's name as associated data, so a record copied to another user
//! does not open. Values that do not start with `tollgate$` belong to someone else and are
//! left alone.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use tollgate_engine::otp::{Algorithm, TokenKind, TokenParams, TokenState};
use zeroize::Zeroizing;

use crate::store::MasterKey;

/// The prefix of every value this module writes.
pub const PREFIX: &str = "tollgate$1$";

/// A token record read from the directory.
pub struct DirToken {
    /// Algorithm, digits, period.
    pub params: TokenParams,
    /// The seed.
    pub secret: Zeroizing<Vec<u8>>,
    /// Counter floor and drift.
    pub state: TokenState,
}

impl std::fmt::Debug for DirToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirToken")
            .field("params", &self.params)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Why a value could not be read as a token record.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// Not one of ours.
    #[error("not a Tollgate token record")]
    Foreign,
    /// Ours, but the base64 or the layout is broken.
    #[error("a damaged token record")]
    Damaged,
    /// Ours, but it does not open with this master key for this user.
    #[error("a token record sealed with another master key or for another user")]
    Sealed,
}

fn aad(domain: &str, user: &str) -> String {
    format!(
        "ldap-token:{}:{}",
        domain.to_ascii_lowercase(),
        user.to_lowercase()
    )
}

/// Plain layout: kind (0 HOTP, 1 TOTP), algorithm (0, 1, 2), digits, period (u32 BE),
/// next counter (u64 BE), drift (i64 BE), then the seed.
const FIXED: usize = 1 + 1 + 1 + 4 + 8 + 8;

/// Seals a record into an attribute value.
pub fn encode(key: &MasterKey, domain: &str, user: &str, token: &DirToken) -> String {
    let mut plain = Zeroizing::new(Vec::with_capacity(FIXED + token.secret.len()));
    let (kind, period) = match token.params.kind {
        TokenKind::Hotp => (0u8, 0u32),
        TokenKind::Totp { period, .. } => (1u8, period),
    };
    let algorithm = match token.params.algorithm {
        Algorithm::Sha1 => 0u8,
        Algorithm::Sha256 => 1,
        Algorithm::Sha512 => 2,
    };
    plain.extend_from_slice(&[kind, algorithm, token.params.digits]);
    plain.extend_from_slice(&period.to_be_bytes());
    plain.extend_from_slice(&token.state.next_counter.to_be_bytes());
    plain.extend_from_slice(&token.state.drift.to_be_bytes());
    plain.extend_from_slice(&token.secret);
    let sealed = key.seal(&aad(domain, user), &plain);
    format!("{PREFIX}{}", STANDARD.encode(sealed))
}

/// Opens an attribute value.
pub fn decode(
    key: &MasterKey,
    domain: &str,
    user: &str,
    value: &str,
) -> Result<DirToken, RecordError> {
    let body = value.strip_prefix(PREFIX).ok_or(RecordError::Foreign)?;
    let sealed = STANDARD
        .decode(body.trim())
        .map_err(|_| RecordError::Damaged)?;
    let plain = key
        .open(&aad(domain, user), &sealed)
        .map_err(|_| RecordError::Sealed)?;
    if plain.len() < FIXED + 1 {
        return Err(RecordError::Damaged);
    }
    let u32_at = |i: usize| u32::from_be_bytes(plain[i..i + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |i: usize| u64::from_be_bytes(plain[i..i + 8].try_into().unwrap_or([0; 8]));
    let kind = match plain[0] {
        0 => TokenKind::Hotp,
        1 => TokenKind::Totp {
            period: u32_at(3),
            t0: 0,
        },
        _ => return Err(RecordError::Damaged),
    };
    let algorithm = match plain[1] {
        0 => Algorithm::Sha1,
        1 => Algorithm::Sha256,
        2 => Algorithm::Sha512,
        _ => return Err(RecordError::Damaged),
    };
    let params = TokenParams {
        kind,
        algorithm,
        digits: plain[2],
    };
    params.validate().map_err(|_| RecordError::Damaged)?;
    Ok(DirToken {
        params,
        secret: Zeroizing::new(plain[FIXED..].to_vec()),
        state: TokenState {
            next_counter: u64_at(7),
            drift: u64_at(15) as i64,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> MasterKey {
        let dir = tempfile::tempdir().unwrap();
        MasterKey::load_or_create(&dir.path().join("master.key"))
            .unwrap()
            .0
    }

    fn token() -> DirToken {
        DirToken {
            params: TokenParams::default(),
            secret: Zeroizing::new(b"12345678901234567890".to_vec()),
            state: TokenState {
                next_counter: 56_789_012,
                drift: -2,
            },
        }
    }

    #[test]
    fn a_record_survives_the_round_trip_in_printable_characters() {
        let key = key();
        let value = encode(&key, "example.com", "Alice", &token());
        assert!(value.starts_with(PREFIX));
        // PrintableString (RFC 4517 §3.2) plus the '$' separators of the Telex Number syntax.
        assert!(value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "'()+,-./:? =$".contains(c)));
        assert_eq!(value.matches('$').count(), 2);
        let back = decode(&key, "EXAMPLE.com", "alice", &value).unwrap();
        assert_eq!(back.params, token().params);
        assert_eq!(back.state, token().state);
        assert_eq!(&back.secret[..], b"12345678901234567890");
        assert!(!format!("{back:?}").contains("1234567890"));
    }

    #[test]
    fn a_record_is_bound_to_its_user_and_key() {
        let key = key();
        let value = encode(&key, "example.com", "alice", &token());
        assert_eq!(
            decode(&key, "example.com", "bob", &value).unwrap_err(),
            RecordError::Sealed
        );
        assert_eq!(
            decode(&self::key(), "example.com", "alice", &value).unwrap_err(),
            RecordError::Sealed
        );
        assert_eq!(
            decode(&key, "example.com", "alice", "+44 20 7946 0000").unwrap_err(),
            RecordError::Foreign
        );
        assert_eq!(
            decode(&key, "example.com", "alice", "tollgate$1$!!!").unwrap_err(),
            RecordError::Damaged
        );
    }

    proptest! {
        /// A directory can hand back anything; reading it never panics.
        #[test]
        fn decoding_arbitrary_values_never_panics(value in ".{0,200}", tail in proptest::collection::vec(any::<u8>(), 0..80)) {
            let key = key();
            let _ = decode(&key, "example.com", "alice", &value);
            let forged = format!("{PREFIX}{}", STANDARD.encode(&tail));
            prop_assert!(decode(&key, "example.com", "alice", &forged).is_err());
        }
    }
}
