//! Properties over arbitrary input, run through the router in-process: no header value, body
//! or path makes the API panic, every answer is JSON, and nothing that is not correctly
//! signed by an enrolled device reaches `decide` (nor `enrol` without a valid signature).

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, Request};
use http_body_util::BodyExt as _;
use proptest::prelude::*;
use support::{now, signed_headers, FakeBackend, TestKey};
use tower::ServiceExt as _;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Sends one request through a fresh router; returns the status and the parsed body.
fn send(
    backend: &Arc<FakeBackend>,
    method: &str,
    path: &str,
    headers: &[(String, Vec<u8>)],
    body: Vec<u8>,
) -> Option<(u16, serde_json::Value)> {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        let Ok(value) = HeaderValue::from_bytes(value) else {
            continue;
        };
        request = request.header(name.as_str(), value);
    }
    // Paths that are no valid URI never reach a server; skip them.
    let request = request.body(Body::from(body)).ok()?;
    let router = tollgate_portals::router(Arc::clone(backend));
    let (status, bytes) = runtime().block_on(async move {
        let response = router.oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, bytes)
    });
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {bytes:?}"));
    Some((status, json))
}

fn backend_with_device(key: &TestKey) -> Arc<FakeBackend> {
    let backend = FakeBackend::new();
    backend.add_device("dev-a", 1, key);
    backend.add_code("CODE-1", 1);
    backend.add_challenge("c1", 1, now() + 600);
    backend
}

const HEADER_NAMES: [&str; 4] = [
    "x-tollgate-device",
    "x-tollgate-timestamp",
    "x-tollgate-nonce",
    "x-tollgate-signature",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Entirely arbitrary requests: any method, path, authentication header values and body.
    #[test]
    fn arbitrary_requests_never_panic_nor_decide(
        method in prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH"]),
        path in prop_oneof![
            Just("/v1/devices".to_owned()),
            Just("/v1/challenges".to_owned()),
            Just("/v1/challenges/c1".to_owned()),
            "/v1/challenges/[ -~]{0,40}",
            "/[ -~]{0,60}",
        ],
        header_values in prop::collection::vec(prop::option::of(prop::collection::vec(any::<u8>(), 0..100)), 4),
        device_is_real in any::<bool>(),
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            "\\{\"decision\":\"(approve|decline|x)\",\"number\":[0-9]{1,4}\\}".prop_map(String::into_bytes),
            "\\{\"code\":\"CODE-1\",[ -~]{0,200}\\}".prop_map(String::into_bytes),
        ],
    ) {
        let key = TestKey::ed25519();
        let backend = backend_with_device(&key);
        let mut headers = Vec::new();
        for (name, value) in HEADER_NAMES.iter().zip(header_values) {
            if let Some(value) = value {
                headers.push((name.to_string(), value));
            }
        }
        if device_is_real {
            headers.retain(|(n, _)| n != "x-tollgate-device");
            headers.push(("x-tollgate-device".into(), b"dev-a".to_vec()));
        }
        if let Some((status, json)) = send(&backend, method, &path, &headers, body) {
            if status >= 400 {
                prop_assert!(json["error"].is_string(), "{status}: {json}");
            }
        }
        prop_assert_eq!(backend.decide_calls(), 0);
        prop_assert!(backend.calls().is_empty(), "{:?}", backend.calls());
        prop_assert!(backend.code_is_unused("CODE-1"));
    }

    /// A correctly signed decision with one authentication header replaced by an arbitrary
    /// value: the change is always caught before `decide`.
    #[test]
    fn a_signed_request_with_one_header_altered_never_decides(
        which in 0usize..4,
        value in prop::collection::vec(any::<u8>(), 0..120),
        approve in any::<bool>(),
    ) {
        let key = TestKey::ed25519();
        let backend = backend_with_device(&key);
        let body = if approve {
            br#"{"decision":"approve","number":42}"#.to_vec()
        } else {
            br#"{"decision":"decline"}"#.to_vec()
        };
        let nonce = "prop-nonce-0001";
        let signed = signed_headers("dev-a", &key, "POST", "/v1/challenges/c1", now(), nonce, &body);
        prop_assume!(signed[which].1.as_bytes() != value.as_slice());
        let mut headers: Vec<(String, Vec<u8>)> =
            signed.into_iter().map(|(n, v)| (n, v.into_bytes())).collect();
        headers[which].1 = value;
        if let Some((status, json)) = send(&backend, "POST", "/v1/challenges/c1", &headers, body) {
            prop_assert!(status == 401 || status == 400, "{status}: {json}");
        }
        prop_assert_eq!(backend.decide_calls(), 0);
    }

    /// A correctly signed request whose body was altered after signing never decides.
    #[test]
    fn a_signed_request_with_its_body_altered_never_decides(
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let key = TestKey::p256();
        let backend = backend_with_device(&key);
        let signed_body = br#"{"decision":"decline"}"#;
        prop_assume!(body.as_slice() != signed_body.as_slice());
        let headers: Vec<(String, Vec<u8>)> =
            signed_headers("dev-a", &key, "POST", "/v1/challenges/c1", now(), "prop-nonce-0002", signed_body)
                .into_iter()
                .map(|(n, v)| (n, v.into_bytes()))
                .collect();
        let answer = send(&backend, "POST", "/v1/challenges/c1", &headers, body);
        prop_assert_eq!(answer.map(|(s, _)| s), Some(401));
        prop_assert_eq!(backend.decide_calls(), 0);
    }
}

/// The control for the properties above: the unaltered signed request does decide.
#[test]
fn the_unaltered_signed_request_decides() {
    let key = TestKey::ed25519();
    let backend = backend_with_device(&key);
    let body = br#"{"decision":"approve","number":42}"#.to_vec();
    let headers: Vec<(String, Vec<u8>)> = signed_headers(
        "dev-a",
        &key,
        "POST",
        "/v1/challenges/c1",
        now(),
        "prop-nonce-0001",
        &body,
    )
    .into_iter()
    .map(|(n, v)| (n, v.into_bytes()))
    .collect();
    let (status, json) = send(&backend, "POST", "/v1/challenges/c1", &headers, body).unwrap();
    assert_eq!(status, 200, "{json}");
    assert_eq!(backend.decide_calls(), 1);
}
