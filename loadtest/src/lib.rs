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
//! * [`stats`] counts and measures, [`report`] turns the counts into the summary and the JSON
//!   report, and [`sys`] reads the process's own CPU time and formats timestamps.

pub mod guard;
pub mod ids;
pub mod mix;
pub mod packet;
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
}

impl LoginMode {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            LoginMode::Append => "append",
            LoginMode::Challenge => "challenge",
            LoginMode::Passcode => "passcode",
            LoginMode::Pap => "pap",
        }
    }

    /// Whether a login in this mode carries the user's password somewhere.
    pub fn needs_password(self) -> bool {
        !matches!(self, LoginMode::Passcode)
    }
}
