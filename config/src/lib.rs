//! Tollgate's configuration: one TOML file turned into validated, typed settings.
//!
//! This crate owns the shape of `tollgate.toml`, its defaults, and its validation. Unknown
//! keys are rejected and every error names the key path (`radius.listen[1]`), so a typo is
//! caught by `tollgate check-config` before any port is bound. Secrets are held in
//! [`SharedSecret`], whose `Debug` output never shows them. The crate opens no sockets.

mod delivery;
mod error;
mod gateway;
mod ldap;
mod model;
mod secret;

pub use delivery::{DeliveryConfig, PreloadConfig};
pub use error::ConfigError;
pub use gateway::{
    GatewayChannel, GatewayConfig, GatewayType, HttpContentType, HttpMethod, HttpPreset,
    HttpSettings, Placeholder, SmtpTls, Template, TemplatePart, APNS_SANDBOX_ENDPOINT,
    DEFAULT_APNS_ENDPOINT, DEFAULT_FCM_ENDPOINT, DEFAULT_GATEWAY_TIMEOUT_MS, DEFAULT_PUSH_TTL_SECS,
};
pub use ldap::{GroupMembership, GroupPolicy, GroupRule, LdapConfig, LdapProfile};
pub use model::valid_name_char;
pub use model::{
    AuditConfig, ClientAddress, ClientConfig, Config, LockoutConfig, LogConfig, LogFormat,
    LoginConfig, MetricsConfig, MobileApiConfig, OtpConfig, PasswordConfig, RadiusConfig,
    SchedulingConfig, ShutdownConfig, SyslogConfig, SyslogFacility, SyslogTransport,
};
pub use secret::SharedSecret;
