//! What the push API tests share: an in-memory backend that records every call made to it,
//! device keys that sign like an app would, the signed headers, and a small HTTP client over a
//! real socket (plain or TLS, HTTP/1.1 or HTTP/2).

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tollgate_engine::push::{enrol_message, request_message, DeviceKey};
use tollgate_portals::{
    DecideError, Decided, DeviceInfo, NewDevice, PendingChallenge, PushApiLimits, PushBackend,
};

/// The current unix time.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A call that reached the backend's writing methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Enrol {
        code: String,
        device: NewDevice,
    },
    Decide {
        user_id: i64,
        challenge_id: String,
        approve: bool,
        number: Option<u8>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Approved,
    Declined,
}

#[derive(Debug, Clone)]
pub struct Challenge {
    pub user_id: i64,
    pub right: u8,
    pub numbers: Vec<u8>,
    pub expires_at: u64,
    pub state: State,
}

/// The backend the tests talk to: enrolment codes, devices and challenges in maps, as the
/// server keeps them, with the same rules (a code is used once; a wrong number declines; an
/// expired or another user's challenge is not found).
#[derive(Default)]
pub struct FakeBackend {
    codes: Mutex<HashMap<String, i64>>,
    devices: Mutex<HashMap<String, (i64, NewDevice)>>,
    pub challenges: Mutex<HashMap<String, Challenge>>,
    calls: Mutex<Vec<Call>>,
    next_device: AtomicU64,
    /// When set, `enrol` records its call and then never completes (a store that hangs).
    pub hang_enrol: std::sync::atomic::AtomicBool,
}

impl FakeBackend {
    pub fn new() -> Arc<FakeBackend> {
        Arc::new(FakeBackend::default())
    }

    pub fn add_code(&self, code: &str, user_id: i64) {
        self.codes.lock().unwrap().insert(code.into(), user_id);
    }

    pub fn code_is_unused(&self, code: &str) -> bool {
        self.codes.lock().unwrap().contains_key(code)
    }

    /// A device enrolled directly, bypassing the API.
    pub fn add_device(&self, device_id: &str, user_id: i64, key: &TestKey) {
        let device = NewDevice {
            name: "test".into(),
            platform: tollgate_portals::Platform::Poll,
            push_token: None,
            key_alg: key.alg(),
            public_key: key.device_key().to_bytes(),
        };
        self.devices
            .lock()
            .unwrap()
            .insert(device_id.into(), (user_id, device));
    }

    pub fn stored_device(&self, device_id: &str) -> Option<(i64, NewDevice)> {
        self.devices.lock().unwrap().get(device_id).cloned()
    }

    /// A pending challenge whose right number is the first of its three.
    pub fn add_challenge(&self, id: &str, user_id: i64, expires_at: u64) {
        self.challenges.lock().unwrap().insert(
            id.into(),
            Challenge {
                user_id,
                right: 42,
                numbers: vec![42, 17, 93],
                expires_at,
                state: State::Pending,
            },
        );
    }

    pub fn state(&self, id: &str) -> State {
        self.challenges.lock().unwrap()[id].state
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn decide_calls(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| matches!(c, Call::Decide { .. }))
            .count()
    }
}

impl PushBackend for FakeBackend {
    async fn enrol(
        &self,
        code: &str,
        device: NewDevice,
    ) -> Result<Option<String>, tollgate_portals::BackendError> {
        self.calls.lock().unwrap().push(Call::Enrol {
            code: code.into(),
            device: device.clone(),
        });
        if self.hang_enrol.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
        let Some(user_id) = self.codes.lock().unwrap().remove(code) else {
            return Ok(None);
        };
        let id = format!(
            "dev-{}",
            self.next_device.fetch_add(1, Ordering::Relaxed) + 1
        );
        self.devices
            .lock()
            .unwrap()
            .insert(id.clone(), (user_id, device));
        Ok(Some(id))
    }

    fn device(&self, device_id: &str) -> Option<DeviceInfo> {
        let devices = self.devices.lock().unwrap();
        let (user_id, device) = devices.get(device_id)?;
        Some(DeviceInfo {
            user_id: *user_id,
            key: DeviceKey::parse(device.key_alg.as_str(), &device.public_key).ok()?,
        })
    }

    fn pending(&self, user_id: i64) -> Vec<PendingChallenge> {
        let now = now();
        let mut pending: Vec<_> = self
            .challenges
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, c)| {
                c.user_id == user_id && c.state == State::Pending && c.expires_at >= now
            })
            .map(|(id, c)| PendingChallenge {
                id: id.clone(),
                client: "vpn-1".into(),
                created_at: c.expires_at - 30,
                expires_at: c.expires_at,
                numbers: c.numbers.clone(),
                context: "VPN login from 192.0.2.7".into(),
            })
            .collect();
        pending.sort_by(|a, b| a.id.cmp(&b.id));
        pending
    }

    fn decide(
        &self,
        user_id: i64,
        challenge_id: &str,
        approve: bool,
        number: Option<u8>,
    ) -> Result<Decided, DecideError> {
        // These challenges all show a number at their prompt.
        if approve && number.is_none() {
            return Err(DecideError::NumberRequired);
        }
        self.calls.lock().unwrap().push(Call::Decide {
            user_id,
            challenge_id: challenge_id.into(),
            approve,
            number,
        });
        let mut challenges = self.challenges.lock().unwrap();
        let challenge = challenges
            .get_mut(challenge_id)
            .filter(|c| c.user_id == user_id && c.expires_at >= now())
            .ok_or(DecideError::NotFound)?;
        if challenge.state != State::Pending {
            return Err(DecideError::AlreadyDecided);
        }
        if !approve {
            challenge.state = State::Declined;
            return Ok(Decided::Declined);
        }
        if number != Some(challenge.right) {
            challenge.state = State::Declined;
            return Err(DecideError::WrongNumber);
        }
        challenge.state = State::Approved;
        Ok(Decided::Approved)
    }
}

/// A device's key pair, as an app holds it.
pub enum TestKey {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

impl TestKey {
    pub fn ed25519() -> TestKey {
        TestKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&rand::random()))
    }

    pub fn p256() -> TestKey {
        loop {
            let bytes: [u8; 32] = rand::random();
            if let Ok(key) = p256::ecdsa::SigningKey::from_slice(&bytes) {
                return TestKey::P256(key);
            }
        }
    }

    pub fn alg(&self) -> tollgate_portals::KeyAlg {
        match self {
            TestKey::Ed25519(_) => tollgate_portals::KeyAlg::Ed25519,
            TestKey::P256(_) => tollgate_portals::KeyAlg::P256,
        }
    }

    pub fn alg_name(&self) -> &'static str {
        self.alg().as_str()
    }

    /// The public key's bytes as an app sends them (P-256 uncompressed).
    pub fn public_bytes(&self) -> Vec<u8> {
        match self {
            TestKey::Ed25519(k) => k.verifying_key().to_bytes().to_vec(),
            TestKey::P256(k) => k
                .verifying_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
        }
    }

    pub fn public_b64(&self) -> String {
        BASE64.encode(self.public_bytes())
    }

    pub fn device_key(&self) -> DeviceKey {
        DeviceKey::parse(self.alg_name(), &self.public_bytes()).unwrap()
    }

    /// A signature as the platform makes it: Ed25519 64 bytes, P-256 DER (as Android's
    /// keystore and Apple's Secure Enclave return it).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            TestKey::Ed25519(k) => {
                use ed25519_dalek::Signer as _;
                k.sign(message).to_bytes().to_vec()
            }
            TestKey::P256(k) => {
                use p256::ecdsa::signature::Signer as _;
                let signature: p256::ecdsa::Signature = k.sign(message);
                signature.to_der().as_bytes().to_vec()
            }
        }
    }
}

/// The enrolment body an app sends for `code`.
pub fn enrol_body(code: &str, key: &TestKey) -> serde_json::Value {
    let public_key = key.public_b64();
    let signature = BASE64.encode(key.sign(&enrol_message(code, &public_key)));
    serde_json::json!({
        "code": code,
        "name": "Pixel 8",
        "platform": "fcm",
        "push_token": "fcm-token-123",
        "key_alg": key.alg_name(),
        "public_key": public_key,
        "signature": signature,
    })
}

/// A fresh random nonce.
pub fn nonce() -> String {
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The four headers of a signed request.
pub fn signed_headers(
    device_id: &str,
    key: &TestKey,
    method: &str,
    path: &str,
    timestamp: u64,
    nonce: &str,
    body: &[u8],
) -> Vec<(String, String)> {
    let signature = BASE64.encode(key.sign(&request_message(method, path, timestamp, nonce, body)));
    vec![
        ("x-tollgate-device".into(), device_id.into()),
        ("x-tollgate-timestamp".into(), timestamp.to_string()),
        ("x-tollgate-nonce".into(), nonce.into()),
        ("x-tollgate-signature".into(), signature),
    ]
}

/// A push API server on a loopback port; stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(backend: Arc<FakeBackend>) -> TestServer {
        TestServer::start_with(backend, PushApiLimits::default(), None).await
    }

    pub async fn start_with(
        backend: Arc<FakeBackend>,
        limits: PushApiLimits,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> TestServer {
        TestServer::start_with_options(
            backend,
            limits,
            tls,
            tollgate_portals::ServeOptions::default(),
        )
        .await
    }

    pub async fn start_with_options(
        backend: Arc<FakeBackend>,
        limits: PushApiLimits,
        tls: Option<Arc<rustls::ServerConfig>>,
        options: tollgate_portals::ServeOptions,
    ) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = tollgate_portals::router_with_limits(backend, limits);
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };
        let task = tokio::spawn(tollgate_portals::serve_with(
            listener, router, tls, shutdown, options,
        ));
        TestServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Begins shutdown and waits for the server loop to return.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    pub fn client(&self) -> Client {
        Client {
            addr: self.addr,
            tls: None,
            http2: false,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An answer: status, headers and the body read as JSON.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub json: serde_json::Value,
    /// The HTTP version the server answered with.
    pub version: hyper::Version,
}

impl Answer {
    pub fn error(&self) -> &str {
        self.json["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message in {} {}", self.status, self.json))
    }
}

/// One HTTP connection per request, over plain TCP or TLS.
#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub tls: Option<tokio_rustls::TlsConnector>,
    pub http2: bool,
}

impl Client {
    pub async fn get(&self, path: &str, headers: &[(String, String)]) -> Answer {
        self.send(Method::GET, path, headers, Vec::new()).await
    }

    pub async fn post_json(
        &self,
        path: &str,
        headers: &[(String, String)],
        body: &serde_json::Value,
    ) -> Answer {
        self.send(Method::POST, path, headers, body.to_string().into_bytes())
            .await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json");
        if !self.http2 {
            request = request.header("host", self.addr.to_string());
        }
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request.body(Full::new(Bytes::from(body))).unwrap();
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        match &self.tls {
            None => self.exchange(tcp, request).await,
            Some(connector) => {
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                let tls = connector.connect(name, tcp).await.expect("TLS handshake");
                self.exchange(tls, request).await
            }
        }
    }

    async fn exchange<IO>(&self, io: IO, request: Request<Full<Bytes>>) -> Answer
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let response = if self.http2 {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                    .await
                    .unwrap();
            tokio::spawn(connection);
            sender.send_request(request).await.unwrap()
        } else {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
                .await
                .unwrap();
            tokio::spawn(connection);
            sender.send_request(request).await.unwrap()
        };
        let status = response.status();
        let version = response.version();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "{status}: the body is not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        });
        Answer {
            status,
            headers,
            json,
            version,
        }
    }
}
