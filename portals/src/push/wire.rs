//! The JSON bodies of the push API and the checks on what an app sends, before anything
//! reaches the backend. Unknown fields are refused, so a typo in an app is an error and not a
//! silently ignored setting.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tollgate_engine::push::{DeviceKey, KeyError};

use super::auth::BASE64;
use super::backend::{KeyAlg, NewDevice, PendingChallenge, Platform};
use super::error::ApiError;
use base64::Engine as _;

/// Longest enrolment code accepted, in characters.
const MAX_CODE_CHARS: usize = 128;
/// Longest device name, in characters.
const MAX_NAME_CHARS: usize = 64;
/// Longest push token, in bytes.
const MAX_PUSH_TOKEN_LEN: usize = 4096;
/// Longest challenge id the API passes to the backend.
const MAX_CHALLENGE_ID_LEN: usize = 128;
/// Longest excerpt of a JSON error echoed back.
const MAX_ERROR_CHARS: usize = 300;

/// `POST /v1/devices`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnrolRequest {
    code: String,
    name: String,
    platform: Platform,
    #[serde(default)]
    push_token: Option<String>,
    key_alg: KeyAlg,
    public_key: String,
    signature: String,
}

/// An enrolment whose fields are well formed; its signature is still to be checked.
#[derive(Debug)]
pub(crate) struct Enrolment {
    pub(crate) code: String,
    pub(crate) device: NewDevice,
    pub(crate) key: DeviceKey,
    /// The public key as the app sent it: the enrolment message signs this text.
    pub(crate) public_key_b64: String,
    pub(crate) signature: Vec<u8>,
}

impl EnrolRequest {
    /// Checks every field; the error says which one is wrong and how.
    pub(crate) fn check(self) -> Result<Enrolment, ApiError> {
        text_field("code", &self.code, MAX_CODE_CHARS)?;
        text_field("name", &self.name, MAX_NAME_CHARS)?;
        let push_token = match (self.platform, self.push_token) {
            (Platform::Poll, None) => None,
            (Platform::Poll, Some(_)) => {
                return Err(ApiError::bad_request(
                    "push_token must be null for platform \"poll\"",
                ))
            }
            (platform, None) => {
                return Err(ApiError::bad_request(format!(
                    "push_token is required for platform \"{}\"",
                    platform.as_str()
                )))
            }
            (_, Some(token)) => {
                if token.is_empty()
                    || token.len() > MAX_PUSH_TOKEN_LEN
                    || !token.bytes().all(|b| b.is_ascii_graphic())
                {
                    return Err(ApiError::bad_request(format!(
                        "push_token must be 1 to {MAX_PUSH_TOKEN_LEN} visible ASCII characters"
                    )));
                }
                Some(token)
            }
        };
        let raw_key = BASE64
            .decode(&self.public_key)
            .map_err(|_| ApiError::bad_request("public_key is not base64"))?;
        let key = DeviceKey::parse(self.key_alg.as_str(), &raw_key).map_err(|e| match e {
            KeyError::Invalid(alg) => ApiError::bad_request(format!(
                "public_key is not a valid {alg} public key (Ed25519: 32 bytes; P-256: a SEC1 \
                 point of 33 or 65 bytes)"
            )),
            other => ApiError::bad_request(other.to_string()),
        })?;
        let signature = BASE64
            .decode(&self.signature)
            .map_err(|_| ApiError::bad_request("signature is not base64"))?;
        Ok(Enrolment {
            code: self.code,
            device: NewDevice {
                name: self.name,
                platform: self.platform,
                push_token,
                key_alg: self.key_alg,
                public_key: key.to_bytes(),
            },
            key,
            public_key_b64: self.public_key,
            signature,
        })
    }
}

/// A text field of 1 to `max` characters without control characters: the enrolment message
/// separates its parts with newlines, so a code with one could be read two ways.
fn text_field(name: &str, value: &str, max: usize) -> Result<(), ApiError> {
    let chars = value.chars().count();
    if chars == 0 || chars > max || value.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{name} must be 1 to {max} characters without control characters"
        )));
    }
    Ok(())
}

/// `201` answer to an enrolment.
#[derive(Debug, Serialize)]
pub(crate) struct EnrolResponse {
    pub(crate) device_id: String,
}

/// `GET /v1/challenges`.
#[derive(Debug, Serialize)]
pub(crate) struct ChallengesResponse {
    pub(crate) challenges: Vec<PendingChallenge>,
}

/// What the user chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Decision {
    Approve,
    Decline,
}

/// `POST /v1/challenges/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecideRequest {
    pub(crate) decision: Decision,
    #[serde(default)]
    pub(crate) number: Option<u8>,
}

/// `200` answer to a decision.
#[derive(Debug, Serialize)]
pub(crate) struct DecideResponse {
    pub(crate) result: &'static str,
}

/// Whether `id` can name a challenge at all; anything else is answered 404 without asking
/// the backend.
pub(crate) fn plausible_challenge_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_CHALLENGE_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Reads a JSON body; the error quotes serde's reason, cut short.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let mut reason: String = e.to_string().chars().take(MAX_ERROR_CHARS).collect();
        if reason.chars().count() == MAX_ERROR_CHARS {
            reason.push('…');
        }
        ApiError::bad_request(format!("invalid JSON body: {reason}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(platform: &str, token: Option<&str>) -> String {
        serde_json::json!({
            "code": "ABCD-1234",
            "name": "Pixel 8",
            "platform": platform,
            "push_token": token,
            "key_alg": "ed25519",
            "public_key": BASE64.encode([0x3b; 32]),
            "signature": BASE64.encode([0; 64]),
        })
        .to_string()
    }

    fn check(body: &str) -> Result<Enrolment, String> {
        parse_json::<EnrolRequest>(body.as_bytes())
            .and_then(EnrolRequest::check)
            .map_err(|e| e.message)
    }

    #[test]
    fn push_tokens_go_with_push_platforms() {
        // A key that parses is needed for the rest to be checked; derive one.
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
        let with_key =
            |body: String| body.replace(&BASE64.encode([0x3b; 32]), &BASE64.encode(key.as_bytes()));
        assert!(check(&with_key(request("fcm", Some("tok")))).is_ok());
        assert!(check(&with_key(request("poll", None))).is_ok());
        assert_eq!(
            check(&with_key(request("apns", None))).unwrap_err(),
            "push_token is required for platform \"apns\""
        );
        assert_eq!(
            check(&with_key(request("poll", Some("tok")))).unwrap_err(),
            "push_token must be null for platform \"poll\""
        );
        let long = "t".repeat(4097);
        assert!(check(&with_key(request("fcm", Some(&long)))).is_err());
        let unknown = check(&with_key(request("sms", None))).unwrap_err();
        assert!(unknown.contains("unknown variant `sms`"), "{unknown}");
    }

    #[test]
    fn text_fields_are_bounded_and_single_line() {
        assert!(text_field("name", "Pixel 8", 64).is_ok());
        assert!(text_field("name", &"é".repeat(64), 64).is_ok());
        assert!(text_field("name", &"é".repeat(65), 64).is_err());
        assert!(text_field("name", "", 64).is_err());
        assert!(text_field("code", "AB\nCD", 128).is_err());
    }

    #[test]
    fn json_errors_are_clear_and_short() {
        let e = parse_json::<DecideRequest>(br#"{"decision":"approve","extra":1}"#).unwrap_err();
        assert!(e.message.contains("unknown field `extra`"), "{}", e.message);
        let e = parse_json::<DecideRequest>(br#"{"decision":"approve","number":256}"#).unwrap_err();
        assert!(e.message.starts_with("invalid JSON body"), "{}", e.message);
        let long = format!(r#"{{"{}":1}}"#, "x".repeat(5000));
        let e = parse_json::<DecideRequest>(long.as_bytes()).unwrap_err();
        assert!(e.message.chars().count() < 400);
    }

    #[test]
    fn challenge_ids_are_plausible_or_not_found() {
        assert!(plausible_challenge_id("c-01HV3"));
        assert!(!plausible_challenge_id(""));
        assert!(!plausible_challenge_id("a b"));
        assert!(!plausible_challenge_id(&"c".repeat(129)));
    }
}
