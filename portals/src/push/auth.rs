//! Signed requests: reading the four authentication headers and deciding whether a request
//! comes from an enrolled device, now, for the first time.
//!
//! The checks run cheapest first and the nonce is remembered last, only once the signature
//! has verified: a request that fails any check leaves no trace, and only the holder of an
//! enrolled key can put anything in the nonce cache.

use std::sync::Mutex;

use axum::http::{HeaderMap, StatusCode};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use tollgate_engine::push::{fresh, request_message, MAX_SKEW_SECS};

use super::error::ApiError;
use super::nonce::{NonceCache, NonceRefused};
use super::PushBackend;
use crate::metrics::{PUSH_API_NONCES, PUSH_API_REFUSED_TOTAL};

/// The device's id, as [`super::PushBackend::enrol`] returned it.
pub const HEADER_DEVICE: &str = "x-tollgate-device";
/// Unix time in seconds at which the device signed.
pub const HEADER_TIMESTAMP: &str = "x-tollgate-timestamp";
/// 8 to 64 characters of the base64url alphabet, never reused by a device within the window.
pub const HEADER_NONCE: &str = "x-tollgate-nonce";
/// Base64 of the device's signature over [`request_message`].
pub const HEADER_SIGNATURE: &str = "x-tollgate-signature";

/// Standard base64 with or without padding: apps' encoders differ on padding, and the value
/// is only ever decoded, never compared as text.
pub(crate) const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const MAX_DEVICE_ID_LEN: usize = 128;
const MAX_SIGNATURE_B64_LEN: usize = 256;

/// A request that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authenticated {
    pub(crate) user_id: i64,
}

/// Checks a signed request: its headers, its timestamp against `now`, its device, its
/// signature over `method`, `path` and `body`, and finally its nonce.
pub(crate) fn authenticate<B: PushBackend>(
    backend: &B,
    nonces: &Mutex<NonceCache>,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: u64,
) -> Result<Authenticated, ApiError> {
    let refuse = |reason: &'static str, error: ApiError| {
        metrics::counter!(PUSH_API_REFUSED_TOTAL, "reason" => reason).increment(1);
        tracing::debug!(reason, error = %error.message, "push API request refused");
        error
    };

    let device_id = header(headers, HEADER_DEVICE, "X-Tollgate-Device")
        .and_then(device_id)
        .map_err(|e| refuse("header", e))?;
    let timestamp = header(headers, HEADER_TIMESTAMP, "X-Tollgate-Timestamp")
        .and_then(timestamp)
        .map_err(|e| refuse("header", e))?;
    let nonce = header(headers, HEADER_NONCE, "X-Tollgate-Nonce")
        .and_then(nonce)
        .map_err(|e| refuse("header", e))?;
    let signature = header(headers, HEADER_SIGNATURE, "X-Tollgate-Signature")
        .and_then(signature)
        .map_err(|e| refuse("header", e))?;

    if !fresh(timestamp, now) {
        return Err(refuse(
            "stale",
            ApiError::unauthorized(format!(
                "X-Tollgate-Timestamp is more than {MAX_SKEW_SECS} seconds away from the \
                 server's clock ({now})"
            )),
        ));
    }
    let Some(device) = backend.device(device_id) else {
        return Err(refuse(
            "unknown_device",
            ApiError::unauthorized("unknown device"),
        ));
    };
    let message = request_message(method, path, timestamp, nonce, body);
    if !device.key.verify(&message, &signature) {
        return Err(refuse(
            "signature",
            ApiError::unauthorized("the signature does not verify with the device's key"),
        ));
    }

    let mut cache = nonces
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let outcome = cache.check_and_remember(device_id, nonce, timestamp, now);
    metrics::gauge!(PUSH_API_NONCES).set(cache.len() as f64);
    drop(cache);
    match outcome {
        Ok(()) => Ok(Authenticated {
            user_id: device.user_id,
        }),
        Err(NonceRefused::Replay) => Err(refuse(
            "replay",
            ApiError::unauthorized("this nonce was already used: the request is a replay"),
        )),
        Err(NonceRefused::DeviceFull) => Err(refuse(
            "device_nonces_full",
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "this device made too many requests; try again later",
            )
            .with_retry_after(60),
        )),
        Err(NonceRefused::Full) => Err(refuse(
            "nonces_full",
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is too busy to accept signed requests; try again later",
            )
            .with_retry_after(30),
        )),
    }
}

/// Reads and checks the four headers as [`authenticate`] does, without a device or a clock:
/// the fuzz targets' door to these parsers (built only with `--cfg fuzzing`).
#[cfg(fuzzing)]
pub(crate) fn read_headers(headers: &HeaderMap) -> Result<(), ApiError> {
    header(headers, HEADER_DEVICE, "X-Tollgate-Device").and_then(device_id)?;
    header(headers, HEADER_TIMESTAMP, "X-Tollgate-Timestamp").and_then(timestamp)?;
    header(headers, HEADER_NONCE, "X-Tollgate-Nonce").and_then(nonce)?;
    header(headers, HEADER_SIGNATURE, "X-Tollgate-Signature").and_then(signature)?;
    Ok(())
}

/// The single value of header `name` as text.
fn header<'a>(headers: &'a HeaderMap, name: &str, shown: &str) -> Result<&'a str, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Err(ApiError::unauthorized(format!("missing header {shown}")));
    };
    if values.next().is_some() {
        return Err(ApiError::unauthorized(format!(
            "header {shown} is given more than once"
        )));
    }
    value
        .to_str()
        .map_err(|_| ApiError::unauthorized(format!("header {shown} is not plain ASCII text")))
}

fn device_id(value: &str) -> Result<&str, ApiError> {
    if value.is_empty()
        || value.len() > MAX_DEVICE_ID_LEN
        || !value.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::unauthorized(format!(
            "X-Tollgate-Device must be a device id of 1 to {MAX_DEVICE_ID_LEN} visible characters"
        )));
    }
    Ok(value)
}

fn timestamp(value: &str) -> Result<u64, ApiError> {
    let error = || ApiError::unauthorized("X-Tollgate-Timestamp must be the unix time in seconds");
    // Canonical decimal only (no sign, no leading zero): the signed message holds the number,
    // so two spellings of one timestamp would make one signature fit two header values.
    if value.is_empty()
        || value.len() > 20
        || (value.len() > 1 && value.starts_with('0'))
        || !value.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(error());
    }
    value.parse().map_err(|_| error())
}

fn nonce(value: &str) -> Result<&str, ApiError> {
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if !(8..=64).contains(&value.len()) || !value.bytes().all(alphabet) {
        return Err(ApiError::unauthorized(
            "X-Tollgate-Nonce must be 8 to 64 characters of the base64url alphabet \
             (A-Z a-z 0-9 - _)",
        ));
    }
    Ok(value)
}

fn signature(value: &str) -> Result<Vec<u8>, ApiError> {
    if value.len() > MAX_SIGNATURE_B64_LEN {
        return Err(ApiError::unauthorized("X-Tollgate-Signature is too long"));
    }
    BASE64
        .decode(value)
        .map_err(|_| ApiError::unauthorized("X-Tollgate-Signature is not base64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_read_strictly() {
        assert!(device_id("dev-1").is_ok());
        assert!(device_id("").is_err());
        assert!(device_id("has space").is_err());
        assert!(device_id(&"d".repeat(129)).is_err());

        assert_eq!(timestamp("1800000000"), Ok(1_800_000_000));
        for bad in [
            "",
            "+180",
            "-1",
            "1.5",
            "18446744073709551616",
            "123456789012345678901",
        ] {
            assert!(timestamp(bad).is_err(), "{bad:?}");
        }

        assert!(nonce("abcdEFGH").is_ok());
        assert!(nonce("abc-_123").is_ok());
        assert!(nonce(&"n".repeat(64)).is_ok());
        for bad in [
            "abcdefg",
            "abcdefg=",
            "abcd/efg",
            "abcd+efg",
            &"n".repeat(65),
        ] {
            assert!(nonce(bad).is_err(), "{bad:?}");
        }

        assert_eq!(signature("AAEC").unwrap(), vec![0, 1, 2]);
        assert_eq!(signature("AAE=").unwrap(), vec![0, 1]);
        assert_eq!(signature("AAE").unwrap(), vec![0, 1]);
        assert!(signature("AA*E").is_err());
        assert!(signature(&"A".repeat(300)).is_err());
    }

    #[test]
    fn repeated_headers_are_refused() {
        let mut headers = HeaderMap::new();
        headers.append(HEADER_DEVICE, "a".parse().unwrap());
        assert_eq!(header(&headers, HEADER_DEVICE, "D"), Ok("a"));
        headers.append(HEADER_DEVICE, "b".parse().unwrap());
        assert!(header(&headers, HEADER_DEVICE, "D").is_err());
        assert!(header(&headers, HEADER_NONCE, "N").is_err());
    }
}
