//! The RADIUS load harness of Tollgate.
//!
//! `tollgate-loadtest` is a black-box RADIUS client: it speaks to a server only through UDP
//! datagrams built and checked with the engine's codec (`tollgate_engine::radius`) and the
//! engine's OTP core (`tollgate_engine::otp`), so what it measures is what a NAS would see.
//! It never links the server (`tollgate-actors`), which keeps it usable against any RADIUS
//! server, FreeRADIUS included.
//!
//! A second binary, `ldap-login-bench` (`src/bin/`), is the baseline of `compare-ldap.sh`:
//! it drives an LDAP directory on loopback with the search and bind of a Tollgate directory
//! login, over `ldap3` and `tokio`, which only it uses; it shares the guard, the histograms
//! and the report types of this library.
//!
//! The pieces, in the order a run uses them:
//! * [`guard`] refuses every target that is not a loopback address;
//! * [`state`] writes the users and seeds of a run (`setup`) and keeps each user's HOTP
//!   counter between runs;
//! * [`mix`], [`schedule`], [`users`] and [`ids`] decide what is sent next, when, as whom and
//!   with which identifier;
//! * [`packet`] builds the datagrams, [`worker`] runs the event loop that sends them and checks
//!   every reply, and [`run`] coordinates workers, the warm-up and the progress line;
//! * [`stats`] counts and measures (a reply's latency ends at the kernel's arrival stamp on
//!   the harness's socket, so a busy harness does not lengthen it), [`report`] turns the
//!   counts into the summary and the JSON report, and [`sys`] reads the process's own CPU
//!   time and the arrival stamps, and formats timestamps;
//! * [`hiccups`] measures the machine's own stalls (`tollgate-loadtest hiccups`), and
//!   [`floor`] plays an open-loop run of a perfect server against the stalls of two cores
//!   (`tollgate-loadtest floor`): the tail no server can beat here;
//! * [`push`] is the phone's side of the push scenario: `push-setup` enrols a simulated phone
//!   per user over the mobile API, and during a run its approver threads approve each held
//!   login over HTTP after a random delay.
//!
//! # The push scenario
//!
//! Issue 6: a simulated app approves over HTTP after a random delay, and the harness reports
//! the login latency and how many logins the server held at once. The users need passwords
//! (`setup --passwords`, `tollgate user import`), a RADIUS client in `append` mode (or
//! `challenge` mode, for number matching with `--login challenge`), and a server whose mobile
//! API listens on a loopback address in plain HTTP (`[mobile_api] listen = "127.0.0.1:8443"`,
//! `allow_plain = true`). With the server running:
//!
//! ```text
//! tollgate-loadtest push-setup --dir lt --config tollgate.toml --api 127.0.0.1:8443
//! tollgate-loadtest run --server 127.0.0.1:1812 --secret-stdin --dir lt --scenario push \
//!     --concurrency 100 --duration 10 --approve-min-ms 500 --approve-max-ms 2000 --warmup < lt/secret
//! ```
//!
//! `push-setup` sets every user's delivery to push (`tollgate user delivery-import`, one
//! transaction), makes a one-time enrolment code per user (`tollgate device enrol NAME
//! --no-qr`, a few processes at once), generates an Ed25519 key and enrols it with `POST
//! /v1/devices`, and writes the device ids and private keys to `devices.json` (mode 0600).
//!
//! A push login sends User-Name and the password; the server holds the request until the
//! phone decides. When the login leaves, an approval is queued for a moment drawn uniformly
//! from `[--approve-min-ms, --approve-max-ms]` later; an approver thread then lists the
//! user's pending challenges (`GET /v1/challenges`, signed) and approves them (`POST
//! /v1/challenges/{id}`, signed), answering number matching with the number the
//! Access-Challenge's prompt showed. A user has at most one login in flight, so its device's
//! pending list names that login. The report adds the time from the approval's POST to the
//! Access-Accept, the logins held at once (sent and not yet finally answered: the maximum,
//! and the mean over time), the approvals' lateness and HTTP round trips, and every HTTP
//! error by status.

pub mod floor;
pub mod guard;
pub mod hiccups;
pub mod ids;
pub mod mix;
pub mod packet;
pub mod push;
pub mod report;
pub mod run;
pub mod schedule;
pub mod state;
pub mod stats;
pub mod sys;
pub mod users;
pub mod worker;

/// How a good login looks on the wire; the RADIUS client's mode on the server must match.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoginMode {
    /// User-Password is the password followed by the six-digit code.
    Append,
    /// The password first, answered with Access-Challenge; then the code with the State.
    Challenge,
    /// User-Password is the code alone.
    Passcode,
    /// User-Password is the password alone (plain PAP, for servers without OTP).
    Pap,
    /// Push approval through a client in append mode: the password alone, held by the
    /// server until the phone approves.
    PushAppend,
    /// Push approval through a client in challenge mode: the password, answered with
    /// Access-Challenge showing the number to pick; then at once the State with an empty
    /// password, held until the phone approves with that number.
    PushChallenge,
}

impl LoginMode {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            LoginMode::Append => "append",
            LoginMode::Challenge => "challenge",
            LoginMode::Passcode => "passcode",
            LoginMode::Pap => "pap",
            LoginMode::PushAppend => "push-append",
            LoginMode::PushChallenge => "push-challenge",
        }
    }

    /// Whether a phone approves the login over the mobile API.
    pub fn is_push(self) -> bool {
        matches!(self, LoginMode::PushAppend | LoginMode::PushChallenge)
    }

    /// Whether a good login takes two datagrams: the password, then the answer to the
    /// Access-Challenge with its State.
    pub fn two_steps(self) -> bool {
        matches!(self, LoginMode::Challenge | LoginMode::PushChallenge)
    }

    /// Whether a login in this mode carries the user's password somewhere.
    pub fn needs_password(self) -> bool {
        !matches!(self, LoginMode::Passcode)
    }
}
