//! Directory password hashes for the embedded directory (Argon2id, PHC strings).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Hashes a password with Argon2id and a random salt, as a PHC string.
pub fn hash_password(password: &[u8]) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password, &salt)
        // Hashing fails only for parameters or salts out of range, which defaults never are.
        .expect("Argon2id hashing with default parameters cannot fail")
        .to_string()
}

/// Checks a password against a PHC string. A malformed hash never verifies.
pub fn verify_password(password: &[u8], phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => Argon2::default().verify_password(password, &hash).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_password() {
        let h = hash_password(b"correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(b"correct horse", &h));
        assert!(!verify_password(b"correct hors", &h));
        assert!(!verify_password(b"x", "not a hash"));
    }
}
