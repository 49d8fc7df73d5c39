//! The configuration model: one struct per section, defaults, and validation.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};
use tollgate_engine::login::LoginMode;

use crate::{ConfigError, SharedSecret};

/// The whole `tollgate.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory holding the SQLite store and the master key (`tollgate-data` by default,
    /// relative to the working directory).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// RADIUS listener settings.
    #[serde(default)]
    pub radius: RadiusConfig,
    /// Login behaviour shared by every client.
    #[serde(default)]
    pub login: LoginConfig,
    /// Lockout after repeated failures.
    #[serde(default)]
    pub lockout: LockoutConfig,
    /// Passcode verification windows.
    #[serde(default)]
    pub otp: OtpConfig,
    /// Directory password checks.
    #[serde(default)]
    pub passwords: PasswordConfig,
    /// Graceful shutdown.
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// Audit trail.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Diagnostic logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Prometheus metrics.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Which threads the kernel runs first when they compete for a core.
    #[serde(default)]
    pub scheduling: SchedulingConfig,
    /// RADIUS clients declared in the file (more can be added at run time with
    /// `tollgate client add`).
    #[serde(default, rename = "client")]
    pub clients: Vec<ClientConfig>,
    /// The mobile app API (push approval); off unless `listen` is set.
    #[serde(default)]
    pub mobile_api: MobileApiConfig,
    /// Delivered codes (SMS, e-mail, voice) and the outbox.
    #[serde(default)]
    pub delivery: crate::DeliveryConfig,
    /// LDAP and Active Directory domains; users of no domain stay in the embedded
    /// directory.
    #[serde(default, rename = "ldap")]
    pub ldap: Vec<crate::LdapConfig>,
    /// Gateways that deliver passcodes by SMS, e-mail or voice.
    #[serde(default, rename = "gateway")]
    pub gateways: Vec<crate::GatewayConfig>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("tollgate-data")
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: default_data_dir(),
            radius: RadiusConfig::default(),
            login: LoginConfig::default(),
            lockout: LockoutConfig::default(),
            otp: OtpConfig::default(),
            passwords: PasswordConfig::default(),
            shutdown: ShutdownConfig::default(),
            audit: AuditConfig::default(),
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
            scheduling: SchedulingConfig::default(),
            clients: Vec::new(),
            ldap: Vec::new(),
            delivery: crate::DeliveryConfig::default(),
            gateways: Vec::new(),
            mobile_api: MobileApiConfig::default(),
        }
    }
}

/// `[radius]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RadiusConfig {
    /// Addresses to listen on for Access-Request and Status-Server.
    pub listen: Vec<SocketAddr>,
    /// Requests of one client being worked on at once; beyond it requests are shed.
    pub max_in_flight_per_client: u32,
    /// Seconds a reply is kept to answer retransmits (RFC 5080 §2.2.2).
    pub duplicate_window_secs: u64,
    /// Replies kept per client for retransmits; the oldest goes first when full.
    pub duplicate_cache_entries: usize,
    /// Default requests per second allowed from one client; 0 means no limit.
    pub rate_limit_per_client: u32,
    /// UDP worker threads (each with its own `SO_REUSEPORT` socket per listening address);
    /// 0 means one per core.
    pub workers: usize,
    /// Longest a request may have waited in the socket and still be answered once the
    /// server is persistently behind, in microseconds; 0 never sheds. Later ones are
    /// dropped and counted (`tollgate_shed_total{gate="queue"}`); the NAS retransmits.
    pub max_wait_us: u64,
    /// How long waits must stay above `max_wait_us` before shedding starts, in
    /// milliseconds: a burst shorter than this is absorbed whole.
    pub overload_after_ms: u64,
}

impl Default for RadiusConfig {
    fn default() -> Self {
        RadiusConfig {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 1812))],
            max_in_flight_per_client: 1024,
            duplicate_window_secs: 30,
            duplicate_cache_entries: 65_536,
            rate_limit_per_client: 0,
            workers: 0,
            max_wait_us: 1_000,
            overload_after_ms: 50,
        }
    }
}

/// `[scheduling]`: thread priorities. The UDP workers answer logins inline; every other
/// thread (store, log and audit writers, the async runtime with its Argon2 threads) yields
/// to them when they compete for a core.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulingConfig {
    /// The nice value background threads give themselves, 0 (none) to 19.
    pub background_nice: i32,
    /// The UDP workers' time slice in microseconds (Linux 6.12 and later): a shorter slice
    /// lets a worker that wakes preempt what runs on its core at once. 0 keeps the
    /// kernel's default; otherwise 100 to 100000.
    pub udp_slice_us: u64,
}

impl Default for SchedulingConfig {
    fn default() -> Self {
        SchedulingConfig {
            background_nice: 10,
            udp_slice_us: 100,
        }
    }
}

/// `[login]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginConfig {
    /// Seconds a challenge stays answerable.
    pub challenge_ttl_secs: u64,
    /// Reply-Message of an Access-Challenge.
    pub challenge_message: String,
    /// Challenge sessions open at once across the server; beyond it logins are refused.
    pub max_sessions: usize,
    /// Seconds a login waits for the phone's approval before it is refused.
    pub push_timeout_secs: u64,
    /// Reply-Message of the challenge of a push login (challenge-mode clients): `{number}`
    /// is the number the user picks on the phone.
    pub push_prompt: String,
}

impl Default for LoginConfig {
    fn default() -> Self {
        LoginConfig {
            challenge_ttl_secs: 120,
            challenge_message: "Enter your passcode".to_owned(),
            max_sessions: 100_000,
            push_timeout_secs: 30,
            push_prompt: "Approve the login on your phone (pick {number}), then press Enter; or enter a passcode".to_owned(),
        }
    }
}

/// `[lockout]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    /// Consecutive failures that lock a user; 0 disables lockout.
    pub threshold: u32,
    /// Seconds a lock lasts; 0 locks until `tollgate user unlock`.
    pub duration_secs: u64,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        LockoutConfig {
            threshold: 5,
            duration_secs: 900,
        }
    }
}

/// `[otp]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtpConfig {
    /// TOTP steps accepted either side of the expected one.
    pub totp_window: u32,
    /// HOTP counters looked ahead of the next expected one.
    pub hotp_lookahead: u32,
    /// Largest TOTP clock drift, in steps, the server follows.
    pub max_drift: u32,
    /// Steps searched when resynchronising with two consecutive codes.
    pub resync_window: u32,
}

impl Default for OtpConfig {
    fn default() -> Self {
        OtpConfig {
            totp_window: 1,
            hotp_lookahead: 10,
            max_drift: 10,
            resync_window: 100,
        }
    }
}

/// `[passwords]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    /// Seconds a verified password is remembered (as a keyed hash) so the slow Argon2 check
    /// does not run on every login; 0 turns the cache off.
    pub cache_ttl_secs: u64,
    /// Slow password checks waiting or running at once; beyond it logins are shed.
    pub max_pending_checks: usize,
    /// Argon2id memory per hash, in KiB, for passwords set from now on (a stored hash is
    /// always checked with the parameters it was made with).
    pub argon2_memory_kib: u32,
    /// Argon2id passes over that memory.
    pub argon2_iterations: u32,
    /// Argon2id lanes.
    pub argon2_parallelism: u32,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        PasswordConfig {
            cache_ttl_secs: 600,
            max_pending_checks: 256,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            argon2_parallelism: 1,
        }
    }
}

/// OWASP's Password Storage Cheat Sheet's Argon2id configurations, each as strong as the
/// others: (memory in KiB, iterations). A setting must reach one of them in both.
pub const ARGON2_MINIMUMS: [(u32, u32); 5] = [
    (47_104, 1),
    (19_456, 2),
    (12_288, 3),
    (9_216, 4),
    (7_168, 5),
];

/// Argon2id memory per hash at most (1 GiB): every check in flight holds that much.
pub const ARGON2_MAX_MEMORY_KIB: u32 = 1 << 20;

impl PasswordConfig {
    /// Checks the Argon2id parameters: never below OWASP's minimums, never beyond what a
    /// server can hold.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_pending_checks == 0 {
            return Err(ConfigError::invalid(
                "passwords.max_pending_checks",
                "must be at least 1",
            ));
        }
        let (m, t, p) = (
            self.argon2_memory_kib,
            self.argon2_iterations,
            self.argon2_parallelism,
        );
        if !(1..=16).contains(&p) {
            return Err(ConfigError::invalid(
                "passwords.argon2_parallelism",
                "must be between 1 and 16",
            ));
        }
        if m > ARGON2_MAX_MEMORY_KIB {
            return Err(ConfigError::invalid(
                "passwords.argon2_memory_kib",
                "must be at most 1048576 (1 GiB)",
            ));
        }
        if !(1..=64).contains(&t) {
            return Err(ConfigError::invalid(
                "passwords.argon2_iterations",
                "must be between 1 and 64",
            ));
        }
        if !ARGON2_MINIMUMS
            .iter()
            .any(|&(min_m, min_t)| m >= min_m && t >= min_t)
        {
            return Err(ConfigError::invalid(
                "passwords.argon2_memory_kib",
                format!(
                    "{m} KiB with {t} iterations is below OWASP's minimums for Argon2id \
                     (at least 47104 KiB x 1, 19456 x 2, 12288 x 3, 9216 x 4 or 7168 x 5)"
                ),
            ));
        }
        Ok(())
    }
}

/// `[shutdown]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// Seconds given to requests in flight after SIGTERM before the server exits.
    pub grace_secs: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig { grace_secs: 5 }
    }
}

/// `[audit]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// File that receives one JSON line per decision, besides the log; none by default.
    pub file: Option<PathBuf>,
    /// A syslog receiver (a SIEM) that gets one RFC 5424 message per decision; none by
    /// default.
    pub syslog: Option<SyslogConfig>,
}

/// How audit messages travel to the syslog receiver.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogTransport {
    /// One datagram per message (RFC 5426): cheap, and lost silently when the network is.
    #[default]
    Udp,
    /// A stream with octet-counting framing (RFC 6587 §3.4.1), reconnected after a loss.
    Tcp,
}

impl SyslogTransport {
    /// `udp` or `tcp`, as in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            SyslogTransport::Udp => "udp",
            SyslogTransport::Tcp => "tcp",
        }
    }
}

/// A syslog facility by its conventional name; its RFC 5424 code is [`Self::code`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SyslogFacility(u8);

/// Facility names and their RFC 5424 numeric codes (§6.2.1, Table 1), as syslog.conf
/// and most SIEMs spell them.
const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("ntp", 12),
    ("audit", 13),
    ("alert", 14),
    ("clock", 15),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

impl SyslogFacility {
    /// `auth` (4): security and authorization messages, where login decisions belong.
    pub const AUTH: SyslogFacility = SyslogFacility(4);

    /// The numeric code, 0 to 23, that goes into the PRI part of a message.
    pub fn code(self) -> u8 {
        self.0
    }

    /// The conventional name (`auth`, `local3`, ...).
    pub fn name(self) -> &'static str {
        FACILITIES
            .iter()
            .find(|(_, code)| *code == self.0)
            .map(|(name, _)| *name)
            .unwrap_or("auth")
    }
}

impl FromStr for SyslogFacility {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FACILITIES
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, code)| SyslogFacility(*code))
            .ok_or_else(|| {
                format!("`{s}` is not a syslog facility (kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, ntp, audit, alert, clock, local0 to local7)")
            })
    }
}

impl fmt::Display for SyslogFacility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl<'de> Deserialize<'de> for SyslogFacility {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn default_syslog_facility() -> SyslogFacility {
    SyslogFacility::AUTH
}

fn default_syslog_app_name() -> String {
    "tollgate".to_owned()
}

fn default_syslog_queue() -> usize {
    16_384
}

/// `[audit.syslog]`: where and how audit records go out as RFC 5424 syslog messages.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// Address of the syslog receiver.
    pub address: SocketAddr,
    /// `udp` (default) or `tcp`.
    #[serde(default)]
    pub transport: SyslogTransport,
    /// Facility of every message; `auth` by default.
    #[serde(default = "default_syslog_facility")]
    pub facility: SyslogFacility,
    /// APP-NAME of every message; `tollgate` by default.
    #[serde(default = "default_syslog_app_name")]
    pub app_name: String,
    /// HOSTNAME of every message; the machine's host name when not given.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Messages waiting to be sent at most; beyond it records are dropped and counted,
    /// so that a slow or absent receiver never slows a login.
    #[serde(default = "default_syslog_queue")]
    pub queue: usize,
}

/// Whether every character is printable US-ASCII (33 to 126), as RFC 5424 requires of
/// the HOSTNAME and APP-NAME header fields.
fn printable_ascii(s: &str) -> bool {
    s.bytes().all(|b| (33..=126).contains(&b))
}

impl SyslogConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.address.port() == 0 || self.address.ip().is_unspecified() {
            return Err(ConfigError::invalid(
                "audit.syslog.address",
                "must name a host and a port to send to",
            ));
        }
        if self.app_name.is_empty() || self.app_name.len() > 48 || !printable_ascii(&self.app_name)
        {
            return Err(ConfigError::invalid(
                "audit.syslog.app_name",
                "must be 1 to 48 printable ASCII characters without spaces (RFC 5424)",
            ));
        }
        if let Some(host) = &self.hostname {
            if host.is_empty() || host.len() > 255 || !printable_ascii(host) {
                return Err(ConfigError::invalid(
                    "audit.syslog.hostname",
                    "must be 1 to 255 printable ASCII characters without spaces (RFC 5424)",
                ));
            }
        }
        if !(1..=1_048_576).contains(&self.queue) {
            return Err(ConfigError::invalid(
                "audit.syslog.queue",
                "must be between 1 and 1048576 messages",
            ));
        }
        Ok(())
    }
}

/// `[mobile_api]`: the HTTPS API the phone app talks to.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MobileApiConfig {
    /// Address to listen on; the API is off when not given.
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain of the API's TLS listener.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the API's TLS listener.
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP (behind a TLS-terminating proxy only).
    pub allow_plain: bool,
    /// The URL the app reaches the API at, put in enrolment QR codes.
    pub public_url: String,
    /// Seconds an enrolment code stays usable.
    pub enrol_ttl_secs: u64,
    /// Enrolment attempts one client address (an IPv6 /64) may make per minute; 0 lifts
    /// the limit (behind a proxy, where every client has the proxy's address).
    pub enrol_per_minute: u32,
    /// Nonces of signed requests remembered at once, over all devices (each for 5 to 10
    /// minutes, about 200 bytes); when reached, signed requests are answered 503. A push
    /// login costs its phone two signed requests.
    pub max_nonces: usize,
    /// Nonces remembered at once for one device; when reached, that device is answered 429.
    pub max_nonces_per_device: usize,
}

impl Default for MobileApiConfig {
    fn default() -> Self {
        MobileApiConfig {
            listen: None,
            tls_cert: None,
            tls_key: None,
            allow_plain: false,
            public_url: "https://tollgate.example.com:8443".to_owned(),
            enrol_ttl_secs: 600,
            enrol_per_minute: 20,
            max_nonces: 200_000,
            max_nonces_per_device: 1_000,
        }
    }
}

impl MobileApiConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.listen.is_some() {
            match (&self.tls_cert, &self.tls_key, self.allow_plain) {
                (Some(_), Some(_), _) => {}
                (None, None, true) => {}
                (None, None, false) => {
                    return Err(ConfigError::invalid(
                        "mobile_api.tls_cert",
                        "give tls_cert and tls_key, or allow_plain = true behind a TLS proxy",
                    ))
                }
                _ => {
                    return Err(ConfigError::invalid(
                        "mobile_api.tls_key",
                        "give both tls_cert and tls_key",
                    ))
                }
            }
        }
        if !(60..=86_400).contains(&self.enrol_ttl_secs) {
            return Err(ConfigError::invalid(
                "mobile_api.enrol_ttl_secs",
                "must be between 60 and 86400 seconds",
            ));
        }
        if !(1_000..=10_000_000).contains(&self.max_nonces) {
            return Err(ConfigError::invalid(
                "mobile_api.max_nonces",
                "must be between 1000 and 10000000 (about 200 bytes each)",
            ));
        }
        if !(1..=self.max_nonces).contains(&self.max_nonces_per_device) {
            return Err(ConfigError::invalid(
                "mobile_api.max_nonces_per_device",
                "must be at least 1 and at most mobile_api.max_nonces",
            ));
        }
        Ok(())
    }
}

/// `[metrics]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the Prometheus `/metrics` listener; none by default.
    pub listen: Option<SocketAddr>,
}

/// Format of diagnostic logs.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Filter in `tracing` syntax, e.g. `info` or `tollgate=debug`.
    pub level: String,
    /// Line format.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// An address or network a RADIUS client sends from: `10.1.2.3` or `10.1.2.0/24`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddress(pub IpNet);

impl FromStr for ClientAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(ClientAddress(net.trunc()));
        }
        s.parse::<IpAddr>()
            .map(|ip| ClientAddress(IpNet::from(ip)))
            .map_err(|_| format!("`{s}` is neither an IP address nor a CIDR network"))
    }
}

impl fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for ClientAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn deserialize_mode<'de, D: Deserializer<'de>>(d: D) -> Result<LoginMode, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

fn default_mode() -> LoginMode {
    LoginMode::Append
}

fn default_true() -> bool {
    true
}

/// `[[client]]`: one RADIUS client (a NAS, a VPN concentrator).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Name used in logs, metrics and the CLI.
    pub name: String,
    /// Source address or network of its requests.
    pub address: ClientAddress,
    /// The shared secret, inline.
    #[serde(default)]
    pub secret: Option<SharedSecret>,
    /// A file holding the shared secret (trailing newline ignored); preferred over `secret`.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// How the client presents the two factors.
    #[serde(default = "default_mode", deserialize_with = "deserialize_mode")]
    pub mode: LoginMode,
    /// Drop requests that carry no Message-Authenticator (BlastRADIUS, CVE-2024-3596).
    #[serde(default = "default_true")]
    pub require_message_authenticator: bool,
    /// Accept a request with Proxy-State and no Message-Authenticator from this client
    /// (when it does not require Message-Authenticator): only for a proxy known to strip
    /// it. Off, such a request is dropped, as the BlastRADIUS forgery has that shape.
    #[serde(default)]
    pub allow_unsigned_proxy_state: bool,
    /// Requests per second allowed; 0 takes `radius.rate_limit_per_client`.
    #[serde(default)]
    pub rate_limit: u32,
}

impl ClientConfig {
    /// The secret, read from `secret_file` when given.
    pub fn resolve_secret(&self) -> Result<SharedSecret, ConfigError> {
        if let Some(path) = &self.secret_file {
            return SharedSecret::from_file(path);
        }
        self.secret
            .clone()
            .ok_or_else(|| ConfigError::invalid("client.secret", "missing"))
    }
}

impl Config {
    /// Parses and validates a configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            ConfigError::Syntax {
                path: if path == "." {
                    "(top level)".to_owned()
                } else {
                    path
                },
                message: inner.message().to_owned(),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text)
    }

    /// Checks every value that parses but is not allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid("data_dir", "must not be empty"));
        }
        let r = &self.radius;
        if r.listen.is_empty() {
            return Err(ConfigError::invalid(
                "radius.listen",
                "needs at least one address",
            ));
        }
        if r.max_in_flight_per_client == 0 {
            return Err(ConfigError::invalid(
                "radius.max_in_flight_per_client",
                "must be at least 1",
            ));
        }
        if !(1..=300).contains(&r.duplicate_window_secs) {
            return Err(ConfigError::invalid(
                "radius.duplicate_window_secs",
                "must be between 1 and 300 seconds",
            ));
        }
        if r.max_wait_us > 10_000_000 {
            return Err(ConfigError::invalid(
                "radius.max_wait_us",
                "must be at most 10000000 (10 s)",
            ));
        }
        if !(1..=60_000).contains(&r.overload_after_ms) {
            return Err(ConfigError::invalid(
                "radius.overload_after_ms",
                "must be between 1 and 60000",
            ));
        }
        if r.workers > 256 {
            return Err(ConfigError::invalid(
                "radius.workers",
                "must be at most 256",
            ));
        }
        if r.duplicate_cache_entries == 0 {
            return Err(ConfigError::invalid(
                "radius.duplicate_cache_entries",
                "must be at least 1",
            ));
        }
        let sc = &self.scheduling;
        if !(0..=19).contains(&sc.background_nice) {
            return Err(ConfigError::invalid(
                "scheduling.background_nice",
                "must be between 0 and 19",
            ));
        }
        if sc.udp_slice_us != 0 && !(100..=100_000).contains(&sc.udp_slice_us) {
            return Err(ConfigError::invalid(
                "scheduling.udp_slice_us",
                "must be 0 (the kernel's default) or between 100 and 100000",
            ));
        }
        let l = &self.login;
        if !(5..=3600).contains(&l.challenge_ttl_secs) {
            return Err(ConfigError::invalid(
                "login.challenge_ttl_secs",
                "must be between 5 and 3600 seconds",
            ));
        }
        if l.challenge_message.len() > 253 {
            return Err(ConfigError::invalid(
                "login.challenge_message",
                "must fit one Reply-Message (253 bytes)",
            ));
        }
        if !(5..=600).contains(&l.push_timeout_secs) {
            return Err(ConfigError::invalid(
                "login.push_timeout_secs",
                "must be between 5 and 600 seconds",
            ));
        }
        if l.push_prompt.len() > 240 || !l.push_prompt.contains("{number}") {
            return Err(ConfigError::invalid(
                "login.push_prompt",
                "must contain {number} and fit one Reply-Message",
            ));
        }
        if l.max_sessions == 0 {
            return Err(ConfigError::invalid(
                "login.max_sessions",
                "must be at least 1",
            ));
        }
        if self.otp.totp_window > 10 {
            return Err(ConfigError::invalid(
                "otp.totp_window",
                "must be at most 10 steps; wider windows weaken the passcode",
            ));
        }
        if !(1..=1000).contains(&self.otp.hotp_lookahead) {
            return Err(ConfigError::invalid(
                "otp.hotp_lookahead",
                "must be between 1 and 1000",
            ));
        }
        if self.otp.resync_window > 10_000 {
            return Err(ConfigError::invalid(
                "otp.resync_window",
                "must be at most 10000",
            ));
        }
        self.passwords.validate()?;
        if self.shutdown.grace_secs > 600 {
            return Err(ConfigError::invalid(
                "shutdown.grace_secs",
                "must be at most 600 seconds",
            ));
        }
        if let Some(syslog) = &self.audit.syslog {
            syslog.validate()?;
        }
        crate::ldap::validate_all(&self.ldap)?;
        crate::gateway::validate_all(&self.gateways)?;
        self.delivery.validate()?;
        self.mobile_api.validate()?;
        let mut names = std::collections::HashSet::new();
        for (i, c) in self.clients.iter().enumerate() {
            let at = |key: &str| format!("client[{i}].{key}");
            if c.name.is_empty() || c.name.len() > 64 || !c.name.chars().all(valid_name_char) {
                return Err(ConfigError::invalid(
                    at("name"),
                    "must be 1 to 64 letters, digits, '-', '_' or '.'",
                ));
            }
            if !names.insert(c.name.as_str()) {
                return Err(ConfigError::invalid(
                    at("name"),
                    format!("client `{}` is declared twice", c.name),
                ));
            }
            match (&c.secret, &c.secret_file) {
                (None, None) => {
                    return Err(ConfigError::invalid(
                        at("secret"),
                        "give secret or secret_file",
                    ))
                }
                (Some(_), Some(_)) => {
                    return Err(ConfigError::invalid(
                        at("secret_file"),
                        "give secret or secret_file, not both",
                    ))
                }
                (Some(s), None) if s.is_empty() => {
                    return Err(ConfigError::invalid(at("secret"), "must not be empty"))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Characters allowed in client names: they become metrics labels and CLI arguments.
pub fn valid_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_path(text: &str) -> String {
        Config::parse(text)
            .expect_err("config should be refused")
            .key_path()
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.radius.listen, vec!["0.0.0.0:1812".parse().unwrap()]);
        assert_eq!(c.lockout.threshold, 5);
        assert!(c.clients.is_empty());
    }

    #[test]
    fn unknown_keys_are_refused_with_their_path() {
        assert_eq!(err_path("bogus = 1"), "bogus");
        assert_eq!(err_path("[radius]\nlisen = []"), "radius.lisen");
        assert!(Config::parse("[radius]\nlisen = []")
            .unwrap_err()
            .to_string()
            .contains("lisen"));
        assert_eq!(
            err_path("[[client]]\nname='a'\naddress='10.0.0.1'\nsecret='s'\nmood='x'"),
            "client[0].mood"
        );
    }

    #[test]
    fn wrong_types_name_the_key() {
        assert_eq!(err_path("[radius]\nlisten = ['nope']"), "radius.listen[0]");
        assert_eq!(
            err_path("[lockout]\nthreshold = 'five'"),
            "lockout.threshold"
        );
        assert_eq!(
            err_path("[[client]]\nname='a'\naddress='10.0.0.300'\nsecret='s'"),
            "client[0].address"
        );
        assert_eq!(
            err_path("[[client]]\nname='a'\naddress='10.0.0.1'\nsecret='s'\nmode='push'"),
            "client[0].mode"
        );
    }

    #[test]
    fn argon2_parameters_below_owasp_minimums_are_refused() {
        let parse = |m: u32, t: u32, p: u32| {
            Config::parse(&format!(
                "[passwords]\nargon2_memory_kib = {m}\nargon2_iterations = {t}\nargon2_parallelism = {p}"
            ))
        };
        // Each of OWASP's configurations, and more of either, is taken.
        for (m, t) in ARGON2_MINIMUMS {
            assert!(parse(m, t, 1).is_ok(), "{m} KiB x {t}");
            assert!(parse(m * 2, t + 1, 4).is_ok(), "{m} KiB x {t}, more");
        }
        // Just below each, in memory or in passes, is not.
        for (m, t) in ARGON2_MINIMUMS {
            let e = parse(m - 1, t, 1).unwrap_err();
            assert_eq!(
                e.key_path(),
                Some("passwords.argon2_memory_kib"),
                "{m} x {t}"
            );
            assert!(e.to_string().contains("OWASP"), "{e}");
        }
        assert!(parse(19_455, 2, 1).is_err());
        assert!(parse(47_103, 1, 1).is_err());
        assert_eq!(
            err_path("[passwords]\nargon2_parallelism = 0"),
            "passwords.argon2_parallelism"
        );
        assert_eq!(
            err_path("[passwords]\nargon2_parallelism = 17"),
            "passwords.argon2_parallelism"
        );
        assert_eq!(
            err_path("[passwords]\nargon2_iterations = 0"),
            "passwords.argon2_iterations"
        );
        assert_eq!(
            err_path("[passwords]\nargon2_iterations = 65"),
            "passwords.argon2_iterations"
        );
        assert_eq!(
            err_path("[passwords]\nargon2_memory_kib = 2000000"),
            "passwords.argon2_memory_kib"
        );
        let d = PasswordConfig::default();
        assert_eq!(
            (
                d.argon2_memory_kib,
                d.argon2_iterations,
                d.argon2_parallelism
            ),
            (19_456, 2, 1)
        );
    }

    #[test]
    fn invalid_values_name_the_key() {
        assert_eq!(err_path("[radius]\nlisten = []"), "radius.listen");
        assert_eq!(err_path("[otp]\ntotp_window = 50"), "otp.totp_window");
        assert_eq!(
            err_path("[[client]]\nname='a'\naddress='10.0.0.1'"),
            "client[0].secret"
        );
        assert_eq!(
            err_path("[[client]]\nname='a'\naddress='1.1.1.1'\nsecret='s'\n[[client]]\nname='a'\naddress='1.1.1.2'\nsecret='t'"),
            "client[1].name"
        );
        assert_eq!(
            err_path("[[client]]\nname='a b'\naddress='1.1.1.1'\nsecret='s'"),
            "client[0].name"
        );
    }

    #[test]
    fn the_mobile_api_nonce_limits_are_bounded() {
        let c = Config::parse("").unwrap();
        assert_eq!(
            (c.mobile_api.max_nonces, c.mobile_api.max_nonces_per_device),
            (200_000, 1_000)
        );
        let c = Config::parse("[mobile_api]\nmax_nonces = 2000000\nmax_nonces_per_device = 5000")
            .unwrap();
        assert_eq!(
            (c.mobile_api.max_nonces, c.mobile_api.max_nonces_per_device),
            (2_000_000, 5_000)
        );
        assert_eq!(
            err_path("[mobile_api]\nmax_nonces = 999"),
            "mobile_api.max_nonces"
        );
        assert_eq!(
            err_path("[mobile_api]\nmax_nonces = 20000000"),
            "mobile_api.max_nonces"
        );
        assert_eq!(
            err_path("[mobile_api]\nmax_nonces_per_device = 0"),
            "mobile_api.max_nonces_per_device"
        );
        assert_eq!(
            err_path("[mobile_api]\nmax_nonces = 1000\nmax_nonces_per_device = 1001"),
            "mobile_api.max_nonces_per_device"
        );
    }

    #[test]
    fn scheduling_takes_its_defaults_and_refuses_what_the_kernel_would() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.scheduling, SchedulingConfig::default());
        let c = Config::parse("[scheduling]\nudp_slice_us = 0\nbackground_nice = 0").unwrap();
        assert_eq!(c.scheduling.udp_slice_us, 0);
        assert_eq!(c.scheduling.background_nice, 0);
        assert_eq!(
            err_path("[scheduling]\nbackground_nice = 20"),
            "scheduling.background_nice"
        );
        assert_eq!(
            err_path("[scheduling]\nbackground_nice = -5"),
            "scheduling.background_nice"
        );
        assert_eq!(
            err_path("[scheduling]\nudp_slice_us = 50"),
            "scheduling.udp_slice_us"
        );
        assert_eq!(
            err_path("[scheduling]\nudp_realtime_priority = 10"),
            "scheduling.udp_realtime_priority"
        );
    }

    #[test]
    fn client_addresses_take_hosts_and_networks() {
        let c: ClientAddress = "10.1.2.3".parse().unwrap();
        assert_eq!(c.to_string(), "10.1.2.3/32");
        let c: ClientAddress = "10.1.2.3/24".parse().unwrap();
        assert_eq!(c.to_string(), "10.1.2.0/24");
        let c: ClientAddress = "::1".parse().unwrap();
        assert_eq!(c.to_string(), "::1/128");
    }

    #[test]
    fn audit_syslog_takes_its_defaults() {
        let c = Config::parse("[audit.syslog]\naddress = '127.0.0.1:514'").unwrap();
        let s = c.audit.syslog.expect("syslog section");
        assert_eq!(s.address, "127.0.0.1:514".parse().unwrap());
        assert_eq!(s.transport, SyslogTransport::Udp);
        assert_eq!(s.facility, SyslogFacility::AUTH);
        assert_eq!(s.facility.code(), 4);
        assert_eq!(s.app_name, "tollgate");
        assert_eq!(s.hostname, None);
        assert_eq!(s.queue, 16_384);
        assert!(Config::parse("").unwrap().audit.syslog.is_none());
    }

    #[test]
    fn audit_syslog_takes_every_key() {
        let c = Config::parse(
            "[audit]\nfile = '/tmp/a.jsonl'\n[audit.syslog]\naddress = '[::1]:6514'\ntransport = 'tcp'\nfacility = 'local3'\napp_name = 'tg'\nhostname = 'radius-1.example'\nqueue = 10",
        )
        .unwrap();
        let s = c.audit.syslog.expect("syslog section");
        assert_eq!(s.transport, SyslogTransport::Tcp);
        assert_eq!(s.facility.code(), 19);
        assert_eq!(s.facility.to_string(), "local3");
        assert_eq!(s.app_name, "tg");
        assert_eq!(s.hostname.as_deref(), Some("radius-1.example"));
        assert_eq!(s.queue, 10);
    }

    #[test]
    fn every_rfc5424_facility_name_is_known() {
        for (name, code) in [
            ("kern", 0),
            ("user", 1),
            ("daemon", 3),
            ("auth", 4),
            ("authpriv", 10),
            ("local0", 16),
            ("local7", 23),
        ] {
            let f: SyslogFacility = name.parse().unwrap();
            assert_eq!(f.code(), code, "{name}");
            assert_eq!(f.name(), name);
        }
        assert!("local8".parse::<SyslogFacility>().is_err());
        assert!("AUTH".parse::<SyslogFacility>().is_err());
    }

    #[test]
    fn audit_syslog_errors_name_the_key() {
        let with = |body: &str| format!("[audit.syslog]\naddress = '127.0.0.1:514'\n{body}");
        assert_eq!(
            err_path("[audit.syslog]\ntransport = 'udp'"),
            "audit.syslog"
        );
        assert_eq!(err_path(&with("port = 1")), "audit.syslog.port");
        assert_eq!(
            err_path("[audit.syslog]\naddress = 'siem:514'"),
            "audit.syslog.address"
        );
        assert_eq!(
            err_path(&with("transport = 'tls'")),
            "audit.syslog.transport"
        );
        assert_eq!(
            err_path(&with("facility = 'local9'")),
            "audit.syslog.facility"
        );
        assert!(Config::parse(&with("facility = 'local9'"))
            .unwrap_err()
            .to_string()
            .contains("not a syslog facility"));
        assert_eq!(
            err_path("[audit.syslog]\naddress = '127.0.0.1:0'"),
            "audit.syslog.address"
        );
        assert_eq!(
            err_path("[audit.syslog]\naddress = '0.0.0.0:514'"),
            "audit.syslog.address"
        );
        assert_eq!(err_path(&with("app_name = ''")), "audit.syslog.app_name");
        assert_eq!(
            err_path(&with("app_name = 'toll gate'")),
            "audit.syslog.app_name"
        );
        assert_eq!(
            err_path(&with(&format!("app_name = '{}'", "a".repeat(49)))),
            "audit.syslog.app_name"
        );
        assert_eq!(
            err_path(&with("hostname = 'h\u{e9}te'")),
            "audit.syslog.hostname"
        );
        assert_eq!(err_path(&with("queue = 0")), "audit.syslog.queue");
        assert_eq!(err_path("[audit]\nsyslg = 1"), "audit.syslg");
    }

    #[test]
    fn clients_default_to_append_with_message_authenticator_required() {
        let c =
            Config::parse("[[client]]\nname='vpn'\naddress='127.0.0.1'\nsecret='s3cret'").unwrap();
        assert_eq!(c.clients[0].mode, LoginMode::Append);
        assert!(c.clients[0].require_message_authenticator);
        assert_eq!(c.clients[0].resolve_secret().unwrap().expose(), b"s3cret");
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
