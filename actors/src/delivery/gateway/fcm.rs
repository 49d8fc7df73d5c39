//! The FCM gateway: push notifications through Firebase Cloud Messaging's HTTP v1 API.
//!
//! Authorisation is OAuth 2.0 with a Google service account (RFC 7523's JWT bearer grant):
//! the gateway signs an assertion with the account's RSA key (RS256; issuer the account's
//! `client_email`, audience its `token_uri`, scope `firebase.messaging`, valid for an
//! hour), posts it to `token_uri`, and sends with the access token it gets back. The token
//! is kept until shortly before `expires_in` runs out, so one token request serves many
//! sends; a send answered 401 fetches a new token once and tries again.
//!
//! A message goes as `POST {endpoint}/v1/projects/{project_id}/messages:send` with the
//! device's token, the notification's title and text, the data map, and Android's high
//! priority and time to live (a push approval is worth waking the phone for, and worthless
//! once its challenge has expired).
//!
//! How the answer is read: 2xx is sent; 408, 429 and 5xx are temporary (FCM's
//! `UNAVAILABLE`, `INTERNAL`, `QUOTA_EXCEEDED`); 400, 403, 404 and the rest are permanent
//! (`INVALID_ARGUMENT`, `SENDER_ID_MISMATCH`, `UNREGISTERED`: the token is not, or no
//! longer, an installation of the app). A 404 `UNREGISTERED` is
//! [`SendError::Unregistered`], so the token is forgotten. Error texts carry the status and Google's error
//! codes, never the notification.
//!
//! Both the token endpoint and FCM are spoken to over HTTP/2, one kept connection each
//! (see [`super::http2`]).

use std::time::Duration;

use hyper::body::Bytes;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use ring::rand::SystemRandom;
use ring::signature::RsaKeyPair;
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;
use tollgate_config::GatewayConfig;
use url::Url;
use zeroize::Zeroizing;

use super::http2::{Answer, Call, Origin};
use super::push::{Notification, MAX_NOTIFICATION_BYTES};
use super::{jwt, GatewayError, SendError};
use crate::delivery::Message;

/// The OAuth scope of sending through FCM.
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// Google's token endpoint, for a service-account file that names none.
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// How long an assertion is valid: Google accepts at most an hour.
const ASSERTION_LIFETIME_SECS: u64 = 3600;

/// An access token is replaced this long before it expires, so that a send never goes out
/// with one about to lapse on the way.
const TOKEN_MARGIN_SECS: u64 = 60;

/// The lifetime assumed when the token endpoint does not say (Google's is an hour).
const DEFAULT_TOKEN_LIFETIME_SECS: u64 = 3600;

pub(super) struct FcmGateway {
    client_email: String,
    /// The key's id from the service-account file, sent as the assertion's `kid`.
    key_id: Option<String>,
    key: RsaKeyPair,
    rng: SystemRandom,
    /// The assertion's audience: `token_uri` exactly as the file gives it.
    token_uri: String,
    /// `token_uri`'s scheme, host, port and path.
    token_origin: Origin,
    /// `token_uri`'s query, if it has one (`?...`), else empty.
    token_path: String,
    fcm: Origin,
    send_path: String,
    default_ttl: u64,
    timeout: Duration,
    /// The access token in use. Held while a new one is fetched, so that concurrent sends
    /// wait for one token request instead of each making their own.
    token: tokio::sync::Mutex<Option<AccessToken>>,
}

struct AccessToken {
    /// `Bearer ...`, marked sensitive.
    header: HeaderValue,
    /// When to fetch the next one.
    renew_at: Instant,
    /// Counts tokens, so that a send answered 401 replaces only the token it used.
    generation: u64,
}

/// The fields of a service-account key file that are used; the others are ignored.
#[derive(Deserialize)]
struct ServiceAccount {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: String,
    private_key: String,
    private_key_id: Option<String>,
    token_uri: Option<String>,
    project_id: Option<String>,
}

impl FcmGateway {
    pub(super) fn new(c: &GatewayConfig) -> Result<FcmGateway, GatewayError> {
        let fail = |m: String| GatewayError::new(&c.name, m);
        let path = c
            .service_account_file
            .as_deref()
            .ok_or_else(|| fail("an fcm gateway needs service_account_file".to_owned()))?;
        let at = |m: String| fail(format!("service_account_file {}: {m}", path.display()));
        let text = Zeroizing::new(std::fs::read(path).map_err(|e| at(e.to_string()))?);
        // serde_json's errors give a position, never the text around it.
        let account: ServiceAccount = serde_json::from_slice(&text)
            .map_err(|e| at(format!("not a service-account key file: {e}")))?;
        let private_key = Zeroizing::new(account.private_key);
        if let Some(kind) = account.kind.as_deref().filter(|k| *k != "service_account") {
            return Err(at(format!(
                "is of type \"{kind}\", not a service account's key (\"service_account\")"
            )));
        }
        if account.client_email.is_empty() {
            return Err(at("client_email is empty".to_owned()));
        }
        let key =
            jwt::rsa_key(private_key.as_bytes()).map_err(|m| at(format!("private_key {m}")))?;
        let token_uri = account
            .token_uri
            .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned());
        let token_url =
            Url::parse(&token_uri).map_err(|e| at(format!("token_uri is not a URL: {e}")))?;
        let project_id =
            c.project_id.clone().or(account.project_id).ok_or_else(|| {
                at("names no project_id; set project_id in the section".to_owned())
            })?;
        if project_id.is_empty()
            || !project_id
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-.:_".contains(ch))
        {
            return Err(at("project_id is not a Google Cloud project id".to_owned()));
        }
        let endpoint = c
            .push_endpoint()
            .unwrap_or(tollgate_config::DEFAULT_FCM_ENDPOINT);
        let endpoint = Url::parse(endpoint).map_err(|e| fail(format!("endpoint: {e}")))?;
        let tls = super::tls_client_config_alpn(c.ca_file.as_deref(), &[b"h2"]).map_err(fail)?;
        let timeout = Duration::from_millis(c.timeout_ms());
        let token_path = match token_url.query() {
            Some(q) => format!("?{q}"),
            None => String::new(),
        };
        Ok(FcmGateway {
            client_email: account.client_email,
            key_id: account.private_key_id,
            key,
            rng: SystemRandom::new(),
            token_origin: Origin::new(&token_url, tls.clone(), timeout)
                .map_err(|m| at(format!("token_uri: {m}")))?,
            token_path,
            token_uri,
            fcm: Origin::new(&endpoint, tls, timeout)
                .map_err(|m| fail(format!("endpoint: {m}")))?,
            send_path: format!("/v1/projects/{project_id}/messages:send"),
            default_ttl: c.push_ttl_secs(),
            timeout,
            token: tokio::sync::Mutex::new(None),
        })
    }

    pub(super) async fn send(&self, msg: &Message) -> Result<(), SendError> {
        let deadline = Instant::now() + self.timeout;
        let n = Notification::read(msg, crate::unix_now(), self.default_ttl)?;
        let token = msg.to.trim();
        if token.is_empty() || token.len() > 4096 || token.chars().any(|c| c.is_control()) {
            return Err(SendError::Permanent(
                "the destination is not an FCM registration token".to_owned(),
            ));
        }
        let mut message = json!({
            "token": token,
            "notification": {"title": n.title, "body": n.body},
            "android": {"priority": "high", "ttl": format!("{}s", n.ttl_secs)},
        });
        if !n.data.is_empty() {
            message["data"] = json!(n.data);
        }
        let size = message["notification"].to_string().len() + message["data"].to_string().len();
        if size > MAX_NOTIFICATION_BYTES {
            return Err(SendError::Permanent(format!(
                "the notification is {size} bytes, more than FCM's {MAX_NOTIFICATION_BYTES}"
            )));
        }
        let body = Bytes::from(json!({ "message": message }).to_string());

        let (auth, generation) = self.access_token(deadline, None).await?;
        let answer = self.post(&auth, body.clone(), deadline).await?;
        let answer = if answer.status == StatusCode::UNAUTHORIZED {
            // The token may have been revoked or expired early: one new one, one more try.
            let (auth, _) = self.access_token(deadline, Some(generation)).await?;
            let again = self.post(&auth, body, deadline).await?;
            if again.status == StatusCode::UNAUTHORIZED {
                return Err(SendError::Permanent(format!(
                    "{} answered 401{} with a new access token",
                    self.fcm.peer(),
                    google_error(&again.body)
                )));
            }
            again
        } else {
            answer
        };
        judge(answer.status).map_err(|e| {
            let codes = google_error(&answer.body);
            let text = format!("{} answered {}{codes}", self.fcm.peer(), answer.status);
            match e {
                Judged::Transient => SendError::Transient(text),
                Judged::Permanent if unregistered(answer.status, &answer.body) => {
                    SendError::Unregistered(text)
                }
                Judged::Permanent => SendError::Permanent(text),
            }
        })
    }

    async fn post(
        &self,
        auth: &HeaderValue,
        body: Bytes,
        deadline: Instant,
    ) -> Result<Answer, SendError> {
        let headers = [
            (header::AUTHORIZATION, auth.clone()),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            ),
            user_agent(),
        ];
        let call = Call {
            method: Method::POST,
            path: &self.send_path,
            headers: &headers,
            body,
        };
        self.fcm.send(&call, deadline).await
    }

    /// The access token to send with, fetching a new one when there is none, when it is
    /// due, or when the one of generation `refused` is still the current one.
    async fn access_token(
        &self,
        deadline: Instant,
        refused: Option<u64>,
    ) -> Result<(HeaderValue, u64), SendError> {
        let mut current = tokio::time::timeout_at(deadline, self.token.lock())
            .await
            .map_err(|_| {
                SendError::Transient(format!(
                    "no access token from {} within {} ms",
                    self.token_origin.peer(),
                    self.timeout.as_millis()
                ))
            })?;
        if let Some(t) = current.as_ref() {
            if Some(t.generation) != refused && Instant::now() < t.renew_at {
                return Ok((t.header.clone(), t.generation));
            }
        }
        let generation = current.as_ref().map_or(1, |t| t.generation + 1);
        let fresh = self.fetch_token(deadline, generation).await?;
        let shown = (fresh.header.clone(), generation);
        *current = Some(fresh);
        Ok(shown)
    }

    /// Trades a new assertion for an access token.
    async fn fetch_token(
        &self,
        deadline: Instant,
        generation: u64,
    ) -> Result<AccessToken, SendError> {
        let asked = Instant::now();
        let assertion = self.assertion(crate::unix_now())?;
        // The assertion is base64url and dots, which a form carries as they are.
        let form = Zeroizing::new(format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
            *assertion
        ));
        let headers = [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            ),
            (header::ACCEPT, HeaderValue::from_static("application/json")),
            user_agent(),
        ];
        let call = Call {
            method: Method::POST,
            path: &self.token_path,
            headers: &headers,
            body: Bytes::from(form.as_bytes().to_vec()),
        };
        let answer = self.token_origin.send(&call, deadline).await?;
        let peer = self.token_origin.peer();
        if let Err(judged) = judge(answer.status) {
            let text = format!(
                "the token endpoint {peer} answered {}{}",
                answer.status,
                oauth_error(&answer.body)
            );
            // 400 and 401 (`invalid_grant`, `invalid_client`) say the key, the account or
            // the clock is wrong: that holds for every message until an operator acts.
            return Err(match judged {
                Judged::Transient => SendError::Transient(text),
                Judged::Permanent => SendError::Permanent(text),
            });
        }
        #[derive(Deserialize)]
        struct Granted {
            access_token: String,
            token_type: Option<String>,
            expires_in: Option<u64>,
        }
        let granted: Granted = serde_json::from_slice(&answer.body).map_err(|e| {
            SendError::Transient(format!(
                "the token endpoint {peer} answered without a token: {e}"
            ))
        })?;
        let access = Zeroizing::new(granted.access_token);
        if granted
            .token_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
        {
            return Err(SendError::Permanent(format!(
                "the token endpoint {peer} gave a token that is not a bearer token"
            )));
        }
        let mut header = HeaderValue::from_str(&format!("Bearer {}", *access))
            .ok()
            .filter(|_| !access.is_empty())
            .ok_or_else(|| {
                SendError::Permanent(format!(
                    "the token endpoint {peer} gave a token that cannot go in a header"
                ))
            })?;
        header.set_sensitive(true);
        let lifetime = granted.expires_in.unwrap_or(DEFAULT_TOKEN_LIFETIME_SECS);
        Ok(AccessToken {
            header,
            renew_at: asked + Duration::from_secs(usable_for(lifetime)),
            generation,
        })
    }

    /// The signed JWT that asks for an access token at time `now`.
    fn assertion(&self, now: u64) -> Result<jwt::Token, SendError> {
        let mut head = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.key_id {
            head["kid"] = json!(kid);
        }
        let claims = json!({
            "iss": self.client_email,
            "scope": FCM_SCOPE,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        jwt::rs256(&self.key, &self.rng, &head, &claims).map_err(SendError::Permanent)
    }
}

/// Seconds a token granted for `lifetime` seconds is used: all but the margin, or half of
/// a very short lifetime.
fn usable_for(lifetime: u64) -> u64 {
    if lifetime > 2 * TOKEN_MARGIN_SECS {
        lifetime - TOKEN_MARGIN_SECS
    } else {
        lifetime / 2
    }
}

enum Judged {
    Transient,
    Permanent,
}

/// Sorts an HTTP status (see the module documentation).
fn judge(status: StatusCode) -> Result<(), Judged> {
    let code = status.as_u16();
    if status.is_success() {
        Ok(())
    } else if code == 408 || code == 429 || status.is_server_error() {
        Err(Judged::Transient)
    } else {
        Err(Judged::Permanent)
    }
}

fn user_agent() -> (HeaderName, HeaderValue) {
    (
        header::USER_AGENT,
        HeaderValue::from_static(concat!("tollgate/", env!("CARGO_PKG_VERSION"))),
    )
}

/// ` (STATUS, ERROR_CODE)` from a Google API error body, or nothing. Only the codes are
/// shown: they are fixed words, where the message text might quote the request.
fn google_error(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::new();
    };
    let error = &v["error"];
    let mut codes: Vec<&str> = Vec::new();
    if let Some(s) = error["status"].as_str() {
        codes.push(s);
    }
    for detail in error["details"].as_array().into_iter().flatten() {
        if let Some(c) = detail["errorCode"].as_str() {
            codes.push(c);
        }
    }
    let codes: Vec<&str> = codes.into_iter().filter(|c| is_code(c)).collect();
    if codes.is_empty() {
        String::new()
    } else {
        format!(" ({})", codes.join(", "))
    }
}

/// Whether FCM says the token is no installation of the app any more: 404 with the
/// error code `UNREGISTERED` (and nothing else: a 400 `INVALID_ARGUMENT` may be the
/// message's fault, not the token's).
fn unregistered(status: StatusCode, body: &[u8]) -> bool {
    if status != StatusCode::NOT_FOUND {
        return false;
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    v["error"]["details"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|d| d["errorCode"].as_str() == Some("UNREGISTERED"))
}

/// ` (error: description)` from an OAuth error body (RFC 6749 §5.2), or nothing. The
/// description is Google's own sentence about the assertion, which holds no message.
fn oauth_error(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::new();
    };
    let Some(error) = v["error"].as_str().filter(|e| is_code(e)) else {
        return String::new();
    };
    match v["error_description"].as_str() {
        Some(d) => {
            let d: String = d.chars().filter(|c| !c.is_control()).take(200).collect();
            format!(" ({error}: {d})")
        }
        None => format!(" ({error})"),
    }
}

/// A fixed code word: `UNREGISTERED`, `invalid_grant`.
fn is_code(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl std::fmt::Debug for FcmGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmGateway")
            .field("client_email", &self.client_email)
            .field("fcm", &self.fcm)
            .field("send_path", &self.send_path)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_sorted() {
        let s = |c: u16| judge(StatusCode::from_u16(c).unwrap());
        assert!(s(200).is_ok());
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(matches!(s(code), Err(Judged::Transient)), "{code}");
        }
        for code in [400, 401, 403, 404, 413] {
            assert!(matches!(s(code), Err(Judged::Permanent)), "{code}");
        }
    }

    #[test]
    fn tokens_are_renewed_before_they_lapse() {
        assert_eq!(usable_for(3599), 3539);
        assert_eq!(usable_for(100), 50);
        assert_eq!(usable_for(0), 0);
    }

    #[test]
    fn error_bodies_give_their_codes_only() {
        let body = br#"{"error":{"code":404,"message":"Requested entity was not found: token abc","status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}"#;
        assert_eq!(google_error(body), " (NOT_FOUND, UNREGISTERED)");
        assert!(unregistered(StatusCode::NOT_FOUND, body));
        assert!(!unregistered(StatusCode::BAD_REQUEST, body));
        assert!(!unregistered(
            StatusCode::NOT_FOUND,
            br#"{"error":{"status":"NOT_FOUND"}}"#
        ));
        assert_eq!(google_error(b"<html>busy</html>"), "");
        assert_eq!(
            google_error(br#"{"error":{"status":"a b\r\nc"}}"#),
            "",
            "not a code word"
        );
        assert_eq!(
            oauth_error(
                br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#
            ),
            " (invalid_grant: Invalid JWT Signature.)"
        );
        assert_eq!(oauth_error(br#"{"error":"x y"}"#), "");
    }
}
