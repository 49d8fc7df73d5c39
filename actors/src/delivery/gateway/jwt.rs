//! JSON Web Tokens for the push services' credentials, signed by hand (RFC 7515's compact
//! form: three base64url parts without padding, joined by dots).
//!
//! Two algorithms are needed and no more: RS256 (RSASSA-PKCS1-v1_5 with SHA-256) for the
//! assertion a Google service account trades for an OAuth access token, and ES256 (ECDSA
//! P-256 with SHA-256, the signature as the 64 bytes `r || s`) for APNs' provider token. A
//! JWT library would bring its own choice of crypto crates for two functions of a few
//! lines; signing with ring (already under rustls) and p256 (already in the workspace)
//! keeps one implementation of each primitive in the build.
//!
//! The keys come from PEM files holding PKCS#8 documents: a service account's
//! `private_key` (RSA) and APNs' `.p8` file (EC P-256).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::pkcs8::DecodePrivateKey;
use ring::rand::SystemRandom;
use ring::signature::RsaKeyPair;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivatePkcs8KeyDer;
use zeroize::Zeroizing;

/// A signed token: `header.claims.signature`. It is a credential: it only ever goes into a
/// sensitive header value.
pub(super) type Token = Zeroizing<String>;

/// RS256 over `header` and `claims` with an RSA key.
pub(super) fn rs256(
    key: &RsaKeyPair,
    rng: &SystemRandom,
    header: &serde_json::Value,
    claims: &serde_json::Value,
) -> Result<Token, String> {
    encode(header, claims, |input| {
        let mut signature = vec![0u8; key.public().modulus_len()];
        key.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            rng,
            input,
            &mut signature,
        )
        .map_err(|_| "RSA signing failed".to_owned())?;
        Ok(signature)
    })
}

/// ES256 over `header` and `claims` with a P-256 key.
pub(super) fn es256(
    key: &p256::ecdsa::SigningKey,
    header: &serde_json::Value,
    claims: &serde_json::Value,
) -> Token {
    let signed = encode(header, claims, |input| {
        let signature: p256::ecdsa::Signature = key.sign(input);
        Ok(signature.to_bytes().to_vec())
    });
    // The closure cannot fail.
    signed.unwrap_or_default()
}

fn encode(
    header: &serde_json::Value,
    claims: &serde_json::Value,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, String>,
) -> Result<Token, String> {
    let mut token = Zeroizing::new(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    ));
    let signature = sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(token)
}

/// The DER of the one PKCS#8 private key in a PEM text.
fn pkcs8_der(pem: &[u8]) -> Result<PrivatePkcs8KeyDer<'static>, String> {
    PrivatePkcs8KeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            "holds no PKCS#8 private key (-----BEGIN PRIVATE KEY-----)".to_owned()
        }
        e => format!("is not a PEM private key: {e}"),
    })
}

/// An RSA private key from PKCS#8 PEM (a service account's `private_key`).
pub(super) fn rsa_key(pem: &[u8]) -> Result<RsaKeyPair, String> {
    let der = pkcs8_der(pem)?;
    RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
        .map_err(|e| format!("is not a usable RSA private key: {e}"))
}

/// A P-256 private key from PKCS#8 PEM (APNs' `.p8` file).
pub(super) fn p256_key(pem: &[u8]) -> Result<p256::ecdsa::SigningKey, String> {
    let der = pkcs8_der(pem)?;
    p256::ecdsa::SigningKey::from_pkcs8_der(der.secret_pkcs8_der())
        .map_err(|e| format!("is not a P-256 private key: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
    use serde_json::json;

    /// A P-256 key made with `openssl genpkey -algorithm EC -pkeyopt
    /// ec_paramgen_curve:P-256`, the shape of an APNs `.p8` file.
    const P8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgxDf45T313pS4JAFS
t64I94Ng0VeceM1H2efLYL14JX6hRANCAAQ0bpg0Ws9RW/TAMcj28KIaON00wO/p
fmw2p33ZClZFXVLdjzRXfrpFOhqSosOaBzDlss1Ng5PUqIcSmaxm0GrV
-----END PRIVATE KEY-----
";

    fn parts(token: &str) -> Vec<Vec<u8>> {
        token
            .split('.')
            .map(|p| {
                assert!(!p.contains('='), "no padding: {p}");
                URL_SAFE_NO_PAD.decode(p).unwrap()
            })
            .collect()
    }

    #[test]
    fn es256_tokens_verify_with_the_public_key() {
        let key = p256_key(P8.as_bytes()).unwrap();
        let token = es256(
            &key,
            &json!({"alg": "ES256", "kid": "ABC123DEFG"}),
            &json!({"iss": "DEF123GHIJ", "iat": 1_437_179_036}),
        );
        let p = parts(&token);
        assert_eq!(p.len(), 3);
        let header: serde_json::Value = serde_json::from_slice(&p[0]).unwrap();
        assert_eq!(header, json!({"alg": "ES256", "kid": "ABC123DEFG"}));
        let claims: serde_json::Value = serde_json::from_slice(&p[1]).unwrap();
        assert_eq!(claims["iat"], 1_437_179_036);
        assert_eq!(p[2].len(), 64, "r || s, not DER");
        // Checked with ring, an implementation other than the signer's.
        let public = key.verifying_key().to_encoded_point(false);
        let signed = token.rsplit_once('.').unwrap().0;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public.as_bytes())
            .verify(signed.as_bytes(), &p[2])
            .expect("the signature verifies");
    }

    #[test]
    fn keys_that_are_not_pkcs8_are_refused_with_a_reason() {
        let e = p256_key(b"not a key").unwrap_err();
        assert!(e.contains("BEGIN PRIVATE KEY"), "{e}");
        let e = rsa_key(P8.as_bytes()).unwrap_err();
        assert!(e.contains("not a usable RSA private key"), "{e}");
        let sec1 = P8.replace("PRIVATE KEY", "EC PRIVATE KEY");
        assert!(p256_key(sec1.as_bytes()).is_err());
    }
}
