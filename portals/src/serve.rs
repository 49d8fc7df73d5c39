//! The server loop of the portals: accepting connections (at most
//! [`ServeOptions::max_connections`] at once), TLS with rustls when configured, HTTP/1.1 and
//! HTTP/2 on each connection, and a drain on shutdown that gives requests in flight a grace
//! period and then closes what is left.
//!
//! The loop is ours rather than `axum::serve` because that one neither terminates TLS nor
//! bounds its connections.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::metrics::PORTAL_CONNECTIONS_DROPPED_TOTAL;

/// The address a request's connection came from, in every request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Limits and timeouts of [`serve_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// Connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Time a client has to complete the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Time a client has to send a request's headers (HTTP/1; also closes idle keep-alive
    /// connections).
    pub header_read_timeout: Duration,
    /// Time requests in flight have to finish once shutdown begins.
    pub drain_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            max_connections: 1024,
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            drain_grace: Duration::from_secs(10),
        }
    }
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The file could not be read or holds no valid PEM.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The certificate file holds no certificate.
    #[error("{0}: no certificate in the file")]
    NoCertificate(PathBuf),
    /// rustls refused the pair (for example, the key does not match the certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3, ALPN `h2` then
/// `http/1.1`) from a PEM certificate chain (leaf first) and a PEM private key (PKCS#8,
/// PKCS#1 or SEC1).
pub fn tls_config(
    cert_pem: &Path,
    key_pem: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsConfigError> {
    let pem_error = |path: &Path, e: rustls::pki_types::pem::Error| TlsConfigError::Pem {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(cert_pem)
        .map_err(|e| pem_error(cert_pem, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(cert_pem, e))?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate(cert_pem.to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(key_pem).map_err(|e| pem_error(key_pem, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `router` on `listener` with the default [`ServeOptions`] until `shutdown`
/// completes, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send,
) {
    serve_with(listener, router, tls, shutdown, ServeOptions::default()).await;
}

/// The phases a connection task follows, sent on a watch channel.
const RUNNING: u8 = 0;
/// Finish the request in flight, accept no new one.
const DRAINING: u8 = 1;
/// Close now.
const STOPPING: u8 = 2;

/// Serves `router` on `listener` (HTTPS when `tls` is given, plain HTTP otherwise) until
/// `shutdown` completes. Then it stops accepting, lets requests in flight finish within
/// [`ServeOptions::drain_grace`], closes the connections still open, and returns once every
/// connection task has ended.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send,
    options: ServeOptions,
) {
    // The drain takes every slot back with one `acquire_many`, which counts in u32.
    let max_connections = options
        .max_connections
        .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let slots = Arc::new(Semaphore::new(max_connections));
    let (phase_tx, phase_rx) = watch::channel(RUNNING);
    let acceptor = tls.map(TlsAcceptor::from);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .max_concurrent_streams(Some(64));
    tokio::pin!(shutdown);

    loop {
        // A slot first, so that a full server leaves clients in the kernel's backlog
        // instead of accepting them and holding them without an answer.
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Running out of file descriptors or a connection reset before accept
                    // is passing; back off briefly rather than spin or stop serving.
                    tracing::warn!(error = %e, "portal accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let phase = phase_rx.clone();
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        // Each request learns the address it came from (rate limits are kept per address).
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(PeerAddr(peer));
                request
            },
        ));
        let handshake_timeout = options.tls_handshake_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            match acceptor {
                None => serve_connection(&builder, stream, service, phase).await,
                Some(acceptor) => {
                    let Some(tls) =
                        handshake(acceptor, stream, handshake_timeout, phase.clone()).await
                    else {
                        tracing::debug!(%peer, "portal TLS handshake failed");
                        metrics::counter!(PORTAL_CONNECTIONS_DROPPED_TOTAL, "reason" => "tls_handshake")
                            .increment(1);
                        return;
                    };
                    serve_connection(&builder, tls, service, phase).await;
                }
            }
        });
    }

    drop(listener);
    let _ = phase_tx.send(DRAINING);
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(options.drain_grace, slots.acquire_many(all)).await;
    if drained.is_err() {
        let open = max_connections - slots.available_permits();
        tracing::warn!(
            open,
            "portal connections still open after the drain grace; closing them"
        );
        metrics::counter!(PORTAL_CONNECTIONS_DROPPED_TOTAL, "reason" => "drain_deadline")
            .increment(open as u64);
        let _ = phase_tx.send(STOPPING);
        // Every task drops its connection as soon as it sees the phase change.
        let _ = slots.acquire_many(all).await;
    }
}

/// The TLS handshake, bounded in time, abandoned when the server drains.
async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    timeout: Duration,
    mut phase: watch::Receiver<u8>,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    tokio::select! {
        done = tokio::time::timeout(timeout, acceptor.accept(stream)) => done.ok()?.ok(),
        _ = phase.wait_for(|p| *p >= DRAINING) => None,
    }
}

/// Serves one connection until the client closes it, the server drains (the request in
/// flight finishes, then the connection closes) or the server stops (closed at once).
async fn serve_connection<IO, S>(
    builder: &auto::Builder<TokioExecutor>,
    io: IO,
    service: TowerToHyperService<S>,
    mut phase: watch::Receiver<u8>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "portal connection ended with an error");
                }
                return;
            }
            changed = phase.changed() => {
                let now = if changed.is_err() { STOPPING } else { *phase.borrow_and_update() };
                if now >= STOPPING {
                    return;
                }
                if now >= DRAINING && !draining {
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
