//! Push approval: what a phone signs, how its key is read and checked, and the numbers
//! of number matching.
//!
//! A device enrols with a key pair it made itself (Ed25519, or ECDSA P-256 as phones' secure
//! enclaves make them) and proves it holds the private key by signing the enrolment
//! message. Every later request of the device is signed over a canonical text that binds the
//! method, the path, a timestamp, a single-use nonce and the body's hash, so a request can be
//! neither altered nor replayed. Everything here is pure: time and random bytes are
//! arguments.

use sha2::{Digest, Sha256};

/// Seconds a signed request's timestamp may be away from the server's clock.
pub const MAX_SKEW_SECS: u64 = 300;

/// A device's public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceKey {
    /// Ed25519 (RFC 8032), 32 bytes.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// ECDSA over P-256 with SHA-256, SEC1-encoded point.
    P256(p256::ecdsa::VerifyingKey),
}

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not `ed25519` or `p256`.
    #[error("unknown key algorithm `{0}` (ed25519 or p256)")]
    Algorithm(String),
    /// The bytes are no key of that algorithm.
    #[error("not a valid {0} public key")]
    Invalid(&'static str),
}

impl DeviceKey {
    /// Reads a public key: Ed25519 as its 32 bytes, P-256 as a SEC1 point (65 bytes
    /// uncompressed or 33 compressed).
    pub fn parse(algorithm: &str, bytes: &[u8]) -> Result<DeviceKey, KeyError> {
        match algorithm {
            "ed25519" => {
                let raw: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Invalid("ed25519"))?;
                ed25519_dalek::VerifyingKey::from_bytes(&raw)
                    .map(DeviceKey::Ed25519)
                    .map_err(|_| KeyError::Invalid("ed25519"))
            }
            "p256" => p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
                .map(DeviceKey::P256)
                .map_err(|_| KeyError::Invalid("p256")),
            other => Err(KeyError::Algorithm(other.chars().take(32).collect())),
        }
    }

    /// The algorithm's name.
    pub fn algorithm(&self) -> &'static str {
        match self {
            DeviceKey::Ed25519(_) => "ed25519",
            DeviceKey::P256(_) => "p256",
        }
    }

    /// The key's bytes, as [`DeviceKey::parse`] reads them (P-256 uncompressed).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            DeviceKey::Ed25519(k) => k.to_bytes().to_vec(),
            DeviceKey::P256(k) => k.to_encoded_point(false).as_bytes().to_vec(),
        }
    }

    /// Whether `signature` is this key's over `message`. Ed25519 signatures are 64 bytes;
    /// P-256 ones are 64 bytes (r ‖ s) or DER, as platforms produce both.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            DeviceKey::Ed25519(k) => {
                let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
                    return false;
                };
                k.verify_strict(message, &sig).is_ok()
            }
            DeviceKey::P256(k) => {
                use p256::ecdsa::signature::Verifier;
                let sig = p256::ecdsa::Signature::from_slice(signature)
                    .or_else(|_| p256::ecdsa::Signature::from_der(signature));
                match sig {
                    Ok(sig) => k.verify(message, &sig).is_ok(),
                    Err(_) => false,
                }
            }
        }
    }
}

/// What a device signs to enrol: it binds the one-time enrolment code to the key.
pub fn enrol_message(code: &str, public_key_b64: &str) -> Vec<u8> {
    format!("tollgate-enrol-v1\n{code}\n{public_key_b64}").into_bytes()
}

/// What a device signs for each request.
pub fn request_message(
    method: &str,
    path: &str,
    timestamp: u64,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    let digest = Sha256::digest(body);
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    format!("tollgate-request-v1\n{method}\n{path}\n{timestamp}\n{nonce}\n{hex}").into_bytes()
}

/// Whether a request's timestamp is close enough to `now`.
pub fn fresh(timestamp: u64, now: u64) -> bool {
    timestamp.abs_diff(now) <= MAX_SKEW_SECS
}

/// Number matching: the number shown at the login prompt and the three the phone offers
/// (the right one among two others, in an order that does not give it away). All are
/// two-digit numbers, distinct.
pub fn number_choices(random: [u8; 8]) -> (u8, [u8; 3]) {
    let pick = |b: u8, avoid: &[u8]| -> u8 {
        let mut n = 10 + b % 90;
        while avoid.contains(&n) {
            n = if n == 99 { 10 } else { n + 1 };
        }
        n
    };
    let right = pick(random[0], &[]);
    let a = pick(random[1], &[right]);
    let b = pick(random[2], &[right, a]);
    let mut choices = [right, a, b];
    // Place the right one by the fourth byte.
    choices.swap(0, usize::from(random[3] % 3));
    (right, choices)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer as _;
    use proptest::prelude::*;

    #[test]
    fn ed25519_signatures_verify_and_forgeries_do_not() {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let key = DeviceKey::parse("ed25519", sk.verifying_key().as_bytes()).unwrap();
        let msg = request_message("POST", "/v1/challenges/abc", 1_800_000_000, "n0nce", b"{}");
        let sig = sk.sign(&msg).to_bytes();
        assert!(key.verify(&msg, &sig));
        let other = request_message("POST", "/v1/challenges/abd", 1_800_000_000, "n0nce", b"{}");
        assert!(!key.verify(&other, &sig), "the path is signed");
        let mut bad = sig;
        bad[5] ^= 1;
        assert!(!key.verify(&msg, &bad));
        assert!(!key.verify(&msg, &sig[..63]));
        assert_eq!(key.to_bytes(), sk.verifying_key().as_bytes().to_vec());
    }

    #[test]
    fn p256_signatures_verify_in_both_encodings() {
        use p256::ecdsa::signature::Signer as _;
        let sk = p256::ecdsa::SigningKey::from_bytes(&[9u8; 32].into()).unwrap();
        let public = sk.verifying_key().to_encoded_point(false);
        let key = DeviceKey::parse("p256", public.as_bytes()).unwrap();
        let msg = enrol_message("ABCD", "Zm9v");
        let sig: p256::ecdsa::Signature = sk.sign(&msg);
        assert!(key.verify(&msg, &sig.to_bytes()));
        assert!(key.verify(&msg, sig.to_der().as_bytes()));
        assert!(!key.verify(&enrol_message("ABCE", "Zm9v"), &sig.to_bytes()));
        let compressed = sk.verifying_key().to_encoded_point(true);
        assert_eq!(
            DeviceKey::parse("p256", compressed.as_bytes()).unwrap(),
            key
        );
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(
            DeviceKey::parse("rsa", &[1; 32]),
            Err(KeyError::Algorithm("rsa".into()))
        );
        assert_eq!(
            DeviceKey::parse("ed25519", &[1; 31]),
            Err(KeyError::Invalid("ed25519"))
        );
        assert_eq!(
            DeviceKey::parse("p256", &[4; 65]),
            Err(KeyError::Invalid("p256"))
        );
    }

    #[test]
    fn timestamps_within_the_skew_are_fresh() {
        assert!(fresh(1000, 1000 + MAX_SKEW_SECS));
        assert!(fresh(1000 + MAX_SKEW_SECS, 1000));
        assert!(!fresh(1000, 1001 + MAX_SKEW_SECS));
    }

    proptest! {
        #[test]
        fn number_choices_are_distinct_two_digit_numbers_holding_the_right_one(r in any::<[u8; 8]>()) {
            let (right, c) = number_choices(r);
            prop_assert!(c.iter().all(|n| (10..=99).contains(n)));
            prop_assert!(c[0] != c[1] && c[1] != c[2] && c[0] != c[2]);
            prop_assert!(c.contains(&right));
        }

        #[test]
        fn arbitrary_keys_and_signatures_never_panic(alg in "ed25519|p256|x", key in proptest::collection::vec(any::<u8>(), 0..80), sig in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(k) = DeviceKey::parse(&alg, &key) {
                let _ = k.verify(b"message", &sig);
            }
        }
    }
}
