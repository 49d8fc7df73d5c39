//! One HTTP/2 connection to an HTTPS origin, kept open and shared by every send of a push
//! gateway.
//!
//! APNs speaks HTTP/2 only and asks providers to keep their connections open rather than
//! open one per notification; Google's token and FCM endpoints speak it too. An [`Origin`]
//! opens its connection at the first request (TLS with rustls, ALPN `h2` required), lets
//! concurrent requests share it (HTTP/2 multiplexes them) and replaces it when it fails:
//!
//! - a connection the server closed (GOAWAY, idle timeout) is noticed before use and a new
//!   one is opened;
//! - a request that fails on a connection that was already open is tried once more on a
//!   new connection, since the failure may only mean the old one died between two sends;
//! - a request that gets no answer by the deadline discards its connection, which may be
//!   silently dead (a NAT that forgot it), so that the next send does not wait on it too.
//!
//! Errors name the peer (`host:port`) and what happened, never the request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http2::SendRequest;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::Instant;
use url::{Host, Url};

use super::SendError;

/// Most of a response body that is read: push services answer with a few dozen bytes.
const MAX_ANSWER_BODY: usize = 64 * 1024;

/// An HTTPS origin (scheme, host, port and an optional path prefix) and the connection to
/// it.
pub(super) struct Origin {
    /// `https://host:port` and the path prefix without a trailing slash, the start of
    /// every request URI.
    base: String,
    /// `host:port`, for error texts.
    peer: String,
    host: Host<String>,
    port: u16,
    server_name: ServerName<'static>,
    tls: tokio_rustls::TlsConnector,
    /// How long a send may take, for error texts (the deadline is the caller's).
    timeout: Duration,
    /// The open connection, if any. Held while a connection is being opened, so that
    /// concurrent sends wait for one connection instead of each opening their own.
    live: tokio::sync::Mutex<Option<Live>>,
    /// Numbers connections, so that a failed request discards only the connection it
    /// failed on and not one a concurrent send has opened since.
    opened: AtomicU64,
}

struct Live {
    sender: SendRequest<Full<Bytes>>,
    id: u64,
}

/// A request to an origin: the path is appended to the origin's prefix.
pub(super) struct Call<'a> {
    pub method: Method,
    pub path: &'a str,
    pub headers: &'a [(HeaderName, HeaderValue)],
    pub body: Bytes,
}

/// What the origin answered.
pub(super) struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Origin {
    /// The origin of an `https://` URL, whose path becomes the prefix of every request.
    /// `tls` must offer ALPN `h2`.
    pub fn new(
        url: &Url,
        tls: Arc<rustls::ClientConfig>,
        timeout: Duration,
    ) -> Result<Origin, String> {
        if url.scheme() != "https" {
            return Err(format!("{url}: not an https:// URL"));
        }
        let host = url
            .host()
            .map(|h| h.to_owned())
            .ok_or_else(|| format!("{url}: no host"))?;
        let port = url.port_or_known_default().unwrap_or(443);
        let server_name = match &host {
            Host::Domain(d) => ServerName::try_from(d.clone())
                .map_err(|_| format!("{d}: not a TLS server name"))?,
            Host::Ipv4(ip) => ServerName::from(std::net::IpAddr::V4(*ip)),
            Host::Ipv6(ip) => ServerName::from(std::net::IpAddr::V6(*ip)),
        };
        // `url::Host` shows an IPv6 address in brackets already.
        let peer = format!("{host}:{port}");
        // The URI names the port only when the URL did: `:authority` is then what a
        // browser would send.
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        Ok(Origin {
            base: format!("https://{authority}{}", url.path().trim_end_matches('/')),
            peer,
            host,
            port,
            server_name,
            tls: tokio_rustls::TlsConnector::from(tls),
            timeout,
            live: tokio::sync::Mutex::new(None),
            opened: AtomicU64::new(0),
        })
    }

    /// `host:port`.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Sends one request and reads the answer, by `deadline`.
    pub async fn send(&self, call: &Call<'_>, deadline: Instant) -> Result<Answer, SendError> {
        let late = || {
            SendError::Transient(format!(
                "no answer from {} within {} ms",
                self.peer,
                self.timeout.as_millis()
            ))
        };
        let mut retried = false;
        loop {
            let (sender, id, fresh) = tokio::time::timeout_at(deadline, self.sender())
                .await
                .map_err(|_| late())??;
            let request = self.request(call)?;
            match tokio::time::timeout_at(deadline, exchange(sender, request)).await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(e)) => {
                    self.discard(id).await;
                    if fresh || retried {
                        return Err(SendError::Transient(format!(
                            "HTTP/2 exchange with {} failed: {e}",
                            self.peer
                        )));
                    }
                    retried = true;
                }
                Err(_) => {
                    self.discard(id).await;
                    return Err(late());
                }
            }
        }
    }

    fn request(&self, call: &Call<'_>) -> Result<Request<Full<Bytes>>, SendError> {
        let mut request = Request::builder()
            .method(call.method.clone())
            .uri(format!("{}{}", self.base, call.path));
        if let Some(headers) = request.headers_mut() {
            let mut map = HeaderMap::with_capacity(call.headers.len());
            for (name, value) in call.headers {
                map.append(name.clone(), value.clone());
            }
            *headers = map;
        }
        request
            .body(Full::new(call.body.clone()))
            .map_err(|e| SendError::Permanent(format!("cannot build the request: {e}")))
    }

    /// The open connection, or a new one; `true` when it was opened for this call.
    async fn sender(&self) -> Result<(SendRequest<Full<Bytes>>, u64, bool), SendError> {
        let mut live = self.live.lock().await;
        if let Some(l) = live.as_ref() {
            if !l.sender.is_closed() {
                return Ok((l.sender.clone(), l.id, false));
            }
        }
        *live = None;
        let sender = self.connect().await?;
        let id = self.opened.fetch_add(1, Ordering::Relaxed);
        *live = Some(Live {
            sender: sender.clone(),
            id,
        });
        Ok((sender, id, true))
    }

    /// Forgets connection `id` if it is still the open one.
    async fn discard(&self, id: u64) {
        let mut live = self.live.lock().await;
        if live.as_ref().is_some_and(|l| l.id == id) {
            *live = None;
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, SendError> {
        let tcp = self.tcp().await?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| {
                SendError::Transient(format!("TLS handshake with {} failed: {e}", self.peer))
            })?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(SendError::Permanent(format!(
                "{} does not speak HTTP/2 (ALPN h2 not agreed)",
                self.peer
            )));
        }
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|e| {
                SendError::Transient(format!("HTTP/2 handshake with {} failed: {e}", self.peer))
            })?;
        // The connection runs until the server closes it or every sender is dropped (the
        // gateway is dropped, or the connection was replaced).
        let peer = self.peer.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "push connection closed");
            }
        });
        Ok(sender)
    }

    async fn tcp(&self) -> Result<TcpStream, SendError> {
        let addrs: Vec<SocketAddr> = match &self.host {
            Host::Ipv4(ip) => vec![SocketAddr::from((*ip, self.port))],
            Host::Ipv6(ip) => vec![SocketAddr::from((*ip, self.port))],
            Host::Domain(name) => tokio::net::lookup_host((name.as_str(), self.port))
                .await
                .map_err(|e| SendError::Transient(format!("cannot resolve {name}: {e}")))?
                .collect(),
        };
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(SendError::Transient(match last {
            Some(e) => format!("cannot connect to {}: {e}", self.peer),
            None => format!("{} has no address", self.peer),
        }))
    }
}

async fn exchange(
    mut sender: SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Result<Answer, hyper::Error> {
    let response = sender.send_request(request).await?;
    let status = response.status();
    // A body that is too long or breaks off is not needed to judge the status.
    let body = match Limited::new(response.into_body(), MAX_ANSWER_BODY)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    Ok(Answer { status, body })
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin").field("base", &self.base).finish()
    }
}
