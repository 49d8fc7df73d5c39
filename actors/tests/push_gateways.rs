//! The push gateways against real HTTP/2 servers over TLS on loopback: hyper's HTTP/2
//! server behind rustls (ALPN `h2`), with a test CA and certificate made by `openssl`.
//!
//! The server standing in for APNs checks every request as Apple would: the provider
//! token's ES256 signature against the public half of a P-256 key made for the test (with
//! ring, not the p256 crate that signs), its `kid`, `iss` and `iat`, the path and the
//! `apns-*` headers; and it answers from a script. The server standing in for Google checks
//! the service account's RS256 assertion with `openssl dgst -verify` against the public
//! half of an RSA key made for the test, hands out access tokens with an `expires_in`, and
//! refuses a send whose bearer token it did not issue or has revoked.
//!
//! A check that fails on the server answers as the real service would (403
//! `InvalidProviderToken`, 400 `invalid_grant`, 401) and is recorded; every test ends by
//! asserting that no check failed.

mod support;
use support::{openssl, Pki};

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{HeaderMap, Request, Response, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use tollgate_actors::delivery::gateway::{Gateway, PushPayload, SendError, FCM_SCOPE};
use tollgate_actors::delivery::{Channel, Message};
use tollgate_config::Config;

/// A value in every notification's data; no error text may contain it.
const NONCE: &str = "n0nce-5f3a9c";
const TEAM_ID: &str = "TEAM123456";
const KEY_ID: &str = "KEY1234567";
const TOPIC: &str = "com.example.tollgate";
const DEVICE: &str = "9f0c4e3b2a1d8c7b6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa01";
const CLIENT_EMAIL: &str = "push@tollgate-test.iam.gserviceaccount.com";
const PROJECT: &str = "tollgate-test";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn gateway(toml: &str) -> Gateway {
    let config = Config::parse(toml).unwrap_or_else(|e| panic!("config: {e}\n{toml}"));
    Gateway::from_config(&config.gateways[0]).unwrap_or_else(|e| panic!("gateway: {e}"))
}

fn setup_error(toml: &str) -> String {
    let config = Config::parse(toml).unwrap_or_else(|e| panic!("config: {e}\n{toml}"));
    Gateway::from_config(&config.gateways[0])
        .expect_err("the gateway should not start")
        .to_string()
}

fn payload(expires_at: u64) -> PushPayload {
    PushPayload {
        title: Some("Approve sign-in?".to_owned()),
        body: "alice → vpn.example.com from 192.0.2.7".to_owned(),
        data: [("challenge", "ch-4711"), ("nonce", NONCE)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        expires_at: Some(expires_at),
    }
}

fn message(id: i64, channel: Channel, to: &str, expires_at: u64) -> Message {
    Message {
        id,
        key: id as u64,
        channel,
        to: to.to_owned(),
        subject: String::new(),
        body: payload(expires_at).to_body(),
    }
}

/// Asserts that a send failed as `transient` says, without showing the notification.
fn expect_failure(result: Result<(), SendError>, transient: bool) -> String {
    let e = result.expect_err("the send should fail");
    let text = e.to_string();
    assert!(!text.contains(NONCE), "the error shows the data: {text}");
    assert!(
        !text.contains("vpn.example.com"),
        "the error shows the text: {text}"
    );
    assert_eq!(e.is_transient(), transient, "{text}");
    text
}

fn toml_path(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

// ---------------------------------------------------------------------------------------
// Keys and certificates, made by openssl.

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn server_tls(&self, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(self.path("server.pem"))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_file(self.path("server.key")).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// An APNs signing key (`.p8`: PKCS#8 P-256) and the raw public point that verifies
    /// its signatures.
    fn apns_key(&self, name: &str) -> (PathBuf, Vec<u8>) {
        let p8 = format!("{name}.p8");
        openssl(
            self.dir.path(),
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &p8,
            ],
        );
        let spki = openssl(
            self.dir.path(),
            &["pkey", "-in", &p8, "-pubout", "-outform", "DER"],
        );
        // A P-256 SubjectPublicKeyInfo ends with the 65-byte uncompressed point.
        (self.path(&p8), spki[spki.len() - 65..].to_vec())
    }

    /// A 2048-bit RSA key in PKCS#8 PEM and the path of its public half.
    fn rsa_key(&self, name: &str) -> (String, PathBuf) {
        let key = format!("{name}.key");
        let public = format!("{name}.pub.pem");
        let d = self.dir.path();
        openssl(
            d,
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                &key,
            ],
        );
        openssl(d, &["pkey", "-in", &key, "-pubout", "-out", &public]);
        (
            std::fs::read_to_string(d.join(&key)).unwrap(),
            d.join(public),
        )
    }
}

// ---------------------------------------------------------------------------------------
// A scripted HTTP/2 server.

#[derive(Clone)]
struct Seen {
    version: Version,
    method: String,
    path: String,
    authority: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

struct Reply {
    status: u16,
    body: String,
    delay: Duration,
}

fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    accepted: Arc<AtomicUsize>,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Server {
    /// Serves HTTP/2 over TLS on 127.0.0.1; each request is answered by `handler` (on a
    /// blocking thread: it may run openssl).
    async fn start(tls: Arc<rustls::ServerConfig>, handler: Handler) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let (record, count, tasks) = (seen.clone(), accepted.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let (acceptor, handler, record) =
                    (acceptor.clone(), handler.clone(), record.clone());
                let task = tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (handler, record) = (handler.clone(), record.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await?.to_bytes();
                            let seen = Seen {
                                version: parts.version,
                                method: parts.method.to_string(),
                                path: parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.to_string())
                                    .unwrap_or_default(),
                                authority: parts.uri.authority().map(|a| a.to_string()),
                                headers: parts.headers,
                                body,
                            };
                            let (seen, answer) = tokio::task::spawn_blocking(move || {
                                let answer = handler(&seen);
                                (seen, answer)
                            })
                            .await
                            .unwrap();
                            record.lock().unwrap().push(seen);
                            tokio::time::sleep(answer.delay).await;
                            Ok::<_, hyper::Error>(
                                Response::builder()
                                    .status(answer.status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(answer.body)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
                tasks.lock().unwrap().push(task);
            }
        });
        Server {
            addr,
            seen,
            accepted,
            connections,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// TCP connections accepted so far.
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Closes every open connection, as a server that restarts or drops idle clients.
    fn drop_connections(&self) {
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

/// Checks that failed on a server, for the test's final assertion.
#[derive(Default)]
struct Problems(Mutex<Vec<String>>);

impl Problems {
    fn check(&self, ok: bool, what: impl Into<String>) -> bool {
        if !ok {
            self.0.lock().unwrap().push(what.into());
        }
        ok
    }

    fn assert_none(&self) {
        let p = self.0.lock().unwrap();
        assert!(p.is_empty(), "the server found problems: {p:#?}");
    }
}

/// A compact JWS taken apart.
struct Jwt {
    header: Value,
    claims: Value,
    /// `header.claims`, what the signature covers.
    input: String,
    signature: Vec<u8>,
}

fn parse_jwt(token: &str) -> Option<Jwt> {
    let mut parts = token.split('.');
    let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || token.contains('=') {
        return None;
    }
    Some(Jwt {
        header: serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?,
        claims: serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).ok()?).ok()?,
        input: format!("{h}.{c}"),
        signature: URL_SAFE_NO_PAD.decode(s).ok()?,
    })
}

fn close_to_now(t: &Value) -> bool {
    t.as_u64().is_some_and(|t| t.abs_diff(now()) <= 60)
}

// ---------------------------------------------------------------------------------------
// APNs.

/// The APNs stand-in: verifies each request and answers the next scripted
/// `(status, reason)`, 200 when the script is done. A token it answered
/// `ExpiredProviderToken` stays expired, as Apple's would.
struct Apns {
    public_point: Vec<u8>,
    script: Mutex<VecDeque<(u16, &'static str)>>,
    expired: Mutex<HashSet<String>>,
    problems: Problems,
}

impl Apns {
    fn new(public_point: Vec<u8>, script: &[(u16, &'static str)]) -> Arc<Apns> {
        Arc::new(Apns {
            public_point,
            script: Mutex::new(script.iter().copied().collect()),
            expired: Mutex::new(HashSet::new()),
            problems: Problems::default(),
        })
    }

    fn handle(&self, r: &Seen) -> Reply {
        let answer = |status: u16, reason: &str| reply(status, json!({ "reason": reason }));
        let p = &self.problems;
        p.check(r.version == Version::HTTP_2, "HTTP/2");
        p.check(r.method == "POST", format!("method {}", r.method));
        let Some(device) = r.path.strip_prefix("/3/device/") else {
            p.check(false, format!("path {}", r.path));
            return answer(404, "BadPath");
        };
        let Some(token) = r
            .header("authorization")
            .and_then(|a| a.strip_prefix("bearer "))
        else {
            p.check(false, "authorization: bearer");
            return answer(403, "MissingProviderToken");
        };
        if !self.verify(token) {
            return answer(403, "InvalidProviderToken");
        }
        if self.expired.lock().unwrap().contains(token) {
            return answer(403, "ExpiredProviderToken");
        }
        for (name, want) in [
            ("apns-topic", TOPIC),
            ("apns-push-type", "alert"),
            ("apns-priority", "10"),
            ("content-type", "application/json"),
        ] {
            p.check(
                r.header(name) == Some(want),
                format!("{name}: {:?}", r.header(name)),
            );
        }
        let id = r.header("apns-id").unwrap_or_default();
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        p.check(
            groups == [8, 4, 4, 4, 12] && id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
            format!("apns-id {id}"),
        );
        p.check(
            r.header("apns-expiration")
                .is_some_and(|e| e.parse::<u64>().is_ok()),
            "apns-expiration",
        );
        if device.len() != 64 || !device.bytes().all(|b| b.is_ascii_hexdigit()) {
            return answer(400, "BadDeviceToken");
        }
        let (status, reason) = self.script.lock().unwrap().pop_front().unwrap_or((200, ""));
        if reason == "ExpiredProviderToken" {
            self.expired.lock().unwrap().insert(token.to_owned());
        }
        if status == 200 {
            reply(200, json!({}))
        } else {
            answer(status, reason)
        }
    }

    /// Verifies a provider token as Apple does: ES256 with the team's key, `kid`, `iss`,
    /// and an `iat` within the hour.
    fn verify(&self, token: &str) -> bool {
        let p = &self.problems;
        let Some(jwt) = parse_jwt(token) else {
            return p.check(false, "the provider token is not a compact JWS");
        };
        let signed = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            &self.public_point,
        )
        .verify(jwt.input.as_bytes(), &jwt.signature)
        .is_ok();
        p.check(
            jwt.header == json!({"alg": "ES256", "kid": KEY_ID}),
            format!("header {}", jwt.header),
        ) & p.check(jwt.claims["iss"] == TEAM_ID, format!("iss {}", jwt.claims))
            & p.check(
                close_to_now(&jwt.claims["iat"]),
                format!("iat {}", jwt.claims),
            )
            & p.check(signed, "the ES256 signature does not verify")
    }
}

fn apns_section(server: &Server, key: &Path, ca: &Path, extra: &str) -> String {
    format!(
        "[[gateway]]\nname = \"ios\"\nchannel = \"apns\"\ntype = \"apns\"\nteam_id = \"{TEAM_ID}\"\nkey_id = \"{KEY_ID}\"\nkey_file = {}\ntopic = \"{TOPIC}\"\nendpoint = \"{}\"\nca_file = {}\ntimeout_ms = 5000\n{extra}",
        toml_path(key),
        server.url(),
        toml_path(ca),
    )
}

async fn apns_server(pki: &Pki, apns: &Arc<Apns>) -> Server {
    let a = apns.clone();
    Server::start(pki.server_tls(&[b"h2"]), Arc::new(move |r| a.handle(r))).await
}

fn bearer(s: &Seen) -> String {
    s.header("authorization").unwrap().to_owned()
}

#[tokio::test]
async fn apns_sends_signed_notifications_and_sorts_the_answers() {
    let pki = Pki::new("push");
    let (key, public) = pki.apns_key("apns");
    let apns = Apns::new(
        public,
        &[
            (200, ""),
            (410, "Unregistered"),
            (503, "ServiceUnavailable"),
            (429, "TooManyRequests"),
        ],
    );
    let server = apns_server(&pki, &apns).await;
    let g = gateway(&apns_section(&server, &key, &pki.ca, ""));
    assert_eq!(g.channel(), Channel::Apns);
    let expires = now() + 120;

    g.send(&message(41, Channel::Apns, DEVICE, expires))
        .await
        .unwrap();
    let gone = g.send(&message(42, Channel::Apns, DEVICE, expires)).await;
    assert!(
        matches!(gone, Err(SendError::Unregistered(_))),
        "410 says the token is gone: {gone:?}"
    );
    let text = expect_failure(gone, false);
    assert!(
        text.contains("410") && text.contains("Unregistered"),
        "{text}"
    );
    assert!(text.contains(&server.addr.to_string()), "{text}");
    let text = expect_failure(
        g.send(&message(43, Channel::Apns, DEVICE, expires)).await,
        true,
    );
    assert!(text.contains("503"), "{text}");
    expect_failure(
        g.send(&message(44, Channel::Apns, DEVICE, expires)).await,
        true,
    );
    // The server refuses a device token that is not one.
    let text = expect_failure(
        g.send(&message(45, Channel::Apns, &DEVICE[..40], expires))
            .await,
        false,
    );
    assert!(text.contains("BadDeviceToken"), "{text}");
    // What is not hexadecimal never leaves.
    let text = expect_failure(
        g.send(&message(46, Channel::Apns, "not-a-token", expires))
            .await,
        false,
    );
    assert!(text.contains("not an APNs device token"), "{text}");

    apns.problems.assert_none();
    let seen = server.seen();
    assert_eq!(seen.len(), 5);
    let first = &seen[0];
    assert_eq!(first.path, format!("/3/device/{DEVICE}"));
    assert_eq!(
        first.authority.as_deref(),
        Some(server.addr.to_string().as_str())
    );
    assert_eq!(
        first.header("apns-id"),
        Some("00000000-0000-0000-0000-000000000029")
    );
    assert_eq!(
        first.header("apns-expiration"),
        Some(expires.to_string().as_str())
    );
    assert_eq!(
        first.json(),
        json!({
            "aps": {
                "alert": {"title": "Approve sign-in?", "body": "alice → vpn.example.com from 192.0.2.7"},
                "sound": "default",
            },
            "challenge": "ch-4711",
            "nonce": NONCE,
        })
    );
    // One provider token for every send, on one connection.
    assert!(seen.iter().all(|s| bearer(s) == bearer(first)));
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn apns_replaces_an_expired_provider_token_once() {
    let pki = Pki::new("push");
    let (key, public) = pki.apns_key("apns");
    let apns = Apns::new(public, &[(200, ""), (403, "ExpiredProviderToken")]);
    let server = apns_server(&pki, &apns).await;
    let g = gateway(&apns_section(&server, &key, &pki.ca, ""));
    let expires = now() + 60;

    g.send(&message(1, Channel::Apns, DEVICE, expires))
        .await
        .unwrap();
    // A token is signed over its `iat` in whole seconds: the next one must be made in a
    // later second to differ from the one the server is about to call expired.
    let started = now();
    while now() == started {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The cached token is refused as expired; a new one is made and the send goes through.
    g.send(&message(2, Channel::Apns, DEVICE, expires))
        .await
        .unwrap();
    g.send(&message(3, Channel::Apns, DEVICE, expires))
        .await
        .unwrap();

    apns.problems.assert_none();
    let seen = server.seen();
    assert_eq!(seen.len(), 4);
    assert_eq!(
        bearer(&seen[0]),
        bearer(&seen[1]),
        "the first token was kept"
    );
    assert_ne!(
        bearer(&seen[1]),
        bearer(&seen[2]),
        "a new token after ExpiredProviderToken"
    );
    assert_eq!(bearer(&seen[2]), bearer(&seen[3]), "the new token is kept");
    assert_eq!(
        seen[1].header("apns-id"),
        seen[2].header("apns-id"),
        "the same notification"
    );

    // A server that calls every token expired gets one retry per message, not more.
    let apns = Apns::new(
        apns.public_point.clone(),
        &[(403, "ExpiredProviderToken"), (403, "ExpiredProviderToken")],
    );
    let server = apns_server(&pki, &apns).await;
    let g = gateway(&apns_section(&server, &key, &pki.ca, ""));
    let text = expect_failure(
        g.send(&message(4, Channel::Apns, DEVICE, expires)).await,
        false,
    );
    assert!(text.contains("ExpiredProviderToken"), "{text}");
    assert_eq!(server.seen().len(), 2);
    apns.problems.assert_none();
}

#[tokio::test]
async fn apns_refuses_a_token_signed_with_another_key() {
    let pki = Pki::new("push");
    let (_, public) = pki.apns_key("registered");
    let (other_key, _) = pki.apns_key("other");
    let apns = Apns::new(public, &[]);
    let server = apns_server(&pki, &apns).await;
    let g = gateway(&apns_section(&server, &other_key, &pki.ca, ""));
    let text = expect_failure(
        g.send(&message(1, Channel::Apns, DEVICE, now() + 60)).await,
        false,
    );
    assert!(text.contains("InvalidProviderToken"), "{text}");
    // The server's verification is what refused it.
    let problems = apns.problems.0.lock().unwrap().clone();
    assert_eq!(problems, ["the ES256 signature does not verify"]);
}

#[tokio::test]
async fn apns_keeps_one_connection_and_replaces_a_broken_one() {
    let pki = Pki::new("push");
    let (key, public) = pki.apns_key("apns");
    let apns = Apns::new(public, &[]);
    let server = apns_server(&pki, &apns).await;
    let g = Arc::new(gateway(&apns_section(&server, &key, &pki.ca, "")));
    let expires = now() + 60;

    // Concurrent sends share the connection (HTTP/2 streams).
    let sends: Vec<_> = (0..8)
        .map(|i| {
            let g = g.clone();
            tokio::spawn(async move { g.send(&message(i, Channel::Apns, DEVICE, expires)).await })
        })
        .collect();
    for s in sends {
        s.await.unwrap().unwrap();
    }
    assert_eq!(server.accepted(), 1);

    // The server drops the connection: the next send opens a new one and goes through.
    server.drop_connections();
    g.send(&message(10, Channel::Apns, DEVICE, expires))
        .await
        .unwrap();
    assert_eq!(server.accepted(), 2);
    g.send(&message(11, Channel::Apns, DEVICE, expires))
        .await
        .unwrap();
    assert_eq!(server.accepted(), 2);
    assert_eq!(server.seen().len(), 10);
    apns.problems.assert_none();
}

#[tokio::test]
async fn apns_timeouts_are_transient_and_drop_the_connection() {
    let pki = Pki::new("push");
    let (key, public) = pki.apns_key("apns");
    let apns = Apns::new(public, &[]);
    let slow = Arc::new(AtomicUsize::new(1));
    let (a, s) = (apns.clone(), slow.clone());
    let server = Server::start(
        pki.server_tls(&[b"h2"]),
        Arc::new(move |r| {
            let mut answer = a.handle(r);
            if s.fetch_sub(1, Ordering::SeqCst) == 1 {
                answer.delay = Duration::from_secs(3);
            }
            answer
        }),
    )
    .await;
    let g = gateway(
        &apns_section(&server, &key, &pki.ca, "").replace("timeout_ms = 5000", "timeout_ms = 300"),
    );
    let started = std::time::Instant::now();
    let text = expect_failure(
        g.send(&message(1, Channel::Apns, DEVICE, now() + 60)).await,
        true,
    );
    assert!(text.contains("within 300 ms"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the timeout held"
    );
    // The connection that did not answer is not used again.
    g.send(&message(2, Channel::Apns, DEVICE, now() + 60))
        .await
        .unwrap();
    assert_eq!(server.accepted(), 2);
    apns.problems.assert_none();
}

#[tokio::test]
async fn apns_checks_the_server_and_the_message_before_sending() {
    let pki = Pki::new("push");
    let (key, public) = pki.apns_key("apns");
    let apns = Apns::new(public, &[]);
    let server = apns_server(&pki, &apns).await;

    // A server certificate from a CA the gateway does not trust.
    let g = gateway(&apns_section(&server, &key, &pki.other_ca, ""));
    let text = expect_failure(
        g.send(&message(1, Channel::Apns, DEVICE, now() + 60)).await,
        true,
    );
    assert!(text.contains("TLS"), "{text}");

    // A notification whose time has passed, one that is not a push payload, and one
    // that is too large are refused for good, without a request.
    let g = gateway(&apns_section(&server, &key, &pki.ca, ""));
    let text = expect_failure(
        g.send(&message(2, Channel::Apns, DEVICE, now() - 1)).await,
        false,
    );
    assert!(text.contains("expired"), "{text}");
    let mut m = message(3, Channel::Apns, DEVICE, now() + 60);
    m.body = zeroize::Zeroizing::new("Your code is 123456".to_owned());
    let text = expect_failure(g.send(&m).await, false);
    assert!(text.contains("not a push payload"), "{text}");
    assert!(!text.contains("123456"), "{text}");
    let mut big = payload(now() + 60);
    big.data.insert("padding".to_owned(), "x".repeat(5000));
    let mut m = message(4, Channel::Apns, DEVICE, 0);
    m.body = big.to_body();
    let text = expect_failure(g.send(&m).await, false);
    assert!(text.contains("4096"), "{text}");
    // A message of another channel.
    let text = expect_failure(
        g.send(&message(5, Channel::Fcm, DEVICE, now() + 60)).await,
        false,
    );
    assert!(text.contains("fcm"), "{text}");
    assert!(server.seen().is_empty());

    // A server that does not agree on HTTP/2.
    let http1 = Server::start(
        pki.server_tls(&[]),
        Arc::new(|_: &Seen| reply(200, json!({}))),
    )
    .await;
    let g = gateway(&apns_section(&http1, &key, &pki.ca, ""));
    let text = expect_failure(
        g.send(&message(6, Channel::Apns, DEVICE, now() + 60)).await,
        false,
    );
    assert!(text.contains("HTTP/2"), "{text}");
    apns.problems.assert_none();
}

#[tokio::test]
async fn apns_setup_errors_name_the_key_file() {
    let pki = Pki::new("push");
    let server_url = "https://127.0.0.1:9";
    let section = |key: &Path| {
        format!(
            "[[gateway]]\nname = \"ios\"\nchannel = \"apns\"\ntype = \"apns\"\nteam_id = \"{TEAM_ID}\"\nkey_id = \"{KEY_ID}\"\nkey_file = {}\ntopic = \"{TOPIC}\"\nendpoint = \"{server_url}\"\nca_file = {}\n",
            toml_path(key),
            toml_path(&pki.ca)
        )
    };
    let e = setup_error(&section(&pki.path("missing.p8")));
    assert!(
        e.contains("gateway `ios`") && e.contains("missing.p8"),
        "{e}"
    );
    let (rsa, _) = pki.rsa_key("rsa");
    std::fs::write(pki.path("rsa.p8"), rsa).unwrap();
    let e = setup_error(&section(&pki.path("rsa.p8")));
    assert!(e.contains("rsa.p8") && e.contains("P-256"), "{e}");
    let (key, _) = pki.apns_key("apns");
    let g = gateway(&section(&key));
    let shown = format!("{g:?}");
    let pem = std::fs::read_to_string(&key).unwrap();
    let secret_line = pem.lines().nth(1).unwrap();
    assert!(!shown.contains(secret_line), "{shown}");
}

// ---------------------------------------------------------------------------------------
// FCM.

/// The Google stand-in: `POST /token` trades a verified assertion for an access token;
/// `POST /v1/projects/{PROJECT}/messages:send` needs a live token and answers the next
/// scripted `(status, FCM error code)`.
struct Google {
    public_pem: PathBuf,
    token_uri: String,
    /// `expires_in` of the tokens handed out.
    expires_in: u64,
    issued: Mutex<Vec<String>>,
    revoked: Mutex<HashSet<String>>,
    token_script: Mutex<VecDeque<u16>>,
    script: Mutex<VecDeque<(u16, &'static str)>>,
    problems: Problems,
    work: tempfile::TempDir,
}

impl Google {
    fn handle(&self, r: &Seen) -> Reply {
        let p = &self.problems;
        p.check(r.version == Version::HTTP_2, "HTTP/2");
        p.check(r.method == "POST", format!("method {}", r.method));
        if r.path == "/token" {
            return self.grant(r);
        }
        p.check(
            r.path == format!("/v1/projects/{PROJECT}/messages:send"),
            format!("path {}", r.path),
        );
        let live = r
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .filter(|t| self.issued.lock().unwrap().iter().any(|i| i == t))
            .filter(|t| !self.revoked.lock().unwrap().contains(*t));
        let Some(token) = live else {
            return fcm_error(401, "UNAUTHENTICATED", None);
        };
        p.check(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "content-type",
        );
        let body = r.json();
        let m = &body["message"];
        p.check(
            m["token"].as_str().is_some_and(|t| !t.is_empty()),
            "message.token",
        );
        p.check(m["android"]["priority"] == "high", "android.priority");
        p.check(
            m["android"]["ttl"].as_str().is_some_and(|t| {
                t.strip_suffix('s')
                    .is_some_and(|n| n.parse::<u64>().is_ok())
            }),
            format!("android.ttl {}", m["android"]["ttl"]),
        );
        let (status, code) = self.script.lock().unwrap().pop_front().unwrap_or((200, ""));
        if status == 401 {
            // The token stops working, as a revoked one would.
            self.revoked.lock().unwrap().insert(token.to_owned());
            return fcm_error(401, "UNAUTHENTICATED", None);
        }
        match status {
            200 => reply(
                200,
                json!({"name": format!("projects/{PROJECT}/messages/0:1")}),
            ),
            404 => fcm_error(404, "NOT_FOUND", Some(code)),
            400 => fcm_error(400, "INVALID_ARGUMENT", Some(code)),
            403 => fcm_error(403, "PERMISSION_DENIED", Some(code)),
            429 => fcm_error(429, "RESOURCE_EXHAUSTED", Some(code)),
            s => fcm_error(s, "UNAVAILABLE", None),
        }
    }

    fn grant(&self, r: &Seen) -> Reply {
        let p = &self.problems;
        let invalid = |why: &str| {
            reply(
                400,
                json!({"error": "invalid_grant", "error_description": why}),
            )
        };
        p.check(
            r.header("content-type") == Some("application/x-www-form-urlencoded"),
            "token request content-type",
        );
        let form: Vec<(String, String)> =
            url::form_urlencoded::parse(&r.body).into_owned().collect();
        let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if !p.check(
            field("grant_type") == Some("urn:ietf:params:oauth:grant-type:jwt-bearer"),
            "grant_type",
        ) {
            return reply(400, json!({"error": "unsupported_grant_type"}));
        }
        let Some(jwt) = field("assertion").and_then(parse_jwt) else {
            p.check(false, "assertion");
            return invalid("Invalid JWT.");
        };
        let c = &jwt.claims;
        let shaped = p.check(
            jwt.header == json!({"alg": "RS256", "typ": "JWT", "kid": "key-id-1"}),
            format!("header {}", jwt.header),
        ) & p.check(c["iss"] == CLIENT_EMAIL, format!("iss {c}"))
            & p.check(c["scope"] == FCM_SCOPE, format!("scope {c}"))
            & p.check(c["aud"] == self.token_uri.as_str(), format!("aud {c}"))
            & p.check(close_to_now(&c["iat"]), format!("iat {c}"))
            & p.check(
                c["exp"]
                    .as_u64()
                    .zip(c["iat"].as_u64())
                    .is_some_and(|(e, i)| e == i + 3600),
                format!("exp {c}"),
            );
        if !shaped {
            return invalid("Invalid JWT claims.");
        }
        if !self.rs256_verifies(&jwt) {
            p.check(false, "the RS256 signature does not verify");
            return invalid("Invalid JWT Signature.");
        }
        let status = self.token_script.lock().unwrap().pop_front().unwrap_or(200);
        if status != 200 {
            return reply(status, json!({"error": "temporarily_unavailable"}));
        }
        let mut issued = self.issued.lock().unwrap();
        let token = format!("ya29.test-token-{}", issued.len() + 1);
        issued.push(token.clone());
        reply(
            200,
            json!({"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}),
        )
    }

    /// `openssl dgst -sha256 -verify`: an implementation other than the signer's.
    fn rs256_verifies(&self, jwt: &Jwt) -> bool {
        let n = self.issued.lock().unwrap().len() + self.revoked.lock().unwrap().len();
        let input = self
            .work
            .path()
            .join(format!("input-{n}-{}", jwt.input.len()));
        let sig = self
            .work
            .path()
            .join(format!("sig-{n}-{}", jwt.input.len()));
        std::fs::write(&input, &jwt.input).unwrap();
        std::fs::write(&sig, &jwt.signature).unwrap();
        let out = Command::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(&self.public_pem)
            .arg("-signature")
            .arg(&sig)
            .arg(&input)
            .output()
            .expect("openssl");
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK")
    }

    fn token_requests(&self, server: &Server) -> usize {
        server.seen().iter().filter(|s| s.path == "/token").count()
    }
}

fn fcm_error(status: u16, google_status: &str, code: Option<&str>) -> Reply {
    let mut error = json!({
        "code": status,
        "message": "Request had a problem with token abc and text alice → vpn.example.com",
        "status": google_status,
    });
    if let Some(code) = code {
        error["details"] = json!([{
            "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
            "errorCode": code,
        }]);
    }
    reply(status, json!({ "error": error }))
}

struct Fcm {
    pki: Pki,
    google: Arc<Google>,
    server: Server,
    /// The section with the service-account file.
    section: String,
}

/// A Google stand-in and an FCM section pointed at it. The server verifies assertions with
/// the public half of the service account's key; with `signing_key_differs`, the file
/// holds another key.
async fn fcm(script: &[(u16, &'static str)], expires_in: u64, signing_key_differs: bool) -> Fcm {
    let pki = Pki::new("push");
    let (private_pem, public_pem) = pki.rsa_key("sa");
    let private_pem = if signing_key_differs {
        pki.rsa_key("other").0
    } else {
        private_pem
    };
    // The token URI names the server's address, which is known once it runs: the handler
    // reads it from a cell filled right after.
    let google_cell: Arc<std::sync::OnceLock<Arc<Google>>> = Arc::new(std::sync::OnceLock::new());
    let cell = google_cell.clone();
    let server = Server::start(
        pki.server_tls(&[b"h2"]),
        Arc::new(move |r| cell.get().expect("the stand-in is ready").handle(r)),
    )
    .await;
    let token_uri = format!("{}/token", server.url());
    let google = Arc::new(Google {
        public_pem,
        token_uri: token_uri.clone(),
        expires_in,
        issued: Mutex::new(Vec::new()),
        revoked: Mutex::new(HashSet::new()),
        token_script: Mutex::new(VecDeque::new()),
        script: Mutex::new(script.iter().copied().collect()),
        problems: Problems::default(),
        work: tempfile::tempdir().unwrap(),
    });
    let _ = google_cell.set(google.clone());
    let account = json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "key-id-1",
        "private_key": private_pem,
        "client_email": CLIENT_EMAIL,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "universe_domain": "googleapis.com",
    });
    let file = pki.path("service-account.json");
    std::fs::write(&file, account.to_string()).unwrap();
    let section = format!(
        "[[gateway]]\nname = \"android\"\nchannel = \"fcm\"\ntype = \"fcm\"\nservice_account_file = {}\nendpoint = \"{}\"\nca_file = {}\ntimeout_ms = 5000\n",
        toml_path(&file),
        server.url(),
        toml_path(&pki.ca),
    );
    Fcm {
        pki,
        google,
        server,
        section,
    }
}

fn fcm_token(s: &Seen) -> Option<&str> {
    s.header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
}

#[tokio::test]
async fn fcm_fetches_one_access_token_for_many_sends() {
    let f = fcm(&[], 3599, false).await;
    let g = gateway(&f.section);
    assert_eq!(g.channel(), Channel::Fcm);
    let expires = now() + 120;
    for id in 1..=3 {
        g.send(&message(
            id,
            Channel::Fcm,
            "fcm-registration-token:APA91b",
            expires,
        ))
        .await
        .unwrap();
    }
    f.google.problems.assert_none();
    assert_eq!(f.google.token_requests(&f.server), 1);
    let sends: Vec<Seen> = f
        .server
        .seen()
        .into_iter()
        .filter(|s| s.path != "/token")
        .collect();
    assert_eq!(sends.len(), 3);
    assert!(sends
        .iter()
        .all(|s| fcm_token(s) == Some("ya29.test-token-1")));
    let body = sends[0].json();
    let ttl = body["message"]["android"]["ttl"]
        .as_str()
        .unwrap()
        .to_owned();
    let ttl: u64 = ttl.trim_end_matches('s').parse().unwrap();
    assert!((115..=120).contains(&ttl), "ttl {ttl}");
    assert_eq!(
        body,
        json!({"message": {
            "token": "fcm-registration-token:APA91b",
            "notification": {"title": "Approve sign-in?", "body": "alice → vpn.example.com from 192.0.2.7"},
            "data": {"challenge": "ch-4711", "nonce": NONCE},
            "android": {"priority": "high", "ttl": format!("{ttl}s")},
        }})
    );
    // The token endpoint and FCM are two origins here on one server: one connection each.
    assert_eq!(f.server.accepted(), 2);
}

#[tokio::test]
async fn fcm_follows_expires_in() {
    // A token that lapses at once is fetched again for each send.
    let f = fcm(&[], 0, false).await;
    let g = gateway(&f.section);
    for id in 1..=2 {
        g.send(&message(id, Channel::Fcm, "tok", now() + 60))
            .await
            .unwrap();
    }
    f.google.problems.assert_none();
    assert_eq!(f.google.token_requests(&f.server), 2);
    let sends: Vec<Seen> = f
        .server
        .seen()
        .into_iter()
        .filter(|s| s.path != "/token")
        .collect();
    assert_eq!(fcm_token(&sends[0]), Some("ya29.test-token-1"));
    assert_eq!(fcm_token(&sends[1]), Some("ya29.test-token-2"));
}

#[tokio::test]
async fn fcm_fetches_a_new_token_once_on_401() {
    let f = fcm(
        &[(200, ""), (401, ""), (200, ""), (401, ""), (401, "")],
        3599,
        false,
    )
    .await;
    let g = gateway(&f.section);
    let expires = now() + 60;
    g.send(&message(1, Channel::Fcm, "tok", expires))
        .await
        .unwrap();
    // The token is revoked: a new one is fetched and the message goes through.
    g.send(&message(2, Channel::Fcm, "tok", expires))
        .await
        .unwrap();
    assert_eq!(f.google.token_requests(&f.server), 2);
    // Refused twice, with a new token the second time: that is for good.
    let text = expect_failure(
        g.send(&message(3, Channel::Fcm, "tok", expires)).await,
        false,
    );
    assert!(
        text.contains("401") && text.contains("UNAUTHENTICATED"),
        "{text}"
    );
    assert_eq!(f.google.token_requests(&f.server), 3);
    f.google.problems.assert_none();
    let tokens: Vec<Option<String>> = f
        .server
        .seen()
        .iter()
        .filter(|s| s.path != "/token")
        .map(|s| fcm_token(s).map(str::to_owned))
        .collect();
    let t = |n: u32| Some(format!("ya29.test-token-{n}"));
    assert_eq!(tokens, [t(1), t(1), t(2), t(2), t(3)]);
}

#[tokio::test]
async fn fcm_sorts_the_answers() {
    let f = fcm(
        &[
            (404, "UNREGISTERED"),
            (400, "INVALID_ARGUMENT"),
            (403, "SENDER_ID_MISMATCH"),
            (429, "QUOTA_EXCEEDED"),
            (503, ""),
            (200, ""),
        ],
        3599,
        false,
    )
    .await;
    let g = gateway(&f.section);
    let g = &g;
    let send = |id| {
        let m = message(id, Channel::Fcm, "tok", now() + 60);
        async move { g.send(&m).await }
    };
    let gone = send(1).await;
    assert!(
        matches!(gone, Err(SendError::Unregistered(_))),
        "404 UNREGISTERED says the token is gone: {gone:?}"
    );
    let text = expect_failure(gone, false);
    assert!(
        text.contains("404") && text.contains("UNREGISTERED"),
        "{text}"
    );
    assert!(
        !text.contains("abc"),
        "Google's message text stays out: {text}"
    );
    let bad = send(2).await;
    assert!(matches!(bad, Err(SendError::Permanent(_))), "{bad:?}");
    let text = expect_failure(bad, false);
    assert!(text.contains("INVALID_ARGUMENT"), "{text}");
    let text = expect_failure(send(3).await, false);
    assert!(text.contains("SENDER_ID_MISMATCH"), "{text}");
    let text = expect_failure(send(4).await, true);
    assert!(text.contains("429"), "{text}");
    let text = expect_failure(send(5).await, true);
    assert!(text.contains("503"), "{text}");
    send(6).await.unwrap();
    assert_eq!(f.google.token_requests(&f.server), 1);
    f.google.problems.assert_none();
}

#[tokio::test]
async fn fcm_token_endpoint_refusals() {
    // The service-account file holds a key Google does not know.
    let f = fcm(&[], 3599, true).await;
    let g = gateway(&f.section);
    let text = expect_failure(
        g.send(&message(1, Channel::Fcm, "tok", now() + 60)).await,
        false,
    );
    assert!(
        text.contains("invalid_grant") && text.contains("Signature"),
        "{text}"
    );
    assert!(
        f.server.seen().iter().all(|s| s.path == "/token"),
        "nothing was sent"
    );
    let problems = f.google.problems.0.lock().unwrap().clone();
    assert_eq!(problems, ["the RS256 signature does not verify"]);

    // A token endpoint that is down is worth trying again.
    let f = fcm(&[], 3599, false).await;
    f.google.token_script.lock().unwrap().push_back(503);
    let g = gateway(&f.section);
    let text = expect_failure(
        g.send(&message(2, Channel::Fcm, "tok", now() + 60)).await,
        true,
    );
    assert!(
        text.contains("token endpoint") && text.contains("503"),
        "{text}"
    );
    g.send(&message(3, Channel::Fcm, "tok", now() + 60))
        .await
        .unwrap();
    f.google.problems.assert_none();
}

#[tokio::test]
async fn fcm_project_override_and_setup_errors() {
    let f = fcm(&[], 3599, false).await;
    // `project_id` in the section wins over the file's.
    let g = gateway(&format!("{}project_id = \"other-project\"\n", f.section));
    let _ = g.send(&message(1, Channel::Fcm, "tok", now() + 60)).await;
    let sent: Vec<Seen> = f
        .server
        .seen()
        .into_iter()
        .filter(|s| s.path != "/token")
        .collect();
    assert_eq!(sent[0].path, "/v1/projects/other-project/messages:send");
    let shown = format!("{g:?}");
    assert!(
        !shown.contains("PRIVATE KEY") && !shown.contains("ya29"),
        "{shown}"
    );

    let file = f.pki.path("service-account.json");
    let account: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let write = |name: &str, v: &Value| {
        let path = f.pki.path(name);
        std::fs::write(&path, v.to_string()).unwrap();
        f.section.replace(&toml_path(&file), &toml_path(&path))
    };
    let e = setup_error(&f.section.replace("service-account.json", "missing.json"));
    assert!(
        e.contains("gateway `android`") && e.contains("missing.json"),
        "{e}"
    );
    let mut user = account.clone();
    user["type"] = json!("authorized_user");
    let e = setup_error(&write("user.json", &user));
    assert!(
        e.contains("user.json") && e.contains("authorized_user"),
        "{e}"
    );
    let mut bad = account.clone();
    bad["private_key"] = json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    let e = setup_error(&write("bad.json", &bad));
    assert!(e.contains("bad.json") && e.contains("private_key"), "{e}");
    let mut no_project = account.clone();
    no_project.as_object_mut().unwrap().remove("project_id");
    let e = setup_error(&write("noproject.json", &no_project));
    assert!(e.contains("project_id"), "{e}");
    let e = setup_error(&write("notjson.json", &json!("just a string")));
    assert!(e.contains("not a service-account key file"), "{e}");
}

/// A token FCM no longer knows is forgotten by the dispatcher: the device keeps its key but
/// loses the token, the messages waiting for it go, and nothing becomes a dead letter.
#[tokio::test]
async fn an_unregistered_token_is_forgotten_by_the_dispatcher() {
    use tollgate_actors::delivery::dispatcher::{DispatcherArgs, GatewayDispatcher, RetryPolicy};
    use tollgate_actors::delivery::outbox::Outbox;
    use tollgate_actors::store::{DeviceRecord, NewMessage, Platform, Store};

    let f = fcm(&[(404, "UNREGISTERED"), (200, "")], 3599, false).await;
    let data = tempfile::tempdir().unwrap();
    let user = {
        let mut store = Store::open(data.path()).unwrap();
        let user = store.add_user("grace", None).unwrap();
        for (n, token) in [(1, "tok-gone"), (2, "tok-live")] {
            let code = format!("ENROL{n}");
            store.add_enrolment_code("grace", &code, 60).unwrap();
            let device = DeviceRecord {
                id: format!("dev{n}"),
                user_id: 0,
                name: format!("phone {n}"),
                platform: Platform::Fcm,
                push_token: Some(token.to_owned()),
                key_alg: "ed25519".to_owned(),
                public_key: vec![n; 32],
                created_at: 0,
            };
            store.enrol_device(&code, device).unwrap().unwrap();
        }
        let body = |to: &str| NewMessage {
            channel: Channel::Fcm,
            to: to.to_owned(),
            subject: "Login request".to_owned(),
            body: payload(now() + 60).to_body(),
            user_id: None,
            purpose: "push",
        };
        store.enqueue(&[body("tok-gone")]).unwrap();
        user
    };
    let outbox = Outbox::open(data.path()).unwrap();
    let routes =
        std::collections::HashMap::from([(Channel::Fcm, vec![Arc::new(gateway(&f.section))])]);
    let (dispatcher, handle) = ractor::Actor::spawn(
        None,
        GatewayDispatcher,
        DispatcherArgs {
            outbox: Arc::clone(&outbox),
            health: Arc::default(),
            routes,
            workers: 1,
            retry: RetryPolicy {
                max_attempts: 3,
                base: Duration::from_millis(100),
                max: Duration::from_millis(100),
            },
        },
    )
    .await
    .unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let devices = loop {
        let devices = outbox.run(move |s| s.devices(Some(user.id))).await.unwrap();
        let gone = devices.iter().find(|d| d.id == "dev1").unwrap();
        if gone.push_token.is_none() || tokio::time::Instant::now() > deadline {
            break devices;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let token_of = |id: &str| {
        devices
            .iter()
            .find(|d| d.id == id)
            .unwrap()
            .push_token
            .clone()
    };
    assert_eq!(
        token_of("dev1"),
        None,
        "the unregistered token is forgotten"
    );
    assert_eq!(token_of("dev2").as_deref(), Some("tok-live"));
    let (live, dead) = outbox.run(|s| s.outbox_counts()).await.unwrap();
    assert_eq!((live, dead), (0, 0), "no message left, no dead letter");
    assert_eq!(f.server.seen().len(), 2, "one token request and one send");
    dispatcher.stop(None);
    handle.await.unwrap();
    f.google.problems.assert_none();
}
