//! Gateways: each carries one message to a phone or a mailbox and says how it went.
//!
//! Kinds: `file` (a local JSON-lines file), `smtp` (e-mail), `http` (an SMS or voice
//! provider's API), `fcm` and `apns` (push notifications to an enrolled phone; a push
//! message's body is a [`PushPayload`]).
//!
//! A [`Gateway`] is built from a `[[gateway]]` section once, at start-up, so that a bad
//! certificate file or sender address stops the server before it binds rather than at the
//! first login. [`Gateway::send`] then carries one [`Message`] and answers `Ok` when the
//! next hop has taken it (a file written and synced, an SMTP relay's `250`, a provider's
//! success status), or a [`SendError`] that tells the dispatcher whether trying again can
//! help.
//!
//! The message body holds a passcode. Nothing here logs it, and no error text carries it:
//! errors name the gateway's peer and its answer (a status, an SMTP reply), never the
//! request that was sent or the response body, which providers often echo the text in.
//! The push gateways' signing keys and tokens never leave them: `Debug` shows neither.

mod apns;
mod fcm;
mod file;
mod http;
mod http2;
mod jwt;
mod push;
mod render;
mod smtp;

pub use apns::PROVIDER_TOKEN_LIFETIME;
pub use fcm::FCM_SCOPE;
pub use push::PushPayload;

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tollgate_config::{GatewayChannel, GatewayConfig, GatewayType};

use super::{Channel, Message};

/// Why a message did not go out.
///
/// The text says what the peer answered or what failed on the way to it; it never holds
/// the message body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Trying again later, or through another gateway, may work: no connection, a timeout,
    /// HTTP 5xx, 408 or 429, SMTP 4xx.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// The same request will be refused again: HTTP 4xx (but 408 and 429), an answer that
    /// does not confirm the message, SMTP 5xx, a destination that is not an address.
    #[error("refused: {0}")]
    Permanent(String),
    /// The destination no longer exists: a push service says the device's token is
    /// unregistered (the app was removed or its token renewed). Permanent, and the token
    /// is forgotten so that no later notification goes to it.
    #[error("unregistered destination: {0}")]
    Unregistered(String),
}

impl SendError {
    /// Whether trying again may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient(_))
    }

    /// The same error with its text rewritten by `f` (to name the peer, or to redact).
    pub fn map_text(self, f: impl FnOnce(String) -> String) -> SendError {
        match self {
            SendError::Transient(t) => SendError::Transient(f(t)),
            SendError::Permanent(t) => SendError::Permanent(f(t)),
            SendError::Unregistered(t) => SendError::Unregistered(f(t)),
        }
    }
}

/// A gateway that cannot be set up from its configuration.
#[derive(Debug, thiserror::Error)]
#[error("gateway `{name}`: {message}")]
pub struct GatewayError {
    /// The gateway's name.
    pub name: String,
    /// What is wrong.
    pub message: String,
}

impl GatewayError {
    fn new(name: &str, message: impl Into<String>) -> Self {
        GatewayError {
            name: name.to_owned(),
            message: message.into(),
        }
    }
}

/// One configured way of delivering messages of one channel.
pub struct Gateway {
    name: String,
    channel: Channel,
    kind: Kind,
}

enum Kind {
    File(file::FileGateway),
    Smtp(smtp::SmtpGateway),
    Http(http::HttpGateway),
    // The push gateways hold two connections, keys and tokens: boxed, so that the other
    // kinds do not carry their size.
    Fcm(Box<fcm::FcmGateway>),
    Apns(Box<apns::ApnsGateway>),
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("name", &self.name)
            .field("channel", &self.channel)
            .field("type", &self.kind().as_str())
            .finish()
    }
}

/// The name of the built-in file gateways made by [`Gateway::outbox_file`].
pub const OUTBOX_FILE_GATEWAY: &str = "outbox-file";

impl Gateway {
    /// Builds a gateway from its section: the section is checked again (it may not come
    /// from a parsed file), passwords, keys and certificate files are read, the sender
    /// address is parsed, and a file gateway's file is created. Push gateways open their
    /// connection at the first send.
    pub fn from_config(c: &GatewayConfig) -> Result<Gateway, GatewayError> {
        c.check()
            .map_err(|e| GatewayError::new(&c.name, e.to_string()))?;
        let kind = match c.kind {
            GatewayType::File => {
                let path = c
                    .path
                    .as_deref()
                    .ok_or_else(|| GatewayError::new(&c.name, "a file gateway needs path"))?;
                Kind::File(
                    file::FileGateway::open(path)
                        .map_err(|e| GatewayError::new(&c.name, e.to_string()))?,
                )
            }
            GatewayType::Smtp => Kind::Smtp(smtp::SmtpGateway::new(c)?),
            GatewayType::Http => Kind::Http(http::HttpGateway::new(c)?),
            GatewayType::Fcm => Kind::Fcm(Box::new(fcm::FcmGateway::new(c)?)),
            GatewayType::Apns => Kind::Apns(Box::new(apns::ApnsGateway::new(c)?)),
        };
        Ok(Gateway {
            name: c.name.clone(),
            channel: channel_of(c.channel),
            kind,
        })
    }

    /// The built-in file gateway of a channel that has no `[[gateway]]`: every message is
    /// appended to `path` (mode 0600), so a new installation shows its codes without any
    /// provider. Its name is [`OUTBOX_FILE_GATEWAY`].
    pub fn outbox_file(channel: Channel, path: &Path) -> Result<Gateway, GatewayError> {
        let file = file::FileGateway::open(path)
            .map_err(|e| GatewayError::new(OUTBOX_FILE_GATEWAY, e.to_string()))?;
        Ok(Gateway {
            name: OUTBOX_FILE_GATEWAY.to_owned(),
            channel,
            kind: Kind::File(file),
        })
    }

    /// The gateway's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The channel it serves.
    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// How it carries messages.
    pub fn kind(&self) -> GatewayType {
        match self.kind {
            Kind::File(_) => GatewayType::File,
            Kind::Smtp(_) => GatewayType::Smtp,
            Kind::Http(_) => GatewayType::Http,
            Kind::Fcm(_) => GatewayType::Fcm,
            Kind::Apns(_) => GatewayType::Apns,
        }
    }

    /// Carries one message. A file gateway records a message of any channel; the others
    /// refuse one that is not of their channel.
    pub async fn send(&self, msg: &Message) -> Result<(), SendError> {
        self.send_unscrubbed(msg)
            .await
            .map_err(|e| scrub(e, &msg.body))
    }

    async fn send_unscrubbed(&self, msg: &Message) -> Result<(), SendError> {
        match &self.kind {
            Kind::File(f) => f.send(msg).await,
            _ if msg.channel != self.channel => Err(SendError::Permanent(format!(
                "a {} message cannot go through a {} gateway",
                msg.channel.as_str(),
                self.channel.as_str()
            ))),
            Kind::Smtp(s) => s.send(msg).await,
            Kind::Http(h) => h.send(msg).await,
            Kind::Fcm(g) => g.send(msg).await,
            Kind::Apns(g) => g.send(msg).await,
        }
    }
}

/// Removes from an error text every run of four or more digits that the message body
/// holds. Gateways build their texts from what the peer answered, never from the body; a
/// peer that quotes the message back (a content filter's reply, say) must still not put
/// the passcode into a log line.
fn scrub(e: SendError, body: &str) -> SendError {
    let clean = |text: String| {
        let mut text = text;
        for run in body
            .split(|c: char| !c.is_ascii_digit())
            .filter(|run| run.len() >= 4)
        {
            if text.contains(run) {
                text = text.replace(run, "<redacted>");
            }
        }
        text
    };
    e.map_text(clean)
}

fn channel_of(c: GatewayChannel) -> Channel {
    match c {
        GatewayChannel::Sms => Channel::Sms,
        GatewayChannel::Email => Channel::Email,
        GatewayChannel::Voice => Channel::Voice,
        GatewayChannel::Fcm => Channel::Fcm,
        GatewayChannel::Apns => Channel::Apns,
    }
}

/// The certificates of a `ca_file`, which must hold at least one.
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("ca_file {} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// TLS settings for an HTTPS peer spoken to over HTTP/1.1: the certificates of `ca_file`,
/// or the system's roots.
fn tls_client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    tls_client_config_alpn(ca_file, &[b"http/1.1"])
}

/// TLS settings for an HTTPS peer, offering the application protocols `alpn`.
fn tls_client_config_alpn(
    ca_file: Option<&Path>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in read_ca_file(path)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(
                    "no system root certificates found (install ca-certificates or set ca_file)"
                        .to_owned(),
                );
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(tls))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_config::Config;
    use zeroize::Zeroizing;

    fn gateway(toml: &str) -> Result<Gateway, GatewayError> {
        let c = Config::parse(toml).expect("valid config");
        Gateway::from_config(&c.gateways[0])
    }

    fn message(channel: Channel) -> Message {
        Message {
            key: 7,
            id: 7,
            channel,
            to: "+15550001111".to_owned(),
            subject: String::new(),
            body: Zeroizing::new("Your code is 918273".to_owned()),
        }
    }

    #[tokio::test]
    async fn a_message_of_another_channel_is_refused() {
        let g = gateway(
            "[[gateway]]\nname='v'\nchannel='voice'\ntype='http'\nurl='http://127.0.0.1:9/call?to={to}&say={message}'\nmethod='GET'",
        )
        .unwrap();
        assert_eq!(g.channel(), Channel::Voice);
        assert_eq!(g.kind(), GatewayType::Http);
        let e = g.send(&message(Channel::Sms)).await.unwrap_err();
        assert!(!e.is_transient(), "{e}");
        assert!(!e.to_string().contains("918273"));
    }

    #[test]
    fn setup_errors_name_the_gateway_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = gateway(&format!(
            "[[gateway]]\nname='sms-a'\nchannel='sms'\ntype='http'\nurl='https://sms.example/x?to={{to}}&m={{message}}'\nmethod='GET'\nca_file={:?}",
            missing.display().to_string()
        ))
        .unwrap_err();
        assert_eq!(e.name, "sms-a");
        assert!(e.to_string().contains("nope.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = gateway(&format!(
            "[[gateway]]\nname='m'\nchannel='email'\ntype='smtp'\nhost='127.0.0.1'\nfrom='a@b.example'\nca_file={:?}",
            empty.display().to_string()
        ))
        .unwrap_err();
        assert!(e.to_string().contains("holds no certificate"), "{e}");
        let e = gateway(
            "[[gateway]]\nname='m'\nchannel='email'\ntype='smtp'\nhost='127.0.0.1'\nfrom='a@b@c'",
        );
        assert!(e.is_err());
    }

    #[test]
    fn errors_never_quote_the_code() {
        let e = SendError::Permanent(
            "relay:25: 550 content rejected: \"Your code is 918273, valid 5 min\"".to_owned(),
        );
        let e = scrub(e, "Your code is 918273, valid 5 min");
        assert_eq!(
            e,
            SendError::Permanent(
                "relay:25: 550 content rejected: \"Your code is <redacted>, valid 5 min\""
                    .to_owned()
            )
        );
        let kept = scrub(
            SendError::Transient("answered 503".to_owned()),
            "code 918273",
        );
        assert_eq!(kept, SendError::Transient("answered 503".to_owned()));
    }

    #[test]
    fn an_unchecked_section_is_checked_again() {
        let c = Config::parse("[[gateway]]\nname='f'\nchannel='sms'\ntype='file'\npath='/tmp/x'")
            .unwrap();
        let mut g = c.gateways[0].clone();
        g.path = None;
        let e = Gateway::from_config(&g).unwrap_err();
        assert!(e.to_string().contains("gateway.path"), "{e}");
    }
}
