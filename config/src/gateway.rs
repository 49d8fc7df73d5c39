//! `[[gateway]]`: the ways a message reaches a user (SMS, e-mail, voice, push
//! notifications).
//!
//! Each section is one gateway with a unique `name`, the `channel` it serves and a `type`:
//! `file` appends every message to a local JSON-lines file (the embedded default, so a new
//! installation shows its codes without any provider), `smtp` sends e-mail, `http` calls an
//! SMS or voice provider's web API, `fcm` and `apns` send push notifications to an
//! enrolled phone through Firebase Cloud Messaging and the Apple Push Notification
//! service. The keys of every type live in one flat table so that a
//! misplaced key is reported under its own path (`gateway[1].url`); validation then refuses
//! keys that do not belong to the section's type.
//!
//! An `http` gateway is described by templates: `{to}`, `{message}` and the other
//! [`Placeholder`]s are replaced when a message is sent, each escaped for the place it
//! stands in (percent-encoded in the URL and in a form body, JSON-escaped in a JSON body,
//! stripped of line breaks in a header). A `preset` fills the templates for a well-known
//! provider; every key the section sets still wins over the preset's.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde::Deserialize;

use crate::{valid_name_char, ConfigError, SharedSecret};

/// The channel a gateway serves.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayChannel {
    /// Text messages to mobile numbers.
    Sms,
    /// E-mail.
    Email,
    /// Voice calls that read the message out.
    Voice,
    /// Push notifications to Android (and other Firebase) apps.
    Fcm,
    /// Push notifications to iOS apps.
    Apns,
}

impl GatewayChannel {
    /// `sms`, `email`, `voice`, `fcm` or `apns`, as in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayChannel::Sms => "sms",
            GatewayChannel::Email => "email",
            GatewayChannel::Voice => "voice",
            GatewayChannel::Fcm => "fcm",
            GatewayChannel::Apns => "apns",
        }
    }
}

/// How a gateway carries a message.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayType {
    /// Appends to a local JSON-lines file.
    File,
    /// Sends e-mail through an SMTP relay.
    Smtp,
    /// Calls a provider's HTTP API.
    Http,
    /// Firebase Cloud Messaging's HTTP v1 API, authorised by a Google service account.
    Fcm,
    /// Apple's HTTP/2 provider API, authorised by a signing key (token authentication).
    Apns,
}

impl GatewayType {
    /// `file`, `smtp`, `http`, `fcm` or `apns`, as in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayType::File => "file",
            GatewayType::Smtp => "smtp",
            GatewayType::Http => "http",
            GatewayType::Fcm => "fcm",
            GatewayType::Apns => "apns",
        }
    }
}

/// How an SMTP connection is protected.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// A plain connection upgraded with STARTTLS before anything else is sent; a server
    /// that does not offer STARTTLS is refused (port 587 by default).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, port 465 by default).
    Tls,
    /// No TLS at all (port 25 by default): only with `allow_plain = true`.
    None,
}

/// The HTTP method of an `http` gateway's request.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// `GET`: everything goes in the URL; no body.
    Get,
    /// `POST` (the default).
    #[default]
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
}

impl HttpMethod {
    /// The method as it goes on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
        }
    }
}

/// The media type of an `http` gateway's body, which decides how placeholders are escaped
/// in it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum HttpContentType {
    /// `application/x-www-form-urlencoded` (the default): values are form-encoded.
    #[default]
    #[serde(rename = "application/x-www-form-urlencoded")]
    Form,
    /// `application/json`: values are escaped as the inside of a JSON string, so the
    /// template puts them between quotes (`"text": "{message}"`).
    #[serde(rename = "application/json")]
    Json,
}

impl HttpContentType {
    /// The `Content-Type` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpContentType::Form => "application/x-www-form-urlencoded",
            HttpContentType::Json => "application/json",
        }
    }
}

/// A provider whose HTTP SMS API an `http` gateway can speak without templates.
///
/// Each preset follows the request shape the provider publishes; the shapes are checked by
/// Tollgate's tests against a local server, not against the providers themselves. Any key
/// the section sets (`url`, `body`, `headers`, ...) replaces the preset's value, so a
/// change on the provider's side can be followed without a new release.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpPreset {
    /// Twilio's Programmable Messaging REST API (version 2010-04-01): a form `POST` of
    /// `To`, `From` and `Body` to `/2010-04-01/Accounts/{account}/Messages.json` on
    /// `api.twilio.com`, with HTTP basic authentication as the Account SID (`account`,
    /// or an API key SID in `username`) and the auth token or key secret (`password`).
    /// Twilio answers `201 Created`; any 2xx counts as sent.
    Twilio,
    /// Vonage's Messages API (v1): a JSON `POST` to `https://api.nexmo.com/v1/messages`
    /// with `message_type = "text"`, `channel = "sms"`, `to` (the number's digits, without
    /// a leading `+`), `from` and `text`, with HTTP basic authentication as the API key
    /// (`username`) and secret (`password`). Vonage answers `202 Accepted`; any 2xx counts
    /// as sent.
    Vonage,
}

impl HttpPreset {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpPreset::Twilio => "twilio",
            HttpPreset::Vonage => "vonage",
        }
    }

    fn url(self) -> &'static str {
        match self {
            HttpPreset::Twilio => {
                "https://api.twilio.com/2010-04-01/Accounts/{account}/Messages.json"
            }
            HttpPreset::Vonage => "https://api.nexmo.com/v1/messages",
        }
    }

    fn body(self) -> &'static str {
        match self {
            HttpPreset::Twilio => "To={to}&From={from}&Body={message}",
            HttpPreset::Vonage => {
                r#"{"message_type":"text","channel":"sms","to":"{to_digits}","from":"{from}","text":"{message}"}"#
            }
        }
    }

    fn content_type(self) -> HttpContentType {
        match self {
            HttpPreset::Twilio => HttpContentType::Form,
            HttpPreset::Vonage => HttpContentType::Json,
        }
    }

    /// The account keys the preset cannot do without, beyond what its templates name.
    fn needs(self) -> &'static [&'static str] {
        match self {
            HttpPreset::Twilio => &["account", "password"],
            HttpPreset::Vonage => &["username", "password"],
        }
    }
}

/// A value an `http` gateway's template can name in braces.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Placeholder {
    /// `{to}`: the destination as the user record holds it (a number in E.164 form,
    /// `+4915123456789`).
    To,
    /// `{to_digits}`: the destination's digits alone (`4915123456789`), for providers that
    /// want no `+`.
    ToDigits,
    /// `{message}`: the text, which holds the passcode.
    Message,
    /// `{id}`: the outbox id of the message, unique; usable as a reference or idempotency
    /// key.
    Id,
    /// `{subject}`: the subject line (empty for most SMS and voice messages).
    Subject,
    /// `{from}`: the gateway's `from` key (a sender number or name).
    From,
    /// `{account}`: the gateway's `account` key (an account id).
    Account,
}

impl Placeholder {
    /// Every placeholder.
    pub const ALL: [Placeholder; 7] = [
        Placeholder::To,
        Placeholder::ToDigits,
        Placeholder::Message,
        Placeholder::Id,
        Placeholder::Subject,
        Placeholder::From,
        Placeholder::Account,
    ];

    /// The name between the braces.
    pub fn name(self) -> &'static str {
        match self {
            Placeholder::To => "to",
            Placeholder::ToDigits => "to_digits",
            Placeholder::Message => "message",
            Placeholder::Id => "id",
            Placeholder::Subject => "subject",
            Placeholder::From => "from",
            Placeholder::Account => "account",
        }
    }

    fn parse(name: &str) -> Option<Placeholder> {
        Placeholder::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// One piece of a [`Template`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplatePart {
    /// Text copied as it is.
    Text(String),
    /// A value put in when the message is sent, escaped for where it stands.
    Value(Placeholder),
}

/// A text with placeholders, parsed once when the configuration is read.
///
/// A placeholder is `{` + a lowercase name + `}`; any other brace is plain text, so a JSON
/// body needs no escaping of its own braces. A lowercase name in braces that is not a
/// known placeholder is refused, which catches typos such as `{mesage}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<TemplatePart>,
}

impl Template {
    /// Parses a template; the error says which name is unknown.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            literal.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let name_len = after
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(after.len());
            if name_len > 0 && after[name_len..].starts_with('}') {
                let name = &after[..name_len];
                let p = Placeholder::parse(name).ok_or_else(|| {
                    let known: Vec<String> = Placeholder::ALL
                        .iter()
                        .map(|p| format!("{{{}}}", p.name()))
                        .collect();
                    format!(
                        "`{{{name}}}` is not a placeholder (known: {})",
                        known.join(", ")
                    )
                })?;
                if !literal.is_empty() {
                    parts.push(TemplatePart::Text(std::mem::take(&mut literal)));
                }
                parts.push(TemplatePart::Value(p));
                rest = &after[name_len + 1..];
            } else {
                literal.push('{');
                rest = after;
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(TemplatePart::Text(literal));
        }
        Ok(Template { parts })
    }

    /// The pieces in order.
    pub fn parts(&self) -> &[TemplatePart] {
        &self.parts
    }

    /// Whether the template names `p`.
    pub fn uses(&self, p: Placeholder) -> bool {
        self.parts.contains(&TemplatePart::Value(p))
    }

    /// The text before the first placeholder.
    fn prefix(&self) -> &str {
        match self.parts.first() {
            Some(TemplatePart::Text(t)) => t,
            _ => "",
        }
    }

    /// Renders the template: text is copied, and `value` appends each placeholder's
    /// (escaped) value.
    pub fn render(&self, out: &mut String, mut value: impl FnMut(Placeholder, &mut String)) {
        for part in &self.parts {
            match part {
                TemplatePart::Text(t) => out.push_str(t),
                TemplatePart::Value(p) => value(*p, out),
            }
        }
    }
}

/// `[[gateway]]`: one way of delivering messages.
///
/// Keys of every type share the table; [`GatewayConfig::validate`] refuses those that
/// do not apply to the section's `type`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Unique name, used in logs, metrics and the outbox (letters, digits, '-', '_', '.').
    pub name: String,
    /// The channel served: `sms`, `email`, `voice`, `fcm` or `apns`.
    pub channel: GatewayChannel,
    /// `file`, `smtp`, `http`, `fcm` or `apns`.
    #[serde(rename = "type")]
    pub kind: GatewayType,

    /// `file`: the file that receives one JSON line per message (created with mode 0600).
    #[serde(default)]
    pub path: Option<PathBuf>,

    /// `smtp`: the relay's host name or address.
    #[serde(default)]
    pub host: Option<String>,
    /// `smtp`: the relay's port; 587 for `starttls`, 465 for `tls`, 25 for `none`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `smtp`: `starttls` (default), `tls` or `none`.
    #[serde(default)]
    pub tls: Option<SmtpTls>,
    /// `smtp`: allow `tls = "none"`, which sends passcodes and the password in clear text.
    #[serde(default)]
    pub allow_plain: bool,
    /// `smtp`: the sender address (`Tollgate <noreply@example.com>`); `http`: the sender
    /// number or name, as `{from}`.
    #[serde(default)]
    pub from: Option<String>,

    /// `http`: a provider whose API shape fills the templates below.
    #[serde(default)]
    pub preset: Option<HttpPreset>,
    /// `http`: `GET`, `POST` (default), `PUT` or `PATCH`.
    #[serde(default)]
    pub method: Option<HttpMethod>,
    /// `http`: the URL template (`https://...`; plain `http://` is accepted but shows the
    /// passcode to the network).
    #[serde(default)]
    pub url: Option<String>,
    /// `http`: extra request headers, name → value template.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// `http`: the body template.
    #[serde(default)]
    pub body: Option<String>,
    /// `http`: `application/x-www-form-urlencoded` (default) or `application/json`.
    #[serde(default)]
    pub content_type: Option<HttpContentType>,
    /// `http`: the statuses that mean "sent"; any 2xx when not given.
    #[serde(default)]
    pub success_status: Option<Vec<u16>>,
    /// `http`: a text the response body must contain for the message to count as sent. A
    /// success status without it is a permanent failure: the provider took the request and
    /// said no, and sending it again would say no again (or, if the text is wrong, resend
    /// the code each time).
    #[serde(default)]
    pub success_body: Option<String>,
    /// `http`: the account id of a preset, as `{account}`.
    #[serde(default)]
    pub account: Option<String>,

    /// `smtp`, `http`: the user name to log in with (SMTP AUTH, HTTP basic).
    #[serde(default)]
    pub username: Option<String>,
    /// `smtp`, `http`: the password, inline.
    #[serde(default)]
    pub password: Option<SharedSecret>,
    /// `smtp`, `http`: a file holding the password (trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// `smtp`, `http`, `fcm`, `apns`: PEM file of the certificate authorities to trust;
    /// the system's roots when not given.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// `smtp`, `http`, `fcm`, `apns`: milliseconds one message may take, connection
    /// included (10000). For `fcm` this includes fetching an access token when one is due.
    #[serde(default)]
    pub timeout_ms: Option<u64>,

    /// `fcm`: the Google service-account key file (JSON, as downloaded from the Google
    /// Cloud console): its `client_email`, `private_key` (PKCS#8 RSA, PEM), `token_uri`
    /// and `project_id` are used. It is read when the server starts.
    #[serde(default)]
    pub service_account_file: Option<PathBuf>,
    /// `fcm`: the Firebase project to send through, when it is not the service account's
    /// own `project_id`.
    #[serde(default)]
    pub project_id: Option<String>,
    /// `fcm`, `apns`: the push service's base URL (`https://` only). FCM:
    /// `https://fcm.googleapis.com`; APNs: `https://api.push.apple.com`, or
    /// `https://api.sandbox.push.apple.com` for development builds of the app.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `fcm`, `apns`: seconds a notification stays worth delivering to a phone that is
    /// offline, when the message does not carry its own expiry (300).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    /// `apns`: the Apple developer team id (10 letters and digits).
    #[serde(default)]
    pub team_id: Option<String>,
    /// `apns`: the id of the APNs signing key (10 letters and digits).
    #[serde(default)]
    pub key_id: Option<String>,
    /// `apns`: the signing key file (`AuthKey_<key_id>.p8`: PKCS#8 P-256, PEM). It is read
    /// when the server starts.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// `apns`: the app's bundle id, sent as `apns-topic`.
    #[serde(default)]
    pub topic: Option<String>,
}

/// The effective request description of an `http` gateway: its own keys over its preset's.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// The method.
    pub method: HttpMethod,
    /// The URL template.
    pub url: Template,
    /// Extra headers: name (as written) and value template.
    pub headers: Vec<(String, Template)>,
    /// The body template; none sends an empty body.
    pub body: Option<Template>,
    /// The body's media type.
    pub content_type: HttpContentType,
    /// The user name of HTTP basic authentication, when there is one (its password is
    /// [`GatewayConfig::resolve_password`]).
    pub username: Option<String>,
    /// The statuses that mean "sent"; empty for any 2xx.
    pub success_status: Vec<u16>,
    /// A text the response body must contain.
    pub success_body: Option<String>,
}

/// Default of `timeout_ms`.
pub const DEFAULT_GATEWAY_TIMEOUT_MS: u64 = 10_000;

/// Default `endpoint` of an `fcm` gateway.
pub const DEFAULT_FCM_ENDPOINT: &str = "https://fcm.googleapis.com";

/// Default `endpoint` of an `apns` gateway (production).
pub const DEFAULT_APNS_ENDPOINT: &str = "https://api.push.apple.com";

/// The `endpoint` of APNs for development builds of an app.
pub const APNS_SANDBOX_ENDPOINT: &str = "https://api.sandbox.push.apple.com";

/// Default of `ttl_secs`.
pub const DEFAULT_PUSH_TTL_SECS: u64 = 300;

/// Most of `ttl_secs`: FCM keeps a message at most four weeks.
const MAX_PUSH_TTL_SECS: u64 = 28 * 86_400;

/// Headers the HTTP client writes itself.
const MANAGED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "content-type",
];

impl GatewayConfig {
    /// Milliseconds one message may take.
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms.unwrap_or(DEFAULT_GATEWAY_TIMEOUT_MS)
    }

    /// The push service's base URL of an `fcm` or `apns` gateway: `endpoint`, or the
    /// service's production URL. None for other types.
    pub fn push_endpoint(&self) -> Option<&str> {
        let default = match self.kind {
            GatewayType::Fcm => DEFAULT_FCM_ENDPOINT,
            GatewayType::Apns => DEFAULT_APNS_ENDPOINT,
            _ => return None,
        };
        Some(self.endpoint.as_deref().unwrap_or(default))
    }

    /// Seconds a push notification without an expiry of its own is kept for an offline
    /// phone.
    pub fn push_ttl_secs(&self) -> u64 {
        self.ttl_secs.unwrap_or(DEFAULT_PUSH_TTL_SECS)
    }

    /// How an SMTP connection is protected.
    pub fn smtp_tls(&self) -> SmtpTls {
        self.tls.unwrap_or_default()
    }

    /// The SMTP port: `port`, or the usual one of the TLS mode.
    pub fn smtp_port(&self) -> u16 {
        self.port.unwrap_or(match self.smtp_tls() {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        })
    }

    /// The password, read from `password_file` when given; none when neither is set.
    pub fn resolve_password(&self) -> Result<Option<SharedSecret>, ConfigError> {
        if let Some(path) = &self.password_file {
            return Ok(Some(SharedSecret::from_file(path)?));
        }
        Ok(self.password.clone())
    }

    /// The effective request of an `http` gateway, its preset filled in. Errors name the
    /// key as `gateway.<key>`; [`crate::Config::validate`] reports them with the
    /// section's index.
    pub fn http(&self) -> Result<HttpSettings, ConfigError> {
        self.http_at(&|key| format!("gateway.{key}"))
    }

    fn http_at(&self, at: &dyn Fn(&str) -> String) -> Result<HttpSettings, ConfigError> {
        let template = |key: &str, text: &str| {
            Template::parse(text).map_err(|msg| ConfigError::invalid(at(key), msg))
        };
        let preset = self.preset;
        let url_text = match (&self.url, preset) {
            (Some(u), _) => u.as_str(),
            (None, Some(p)) => p.url(),
            (None, None) => {
                return Err(ConfigError::invalid(at("url"), "give url or preset"));
            }
        };
        let url = template("url", url_text)?;
        let body = match (&self.body, preset) {
            (Some(b), _) => Some(template("body", b)?),
            (None, Some(p)) => Some(template("body", p.body())?),
            (None, None) => None,
        };
        let mut headers = Vec::new();
        for (name, value) in self.headers.iter().flatten() {
            headers.push((name.clone(), template(&format!("headers.{name}"), value)?));
        }
        let username = match (&self.username, preset) {
            (Some(u), _) => Some(u.clone()),
            (None, Some(HttpPreset::Twilio)) => self.account.clone(),
            (None, _) => None,
        };
        Ok(HttpSettings {
            method: self.method.unwrap_or_default(),
            url,
            headers,
            body,
            content_type: self
                .content_type
                .or(preset.map(HttpPreset::content_type))
                .unwrap_or_default(),
            username,
            success_status: self.success_status.clone().unwrap_or_default(),
            success_body: self.success_body.clone(),
        })
    }

    /// Checks this section on its own (that names are unique is the whole file's
    /// business); errors name keys as `gateway.<key>`.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.validate_at(&|key| format!("gateway.{key}"))
    }

    /// Checks one section; `at` turns a key into its path.
    fn validate_at(&self, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        if self.name.is_empty() || self.name.len() > 64 || !self.name.chars().all(valid_name_char) {
            return Err(ConfigError::invalid(
                at("name"),
                "must be 1 to 64 letters, digits, '-', '_' or '.'",
            ));
        }
        let channel_ok = match self.kind {
            GatewayType::File => true,
            GatewayType::Smtp => self.channel == GatewayChannel::Email,
            GatewayType::Http => {
                matches!(self.channel, GatewayChannel::Sms | GatewayChannel::Voice)
            }
            GatewayType::Fcm => self.channel == GatewayChannel::Fcm,
            GatewayType::Apns => self.channel == GatewayChannel::Apns,
        };
        if !channel_ok {
            let want = match self.kind {
                GatewayType::Smtp => "an smtp gateway carries e-mail only (channel = \"email\")",
                GatewayType::Fcm => "an fcm gateway carries channel = \"fcm\" only",
                GatewayType::Apns => "an apns gateway carries channel = \"apns\" only",
                _ => "an http gateway carries sms or voice (e-mail goes through type = \"smtp\", push notifications through type = \"fcm\" or \"apns\")",
            };
            return Err(ConfigError::invalid(at("channel"), want));
        }
        self.refuse_foreign_keys(at)?;
        if let Some(t) = self.timeout_ms {
            if !(100..=120_000).contains(&t) {
                return Err(ConfigError::invalid(
                    at("timeout_ms"),
                    "must be between 100 and 120000",
                ));
            }
        }
        match self.kind {
            GatewayType::File => match &self.path {
                Some(p) if !p.as_os_str().is_empty() => Ok(()),
                _ => Err(ConfigError::invalid(
                    at("path"),
                    "a file gateway needs the path of its file",
                )),
            },
            GatewayType::Smtp => self.validate_smtp(at),
            GatewayType::Http => self.validate_http(at),
            GatewayType::Fcm => self.validate_fcm(at),
            GatewayType::Apns => self.validate_apns(at),
        }
    }

    /// Refuses keys that belong to another type of gateway.
    fn refuse_foreign_keys(&self, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        use GatewayType::{Apns, Fcm, File, Http, Smtp};
        let keys: &[(&str, bool, &[GatewayType])] = &[
            ("path", self.path.is_some(), &[File]),
            ("host", self.host.is_some(), &[Smtp]),
            ("port", self.port.is_some(), &[Smtp]),
            ("tls", self.tls.is_some(), &[Smtp]),
            ("allow_plain", self.allow_plain, &[Smtp]),
            ("from", self.from.is_some(), &[Smtp, Http]),
            ("preset", self.preset.is_some(), &[Http]),
            ("method", self.method.is_some(), &[Http]),
            ("url", self.url.is_some(), &[Http]),
            ("headers", self.headers.is_some(), &[Http]),
            ("body", self.body.is_some(), &[Http]),
            ("content_type", self.content_type.is_some(), &[Http]),
            ("success_status", self.success_status.is_some(), &[Http]),
            ("success_body", self.success_body.is_some(), &[Http]),
            ("account", self.account.is_some(), &[Http]),
            ("username", self.username.is_some(), &[Smtp, Http]),
            ("password", self.password.is_some(), &[Smtp, Http]),
            ("password_file", self.password_file.is_some(), &[Smtp, Http]),
            ("ca_file", self.ca_file.is_some(), &[Smtp, Http, Fcm, Apns]),
            (
                "timeout_ms",
                self.timeout_ms.is_some(),
                &[Smtp, Http, Fcm, Apns],
            ),
            (
                "service_account_file",
                self.service_account_file.is_some(),
                &[Fcm],
            ),
            ("project_id", self.project_id.is_some(), &[Fcm]),
            ("endpoint", self.endpoint.is_some(), &[Fcm, Apns]),
            ("ttl_secs", self.ttl_secs.is_some(), &[Fcm, Apns]),
            ("team_id", self.team_id.is_some(), &[Apns]),
            ("key_id", self.key_id.is_some(), &[Apns]),
            ("key_file", self.key_file.is_some(), &[Apns]),
            ("topic", self.topic.is_some(), &[Apns]),
        ];
        for &(key, is_set, types) in keys {
            if is_set && !types.contains(&self.kind) {
                return Err(ConfigError::invalid(
                    at(key),
                    format!(
                        "does not apply to a gateway of type = \"{}\"",
                        self.kind.as_str()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_credentials(&self, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        match (&self.password, &self.password_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    at("password_file"),
                    "give password or password_file, not both",
                ))
            }
            (Some(p), None) if p.is_empty() => {
                return Err(ConfigError::invalid(at("password"), "must not be empty"))
            }
            _ => {}
        }
        if let Some(u) = &self.username {
            if u.is_empty() || u.chars().any(char::is_control) {
                return Err(ConfigError::invalid(
                    at("username"),
                    "must not be empty or hold control characters",
                ));
            }
        }
        Ok(())
    }

    fn validate_smtp(&self, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        match &self.host {
            Some(h)
                if !h.is_empty()
                    && h.len() <= 253
                    && h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c)) => {}
            Some(_) => {
                return Err(ConfigError::invalid(
                    at("host"),
                    "must be a host name or an IP address",
                ))
            }
            None => {
                return Err(ConfigError::invalid(
                    at("host"),
                    "an smtp gateway needs host",
                ))
            }
        }
        if self.port == Some(0) {
            return Err(ConfigError::invalid(at("port"), "must not be 0"));
        }
        if self.smtp_tls() == SmtpTls::None && !self.allow_plain {
            return Err(ConfigError::invalid(
                at("tls"),
                "tls = \"none\" sends passcodes and the password in clear text: set allow_plain = true to allow it",
            ));
        }
        if self.smtp_tls() == SmtpTls::None && self.ca_file.is_some() {
            return Err(ConfigError::invalid(
                at("ca_file"),
                "does not apply with tls = \"none\"",
            ));
        }
        match &self.from {
            Some(f) if plausible_address(f) => {}
            Some(_) => return Err(ConfigError::invalid(
                at("from"),
                "must be an e-mail address (`noreply@example.com` or `Name <noreply@example.com>`)",
            )),
            None => {
                return Err(ConfigError::invalid(
                    at("from"),
                    "an smtp gateway needs the sender address",
                ))
            }
        }
        self.validate_credentials(at)?;
        let has_password = self.password.is_some() || self.password_file.is_some();
        if self.username.is_some() != has_password {
            return Err(ConfigError::invalid(
                at(if self.username.is_some() {
                    "password"
                } else {
                    "username"
                }),
                "SMTP AUTH needs both username and password (or password_file)",
            ));
        }
        Ok(())
    }

    fn validate_fcm(&self, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        require_path(&self.service_account_file, "service_account_file", at)?;
        if let Some(p) = &self.project_id {
            let ok = !p.is_empty()
                && p.len() <= 100
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:_".contains(c));
            if !ok {
                return Err(ConfigError::invalid(
                    at("project_id"),
                    "must be a Google Cloud project id (letters, digits, '-', '.', ':', '_')",
                ));
            }
        }
        self.validate_push_common(at)
    }

    fn validate_apns(&self, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        for (key, value) in [("team_id", &self.team_id), ("key_id", &self.key_id)] {
            match value {
                Some(v) if v.len() == 10 && v.chars().all(|c| c.is_ascii_alphanumeric()) => {}
                Some(_) => {
                    return Err(ConfigError::invalid(
                        at(key),
                        "must be the 10 letters and digits Apple shows for it",
                    ))
                }
                None => {
                    return Err(ConfigError::invalid(
                        at(key),
                        format!("an apns gateway needs {key}"),
                    ))
                }
            }
        }
        require_path(&self.key_file, "key_file", at)?;
        match &self.topic {
            Some(t)
                if !t.is_empty()
                    && t.len() <= 255
                    && !t.starts_with('.')
                    && !t.ends_with('.')
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)) => {}
            Some(_) => {
                return Err(ConfigError::invalid(
                    at("topic"),
                    "must be the app's bundle id (`com.example.authenticator`)",
                ))
            }
            None => {
                return Err(ConfigError::invalid(
                    at("topic"),
                    "an apns gateway needs topic (the app's bundle id)",
                ))
            }
        }
        self.validate_push_common(at)
    }

    /// What `fcm` and `apns` share: the endpoint and the time to live.
    fn validate_push_common(&self, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        if let Some(e) = &self.endpoint {
            let key = || at("endpoint");
            let url = url::Url::parse(e)
                .map_err(|err| ConfigError::invalid(key(), format!("is not a valid URL: {err}")))?;
            if url.scheme() != "https" {
                return Err(ConfigError::invalid(key(), "must start with https://"));
            }
            if url.host_str().is_none_or(str::is_empty) {
                return Err(ConfigError::invalid(key(), "needs a host"));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(ConfigError::invalid(key(), "must not carry credentials"));
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err(ConfigError::invalid(
                    key(),
                    "must not have a ?query or #fragment",
                ));
            }
        }
        if let Some(t) = self.ttl_secs {
            if t > MAX_PUSH_TTL_SECS {
                return Err(ConfigError::invalid(
                    at("ttl_secs"),
                    format!("must be at most {MAX_PUSH_TTL_SECS} (four weeks)"),
                ));
            }
        }
        Ok(())
    }

    fn validate_http(&self, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        if let Some(p) = self.preset {
            if self.channel != GatewayChannel::Sms {
                return Err(ConfigError::invalid(
                    at("preset"),
                    "presets send SMS only (channel = \"sms\"); describe a voice API with url and body",
                ));
            }
            for key in p.needs() {
                let set = match *key {
                    "account" => self.account.is_some(),
                    "username" => self.username.is_some(),
                    _ => self.password.is_some() || self.password_file.is_some(),
                };
                if !set {
                    return Err(ConfigError::invalid(
                        at(key),
                        format!("preset \"{}\" needs {key}", p.as_str()),
                    ));
                }
            }
        }
        self.validate_credentials(at)?;
        let s = self.http_at(at)?;
        let has_password = self.password.is_some() || self.password_file.is_some();
        if s.username.is_some() != has_password {
            return Err(ConfigError::invalid(
                at(if s.username.is_some() {
                    "password"
                } else {
                    "username"
                }),
                "HTTP basic authentication needs both username and password (or password_file)",
            ));
        }
        validate_url(&s.url, &|| at("url"))?;
        if self.ca_file.is_some() && s.url.prefix().starts_with("http://") {
            return Err(ConfigError::invalid(
                at("ca_file"),
                "applies to https:// URLs only",
            ));
        }
        if s.method == HttpMethod::Get && s.body.is_some() {
            return Err(ConfigError::invalid(
                at("body"),
                "a GET request carries no body; put the values in the url",
            ));
        }
        let mut seen = HashSet::new();
        for (name, value) in &s.headers {
            let key = at(&format!("headers.{name}"));
            let lower = name.to_ascii_lowercase();
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(ConfigError::invalid(key, "is not a valid header name"));
            }
            if !seen.insert(lower.clone()) {
                return Err(ConfigError::invalid(key, "is given twice"));
            }
            if MANAGED_HEADERS.contains(&lower.as_str()) {
                return Err(ConfigError::invalid(
                    key,
                    "is written by Tollgate (set content_type for Content-Type)",
                ));
            }
            if lower == "authorization" && s.username.is_some() {
                return Err(ConfigError::invalid(
                    key,
                    "conflicts with username/password (HTTP basic authentication)",
                ));
            }
            let literal_ok = value.parts().iter().all(|p| match p {
                TemplatePart::Text(t) => !t.chars().any(|c| c.is_control() && c != '\t'),
                TemplatePart::Value(_) => true,
            });
            if !literal_ok {
                return Err(ConfigError::invalid(
                    key,
                    "must not hold line breaks or other control characters",
                ));
            }
        }
        for code in &s.success_status {
            if !(200..=299).contains(code) {
                return Err(ConfigError::invalid(
                    at("success_status"),
                    format!("{code} is not a 2xx status"),
                ));
            }
        }
        if let Some(b) = &s.success_body {
            if b.is_empty() {
                return Err(ConfigError::invalid(
                    at("success_body"),
                    "must not be empty",
                ));
            }
        }
        let templates = || {
            std::iter::once(&s.url)
                .chain(s.headers.iter().map(|(_, t)| t))
                .chain(s.body.as_ref())
        };
        let uses = |p| templates().any(|t| t.uses(p));
        for (p, what) in [
            (
                Placeholder::Message,
                "{message} (the passcode would never be sent)",
            ),
            (Placeholder::To, "{to} or {to_digits} (no destination)"),
        ] {
            let used = uses(p) || (p == Placeholder::To && uses(Placeholder::ToDigits));
            if !used {
                let key = if s.body.is_some() { "body" } else { "url" };
                return Err(ConfigError::invalid(
                    at(key),
                    format!("the request never names {what}"),
                ));
            }
        }
        for (p, key, set) in [
            (Placeholder::From, "from", self.from.is_some()),
            (Placeholder::Account, "account", self.account.is_some()),
        ] {
            if uses(p) && !set {
                return Err(ConfigError::invalid(
                    at(key),
                    format!("the request names {{{key}}} but {key} is not set"),
                ));
            }
            if let Some(v) = match p {
                Placeholder::From => &self.from,
                _ => &self.account,
            } {
                if v.is_empty() || v.chars().any(char::is_control) {
                    return Err(ConfigError::invalid(
                        at(key),
                        "must not be empty or hold control characters",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Checks a URL template: `http://` or `https://`, and a scheme, host and port that no
/// placeholder can change (a value in the host would let a recipient's number pick the
/// server). The rest is checked by parsing a sample rendering.
fn validate_url(url: &Template, key: &dyn Fn() -> String) -> Result<(), ConfigError> {
    let prefix = url.prefix();
    let after_scheme = prefix
        .strip_prefix("https://")
        .or_else(|| prefix.strip_prefix("http://"));
    let Some(after_scheme) = after_scheme else {
        return Err(ConfigError::invalid(
            key(),
            "must start with https:// (or http://)",
        ));
    };
    let fixed_authority = after_scheme.contains(['/', '?']) || url.parts().len() == 1;
    if !fixed_authority {
        return Err(ConfigError::invalid(
            key(),
            "placeholders may not stand in the host or port",
        ));
    }
    let mut sample = String::new();
    url.render(&mut sample, |_, out| out.push('1'));
    let parsed = url::Url::parse(&sample)
        .map_err(|e| ConfigError::invalid(key(), format!("is not a valid URL: {e}")))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(key(), "needs a host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ConfigError::invalid(
            key(),
            "must not carry credentials; use username and password",
        ));
    }
    if parsed.fragment().is_some() {
        return Err(ConfigError::invalid(key(), "must not have a #fragment"));
    }
    Ok(())
}

/// Refuses a missing or empty path.
fn require_path(
    path: &Option<PathBuf>,
    key: &str,
    at: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    match path {
        Some(p) if !p.as_os_str().is_empty() => Ok(()),
        Some(_) => Err(ConfigError::invalid(at(key), "must not be empty")),
        None => Err(ConfigError::invalid(
            at(key),
            format!("this type of gateway needs {key}"),
        )),
    }
}

/// An RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A light check of a sender address: the SMTP gateway parses it fully when it starts.
fn plausible_address(s: &str) -> bool {
    let addr = match (s.rfind('<'), s.ends_with('>')) {
        (Some(open), true) => &s[open + 1..s.len() - 1],
        _ => s,
    };
    !s.chars().any(char::is_control)
        && !addr.contains(char::is_whitespace)
        && addr
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
}

/// Checks what only the set of gateways can tell: names are unique.
pub(crate) fn validate_all(gateways: &[GatewayConfig]) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    for (i, g) in gateways.iter().enumerate() {
        g.validate_at(&|key| format!("gateway[{i}].{key}"))?;
        if !names.insert(g.name.as_str()) {
            return Err(ConfigError::invalid(
                format!("gateway[{i}].name"),
                format!("gateway `{}` is declared twice", g.name),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn refused(text: &str) -> (String, String) {
        let e = Config::parse(text).expect_err("config should be refused");
        (e.key_path().unwrap_or_default().to_owned(), e.to_string())
    }

    const FILE: &str = "[[gateway]]\nname = \"codes\"\nchannel = \"sms\"\ntype = \"file\"\npath = \"/tmp/codes.jsonl\"\n";
    const SMTP: &str = "[[gateway]]\nname = \"mail\"\nchannel = \"email\"\ntype = \"smtp\"\nhost = \"smtp.example.com\"\nfrom = \"Tollgate <noreply@example.com>\"\n";
    const HTTP: &str = "[[gateway]]\nname = \"sms\"\nchannel = \"sms\"\ntype = \"http\"\nurl = \"https://sms.example.com/send?to={to}\"\nbody = \"text={message}&ref={id}\"\n";

    #[test]
    fn no_gateway_by_default() {
        assert!(Config::parse("").unwrap().gateways.is_empty());
    }

    #[test]
    fn each_type_takes_its_defaults() {
        let c = Config::parse(&format!("{FILE}{SMTP}{HTTP}")).unwrap();
        let [file, smtp, http] = &c.gateways[..] else {
            panic!("three gateways")
        };
        assert_eq!(file.kind, GatewayType::File);
        assert_eq!(file.channel, GatewayChannel::Sms);
        assert_eq!(smtp.smtp_tls(), SmtpTls::Starttls);
        assert_eq!(smtp.smtp_port(), 587);
        assert_eq!(smtp.timeout_ms(), 10_000);
        assert!(smtp.resolve_password().unwrap().is_none());
        let s = http.http().unwrap();
        assert_eq!(s.method, HttpMethod::Post);
        assert_eq!(s.content_type, HttpContentType::Form);
        assert!(s.success_status.is_empty());
        assert!(s.username.is_none());
        assert!(s.url.uses(Placeholder::To));
        assert!(s.body.as_ref().unwrap().uses(Placeholder::Id));
    }

    #[test]
    fn smtp_ports_follow_the_tls_mode() {
        let tls = Config::parse(&format!("{SMTP}tls = \"tls\"\n")).unwrap();
        assert_eq!(tls.gateways[0].smtp_port(), 465);
        let plain = Config::parse(&format!("{SMTP}tls = \"none\"\nallow_plain = true\n")).unwrap();
        assert_eq!(plain.gateways[0].smtp_port(), 25);
        let set = Config::parse(&format!("{SMTP}port = 2525\n")).unwrap();
        assert_eq!(set.gateways[0].smtp_port(), 2525);
    }

    #[test]
    fn templates_split_text_and_placeholders() {
        let t = Template::parse(r#"{"to":"{to}","n":{id},"x":"{not a name}"}"#).unwrap();
        assert_eq!(
            t.parts(),
            &[
                TemplatePart::Text("{\"to\":\"".into()),
                TemplatePart::Value(Placeholder::To),
                TemplatePart::Text("\",\"n\":".into()),
                TemplatePart::Value(Placeholder::Id),
                TemplatePart::Text(",\"x\":\"{not a name}\"}".into()),
            ]
        );
        let mut out = String::new();
        t.render(&mut out, |p, out| out.push_str(p.name()));
        assert_eq!(out, r#"{"to":"to","n":id,"x":"{not a name}"}"#);
        assert!(Template::parse("{mesage}")
            .unwrap_err()
            .contains("`{mesage}` is not a placeholder"));
        assert_eq!(Template::parse("{").unwrap().parts().len(), 1);
        assert_eq!(Template::parse("").unwrap().parts().len(), 0);
        assert_eq!(
            Template::parse("{to_digits}}").unwrap().parts(),
            &[
                TemplatePart::Value(Placeholder::ToDigits),
                TemplatePart::Text("}".into())
            ]
        );
    }

    #[test]
    fn presets_fill_what_the_section_leaves_out() {
        let twilio = "[[gateway]]\nname = \"tw\"\nchannel = \"sms\"\ntype = \"http\"\npreset = \"twilio\"\naccount = \"AC123\"\npassword = \"tok\"\nfrom = \"+15550001111\"\n";
        let c = Config::parse(twilio).unwrap();
        let s = c.gateways[0].http().unwrap();
        assert_eq!(s.content_type, HttpContentType::Form);
        assert_eq!(s.username.as_deref(), Some("AC123"));
        assert!(s.url.uses(Placeholder::Account));
        assert!(s.body.as_ref().unwrap().uses(Placeholder::From));
        let c = Config::parse(&format!(
            "{twilio}url = \"http://127.0.0.1:9/x/{{account}}\"\nusername = \"SK1\"\n"
        ))
        .unwrap();
        let s = c.gateways[0].http().unwrap();
        assert_eq!(
            s.url.parts()[0],
            TemplatePart::Text("http://127.0.0.1:9/x/".into())
        );
        assert_eq!(s.username.as_deref(), Some("SK1"));

        let vonage = "[[gateway]]\nname = \"vg\"\nchannel = \"sms\"\ntype = \"http\"\npreset = \"vonage\"\nusername = \"key\"\npassword = \"secret\"\nfrom = \"Tollgate\"\n";
        let s = Config::parse(vonage).unwrap().gateways[0].http().unwrap();
        assert_eq!(s.content_type, HttpContentType::Json);
        assert!(s.body.as_ref().unwrap().uses(Placeholder::ToDigits));
        let (path, msg) = refused(&vonage.replace("from = \"Tollgate\"\n", ""));
        assert_eq!(path, "gateway[0].from", "{msg}");
        let (path, _) = refused(&vonage.replace("username = \"key\"\n", ""));
        assert_eq!(path, "gateway[0].username");
        let (path, _) = refused(&twilio.replace("account = \"AC123\"\n", ""));
        assert_eq!(path, "gateway[0].account");
        let (path, _) = refused(&twilio.replace("channel = \"sms\"", "channel = \"voice\""));
        assert_eq!(path, "gateway[0].preset");
    }

    #[test]
    fn the_password_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("smtp.pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let text = format!(
            "{SMTP}username = \"u\"\npassword_file = {:?}\n",
            file.display().to_string()
        );
        let c = Config::parse(&text).unwrap();
        let pw = c.gateways[0].resolve_password().unwrap().unwrap();
        assert_eq!(pw.expose(), b"from-file");
        let inline =
            Config::parse(&format!("{SMTP}username = \"u\"\npassword = \"hunter2\"\n")).unwrap();
        assert!(!format!("{inline:?}").contains("hunter2"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: Vec<(String, &str)> = vec![
            // Shape errors come from the parser, with the key's path.
            (format!("{FILE}colour = \"blue\"\n"), "gateway[0].colour"),
            (FILE.replace("\"file\"", "\"pigeon\""), "gateway[0].type"),
            (FILE.replace("\"sms\"", "\"fax\""), "gateway[0].channel"),
            (format!("{SMTP}port = \"x\"\n"), "gateway[0].port"),
            (format!("{SMTP}tls = \"ssl\"\n"), "gateway[0].tls"),
            (format!("{HTTP}method = \"DELETE\"\n"), "gateway[0].method"),
            (format!("{HTTP}content_type = \"text/xml\"\n"), "gateway[0].content_type"),
            (format!("{HTTP}preset = \"pager\"\n"), "gateway[0].preset"),
            // Values that parse but are refused.
            (format!("{FILE}{FILE}"), "gateway[1].name"),
            (FILE.replace("\"codes\"", "\"co des\""), "gateway[0].name"),
            (FILE.replace("path = \"/tmp/codes.jsonl\"\n", ""), "gateway[0].path"),
            (format!("{FILE}url = \"https://x\"\n"), "gateway[0].url"),
            (format!("{FILE}timeout_ms = 5000\n"), "gateway[0].timeout_ms"),
            (SMTP.replace("\"email\"", "\"sms\""), "gateway[0].channel"),
            (SMTP.replace("host = \"smtp.example.com\"\n", ""), "gateway[0].host"),
            (SMTP.replace("smtp.example.com", "smtp example"), "gateway[0].host"),
            (SMTP.replace("Tollgate <noreply@example.com>", "noreply"), "gateway[0].from"),
            (format!("{SMTP}tls = \"none\"\n"), "gateway[0].tls"),
            (format!("{SMTP}port = 0\n"), "gateway[0].port"),
            (format!("{SMTP}timeout_ms = 50\n"), "gateway[0].timeout_ms"),
            (format!("{SMTP}timeout_ms = 120001\n"), "gateway[0].timeout_ms"),
            (format!("{SMTP}username = \"u\"\n"), "gateway[0].password"),
            (format!("{SMTP}password = \"p\"\n"), "gateway[0].username"),
            (
                format!("{SMTP}username = \"u\"\npassword = \"p\"\npassword_file = \"/p\"\n"),
                "gateway[0].password_file",
            ),
            (format!("{SMTP}body = \"x\"\n"), "gateway[0].body"),
            (HTTP.replace("\"sms\"\ntype", "\"email\"\ntype"), "gateway[0].channel"),
            (
                HTTP.replace("url = \"https://sms.example.com/send?to={to}\"\n", ""),
                "gateway[0].url",
            ),
            (HTTP.replace("https://", "ftp://"), "gateway[0].url"),
            (HTTP.replace("sms.example.com/send?to={to}", "{to}.example.com/"), "gateway[0].url"),
            (HTTP.replace("https://", "https://u:p@"), "gateway[0].url"),
            (HTTP.replace("{message}", "{mesage}"), "gateway[0].body"),
            (HTTP.replace("{message}", "x"), "gateway[0].body"),
            (HTTP.replace("?to={to}", ""), "gateway[0].body"),
            (HTTP.replace("{id}", "{from}"), "gateway[0].from"),
            (format!("{HTTP}method = \"GET\"\n"), "gateway[0].body"),
            (format!("{HTTP}success_status = [200, 404]\n"), "gateway[0].success_status"),
            (format!("{HTTP}success_body = \"\"\n"), "gateway[0].success_body"),
            (format!("{HTTP}username = \"u\"\n"), "gateway[0].password"),
            (format!("{HTTP}host = \"x\"\n"), "gateway[0].host"),
            (
                format!("{}ca_file = \"/ca.pem\"\n", HTTP.replace("https://", "http://")),
                "gateway[0].ca_file",
            ),
            (format!("{HTTP}[gateway.headers]\n\"X A\" = \"1\"\n"), "gateway[0].headers.X A"),
            (
                format!("{HTTP}[gateway.headers]\nContent-Type = \"text/plain\"\n"),
                "gateway[0].headers.Content-Type",
            ),
            (
                format!("{HTTP}[gateway.headers]\nX-A = \"1\"\nx-a = \"2\"\n"),
                "gateway[0].headers.x-a",
            ),
            (
                format!("{HTTP}[gateway.headers]\nX-Note = \"a\\r\\nInjected: 1\"\n"),
                "gateway[0].headers.X-Note",
            ),
            (
                format!("{HTTP}[gateway.headers]\nX-Note = \"{{nope}}\"\n"),
                "gateway[0].headers.X-Note",
            ),
            (
                format!(
                    "{HTTP}username = \"u\"\npassword = \"p\"\n[gateway.headers]\nAuthorization = \"Bearer x\"\n"
                ),
                "gateway[0].headers.Authorization",
            ),
        ];
        for (text, want) in cases {
            let (path, msg) = refused(&text);
            assert_eq!(path, want, "{msg}\n--- config:\n{text}");
        }
    }

    const FCM: &str = "[[gateway]]\nname = \"android\"\nchannel = \"fcm\"\ntype = \"fcm\"\nservice_account_file = \"/etc/tollgate/fcm.json\"\n";
    const APNS: &str = "[[gateway]]\nname = \"ios\"\nchannel = \"apns\"\ntype = \"apns\"\nteam_id = \"ABCDE12345\"\nkey_id = \"KEY9876543\"\nkey_file = \"/etc/tollgate/AuthKey_KEY9876543.p8\"\ntopic = \"com.example.tollgate\"\n";

    #[test]
    fn push_gateways_take_their_defaults() {
        let c = Config::parse(&format!("{FCM}{APNS}")).unwrap();
        let [fcm, apns] = &c.gateways[..] else {
            panic!("two gateways")
        };
        assert_eq!(fcm.kind, GatewayType::Fcm);
        assert_eq!(fcm.channel, GatewayChannel::Fcm);
        assert_eq!(fcm.push_endpoint(), Some(DEFAULT_FCM_ENDPOINT));
        assert_eq!(fcm.push_ttl_secs(), DEFAULT_PUSH_TTL_SECS);
        assert_eq!(fcm.timeout_ms(), DEFAULT_GATEWAY_TIMEOUT_MS);
        assert_eq!(apns.kind, GatewayType::Apns);
        assert_eq!(apns.channel.as_str(), "apns");
        assert_eq!(apns.push_endpoint(), Some(DEFAULT_APNS_ENDPOINT));
        assert_eq!(apns.topic.as_deref(), Some("com.example.tollgate"));
        let full = Config::parse(&format!(
            "{FCM}project_id = \"tollgate-prod\"\nendpoint = \"https://127.0.0.1:8443/fcm\"\nca_file = \"/ca.pem\"\ntimeout_ms = 2000\nttl_secs = 0\n{APNS}endpoint = \"{APNS_SANDBOX_ENDPOINT}\"\nttl_secs = 60\n"
        ))
        .unwrap();
        assert_eq!(
            full.gateways[0].push_endpoint(),
            Some("https://127.0.0.1:8443/fcm")
        );
        assert_eq!(full.gateways[0].push_ttl_secs(), 0);
        assert_eq!(
            full.gateways[1].push_endpoint(),
            Some(APNS_SANDBOX_ENDPOINT)
        );
        // Other types have no push endpoint.
        let smtp = Config::parse(SMTP).unwrap();
        assert_eq!(smtp.gateways[0].push_endpoint(), None);
    }

    #[test]
    fn bad_push_values_name_their_key() {
        let cases: Vec<(String, &str)> = vec![
            (
                FCM.replace("channel = \"fcm\"", "channel = \"sms\""),
                "gateway[0].channel",
            ),
            (
                APNS.replace("channel = \"apns\"", "channel = \"fcm\""),
                "gateway[0].channel",
            ),
            (
                HTTP.replace("channel = \"sms\"", "channel = \"apns\""),
                "gateway[0].channel",
            ),
            (
                SMTP.replace("channel = \"email\"", "channel = \"fcm\""),
                "gateway[0].channel",
            ),
            (
                FCM.replace("service_account_file = \"/etc/tollgate/fcm.json\"\n", ""),
                "gateway[0].service_account_file",
            ),
            (
                FCM.replace("/etc/tollgate/fcm.json", ""),
                "gateway[0].service_account_file",
            ),
            (
                format!("{FCM}project_id = \"my project\"\n"),
                "gateway[0].project_id",
            ),
            (format!("{FCM}project_id = \"\"\n"), "gateway[0].project_id"),
            (
                format!("{FCM}endpoint = \"http://fcm.example\"\n"),
                "gateway[0].endpoint",
            ),
            (
                format!("{FCM}endpoint = \"fcm.googleapis.com\"\n"),
                "gateway[0].endpoint",
            ),
            (
                format!("{FCM}endpoint = \"https://u:p@fcm.example\"\n"),
                "gateway[0].endpoint",
            ),
            (
                format!("{FCM}endpoint = \"https://fcm.example/?x=1\"\n"),
                "gateway[0].endpoint",
            ),
            (format!("{FCM}ttl_secs = 2419201\n"), "gateway[0].ttl_secs"),
            (format!("{FCM}ttl_secs = -1\n"), "gateway[0].ttl_secs"),
            (format!("{FCM}timeout_ms = 10\n"), "gateway[0].timeout_ms"),
            (
                format!("{FCM}topic = \"com.example\"\n"),
                "gateway[0].topic",
            ),
            (
                format!("{FCM}key_file = \"/k.p8\"\n"),
                "gateway[0].key_file",
            ),
            (format!("{FCM}password = \"x\"\n"), "gateway[0].password"),
            (format!("{FCM}url = \"https://x\"\n"), "gateway[0].url"),
            (
                APNS.replace("team_id = \"ABCDE12345\"\n", ""),
                "gateway[0].team_id",
            ),
            (
                APNS.replace("ABCDE12345", "ABCDE1234"),
                "gateway[0].team_id",
            ),
            (
                APNS.replace("ABCDE12345", "ABCDE-1234"),
                "gateway[0].team_id",
            ),
            (
                APNS.replace("key_id = \"KEY9876543\"\n", ""),
                "gateway[0].key_id",
            ),
            (
                APNS.replace("\"KEY9876543\"", "\"KEY98765432\""),
                "gateway[0].key_id",
            ),
            (
                APNS.replace("key_file = \"/etc/tollgate/AuthKey_KEY9876543.p8\"\n", ""),
                "gateway[0].key_file",
            ),
            (
                APNS.replace("topic = \"com.example.tollgate\"\n", ""),
                "gateway[0].topic",
            ),
            (
                APNS.replace("com.example.tollgate", "com example"),
                "gateway[0].topic",
            ),
            (
                APNS.replace("com.example.tollgate", ".com.example"),
                "gateway[0].topic",
            ),
            (
                format!("{APNS}endpoint = \"https://api.push.apple.com#x\"\n"),
                "gateway[0].endpoint",
            ),
            (
                format!("{APNS}service_account_file = \"/sa.json\"\n"),
                "gateway[0].service_account_file",
            ),
            (
                format!("{APNS}project_id = \"p\"\n"),
                "gateway[0].project_id",
            ),
            (format!("{APNS}path = \"/tmp/x\"\n"), "gateway[0].path"),
            (
                format!("{HTTP}endpoint = \"https://x\"\n"),
                "gateway[0].endpoint",
            ),
            (format!("{SMTP}ttl_secs = 5\n"), "gateway[0].ttl_secs"),
            (
                format!("{FILE}team_id = \"ABCDE12345\"\n"),
                "gateway[0].team_id",
            ),
            (format!("{APNS}{APNS}"), "gateway[1].name"),
        ];
        for (text, want) in cases {
            let (path, msg) = refused(&text);
            assert_eq!(path, want, "{msg}\n--- config:\n{text}");
        }
    }

    #[test]
    fn a_file_gateway_may_record_push_messages() {
        let c = Config::parse(&FILE.replace("channel = \"sms\"", "channel = \"apns\"")).unwrap();
        assert_eq!(c.gateways[0].channel, GatewayChannel::Apns);
    }

    #[test]
    fn a_full_http_section_is_accepted() {
        let text = format!(
            "{}method = \"PUT\"\ncontent_type = \"application/json\"\nsuccess_status = [200, 202]\nsuccess_body = \"queued\"\nusername = \"api\"\npassword = \"k\"\ntimeout_ms = 2500\nca_file = \"/etc/ssl/provider.pem\"\n[gateway.headers]\nX-Request-Id = \"tollgate-{{id}}\"\n",
            HTTP.replace(
                "body = \"text={message}&ref={id}\"",
                "body = '{\"text\":\"{message}\"}'"
            )
        );
        let c = Config::parse(&text).unwrap();
        let g = &c.gateways[0];
        let s = g.http().unwrap();
        assert_eq!(s.method, HttpMethod::Put);
        assert_eq!(s.success_status, vec![200, 202]);
        assert_eq!(s.success_body.as_deref(), Some("queued"));
        assert_eq!(s.headers[0].0, "X-Request-Id");
        assert!(s.headers[0].1.uses(Placeholder::Id));
        assert_eq!(g.timeout_ms(), 2500);
        // Plain http is accepted (a local relay, a test server).
        let plain = HTTP.replace("https://", "http://");
        assert!(Config::parse(&plain).is_ok());
    }
}
