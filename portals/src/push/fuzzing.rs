//! Entry points of the fuzz targets in `fuzz/` for the mobile API's parsers of untrusted
//! input: the signed-request headers and the JSON bodies. Compiled only with
//! `--cfg fuzzing`, which cargo-fuzz sets.

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use super::auth::{HEADER_DEVICE, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use super::wire::{parse_json, DecideRequest, EnrolRequest};

/// Splits `data` at `\n` into header values, given in turn to the four headers (a fifth
/// value repeats the first header, and so on), and reads them as a signed request's.
pub fn signed_headers(data: &[u8]) {
    let names = [
        HEADER_DEVICE,
        HEADER_TIMESTAMP,
        HEADER_NONCE,
        HEADER_SIGNATURE,
    ];
    let mut headers = HeaderMap::new();
    for (i, value) in data.split(|b| *b == b'\n').enumerate() {
        let Ok(value) = HeaderValue::from_bytes(value) else {
            return;
        };
        headers.append(HeaderName::from_static(names[i % names.len()]), value);
    }
    let _ = super::auth::read_headers(&headers);
}

/// Reads `body` as each JSON request body of the API.
pub fn json_bodies(body: &[u8]) {
    if let Ok(enrol) = parse_json::<EnrolRequest>(body) {
        let _ = enrol.check();
    }
    let _ = parse_json::<DecideRequest>(body);
}
