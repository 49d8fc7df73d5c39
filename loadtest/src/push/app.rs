//! What a phone app says to the mobile API, as `portals/openapi.yaml` describes it.
//!
//! A [`Device`] is an enrolled Ed25519 key with its device id. Every request but the
//! enrolment carries `X-Tollgate-Device`, `X-Tollgate-Timestamp`, a fresh
//! `X-Tollgate-Nonce` (16 random bytes, base64url) and `X-Tollgate-Signature` over
//! `tollgate_engine::push::request_message` (method, path, timestamp, nonce, body hash).
//! The enrolment signs `tollgate_engine::push::enrol_message` (code and public key).
//!
//! Answers are read strictly enough to act on them (the challenge ids and their numbers)
//! and no further; anything unexpected is an [`AppError`], never a panic.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use rand::RngCore;
use serde::Deserialize;
use tollgate_engine::push::{enrol_message, request_message};

use super::http::{Conn, HttpError, Response};

/// The longest device id or challenge id the harness puts in a header or a path (the
/// API's own bound).
pub const MAX_ID_LEN: usize = 128;

/// Why an exchange with the API did not go as it should.
#[derive(Debug)]
pub enum AppError {
    /// No usable HTTP answer.
    Http(HttpError),
    /// An answer with another status than expected.
    Status {
        /// The status.
        status: u16,
        /// The body (the API's `{"error": …}`), cut short.
        body: String,
    },
    /// A successful status with a body that does not say what it should.
    BadAnswer(String),
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Http(e) => write!(f, "{e}"),
            AppError::Status { status, body } => write!(f, "HTTP {status}: {body}"),
            AppError::BadAnswer(what) => write!(f, "unexpected answer: {what}"),
        }
    }
}

impl std::error::Error for AppError {}

impl From<HttpError> for AppError {
    fn from(e: HttpError) -> Self {
        AppError::Http(e)
    }
}

/// Whether `id` can go into a header and a path as it is: 1 to [`MAX_ID_LEN`] characters
/// of `A-Z a-z 0-9 - . _ ~` (the server's ids are hex).
pub fn plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// An enrolled phone: its key and the id the server gave it.
#[derive(Clone)]
pub struct Device {
    /// The device id (`X-Tollgate-Device`).
    pub id: String,
    key: SigningKey,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Device {
    /// A device from its id and key; the id must be a [`plain_id`].
    pub fn new(id: String, key: SigningKey) -> Result<Device, AppError> {
        if !plain_id(&id) {
            return Err(AppError::BadAnswer(format!(
                "device id {:?} is not 1 to {MAX_ID_LEN} URL-safe characters",
                id.chars().take(40).collect::<String>()
            )));
        }
        Ok(Device { id, key })
    }

    /// The private key's 32 bytes in standard base64, as `devices.json` keeps them.
    pub fn key_b64(&self) -> String {
        STANDARD.encode(self.key.to_bytes())
    }

    /// Reads a private key written by [`Device::key_b64`].
    pub fn key_from_b64(text: &str) -> Option<SigningKey> {
        let bytes: [u8; 32] = STANDARD.decode(text).ok()?.try_into().ok()?;
        Some(SigningKey::from_bytes(&bytes))
    }

    /// The four authentication headers of a request, signed now with a fresh nonce.
    pub fn sign(
        &self,
        rng: &mut impl RngCore,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> [(&'static str, String); 4] {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut raw = [0u8; 16];
        rng.fill_bytes(&mut raw);
        let nonce = URL_SAFE_NO_PAD.encode(raw);
        let signature = self
            .key
            .sign(&request_message(method, path, timestamp, &nonce, body));
        [
            ("x-tollgate-device", self.id.clone()),
            ("x-tollgate-timestamp", timestamp.to_string()),
            ("x-tollgate-nonce", nonce),
            (
                "x-tollgate-signature",
                STANDARD.encode(signature.to_bytes()),
            ),
        ]
    }

    /// Sends a signed request; a kept-alive connection found closed is replaced and the
    /// request signed and sent again, once. `before_send` runs just before each send (the
    /// approver notes when its approval left).
    pub fn send(
        &self,
        conn: &mut Conn,
        rng: &mut impl RngCore,
        method: &str,
        path: &str,
        body: &[u8],
        mut before_send: impl FnMut(),
    ) -> Result<Response, HttpError> {
        let mut retried = false;
        loop {
            let headers = self.sign(rng, method, path, body);
            let refs: [(&str, &str); 4] = [
                (headers[0].0, headers[0].1.as_str()),
                (headers[1].0, headers[1].1.as_str()),
                (headers[2].0, headers[2].1.as_str()),
                (headers[3].0, headers[3].1.as_str()),
            ];
            before_send();
            match conn.request(method, path, &refs, body) {
                Err(HttpError::Stale) if !retried => retried = true,
                other => return other,
            }
        }
    }
}

/// The body of an error answer, cut to a line's length.
fn short(r: &Response) -> String {
    let text = r.text();
    let mut cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

/// Fails unless the answer has status `want`.
fn expect_status(r: Response, want: u16) -> Result<Response, AppError> {
    if r.status == want {
        Ok(r)
    } else {
        Err(AppError::Status {
            status: r.status,
            body: short(&r),
        })
    }
}

/// `GET /v1/health`: whether the API answers.
pub fn health(conn: &mut Conn) -> Result<(), AppError> {
    expect_status(conn.request("GET", "/v1/health", &[], b"")?, 200).map(|_| ())
}

/// A new random Ed25519 key.
pub fn new_key() -> SigningKey {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    SigningKey::from_bytes(&seed)
}

/// `POST /v1/devices`: enrols `key` with the one-time `code` as a polling app named
/// `name`, and returns the device.
pub fn enrol(conn: &mut Conn, code: &str, key: SigningKey, name: &str) -> Result<Device, AppError> {
    let public = STANDARD.encode(key.verifying_key().as_bytes());
    let signature = key.sign(&enrol_message(code, &public));
    let body = serde_json::json!({
        "code": code,
        "name": name,
        "platform": "poll",
        "push_token": null,
        "key_alg": "ed25519",
        "public_key": public,
        "signature": STANDARD.encode(signature.to_bytes()),
    })
    .to_string();
    let r = expect_status(
        conn.request("POST", "/v1/devices", &[], body.as_bytes())?,
        201,
    )?;
    #[derive(Deserialize)]
    struct Enrolled {
        device_id: String,
    }
    let enrolled: Enrolled = serde_json::from_slice(&r.body)
        .map_err(|e| AppError::BadAnswer(format!("enrolment answer: {e}")))?;
    Device::new(enrolled.device_id, key)
}

/// One login waiting for the device's user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Challenge {
    /// Its id, for the decision's path.
    pub id: String,
    /// The numbers to offer (number matching); empty when the login shows no prompt.
    #[serde(default)]
    pub numbers: Vec<u8>,
}

/// Reads the answer to `GET /v1/challenges`; ids that cannot go into a path are refused.
pub fn parse_challenges(r: Response) -> Result<Vec<Challenge>, AppError> {
    let r = expect_status(r, 200)?;
    #[derive(Deserialize)]
    struct List {
        challenges: Vec<Challenge>,
    }
    let list: List = serde_json::from_slice(&r.body)
        .map_err(|e| AppError::BadAnswer(format!("challenge list: {e}")))?;
    if let Some(bad) = list.challenges.iter().find(|c| !plain_id(&c.id)) {
        return Err(AppError::BadAnswer(format!(
            "challenge id {:?} is not URL-safe",
            bad.id.chars().take(40).collect::<String>()
        )));
    }
    Ok(list.challenges)
}

/// The path and body of an approval of challenge `id` (a [`plain_id`]) with `number`.
pub fn approval(id: &str, number: Option<u8>) -> (String, String) {
    let number = number.map_or_else(|| "null".to_owned(), |n| n.to_string());
    (
        format!("/v1/challenges/{id}"),
        format!("{{\"decision\":\"approve\",\"number\":{number}}}"),
    )
}

/// Reads the answer to an approval: `Ok(())` when the API says `approved`.
pub fn parse_approved(r: Response) -> Result<(), AppError> {
    let r = expect_status(r, 200)?;
    #[derive(Deserialize)]
    struct Decided {
        result: String,
    }
    let d: Decided = serde_json::from_slice(&r.body)
        .map_err(|e| AppError::BadAnswer(format!("decision answer: {e}")))?;
    if d.result == "approved" {
        Ok(())
    } else {
        Err(AppError::BadAnswer(format!(
            "the approval was taken as {:?}",
            d.result.chars().take(40).collect::<String>()
        )))
    }
}

/// The number to pick among `offered`: the one of them the prompt showed (`shown`, every
/// number in the Reply-Message); `None` unless exactly one matches.
pub fn pick_number(offered: &[u8], shown: &[u8]) -> Option<u8> {
    let mut matches = offered.iter().filter(|n| shown.contains(n));
    let first = *matches.next()?;
    matches.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier as _;

    #[test]
    fn a_signed_request_verifies_over_the_engine_message() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let public = key.verifying_key();
        let device = Device::new("0123abcd".into(), key).unwrap();
        let mut rng = rand::rngs::mock::StepRng::new(1, 1);
        let h = device.sign(&mut rng, "POST", "/v1/challenges/x", b"{}");
        assert_eq!(h[0], ("x-tollgate-device", "0123abcd".to_owned()));
        let ts: u64 = h[1].1.parse().unwrap();
        let nonce = &h[2].1;
        assert!((8..=64).contains(&nonce.len()));
        let sig = STANDARD.decode(&h[3].1).unwrap();
        let sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
        let msg = request_message("POST", "/v1/challenges/x", ts, nonce, b"{}");
        assert!(public.verify(&msg, &sig).is_ok());
        let again = device.sign(&mut rng, "POST", "/v1/challenges/x", b"{}");
        assert_ne!(again[2].1, h[2].1, "a fresh nonce each time");
    }

    #[test]
    fn keys_survive_their_file_form() {
        let key = new_key();
        let device = Device::new("d".into(), key.clone()).unwrap();
        let back = Device::key_from_b64(&device.key_b64()).unwrap();
        assert_eq!(back.to_bytes(), key.to_bytes());
        assert!(Device::key_from_b64("c2hvcnQ=").is_none());
        assert!(!format!("{device:?}").contains(&device.key_b64()));
    }

    #[test]
    fn ids_that_could_break_a_request_are_refused() {
        assert!(plain_id("9f86d081884c7d65"));
        for bad in ["", "a b", "a/b", "a\r\nx: y", "é", &"a".repeat(129)] {
            assert!(!plain_id(bad), "{bad:?}");
        }
        let r = |body: &str| Response {
            status: 200,
            body: body.as_bytes().to_vec(),
        };
        let list = parse_challenges(r(
            r#"{"challenges":[{"id":"ab12","client":"nas","created_at":1,"expires_at":2,"numbers":[12,34,56],"context":"x"}]}"#,
        ))
        .unwrap();
        assert_eq!(list[0].numbers, vec![12, 34, 56]);
        assert!(parse_challenges(r(r#"{"challenges":[{"id":"a/b"}]}"#)).is_err());
        assert!(parse_challenges(r(r#"{"challenges":[{"id":"a","numbers":[300]}]}"#)).is_err());
        assert!(parse_challenges(r("not json")).is_err());
        assert!(matches!(
            parse_challenges(Response {
                status: 429,
                body: b"{}".to_vec()
            }),
            Err(AppError::Status { status: 429, .. })
        ));
        assert!(parse_approved(r(r#"{"result":"approved"}"#)).is_ok());
        assert!(parse_approved(r(r#"{"result":"declined"}"#)).is_err());
    }

    #[test]
    fn the_number_shown_is_picked_only_when_unambiguous() {
        assert_eq!(pick_number(&[12, 34, 56], &[34]), Some(34));
        assert_eq!(pick_number(&[12, 34, 56], &[7, 56]), Some(56));
        assert_eq!(pick_number(&[12, 34, 56], &[12, 34]), None);
        assert_eq!(pick_number(&[12, 34, 56], &[]), None);
        assert_eq!(
            approval("ab", Some(7)),
            (
                "/v1/challenges/ab".to_owned(),
                r#"{"decision":"approve","number":7}"#.to_owned()
            )
        );
        assert_eq!(
            approval("ab", None).1,
            r#"{"decision":"approve","number":null}"#
        );
    }
}
