//! The push API over a real socket: enrolment with both key algorithms, signed requests,
//! every refusal the API promises, and that a refused request changes nothing in the backend.

mod support;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hyper::{Method, StatusCode};
use serde_json::json;
use support::{
    enrol_body, nonce, now, signed_headers, Call, FakeBackend, State, TestKey, TestServer,
};
use tollgate_engine::push::MAX_SKEW_SECS;
use tollgate_portals::{KeyAlg, Platform, PushApiLimits};

const USER: i64 = 7;

/// A server with one enrolled device of user [`USER`] and one pending challenge `c1`.
async fn with_device(key: &TestKey) -> (std::sync::Arc<FakeBackend>, TestServer) {
    let backend = FakeBackend::new();
    backend.add_device("dev-a", USER, key);
    backend.add_challenge("c1", USER, now() + 60);
    let server = TestServer::start(backend.clone()).await;
    (backend, server)
}

fn decide_body(decision: &str, number: Option<u8>) -> serde_json::Value {
    json!({"decision": decision, "number": number})
}

/// A signed POST of `body` to `path` by `dev-a`.
async fn signed_post(
    server: &TestServer,
    key: &TestKey,
    path: &str,
    body: &serde_json::Value,
) -> support::Answer {
    let bytes = body.to_string().into_bytes();
    let headers = signed_headers("dev-a", key, "POST", path, now(), &nonce(), &bytes);
    server
        .client()
        .send(Method::POST, path, &headers, bytes)
        .await
}

#[tokio::test]
async fn an_ed25519_device_enrols_lists_and_approves() {
    let backend = FakeBackend::new();
    backend.add_code("ENROL-1", USER);
    let server = TestServer::start(backend.clone()).await;
    let client = server.client();
    let key = TestKey::ed25519();

    let answer = client
        .post_json("/v1/devices", &[], &enrol_body("ENROL-1", &key))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    let device_id = answer.json["device_id"].as_str().unwrap().to_owned();
    let (user, stored) = backend.stored_device(&device_id).unwrap();
    assert_eq!(user, USER);
    assert_eq!(stored.name, "Pixel 8");
    assert_eq!(stored.platform, Platform::Fcm);
    assert_eq!(stored.push_token.as_deref(), Some("fcm-token-123"));
    assert_eq!(stored.key_alg, KeyAlg::Ed25519);
    assert_eq!(stored.public_key, key.public_bytes());
    assert!(!backend.code_is_unused("ENROL-1"));

    backend.add_challenge("c1", USER, now() + 60);
    backend.add_challenge("other-user", USER + 1, now() + 60);
    let headers = signed_headers(
        &device_id,
        &key,
        "GET",
        "/v1/challenges",
        now(),
        &nonce(),
        b"",
    );
    let answer = client.get("/v1/challenges", &headers).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let challenges = answer.json["challenges"].as_array().unwrap();
    assert_eq!(challenges.len(), 1, "only the device's user's challenges");
    let c = &challenges[0];
    assert_eq!(c["id"], "c1");
    assert_eq!(c["client"], "vpn-1");
    assert_eq!(c["numbers"], json!([42, 17, 93]));
    assert_eq!(c["context"], "VPN login from 192.0.2.7");
    assert!(c["created_at"].as_u64().unwrap() < c["expires_at"].as_u64().unwrap());

    let body = decide_body("approve", Some(42)).to_string().into_bytes();
    let headers = signed_headers(
        &device_id,
        &key,
        "POST",
        "/v1/challenges/c1",
        now(),
        &nonce(),
        &body,
    );
    let answer = client
        .send(Method::POST, "/v1/challenges/c1", &headers, body)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json, json!({"result": "approved"}));
    assert_eq!(backend.state("c1"), State::Approved);
}

#[tokio::test]
async fn a_p256_device_enrols_and_signs_requests() {
    let backend = FakeBackend::new();
    backend.add_code("ENROL-P", USER);
    let server = TestServer::start(backend.clone()).await;
    let key = TestKey::p256();

    let answer = server
        .client()
        .post_json("/v1/devices", &[], &enrol_body("ENROL-P", &key))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    let device_id = answer.json["device_id"].as_str().unwrap().to_owned();
    let (_, stored) = backend.stored_device(&device_id).unwrap();
    assert_eq!(stored.key_alg, KeyAlg::P256);
    assert_eq!(stored.public_key.len(), 65, "stored uncompressed");

    backend.add_challenge("c9", USER, now() + 60);
    let body = decide_body("decline", None).to_string().into_bytes();
    let headers = signed_headers(
        &device_id,
        &key,
        "POST",
        "/v1/challenges/c9",
        now(),
        &nonce(),
        &body,
    );
    let answer = server
        .client()
        .send(Method::POST, "/v1/challenges/c9", &headers, body)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json, json!({"result": "declined"}));
    assert_eq!(backend.state("c9"), State::Declined);
}

#[tokio::test]
async fn a_p256_key_may_be_sent_compressed_and_unpadded() {
    let backend = FakeBackend::new();
    backend.add_code("ENROL-C", USER);
    let server = TestServer::start(backend.clone()).await;
    let TestKey::P256(signing) = TestKey::p256() else {
        unreachable!()
    };
    let compressed = signing.verifying_key().to_encoded_point(true);
    let public_key = base64::engine::general_purpose::STANDARD_NO_PAD.encode(compressed.as_bytes());
    let message = tollgate_engine::push::enrol_message("ENROL-C", &public_key);
    // Raw r ‖ s this time, as some platforms return it.
    let signature: p256::ecdsa::Signature =
        p256::ecdsa::signature::Signer::sign(&signing, &message);
    let body = json!({
        "code": "ENROL-C", "name": "iPhone", "platform": "poll", "push_token": null,
        "key_alg": "p256", "public_key": public_key,
        "signature": BASE64.encode(signature.to_bytes()),
    });
    let answer = server.client().post_json("/v1/devices", &[], &body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
    let (_, stored) = backend
        .stored_device(answer.json["device_id"].as_str().unwrap())
        .unwrap();
    assert_eq!(stored.platform, Platform::Poll);
    assert_eq!(stored.push_token, None);
    assert_eq!(
        stored.public_key,
        signing.verifying_key().to_encoded_point(false).as_bytes(),
        "normalised to the uncompressed point"
    );
}

#[tokio::test]
async fn a_bad_enrolment_signature_is_refused_and_keeps_the_code() {
    let backend = FakeBackend::new();
    backend.add_code("ENROL-2", USER);
    let server = TestServer::start(backend.clone()).await;
    let key = TestKey::ed25519();

    // Signed by another key than the one sent.
    let mut body = enrol_body("ENROL-2", &key);
    body["signature"] = enrol_body("ENROL-2", &TestKey::ed25519())["signature"].clone();
    let answer = server.client().post_json("/v1/devices", &[], &body).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.error().contains("signature does not verify"));

    // Signed over another code than the one sent.
    let mut body = enrol_body("ENROL-X", &key);
    body["code"] = json!("ENROL-2");
    let answer = server.client().post_json("/v1/devices", &[], &body).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    assert_eq!(backend.calls(), vec![], "the backend was never called");
    assert!(backend.code_is_unused("ENROL-2"));

    // The code still works for the real device.
    let answer = server
        .client()
        .post_json("/v1/devices", &[], &enrol_body("ENROL-2", &key))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
}

#[tokio::test]
async fn a_used_or_unknown_code_is_gone() {
    let backend = FakeBackend::new();
    backend.add_code("ENROL-3", USER);
    let server = TestServer::start(backend.clone()).await;
    let client = server.client();

    let first = client
        .post_json(
            "/v1/devices",
            &[],
            &enrol_body("ENROL-3", &TestKey::ed25519()),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = client
        .post_json(
            "/v1/devices",
            &[],
            &enrol_body("ENROL-3", &TestKey::ed25519()),
        )
        .await;
    assert_eq!(again.status, StatusCode::GONE);
    assert!(again.error().contains("unknown, used or expired"));
    let unknown = client
        .post_json("/v1/devices", &[], &enrol_body("NO-SUCH", &TestKey::p256()))
        .await;
    assert_eq!(unknown.status, StatusCode::GONE);
}

#[tokio::test]
async fn malformed_enrolments_are_refused_with_a_reason() {
    let backend = FakeBackend::new();
    backend.add_code("ENROL-4", USER);
    let server = TestServer::start(backend.clone()).await;
    let client = server.client();
    let key = TestKey::ed25519();
    let good = enrol_body("ENROL-4", &key);

    let with = |field: &str, value: serde_json::Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (with("extra", json!(1)), "unknown field `extra`"),
        (without("code"), "missing field `code`"),
        (with("code", json!("")), "code must be 1 to 128 characters"),
        (with("code", json!("A\nB")), "without control characters"),
        (with("name", json!("n".repeat(65))), "name must be 1 to 64"),
        (with("name", json!(42)), "invalid type"),
        (with("platform", json!("sms")), "unknown variant `sms`"),
        (with("push_token", json!(null)), "push_token is required"),
        (
            with("push_token", json!("t".repeat(4097))),
            "push_token must be 1 to 4096",
        ),
        (with("key_alg", json!("rsa")), "unknown variant `rsa`"),
        (
            with("public_key", json!("not base64!")),
            "public_key is not base64",
        ),
        (
            with("public_key", json!(BASE64.encode([1; 31]))),
            "not a valid ed25519 public key",
        ),
        (with("signature", json!("***")), "signature is not base64"),
    ];
    for (body, expected) in cases {
        let answer = client.post_json("/v1/devices", &[], &body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            answer.error().contains(expected),
            "{body}: {:?} lacks {expected:?}",
            answer.error()
        );
    }

    for raw in [&b"{not json"[..], b"", b"[]", b"null", b"\xff\xfe"] {
        let answer = client
            .send(Method::POST, "/v1/devices", &[], raw.to_vec())
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert!(
            answer.error().starts_with("invalid JSON body"),
            "{}",
            answer.error()
        );
    }

    assert_eq!(backend.calls(), vec![], "nothing reached the backend");
    assert!(backend.code_is_unused("ENROL-4"));
}

#[tokio::test]
async fn oversized_bodies_are_refused_whether_declared_or_not() {
    let key = TestKey::ed25519();
    let (backend, server) = with_device(&key).await;
    let client = server.client();
    let big = vec![b' '; 16 * 1024 + 1];

    let answer = client
        .send(Method::POST, "/v1/devices", &[], big.clone())
        .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer.error().contains("16384 bytes"));

    // Signed, so that only the size can be wrong.
    let headers = signed_headers(
        "dev-a",
        &key,
        "POST",
        "/v1/challenges/c1",
        now(),
        &nonce(),
        &big,
    );
    let answer = client
        .send(Method::POST, "/v1/challenges/c1", &headers, big)
        .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);

    // The limit holds for a body sent without a length (HTTP/1.1 chunked, streamed).
    let answer = chunked_post(server.addr, "/v1/devices", 20_000).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");

    // Exactly the limit is fine as far as size goes (it is then just bad JSON).
    let answer = client
        .send(Method::POST, "/v1/devices", &[], vec![b' '; 16 * 1024])
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(backend.calls(), vec![]);
}

/// Sends `len` bytes in chunks without a Content-Length and returns the raw answer's head.
async fn chunked_post(addr: std::net::SocketAddr, path: &str, len: usize) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 1000];
    for _ in 0..len / chunk.len() {
        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
        framed.extend_from_slice(&chunk);
        framed.extend_from_slice(b"\r\n");
        // The server may answer and close before the whole body is sent.
        if stream.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_forged_or_altered_request_is_refused() {
    let key = TestKey::ed25519();
    let (backend, server) = with_device(&key).await;
    let client = server.client();
    let path = "/v1/challenges/c1";
    let body = decide_body("approve", Some(42)).to_string().into_bytes();

    // Signed with a key that is not the device's.
    let forged = signed_headers(
        "dev-a",
        &TestKey::ed25519(),
        "POST",
        path,
        now(),
        &nonce(),
        &body,
    );
    let answer = client.send(Method::POST, path, &forged, body.clone()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.error().contains("signature does not verify"));

    // The device's signature, but over another body (decline turned into approve).
    let declined = decide_body("decline", None).to_string().into_bytes();
    let headers = signed_headers("dev-a", &key, "POST", path, now(), &nonce(), &declined);
    let answer = client
        .send(Method::POST, path, &headers, body.clone())
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    // ... over another path.
    let headers = signed_headers(
        "dev-a",
        &key,
        "POST",
        "/v1/challenges/c2",
        now(),
        &nonce(),
        &body,
    );
    let answer = client
        .send(Method::POST, path, &headers, body.clone())
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    // ... over another method.
    let headers = signed_headers("dev-a", &key, "GET", path, now(), &nonce(), &body);
    let answer = client
        .send(Method::POST, path, &headers, body.clone())
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    // ... with its timestamp changed.
    let mut headers = signed_headers("dev-a", &key, "POST", path, now(), &nonce(), &body);
    headers[1].1 = (now() - 1).to_string();
    let answer = client
        .send(Method::POST, path, &headers, body.clone())
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    // An unknown device, and headers missing or malformed.
    let headers = signed_headers("dev-zz", &key, "POST", path, now(), &nonce(), &body);
    let answer = client
        .send(Method::POST, path, &headers, body.clone())
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.error(), "unknown device");
    for (i, expected) in [
        (0, "X-Tollgate-Device"),
        (1, "X-Tollgate-Timestamp"),
        (2, "X-Tollgate-Nonce"),
        (3, "X-Tollgate-Signature"),
    ] {
        let mut headers = signed_headers("dev-a", &key, "POST", path, now(), &nonce(), &body);
        headers.remove(i);
        let answer = client
            .send(Method::POST, path, &headers, body.clone())
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.error(), format!("missing header {expected}"));
    }
    let headers = signed_headers("dev-a", &key, "POST", path, now(), "short", &body);
    let answer = client
        .send(Method::POST, path, &headers, body.clone())
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.error().contains("8 to 64 characters"));

    assert_eq!(backend.decide_calls(), 0);
    assert_eq!(backend.state("c1"), State::Pending);
}

#[tokio::test]
async fn a_replayed_request_is_refused() {
    let key = TestKey::ed25519();
    let (backend, server) = with_device(&key).await;
    backend.add_challenge("c2", USER, now() + 60);
    let client = server.client();
    let path = "/v1/challenges/c1";
    let body = decide_body("decline", None).to_string().into_bytes();
    let headers = signed_headers("dev-a", &key, "POST", path, now(), &nonce(), &body);

    let answer = client
        .send(Method::POST, path, &headers, body.clone())
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let replay = client
        .send(Method::POST, path, &headers, body.clone())
        .await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert!(replay.error().contains("replay"), "{}", replay.error());
    assert_eq!(
        backend.decide_calls(),
        1,
        "the replay never reached the backend"
    );

    // The same nonce, freshly signed for another challenge, is still a reused nonce.
    let reused = headers[2].1.clone();
    let path2 = "/v1/challenges/c2";
    let headers = signed_headers("dev-a", &key, "POST", path2, now(), &reused, &body);
    let answer = client
        .send(Method::POST, path2, &headers, body.clone())
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(backend.state("c2"), State::Pending);

    // A GET is replay-proof too.
    let headers = signed_headers("dev-a", &key, "GET", "/v1/challenges", now(), &nonce(), b"");
    assert_eq!(
        client.get("/v1/challenges", &headers).await.status,
        StatusCode::OK
    );
    assert_eq!(
        client.get("/v1/challenges", &headers).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_stale_or_future_timestamp_is_refused() {
    let key = TestKey::ed25519();
    let (backend, server) = with_device(&key).await;
    let client = server.client();
    let path = "/v1/challenges/c1";
    let body = decide_body("approve", Some(42)).to_string().into_bytes();
    for timestamp in [now() - MAX_SKEW_SECS - 5, now() + MAX_SKEW_SECS + 5, 0] {
        let headers = signed_headers("dev-a", &key, "POST", path, timestamp, &nonce(), &body);
        let answer = client
            .send(Method::POST, path, &headers, body.clone())
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert!(
            answer.error().contains("seconds away"),
            "{}",
            answer.error()
        );
    }
    for bad in ["yesterday", "-5", "1e9"] {
        let mut headers = signed_headers("dev-a", &key, "POST", path, now(), &nonce(), &body);
        headers[1].1 = bad.into();
        let answer = client
            .send(Method::POST, path, &headers, body.clone())
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert!(answer.error().contains("unix time"), "{}", answer.error());
    }
    assert_eq!(backend.decide_calls(), 0);
}

#[tokio::test]
async fn a_wrong_number_declines_and_says_so() {
    let key = TestKey::ed25519();
    let (backend, server) = with_device(&key).await;

    let answer = signed_post(
        &server,
        &key,
        "/v1/challenges/c1",
        &decide_body("approve", Some(17)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        answer.json,
        json!({"result": "declined", "error": "wrong number"})
    );
    assert_eq!(backend.state("c1"), State::Declined);

    // The right number afterwards is too late.
    let answer = signed_post(
        &server,
        &key,
        "/v1/challenges/c1",
        &decide_body("approve", Some(42)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(backend.state("c1"), State::Declined);
}

#[tokio::test]
async fn an_approval_without_a_number_changes_nothing() {
    let key = TestKey::ed25519();
    let (backend, server) = with_device(&key).await;
    for body in [decide_body("approve", None), json!({"decision": "approve"})] {
        let answer = signed_post(&server, &key, "/v1/challenges/c1", &body).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            answer.error().contains("needs the number"),
            "{}",
            answer.error()
        );
        assert!(answer.json.get("result").is_none());
    }
    assert_eq!(backend.decide_calls(), 0);
    assert_eq!(backend.state("c1"), State::Pending);
    let answer = signed_post(
        &server,
        &key,
        "/v1/challenges/c1",
        &decide_body("approve", Some(42)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn approving_twice_conflicts() {
    let key = TestKey::p256();
    let (backend, server) = with_device(&key).await;
    let first = signed_post(
        &server,
        &key,
        "/v1/challenges/c1",
        &decide_body("approve", Some(42)),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK);
    let second = signed_post(
        &server,
        &key,
        "/v1/challenges/c1",
        &decide_body("approve", Some(42)),
    )
    .await;
    assert_eq!(second.status, StatusCode::CONFLICT);
    assert_eq!(second.error(), "the challenge was already decided");
    let decline = signed_post(
        &server,
        &key,
        "/v1/challenges/c1",
        &decide_body("decline", None),
    )
    .await;
    assert_eq!(decline.status, StatusCode::CONFLICT);
    assert_eq!(backend.state("c1"), State::Approved);
}

#[tokio::test]
async fn unknown_expired_and_foreign_challenges_are_not_found() {
    let key = TestKey::ed25519();
    let (backend, server) = with_device(&key).await;
    backend.add_challenge("expired", USER, now() - 1);
    backend.add_challenge("theirs", USER + 1, now() + 60);
    let approve = decide_body("approve", Some(42));
    for id in ["nope", "expired", "theirs"] {
        let answer = signed_post(&server, &key, &format!("/v1/challenges/{id}"), &approve).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{id}");
        assert_eq!(answer.error(), "no pending challenge with this id");
    }
    assert_eq!(backend.state("theirs"), State::Pending);
    // An id no backend could hold is not even looked up.
    let calls = backend.decide_calls();
    let long = "x".repeat(200);
    let answer = signed_post(&server, &key, &format!("/v1/challenges/{long}"), &approve).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(backend.decide_calls(), calls);
}

#[tokio::test]
async fn a_signed_request_with_a_bad_body_is_refused() {
    let key = TestKey::ed25519();
    let (backend, server) = with_device(&key).await;
    let path = "/v1/challenges/c1";
    for (body, expected) in [
        (
            json!({"decision": "approve", "number": 42, "why": "x"}),
            "unknown field `why`",
        ),
        (json!({"decision": "maybe"}), "unknown variant `maybe`"),
        (
            json!({"decision": "approve", "number": 300}),
            "invalid JSON body",
        ),
        (json!({"number": 42}), "missing field `decision`"),
    ] {
        let answer = signed_post(&server, &key, path, &body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(answer.error().contains(expected), "{}", answer.error());
    }
    assert_eq!(backend.decide_calls(), 0);
}

#[tokio::test]
async fn the_query_string_is_not_signed() {
    let key = TestKey::ed25519();
    let (_backend, server) = with_device(&key).await;
    let headers = signed_headers("dev-a", &key, "GET", "/v1/challenges", now(), &nonce(), b"");
    let answer = server
        .client()
        .get("/v1/challenges?since=0", &headers)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
}

#[tokio::test]
async fn health_unknown_paths_and_methods_answer_json() {
    let (_backend, server) = with_device(&TestKey::ed25519()).await;
    let client = server.client();
    let health = client.get("/v1/health", &[]).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json, json!({"status": "ok"}));
    let missing = client.get("/v2/anything", &[]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.error().contains("no such endpoint"));
    let method = client.get("/v1/devices", &[]).await;
    assert_eq!(method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(method.error().contains("method"));
    let method = client
        .send(Method::DELETE, "/v1/challenges/c1", &[], Vec::new())
        .await;
    assert_eq!(method.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_full_nonce_cache_refuses_instead_of_forgetting() {
    let key = TestKey::ed25519();
    let other = TestKey::ed25519();
    let backend = FakeBackend::new();
    backend.add_device("dev-a", USER, &key);
    backend.add_device("dev-b", USER, &other);
    let limits = PushApiLimits {
        max_nonces: 3,
        max_nonces_per_device: 2,
        ..PushApiLimits::default()
    };
    let server = TestServer::start_with(backend.clone(), limits, None).await;
    let client = server.client();
    let get = |device: &'static str, key: &TestKey| {
        signed_headers(device, key, "GET", "/v1/challenges", now(), &nonce(), b"")
    };

    assert_eq!(
        client
            .get("/v1/challenges", &get("dev-a", &key))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        client
            .get("/v1/challenges", &get("dev-a", &key))
            .await
            .status,
        StatusCode::OK
    );
    // dev-a has used its share; dev-b is not locked out by it.
    let answer = client.get("/v1/challenges", &get("dev-a", &key)).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(answer.headers.contains_key("retry-after"));
    assert_eq!(
        client
            .get("/v1/challenges", &get("dev-b", &other))
            .await
            .status,
        StatusCode::OK
    );
    // Now the whole cache is full: refused with 503, and the held nonces still refuse replays.
    let answer = client.get("/v1/challenges", &get("dev-b", &other)).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.error().contains("too busy"));
    assert!(answer.headers.contains_key("retry-after"));
    // Forged requests are refused before the cache is consulted, so they cannot fill it.
    let forged = get("dev-b", &key);
    assert_eq!(
        client.get("/v1/challenges", &forged).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(backend
        .calls()
        .iter()
        .all(|c| !matches!(c, Call::Decide { .. })));
}

#[tokio::test]
async fn enrolment_attempts_are_limited_per_address() {
    let backend = FakeBackend::new();
    backend.add_code("GOOD-CODE", USER);
    let limits = PushApiLimits {
        enrol_per_minute: 3,
        ..PushApiLimits::default()
    };
    let server = TestServer::start_with(backend.clone(), limits, None).await;
    let client = server.client();
    let key = TestKey::ed25519();
    // Guesses use up the address's attempts (each is answered for what it is)...
    for guess in ["GUESS-1", "GUESS-2"] {
        let answer = client
            .post_json("/v1/devices", &[], &enrol_body(guess, &key))
            .await;
        assert_eq!(answer.status, StatusCode::GONE, "{}", answer.json);
    }
    let answer = client
        .post_json("/v1/devices", &[], &enrol_body("GUESS-3", &key))
        .await;
    assert_eq!(answer.status, StatusCode::GONE);
    // ... and then even the right code is refused before anything is checked or consumed,
    // with a time to come back.
    let answer = client
        .post_json("/v1/devices", &[], &enrol_body("GOOD-CODE", &key))
        .await;
    assert_eq!(
        answer.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        answer.json
    );
    assert!(answer.error().contains("too many enrolment attempts"));
    let retry: u32 = answer.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(backend.code_is_unused("GOOD-CODE"));
    // Signed requests of enrolled devices are not affected.
    let device_key = TestKey::ed25519();
    backend.add_device("dev-1", USER, &device_key);
    let headers = signed_headers(
        "dev-1",
        &device_key,
        "GET",
        "/v1/challenges",
        now(),
        &nonce(),
        b"",
    );
    assert_eq!(
        client.get("/v1/challenges", &headers).await.status,
        StatusCode::OK
    );
}
