//! The HTTP gateway: one request to an SMS or voice provider's API per message.
//!
//! The request is rendered from the section's templates (see [`super::render`]) and sent
//! over a connection of its own: HTTP/1.1 with hyper, TLS with rustls (ring) against
//! `ca_file` or the system's roots. Redirects are not followed (a 3xx is a refusal: the
//! URL is wrong), no proxy is used, and the whole exchange, connection included, is bounded
//! by `timeout_ms`.
//!
//! How the answer is read:
//! - a status in `success_status` (any 2xx when not given) is success, unless
//!   `success_body` is set and the response body does not contain it: the provider took the
//!   request and said something else, which a retry would not change (and a wrong marker
//!   would resend codes), so that is a permanent failure;
//! - 408, 429 and 5xx are temporary: the provider is busy or down;
//! - anything else (4xx, 3xx, a 2xx outside `success_status`) is permanent.
//!
//! Error texts name the peer and the status; never the URL's path or query, the request
//! body or the response body, any of which may hold the passcode.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tollgate_config::{GatewayConfig, HttpContentType, Template};
use url::{Host, Position, Url};
use zeroize::Zeroizing;

use super::render::{self, Escape, Values};
use super::{GatewayError, SendError};
use crate::delivery::Message;

/// Most of a response body read to look for `success_body`.
const MAX_RESPONSE_BODY: usize = 64 * 1024;

pub(super) struct HttpGateway {
    method: Method,
    url: Template,
    headers: Vec<(HeaderName, Template)>,
    body: Option<Template>,
    content_type: HttpContentType,
    /// `Basic ...`, marked sensitive so hyper never shows it.
    authorization: Option<HeaderValue>,
    success_status: Vec<u16>,
    success_body: Option<String>,
    from: String,
    account: String,
    timeout: Duration,
    /// Set when the URL is `https://`.
    tls: Option<tokio_rustls::TlsConnector>,
}

/// A request ready to go: the URL (which may hold the passcode in its query), the headers
/// and the body.
pub(super) struct Prepared {
    pub url: Url,
    pub method: Method,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Zeroizing<Vec<u8>>,
}

impl HttpGateway {
    pub(super) fn new(c: &GatewayConfig) -> Result<HttpGateway, GatewayError> {
        let fail = |m: String| GatewayError::new(&c.name, m);
        let s = c.http().map_err(|e| fail(e.to_string()))?;
        let authorization = match &s.username {
            Some(user) => {
                let password = c
                    .resolve_password()
                    .map_err(|e| fail(e.to_string()))?
                    .ok_or_else(|| fail("username needs password or password_file".to_owned()))?;
                let mut pair = Zeroizing::new(user.as_bytes().to_vec());
                pair.push(b':');
                pair.extend_from_slice(password.expose());
                let value = Zeroizing::new(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(&*pair)
                ));
                let mut value = HeaderValue::from_str(&value)
                    .map_err(|_| fail("username cannot go in a header".to_owned()))?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let mut headers = Vec::new();
        for (name, value) in s.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| fail(format!("headers.{name}: not a header name")))?;
            headers.push((name, value));
        }
        // The scheme is fixed by the template's text (validation keeps placeholders out of
        // it), so a sample rendering tells whether TLS is needed.
        let sample = render::render(&s.url, &sample_values(), Escape::Url);
        let sample = Url::parse(&sample).map_err(|e| fail(format!("url: {e}")))?;
        let tls = if sample.scheme() == "https" {
            let config = super::tls_client_config(c.ca_file.as_deref()).map_err(fail)?;
            Some(tokio_rustls::TlsConnector::from(config))
        } else {
            None
        };
        Ok(HttpGateway {
            method: Method::from_bytes(s.method.as_str().as_bytes())
                .map_err(|e| fail(format!("method: {e}")))?,
            url: s.url,
            headers,
            body: s.body,
            content_type: s.content_type,
            authorization,
            success_status: s.success_status,
            success_body: s.success_body,
            from: c.from.clone().unwrap_or_default(),
            account: c.account.clone().unwrap_or_default(),
            timeout: Duration::from_millis(c.timeout_ms()),
            tls,
        })
    }

    /// Renders the request of one message.
    pub(super) fn prepare(&self, msg: &Message) -> Result<Prepared, SendError> {
        let values = Values {
            to: &msg.to,
            message: &msg.body,
            id: msg.id,
            subject: &msg.subject,
            from: &self.from,
            account: &self.account,
        };
        let rendered = render::render(&self.url, &values, Escape::Url);
        let url = Url::parse(&rendered)
            .map_err(|e| SendError::Permanent(format!("the rendered url does not parse: {e}")))?;
        // A value that is a whole path segment of `.` or `..` would be resolved away by
        // the URL's normalisation and change the path: refuse rather than send elsewhere.
        if url.as_str() != rendered.as_str() {
            return Err(SendError::Permanent(
                "a value would change the url's path (a `.` or `..` segment)".to_owned(),
            ));
        }
        let mut headers = vec![(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("tollgate/", env!("CARGO_PKG_VERSION"))),
        )];
        let body = match &self.body {
            Some(t) => {
                let escape = match self.content_type {
                    HttpContentType::Form => Escape::Form,
                    HttpContentType::Json => Escape::Json,
                };
                headers.push((
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(self.content_type.as_str()),
                ));
                let text = render::render(t, &values, escape);
                Zeroizing::new(text.as_bytes().to_vec())
            }
            None => Zeroizing::new(Vec::new()),
        };
        if let Some(auth) = &self.authorization {
            headers.push((header::AUTHORIZATION, auth.clone()));
        }
        for (name, t) in &self.headers {
            let text = render::render(t, &values, Escape::Header);
            let mut value = HeaderValue::from_bytes(text.as_bytes()).map_err(|_| {
                SendError::Permanent(format!("header {name} cannot hold its value"))
            })?;
            // Values may hold the passcode; hyper then keeps them out of its debug output.
            value.set_sensitive(true);
            headers.push((name.clone(), value));
        }
        Ok(Prepared {
            url,
            method: self.method.clone(),
            headers,
            body,
        })
    }

    pub(super) async fn send(&self, msg: &Message) -> Result<(), SendError> {
        let prepared = self.prepare(msg)?;
        let peer = peer_of(&prepared.url);
        match tokio::time::timeout(self.timeout, self.exchange(prepared, &peer)).await {
            Ok(result) => result,
            Err(_) => Err(SendError::Transient(format!(
                "no answer from {peer} within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    async fn exchange(&self, mut p: Prepared, peer: &str) -> Result<(), SendError> {
        let host = p
            .url
            .host()
            .map(|h| h.to_owned())
            .ok_or_else(|| SendError::Permanent("the url has no host".to_owned()))?;
        let port = p.url.port_or_known_default().unwrap_or(80);
        let mut request = Request::builder()
            .method(p.method.clone())
            .uri(&p.url[Position::BeforePath..Position::AfterQuery])
            .header(
                header::HOST,
                &p.url[Position::BeforeHost..Position::AfterPort],
            )
            .header(header::CONNECTION, "close");
        for (name, value) in p.headers.drain(..) {
            request = request.header(name, value);
        }
        // The body moves into hyper's buffer, which is not wiped; it lives as long as the
        // request does.
        let body = Full::new(Bytes::from(std::mem::take(&mut *p.body)));
        let request = request
            .body(body)
            .map_err(|e| SendError::Permanent(format!("cannot build the request: {e}")))?;
        let tcp = connect(&host, port, peer).await?;
        let _ = tcp.set_nodelay(true);
        match (&self.tls, p.url.scheme()) {
            (Some(tls), "https") => {
                let name = match &host {
                    Host::Domain(d) => ServerName::try_from(d.clone()),
                    Host::Ipv4(ip) => Ok(ServerName::from(std::net::IpAddr::V4(*ip))),
                    Host::Ipv6(ip) => Ok(ServerName::from(std::net::IpAddr::V6(*ip))),
                }
                .map_err(|_| SendError::Permanent(format!("{peer}: not a TLS server name")))?;
                let stream = tls.connect(name, tcp).await.map_err(|e| {
                    SendError::Transient(format!("TLS handshake with {peer} failed: {e}"))
                })?;
                self.round_trip(stream, request, peer).await
            }
            (None, "http") => self.round_trip(tcp, request, peer).await,
            _ => Err(SendError::Permanent(format!(
                "{peer}: the url's scheme changed after start-up"
            ))),
        }
    }

    /// Sends the request on a fresh connection and judges the answer.
    async fn round_trip<S>(
        &self,
        io: S,
        request: Request<Full<Bytes>>,
        peer: &str,
    ) -> Result<(), SendError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let broken = |e: hyper::Error| {
            SendError::Transient(format!("HTTP exchange with {peer} failed: {e}"))
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(broken)?;
        let exchange = async move {
            let response = sender.send_request(request).await.map_err(broken)?;
            let status = response.status();
            let confirmed = match &self.success_body {
                Some(needle) if accepted(status, &self.success_status) => {
                    let body = Limited::new(response.into_body(), MAX_RESPONSE_BODY)
                        .collect()
                        .await
                        .map_err(|e| {
                            SendError::Transient(format!(
                                "{peer} answered {status} but its body could not be read: {e}"
                            ))
                        })?
                        .to_bytes();
                    Some(contains(&body, needle.as_bytes()))
                }
                _ => None,
            };
            judge(status, &self.success_status, confirmed)
                .map_err(|e| e.map_text(|m| format!("{peer}: {m}")))
        };
        tokio::pin!(conn);
        tokio::pin!(exchange);
        tokio::select! {
            biased;
            result = &mut exchange => result,
            ended = &mut conn => match ended {
                // The connection is done; what it received is already with the exchange.
                Ok(()) => exchange.await,
                Err(e) => Err(broken(e)),
            },
        }
    }
}

/// Whether a status means "sent" before the body is looked at.
fn accepted(status: StatusCode, success_status: &[u16]) -> bool {
    if success_status.is_empty() {
        status.is_success()
    } else {
        success_status.contains(&status.as_u16())
    }
}

/// The decision on an answer (see the module documentation); `confirmed` says whether
/// the body held `success_body`, when it was looked for.
fn judge(
    status: StatusCode,
    success_status: &[u16],
    confirmed: Option<bool>,
) -> Result<(), SendError> {
    if accepted(status, success_status) {
        return match confirmed {
            Some(false) => Err(SendError::Permanent(format!(
                "answered {status} without the success_body text"
            ))),
            _ => Ok(()),
        };
    }
    let text = format!("answered {status}");
    let code = status.as_u16();
    if code == 408 || code == 429 || status.is_server_error() {
        Err(SendError::Transient(text))
    } else if status.is_success() {
        Err(SendError::Permanent(format!(
            "{text}, which is not in success_status"
        )))
    } else {
        Err(SendError::Permanent(text))
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// `host:port` of a URL, for error texts.
fn peer_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

async fn connect(host: &Host<String>, port: u16, peer: &str) -> Result<TcpStream, SendError> {
    let addrs: Vec<SocketAddr> = match host {
        Host::Ipv4(ip) => vec![SocketAddr::from((*ip, port))],
        Host::Ipv6(ip) => vec![SocketAddr::from((*ip, port))],
        Host::Domain(name) => tokio::net::lookup_host((name.as_str(), port))
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
        Some(e) => format!("cannot connect to {peer}: {e}"),
        None => format!("{peer} has no address"),
    }))
}

fn sample_values() -> Values<'static> {
    Values {
        to: "1",
        message: "1",
        id: 1,
        subject: "1",
        from: "1",
        account: "1",
    }
}

impl std::fmt::Debug for HttpGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpGateway")
            .field("method", &self.method)
            .field("content_type", &self.content_type)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::Channel;
    use tollgate_config::Config;

    fn gateway(toml: &str) -> HttpGateway {
        let c = Config::parse(toml).expect("valid config");
        HttpGateway::new(&c.gateways[0]).expect("gateway")
    }

    fn sms(to: &str, body: &str) -> Message {
        Message {
            key: 7,
            id: 31,
            channel: Channel::Sms,
            to: to.to_owned(),
            subject: String::new(),
            body: Zeroizing::new(body.to_owned()),
        }
    }

    fn header<'a>(p: &'a Prepared, name: &str) -> Option<&'a str> {
        p.headers
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| v.to_str().unwrap())
    }

    #[test]
    fn the_twilio_preset_posts_a_form_with_basic_auth() {
        let g = gateway(
            "[[gateway]]\nname='tw'\nchannel='sms'\ntype='http'\npreset='twilio'\naccount='AC0123'\npassword='tok3n'\nfrom='+15550001111'",
        );
        let p = g
            .prepare(&sms("+15552223333", "Code: 123 456 & more"))
            .unwrap();
        assert_eq!(p.method, Method::POST);
        assert_eq!(
            p.url.as_str(),
            "https://api.twilio.com/2010-04-01/Accounts/AC0123/Messages.json"
        );
        assert_eq!(
            header(&p, "content-type"),
            Some("application/x-www-form-urlencoded")
        );
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("AC0123:tok3n")
        );
        assert_eq!(header(&p, "authorization"), Some(expected.as_str()));
        let form: Vec<(String, String)> =
            url::form_urlencoded::parse(&p.body).into_owned().collect();
        assert_eq!(
            form,
            [
                ("To", "+15552223333"),
                ("From", "+15550001111"),
                ("Body", "Code: 123 456 & more")
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn the_vonage_preset_posts_json_with_the_bare_number() {
        let g = gateway(
            "[[gateway]]\nname='vg'\nchannel='sms'\ntype='http'\npreset='vonage'\nusername='key1'\npassword='sec2'\nfrom='Tollgate'",
        );
        let p = g
            .prepare(&sms("+44 7700 900000", "Your \"code\" is 7"))
            .unwrap();
        assert_eq!(p.method, Method::POST);
        assert_eq!(p.url.as_str(), "https://api.nexmo.com/v1/messages");
        assert_eq!(header(&p, "content-type"), Some("application/json"));
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("key1:sec2")
        );
        assert_eq!(header(&p, "authorization"), Some(expected.as_str()));
        let v: serde_json::Value = serde_json::from_slice(&p.body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "message_type": "text",
                "channel": "sms",
                "to": "447700900000",
                "from": "Tollgate",
                "text": "Your \"code\" is 7",
            })
        );
    }

    #[test]
    fn a_custom_request_fills_url_headers_and_body() {
        let g = gateway(
            "[[gateway]]\nname='c'\nchannel='voice'\ntype='http'\nmethod='PUT'\nurl='http://127.0.0.1:9/call/{to}?ref={id}'\ncontent_type='application/json'\nbody='{\"say\":\"{message}\"}'\n[gateway.headers]\nX-Ref = 'tg-{id} {to}'\n",
        );
        let p = g.prepare(&sms("+1 555\r\nX-Evil: 1", "one two")).unwrap();
        assert_eq!(p.method, Method::PUT);
        assert_eq!(
            p.url.as_str(),
            "http://127.0.0.1:9/call/%2B1%20555%0D%0AX-Evil%3A%201?ref=31"
        );
        assert_eq!(header(&p, "x-ref"), Some("tg-31 +1 555  X-Evil: 1"));
        assert_eq!(header(&p, "authorization"), None);
        assert_eq!(&p.body[..], br#"{"say":"one two"}"#);
    }

    #[test]
    fn answers_are_judged_by_status_and_body() {
        let s = |c: u16| StatusCode::from_u16(c).unwrap();
        let transient = |r: Result<(), SendError>| matches!(r, Err(SendError::Transient(_)));
        let permanent = |r: Result<(), SendError>| matches!(r, Err(SendError::Permanent(_)));
        assert!(judge(s(200), &[], None).is_ok());
        assert!(judge(s(201), &[], None).is_ok());
        assert!(judge(s(202), &[202], Some(true)).is_ok());
        assert!(permanent(judge(s(200), &[], Some(false))));
        assert!(permanent(judge(s(200), &[202], None)));
        for code in [500, 502, 503, 504, 408, 429] {
            assert!(transient(judge(s(code), &[], None)), "{code}");
        }
        for code in [301, 302, 400, 401, 403, 404, 422] {
            assert!(permanent(judge(s(code), &[], None)), "{code}");
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let g = gateway(
            "[[gateway]]\nname='vg'\nchannel='sms'\ntype='http'\npreset='vonage'\nusername='key1'\npassword='sec2'\nfrom='Tollgate'",
        );
        let shown = format!("{g:?}");
        assert!(
            !shown.contains("sec2") && !shown.contains("a2V5MTpzZWMy"),
            "{shown}"
        );
        let p = g.prepare(&sms("+1", "m")).unwrap();
        let shown = format!("{:?}", p.headers);
        assert!(!shown.contains("a2V5MTpzZWMy"), "{shown}");
    }
}
