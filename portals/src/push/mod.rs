//! The push API of the mobile app: enrolment of a device key, the challenges waiting for the
//! user, and the signed approve or decline. `portals/openapi.yaml` documents it.
//!
//! Every endpoint reads its body itself (at most [`MAX_BODY_BYTES`], within
//! [`BODY_READ_TIMEOUT`]) because a signed request's signature covers the exact bytes. A
//! request is checked completely — body, key, signature, timestamp, nonce — before the
//! backend is called, so bad input changes nothing. Every answer is JSON, errors included.

mod auth;
mod backend;
mod error;
#[cfg(fuzzing)]
pub mod fuzzing;
mod nonce;
mod throttle;
mod wire;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{OriginalUri, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use tollgate_engine::push::enrol_message;

pub use auth::{HEADER_DEVICE, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP};
pub use backend::{
    BackendError, DecideError, Decided, DeviceInfo, KeyAlg, NewDevice, PendingChallenge, Platform,
    PushBackend,
};

use self::auth::authenticate;
use self::error::ApiError;
use self::nonce::NonceCache;
use self::throttle::{EnrolThrottle, Throttled};
use self::wire::{
    parse_json, plausible_challenge_id, ChallengesResponse, DecideRequest, DecideResponse,
    Decision, EnrolRequest, EnrolResponse,
};
use crate::metrics::PUSH_API_REQUESTS_TOTAL;
use crate::serve::PeerAddr;

/// Largest request body accepted; larger ones are answered 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Time a client has to send its body once the headers are in; slower ones are answered 408.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Bounds of the push API's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushApiLimits {
    /// Nonces remembered at once, over all devices; when reached, signed requests are
    /// answered 503 until older nonces age out (at most twice `MAX_SKEW_SECS`).
    pub max_nonces: usize,
    /// Nonces remembered at once for one device; when reached, that device's requests are
    /// answered 429.
    pub max_nonces_per_device: usize,
    /// Enrolment attempts one address (an IPv6 /64) may make per minute, answered 429
    /// beyond; 0 lifts the limit. Behind a proxy every client shares the proxy's address.
    pub enrol_per_minute: u32,
    /// Addresses whose enrolment attempts are counted at once; when that many tried this
    /// minute, new addresses are answered 429 until it turns.
    pub enrol_addresses: usize,
}

impl Default for PushApiLimits {
    /// 200,000 nonces and 1,000 per device. A nonce costs about 200 bytes (an estimate from
    /// the structures, not a measurement), so a full cache is some 40 MB. A nonce is held
    /// for 300 seconds (up to 600 when the device's clock runs ahead), so an app polling
    /// every second holds 300 to 600 of its 1,000; it takes 200 devices at their cap to fill
    /// the cache. Enrolment: 20 attempts per address and minute, 100,000 addresses (some
    /// 5 MB at most).
    fn default() -> PushApiLimits {
        PushApiLimits {
            max_nonces: 200_000,
            max_nonces_per_device: 1_000,
            enrol_per_minute: 20,
            enrol_addresses: 100_000,
        }
    }
}

/// The state the handlers share.
struct Api<B> {
    backend: Arc<B>,
    nonces: Mutex<NonceCache>,
    enrol_throttle: Mutex<EnrolThrottle>,
}

/// The push API's router with the default limits.
pub fn router<B: PushBackend>(backend: Arc<B>) -> Router {
    router_with_limits(backend, PushApiLimits::default())
}

/// The push API's router.
pub fn router_with_limits<B: PushBackend>(backend: Arc<B>, limits: PushApiLimits) -> Router {
    let api = Arc::new(Api {
        backend,
        nonces: Mutex::new(NonceCache::new(
            limits.max_nonces,
            limits.max_nonces_per_device,
        )),
        enrol_throttle: Mutex::new(EnrolThrottle::new(
            limits.enrol_per_minute,
            limits.enrol_addresses,
        )),
    });
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/devices", post(enrol::<B>))
        .route("/v1/challenges", get(challenges::<B>))
        .route("/v1/challenges/{id}", post(decide::<B>))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(api)
}

async fn health() -> Response {
    respond(
        "health",
        Ok((StatusCode::OK, Json(serde_json::json!({"status": "ok"}))).into_response()),
    )
}

async fn not_found() -> Response {
    respond(
        "other",
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no such endpoint (see openapi.yaml)",
        )),
    )
}

async fn method_not_allowed() -> Response {
    respond(
        "other",
        Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "this endpoint does not take that method",
        )),
    )
}

async fn enrol<B: PushBackend>(State(api): State<Arc<Api<B>>>, request: Request) -> Response {
    respond("enrol", enrol_inner(&api, request).await)
}

async fn enrol_inner<B: PushBackend>(api: &Api<B>, request: Request) -> Result<Response, ApiError> {
    // Requests that do not come through `serve` (a router driven directly) carry no
    // address and are not counted.
    if let Some(PeerAddr(peer)) = request.extensions().get::<PeerAddr>().copied() {
        let admitted = api
            .enrol_throttle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .admit(peer.ip(), unix_now());
        match admitted {
            Ok(()) => {}
            Err(Throttled::Address { retry_after }) => {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many enrolment attempts from this address; try again in a minute",
                )
                .with_retry_after(retry_after))
            }
            Err(Throttled::Full { retry_after }) => {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many enrolment attempts at the moment; try again in a minute",
                )
                .with_retry_after(retry_after))
            }
        }
    }
    let (parts, body) = request.into_parts();
    let body = read_body(&parts.headers, body).await?;
    let enrolment = parse_json::<EnrolRequest>(&body)?.check()?;
    let message = enrol_message(&enrolment.code, &enrolment.public_key_b64);
    if !enrolment.key.verify(&message, &enrolment.signature) {
        return Err(ApiError::unauthorized(
            "the signature does not verify with public_key over the enrolment message",
        ));
    }
    match api.backend.enrol(&enrolment.code, enrolment.device).await {
        Ok(Some(device_id)) => {
            tracing::info!(%device_id, "push device enrolled");
            Ok((StatusCode::CREATED, Json(EnrolResponse { device_id })).into_response())
        }
        Ok(None) => Err(ApiError::new(
            StatusCode::GONE,
            "the enrolment code is unknown, used or expired; ask for a new one",
        )),
        Err(e) => {
            tracing::warn!(error = %e, "push enrolment failed in the backend");
            Err(ApiError::internal())
        }
    }
}

async fn challenges<B: PushBackend>(State(api): State<Arc<Api<B>>>, request: Request) -> Response {
    respond("challenges", challenges_inner(&api, request).await)
}

async fn challenges_inner<B: PushBackend>(
    api: &Api<B>,
    request: Request,
) -> Result<Response, ApiError> {
    let (device, _) = read_signed(api, request).await?;
    let challenges = api.backend.pending(device.user_id);
    Ok((StatusCode::OK, Json(ChallengesResponse { challenges })).into_response())
}

async fn decide<B: PushBackend>(
    State(api): State<Arc<Api<B>>>,
    id: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    respond("decide", decide_inner(&api, id, request).await)
}

async fn decide_inner<B: PushBackend>(
    api: &Api<B>,
    id: Result<Path<String>, PathRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let (device, body) = read_signed(api, request).await?;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, DecideError::NotFound.to_string());
    let id = match id {
        Ok(Path(id)) if plausible_challenge_id(&id) => id,
        _ => return Err(not_found()),
    };
    let request = parse_json::<DecideRequest>(&body)?;
    let approve = request.decision == Decision::Approve;
    match api
        .backend
        .decide(device.user_id, &id, approve, request.number)
    {
        Ok(decided) => {
            let result = match decided {
                Decided::Approved => "approved",
                Decided::Declined => "declined",
            };
            Ok((StatusCode::OK, Json(DecideResponse { result })).into_response())
        }
        Err(DecideError::NotFound) => Err(not_found()),
        Err(e @ DecideError::AlreadyDecided) => {
            Err(ApiError::new(StatusCode::CONFLICT, e.to_string()))
        }
        Err(e @ DecideError::NumberRequired) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.to_string(),
        )),
        Err(e @ DecideError::WrongNumber) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.to_string(),
        )
        .with_result("declined")),
    }
}

/// What a signed request's check needs from the request line.
struct SignedParts {
    method: axum::http::Method,
    /// The path as the client sent it (before any nesting stripped a prefix), without the
    /// query: the device signs this.
    path: String,
    headers: HeaderMap,
}

/// Reads a signed request's body and checks its signature: the device it comes from, and
/// the body it signed.
async fn read_signed<B: PushBackend>(
    api: &Api<B>,
    request: Request,
) -> Result<(auth::Authenticated, Bytes), ApiError> {
    let (parts, body) = signed_parts(request);
    let body = read_body(&parts.headers, body).await?;
    let device = authenticate(
        &*api.backend,
        &api.nonces,
        parts.method.as_str(),
        &parts.path,
        &parts.headers,
        &body,
        unix_now(),
    )?;
    Ok((device, body))
}

fn signed_parts(request: Request) -> (SignedParts, Body) {
    let (parts, body) = request.into_parts();
    let path = parts
        .extensions
        .get::<OriginalUri>()
        .map(|original| original.0.path().to_owned())
        .unwrap_or_else(|| parts.uri.path().to_owned());
    (
        SignedParts {
            method: parts.method,
            path,
            headers: parts.headers,
        },
        body,
    )
}

/// Reads the whole body, at most [`MAX_BODY_BYTES`] within [`BODY_READ_TIMEOUT`].
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let limited = Limited::new(body, MAX_BODY_BYTES);
    match tokio::time::timeout(BODY_READ_TIMEOUT, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(_)) => Err(ApiError::bad_request("the body could not be read")),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "the body did not arrive in time",
        )),
    }
}

/// Turns a handler's outcome into the answer and counts it.
fn respond(endpoint: &'static str, outcome: Result<Response, ApiError>) -> Response {
    let response = outcome.unwrap_or_else(IntoResponse::into_response);
    metrics::counter!(
        PUSH_API_REQUESTS_TOTAL,
        "endpoint" => endpoint,
        "status" => response.status().as_str().to_owned()
    )
    .increment(1);
    response
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
