//! The APNs gateway: push notifications through Apple's HTTP/2 provider API, with token
//! authentication.
//!
//! Each request carries a provider token: a JWT signed with the team's APNs key (ES256,
//! `kid` = the key's id, `iss` = the team id, `iat` = when it was made). Apple refuses a
//! token older than an hour and one replaced more often than every twenty minutes, so a
//! token is made once and reused for forty minutes; a send answered 403
//! `ExpiredProviderToken` (the server's clock was off, or the process slept) makes a new one
//! at once and tries again, once.
//!
//! A message goes as `POST /3/device/{device token}` on one kept HTTP/2 connection (see
//! [`super::http2`]), with `apns-topic` = the app's bundle id, `apns-push-type: alert`,
//! `apns-priority: 10` (deliver now: someone is waiting at a login prompt),
//! `apns-expiration` and `apns-id`, and the body `{"aps": {"alert": {"title", "body"},
//! "sound": "default"}, <data keys>...}`.
//!
//! How the answer is read: 200 is sent; 429 (`TooManyRequests`,
//! `TooManyProviderTokenUpdates`), 500 and 503 are temporary; 400 (`BadDeviceToken`,
//! `BadTopic`, ...), 403 (`InvalidProviderToken`, ...), 410 (`Unregistered`: the app is
//! gone from the phone) and the rest are permanent; 410 is [`SendError::Unregistered`], so
//! the token is forgotten (`BadDeviceToken` is not: a gateway pointed at the wrong
//! environment gets it for every token, and must not wipe them all). Error texts carry the status and
//! Apple's `reason`, never the notification.

use std::sync::Mutex;
use std::time::Duration;

use hyper::body::Bytes;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use serde_json::json;
use tokio::time::Instant;
use tollgate_config::GatewayConfig;
use url::Url;

use super::http2::{Answer, Call, Origin};
use super::push::{Notification, MAX_NOTIFICATION_BYTES};
use super::{jwt, GatewayError, SendError};
use crate::delivery::Message;

/// How long a provider token is used: Apple wants it younger than an hour and replaced no
/// more often than every twenty minutes.
pub const PROVIDER_TOKEN_LIFETIME: Duration = Duration::from_secs(40 * 60);

pub(super) struct ApnsGateway {
    team_id: String,
    key_id: String,
    key: p256::ecdsa::SigningKey,
    topic: HeaderValue,
    apns: Origin,
    default_ttl: u64,
    timeout: Duration,
    /// The provider token in use. Signing takes microseconds, so a plain mutex is held
    /// while a new one is made.
    token: Mutex<Option<ProviderToken>>,
}

struct ProviderToken {
    /// `bearer <jwt>`, marked sensitive.
    header: HeaderValue,
    made: Instant,
    /// Counts tokens, so that a send answered `ExpiredProviderToken` replaces only the
    /// token it used, and concurrent sends do not each make a new one.
    generation: u64,
}

impl ApnsGateway {
    pub(super) fn new(c: &GatewayConfig) -> Result<ApnsGateway, GatewayError> {
        let fail = |m: String| GatewayError::new(&c.name, m);
        let need = |v: &Option<String>, key: &str| {
            v.clone()
                .ok_or_else(|| fail(format!("an apns gateway needs {key}")))
        };
        let team_id = need(&c.team_id, "team_id")?;
        let key_id = need(&c.key_id, "key_id")?;
        let topic = need(&c.topic, "topic")?;
        let path = c
            .key_file
            .as_deref()
            .ok_or_else(|| fail("an apns gateway needs key_file".to_owned()))?;
        let pem = zeroize::Zeroizing::new(
            std::fs::read(path).map_err(|e| fail(format!("key_file {}: {e}", path.display())))?,
        );
        let key =
            jwt::p256_key(&pem).map_err(|m| fail(format!("key_file {}: {m}", path.display())))?;
        let topic = HeaderValue::from_str(&topic)
            .map_err(|_| fail("topic cannot go in a header".to_owned()))?;
        let endpoint = c
            .push_endpoint()
            .unwrap_or(tollgate_config::DEFAULT_APNS_ENDPOINT);
        let endpoint = Url::parse(endpoint).map_err(|e| fail(format!("endpoint: {e}")))?;
        let tls = super::tls_client_config_alpn(c.ca_file.as_deref(), &[b"h2"]).map_err(fail)?;
        let timeout = Duration::from_millis(c.timeout_ms());
        Ok(ApnsGateway {
            team_id,
            key_id,
            key,
            topic,
            apns: Origin::new(&endpoint, tls, timeout)
                .map_err(|m| fail(format!("endpoint: {m}")))?,
            default_ttl: c.push_ttl_secs(),
            timeout,
            token: Mutex::new(None),
        })
    }

    pub(super) async fn send(&self, msg: &Message) -> Result<(), SendError> {
        let deadline = Instant::now() + self.timeout;
        let n = Notification::read(msg, crate::unix_now(), self.default_ttl)?;
        let device = msg.to.trim();
        if device.is_empty() || device.len() > 400 || !device.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(SendError::Permanent(
                "the destination is not an APNs device token (hexadecimal)".to_owned(),
            ));
        }
        let mut payload = serde_json::Map::new();
        for (k, v) in &n.data {
            payload.insert(k.clone(), json!(v));
        }
        payload.insert(
            "aps".to_owned(),
            json!({"alert": {"title": n.title, "body": n.body}, "sound": "default"}),
        );
        let body = serde_json::Value::Object(payload).to_string();
        if body.len() > MAX_NOTIFICATION_BYTES {
            return Err(SendError::Permanent(format!(
                "the notification is {} bytes, more than APNs' {MAX_NOTIFICATION_BYTES}",
                body.len()
            )));
        }
        let body = Bytes::from(body);
        let path = format!("/3/device/{}", device.to_ascii_lowercase());
        let fixed = [
            (HeaderName::from_static("apns-topic"), self.topic.clone()),
            (
                HeaderName::from_static("apns-push-type"),
                HeaderValue::from_static("alert"),
            ),
            (
                HeaderName::from_static("apns-priority"),
                HeaderValue::from_static("10"),
            ),
            (
                HeaderName::from_static("apns-expiration"),
                HeaderValue::from(n.expires_at),
            ),
            (
                HeaderName::from_static("apns-id"),
                HeaderValue::from_str(&apns_id(msg.id)).map_err(|_| {
                    SendError::Permanent("the message id cannot go in a header".to_owned())
                })?,
            ),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
        ];

        let (auth, generation) = self.provider_token(None);
        let mut answer = self
            .post(&path, &auth, &fixed, body.clone(), deadline)
            .await?;
        if answer.status == StatusCode::FORBIDDEN && reason(&answer.body) == "ExpiredProviderToken"
        {
            let (auth, _) = self.provider_token(Some(generation));
            answer = self.post(&path, &auth, &fixed, body, deadline).await?;
        }
        judge(answer.status, &reason(&answer.body))
            .map_err(|e| e.map_text(|m| format!("{}: {m}", self.apns.peer())))
    }

    async fn post(
        &self,
        path: &str,
        auth: &HeaderValue,
        fixed: &[(HeaderName, HeaderValue)],
        body: Bytes,
        deadline: Instant,
    ) -> Result<Answer, SendError> {
        let mut headers = Vec::with_capacity(fixed.len() + 1);
        headers.push((header::AUTHORIZATION, auth.clone()));
        headers.extend_from_slice(fixed);
        let call = Call {
            method: Method::POST,
            path,
            headers: &headers,
            body,
        };
        self.apns.send(&call, deadline).await
    }

    /// The provider token to send with: the current one while it is young enough and is
    /// not of generation `refused`, else a new one.
    fn provider_token(&self, refused: Option<u64>) -> (HeaderValue, u64) {
        let mut current = self
            .token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if let Some(t) = current.as_ref() {
            if Some(t.generation) != refused && !due(t.made, now) {
                return (t.header.clone(), t.generation);
            }
        }
        let generation = current.as_ref().map_or(1, |t| t.generation + 1);
        let jwt = jwt::es256(
            &self.key,
            &json!({"alg": "ES256", "kid": self.key_id}),
            &json!({"iss": self.team_id, "iat": crate::unix_now()}),
        );
        // A JWT is base64url and dots: always a valid header value.
        let mut header = HeaderValue::from_str(&format!("bearer {}", *jwt))
            .unwrap_or_else(|_| HeaderValue::from_static("bearer"));
        header.set_sensitive(true);
        *current = Some(ProviderToken {
            header: header.clone(),
            made: now,
            generation,
        });
        (header, generation)
    }
}

/// Whether a provider token made at `made` is to be replaced at `now`.
fn due(made: Instant, now: Instant) -> bool {
    now.saturating_duration_since(made) >= PROVIDER_TOKEN_LIFETIME
}

/// `apns-id`: a UUID-shaped text made from the outbox id, so that a message sent again
/// (after a crash, or a retry) carries the same id and Apple's reports can be matched to
/// the outbox. `00000000-0000-0000-HHHH-LLLLLLLLLLLL`: the id's high 16 and low 48 bits.
fn apns_id(id: i64) -> String {
    let id = id as u64;
    format!(
        "00000000-0000-0000-{:04x}-{:012x}",
        id >> 48,
        id & 0xffff_ffff_ffff
    )
}

/// The `reason` of an APNs error body, when it is a plain word.
fn reason(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["reason"].as_str().map(str::to_owned))
        .filter(|r| !r.is_empty() && r.len() <= 64 && r.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_default()
}

/// Sorts an answer (see the module documentation).
fn judge(status: StatusCode, reason: &str) -> Result<(), SendError> {
    if status.is_success() {
        return Ok(());
    }
    let text = if reason.is_empty() {
        format!("answered {status}")
    } else {
        format!("answered {status} ({reason})")
    };
    let code = status.as_u16();
    if code == 408 || code == 429 || status.is_server_error() {
        Err(SendError::Transient(text))
    } else if status == StatusCode::GONE {
        Err(SendError::Unregistered(text))
    } else {
        Err(SendError::Permanent(text))
    }
}

impl std::fmt::Debug for ApnsGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsGateway")
            .field("team_id", &self.team_id)
            .field("key_id", &self.key_id)
            .field("apns", &self.apns)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_shaped_and_follow_the_outbox_id() {
        assert_eq!(apns_id(7), "00000000-0000-0000-0000-000000000007");
        assert_eq!(
            apns_id(0x1234_5678_9abc_def0),
            "00000000-0000-0000-1234-56789abcdef0"
        );
        assert_eq!(apns_id(i64::MAX).len(), 36);
    }

    #[test]
    fn provider_tokens_last_forty_minutes() {
        let made = Instant::now();
        assert!(!due(made, made));
        assert!(!due(made, made + Duration::from_secs(39 * 60 + 59)));
        assert!(due(made, made + Duration::from_secs(40 * 60)));
        // A clock that went back does not make a token due.
        assert!(!due(made + Duration::from_secs(5), made));
    }

    #[test]
    fn answers_are_sorted_by_status() {
        let s = |c: u16, r: &str| judge(StatusCode::from_u16(c).unwrap(), r);
        assert!(s(200, "").is_ok());
        for (code, r) in [
            (429, "TooManyRequests"),
            (500, "InternalServerError"),
            (503, "ServiceUnavailable"),
        ] {
            let e = s(code, r).unwrap_err();
            assert!(e.is_transient(), "{code}");
            assert!(e.to_string().contains(r), "{e}");
        }
        for (code, r) in [
            (400, "BadDeviceToken"),
            (403, "InvalidProviderToken"),
            (403, "ExpiredProviderToken"),
            (404, "BadPath"),
            (413, "PayloadTooLarge"),
        ] {
            assert!(matches!(s(code, r), Err(SendError::Permanent(_))), "{code}");
        }
        assert!(matches!(
            s(410, "Unregistered"),
            Err(SendError::Unregistered(_))
        ));
        assert_eq!(
            reason(br#"{"reason":"Unregistered","timestamp":1}"#),
            "Unregistered"
        );
        assert_eq!(reason(br#"{"reason":"a b"}"#), "");
        assert_eq!(reason(b"busy"), "");
    }
}
