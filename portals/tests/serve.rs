//! The server loop: HTTPS with a certificate made by `openssl` for the test (a client that
//! trusts the test CA talks HTTP/1.1 and HTTP/2, chosen by ALPN; one that does not is
//! refused), clear errors for bad certificate files, and the drain on shutdown (idle
//! connections closed at once, a request still running cut off after the grace period).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use hyper::{StatusCode, Version};
use support::{nonce, now, signed_headers, Client, FakeBackend, TestKey, TestServer};
use tollgate_portals::{tls_config, PushApiLimits, TlsConfigError};

/// Runs openssl; fails with the package to install when it is missing.
fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}): install the Debian package openssl"));
    assert!(status.success(), "openssl {args:?} failed");
}

/// A test CA and a server certificate for `localhost` and 127.0.0.1 signed by it.
fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "30",
        "-subj",
        "/CN=Tollgate portal test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = DNS:localhost, IP:127.0.0.1\n\
         basicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// A client TLS configuration trusting `ca` (or nothing), offering `alpn`.
fn connector(ca: Option<&Path>, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = ca {
        for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn https_serves_http1_and_h2_to_a_client_trusting_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key_file) = make_certificates(dir.path());
    let tls = tls_config(&cert, &key_file).expect("TLS configuration");
    assert_eq!(
        tls.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );

    let key = TestKey::ed25519();
    let backend = FakeBackend::new();
    backend.add_device("dev-a", 1, &key);
    backend.add_challenge("c1", 1, now() + 60);
    let server = TestServer::start_with(backend.clone(), PushApiLimits::default(), Some(tls)).await;

    let http1 = Client {
        addr: server.addr,
        tls: Some(connector(Some(&ca), &[b"http/1.1"])),
        http2: false,
    };
    let answer = http1.get("/v1/health", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.version, Version::HTTP_11);

    let h2 = Client {
        addr: server.addr,
        tls: Some(connector(Some(&ca), &[b"h2", b"http/1.1"])),
        http2: true,
    };
    let headers = signed_headers("dev-a", &key, "GET", "/v1/challenges", now(), &nonce(), b"");
    let answer = h2.get("/v1/challenges", &headers).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.version, Version::HTTP_2);
    assert_eq!(answer.json["challenges"][0]["id"], "c1");

    // A client that does not trust the CA gets no further than the handshake.
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let refused = connector(None, &[b"http/1.1"]).connect(name, stream).await;
    assert!(
        refused.is_err(),
        "an untrusted certificate must fail the handshake"
    );

    // Plain HTTP on the TLS port is not served.
    let plain = tokio::time::timeout(Duration::from_secs(5), async {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /v1/health HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        buf
    })
    .await
    .expect("the server closes a non-TLS connection");
    assert!(!String::from_utf8_lossy(&plain).contains("200 OK"));

    server.stop().await;
}

#[test]
fn bad_certificate_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key_file) = make_certificates(dir.path());

    let missing = tls_config(&dir.path().join("nope.pem"), &key_file).unwrap_err();
    assert!(matches!(missing, TlsConfigError::Pem { .. }), "{missing}");
    assert!(missing.to_string().contains("nope.pem"), "{missing}");

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let e = tls_config(&empty, &key_file).unwrap_err();
    assert!(matches!(e, TlsConfigError::NoCertificate(_)), "{e}");

    let e = tls_config(&cert, &cert).unwrap_err();
    assert!(
        e.to_string().contains("server.pem"),
        "no key in a certificate file: {e}"
    );

    // The CA's key does not belong to the server certificate.
    let e = tls_config(&cert, &dir.path().join("ca.key")).unwrap_err();
    assert!(matches!(e, TlsConfigError::Rustls(_)), "{e}");
    let _ = ca;
}

#[tokio::test]
async fn shutdown_drains_idle_connections_and_returns() {
    let backend = FakeBackend::new();
    let server = TestServer::start(backend).await;

    // An idle keep-alive connection must not hold the drain for its grace period.
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake::<
        _,
        http_body_util::Empty<hyper::body::Bytes>,
    >(hyper_util::rt::TokioIo::new(stream))
    .await
    .unwrap();
    let connection = tokio::spawn(connection);
    let request = hyper::Request::get("/v1/health")
        .header("host", "localhost")
        .body(http_body_util::Empty::new())
        .unwrap();
    assert_eq!(
        sender.send_request(request).await.unwrap().status(),
        StatusCode::OK
    );

    let stopped = tokio::time::timeout(Duration::from_secs(5), server.stop()).await;
    assert!(
        stopped.is_ok(),
        "the server loop returns well within the drain grace"
    );
    // The server closed the idle connection.
    let ended = tokio::time::timeout(Duration::from_secs(5), connection).await;
    assert!(ended.is_ok(), "the idle connection was closed by the drain");
}

#[tokio::test]
async fn a_request_still_running_after_the_drain_grace_is_cut_off() {
    let backend = FakeBackend::new();
    backend
        .hang_enrol
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let options = tollgate_portals::ServeOptions {
        drain_grace: Duration::from_millis(200),
        ..Default::default()
    };
    let server =
        TestServer::start_with_options(backend.clone(), PushApiLimits::default(), None, options)
            .await;

    // An enrolment whose backend call never completes.
    let addr = server.addr;
    let request = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let body = support::enrol_body("CODE", &TestKey::ed25519()).to_string();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /v1/devices HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer).await;
        answer
    });
    while backend.calls().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let stopped = tokio::time::timeout(Duration::from_secs(5), server.stop()).await;
    assert!(
        stopped.is_ok(),
        "the server loop returns after the grace period"
    );
    let answer = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("the connection was closed")
        .unwrap();
    assert!(answer.is_empty(), "no answer, the connection was closed");
}
