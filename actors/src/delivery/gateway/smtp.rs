//! The SMTP gateway: one e-mail per message, through a relay, with lettre.
//!
//! Each message opens its own connection (no pool, so nothing runs in the background and
//! a relay that went away costs one failed attempt, not a stale connection). The
//! connection is protected as configured: STARTTLS that must succeed before anything else
//! is sent, TLS from the first byte, or, only when asked for, none. The relay's
//! certificate is checked against `ca_file` or the system's roots.
//!
//! The e-mail is `text/plain; charset=utf-8` with From, To, Subject, Date and a
//! Message-ID of our own (`<outbox id>.<message key>@<sender's domain>`), the same at every
//! attempt: when a relay takes a message and fails before it says so (a crash in the middle
//! of the transaction), the retry is a second copy that SMTP cannot prevent, but one that
//! names itself the same message, so that mail systems and clients can fold the two.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tollgate_config::{GatewayConfig, SmtpTls};

use super::{GatewayError, SendError};
use crate::delivery::Message;

pub(super) struct SmtpGateway {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The relay as `host:port`, for error texts.
    relay: String,
    timeout: Duration,
}

impl SmtpGateway {
    pub(super) fn new(c: &GatewayConfig) -> Result<SmtpGateway, GatewayError> {
        let fail = |m: String| GatewayError::new(&c.name, m);
        let host = c
            .host
            .clone()
            .ok_or_else(|| fail("an smtp gateway needs host".to_owned()))?;
        let from: Mailbox = c
            .from
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|e| fail(format!("from: not an e-mail address: {e}")))?;
        let timeout = Duration::from_millis(c.timeout_ms());
        let port = c.smtp_port();
        let tls = match c.smtp_tls() {
            SmtpTls::None => Tls::None,
            mode => {
                let mut params = TlsParameters::builder(host.clone());
                if let Some(path) = &c.ca_file {
                    // Only the file's authorities, as for LDAP and HTTP gateways.
                    params = params.certificate_store(CertificateStore::None);
                    for der in super::read_ca_file(path).map_err(fail)? {
                        let cert = Certificate::from_der(der.to_vec())
                            .map_err(|e| fail(format!("ca_file {}: {e}", path.display())))?;
                        params = params.add_root_certificate(cert);
                    }
                }
                let params = params
                    .build_rustls()
                    .map_err(|e| fail(format!("TLS: {e}")))?;
                if mode == SmtpTls::Tls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
            .port(port)
            .tls(tls)
            .timeout(Some(timeout));
        if let Some(user) = &c.username {
            let password = c
                .resolve_password()
                .map_err(|e| fail(e.to_string()))?
                .ok_or_else(|| fail("username needs password or password_file".to_owned()))?;
            let password = String::from_utf8(password.expose().to_vec())
                .map_err(|_| fail("the password is not UTF-8".to_owned()))?;
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(SmtpGateway {
            transport: builder.build(),
            from,
            relay: format!("{host}:{port}"),
            timeout,
        })
    }

    pub(super) async fn send(&self, msg: &Message) -> Result<(), SendError> {
        let to: Mailbox = msg.to.parse().map_err(|_| {
            SendError::Permanent("the destination is not an e-mail address".to_owned())
        })?;
        let message_id = format!("<{}.{:016x}@{}>", msg.id, msg.key, self.from.email.domain());
        let email = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(msg.subject.as_str())
            .date_now()
            .message_id(Some(message_id))
            .header(ContentType::TEXT_PLAIN)
            .body(msg.body.as_str().to_owned())
            // A builder error names a missing or bad header, never the body.
            .map_err(|e| SendError::Permanent(format!("cannot build the e-mail: {e}")))?;
        match tokio::time::timeout(self.timeout, self.transport.send(email)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify(&self.relay, &e)),
            Err(_) => Err(SendError::Transient(format!(
                "no answer from {} within {} ms",
                self.relay,
                self.timeout.as_millis()
            ))),
        }
    }
}

/// Sorts an SMTP failure: a 5xx reply is final, everything else (4xx, no connection, a
/// timeout, a failed handshake) may pass on another try. The text is the relay's reply or
/// the transport's error; neither carries the message.
fn classify(relay: &str, e: &lettre::transport::smtp::Error) -> SendError {
    let text = format!("{relay}: {e}");
    if e.is_permanent() {
        SendError::Permanent(text)
    } else {
        SendError::Transient(text)
    }
}
