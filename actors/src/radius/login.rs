//! The login procedure: reading a verified Access-Request in the client's login mode and
//! carrying it through the password, passcode and challenge steps.
//!
//! The decisions themselves come from `tollgate_engine::login`; this module only gathers
//! their inputs from the directory and says which step must run where. Every function here
//! is CPU-only: the one slow step, Argon2, is returned as [`Progress::SlowPassword`] for
//! the caller to run on a blocking thread.

use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use tokio::sync::Semaphore;
use tollgate_engine::login::{split_appended, LoginMode, Outcome, RejectReason, STATE_LEN};
use tollgate_engine::radius::{attr, unhide_password, Verified, MAX_PASSWORD_LEN};
use zeroize::{Zeroize, Zeroizing};

use super::{ClientSettings, SessionMsg, SessionRegistry};
use crate::audit::Audit;
use crate::delivery::{Channel, Delivery};
use crate::ldap::login::DirLogin;
use crate::ldap::Domains;
use crate::state::{DayCheck, Directory, PasscodeCheck, PasswordCheck, UserEntry};
use crate::store::Method;

/// What every client actor and session shares.
pub struct Shared {
    /// The embedded directory.
    pub directory: Arc<Directory>,
    /// LDAP and Active Directory domains.
    pub domains: Arc<Domains>,
    /// Open challenge sessions.
    pub sessions: SessionRegistry,
    /// Admission to the slow password check (waiting or running).
    pub slow_gate: Arc<Semaphore>,
    /// The threads that run Argon2 checks (one per core, at idle priority).
    pub checks: crate::state::CheckPool,
    /// How long a challenge stays answerable.
    pub challenge_ttl_secs: u64,
    /// Reply-Message of an Access-Challenge.
    pub challenge_message: String,
    /// The audit trail.
    pub audit: Audit,
    /// Delivered codes.
    pub delivery: Arc<Delivery>,
    /// Push logins waiting for a phone.
    pub push: super::push::PushRegistry,
    /// How long a push login waits.
    pub push_timeout_secs: u64,
    /// Reply-Message of a push challenge.
    pub push_prompt: String,
    /// Duplicate-cache window.
    pub dedup_window: Duration,
    /// Duplicate-cache capacity per client.
    pub dedup_entries: usize,
}

/// The end of a login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// What was concluded.
    pub outcome: Outcome,
    /// The State of a challenge, when the outcome is one.
    pub state: Option<[u8; STATE_LEN]>,
    /// The user name as given (for the audit line).
    pub user: String,
    /// Reply-Message of a challenge, when not the configured one.
    pub message: Option<String>,
}

impl Decision {
    /// A refusal of `user`'s login for `reason`.
    pub fn reject(user: &str, reason: RejectReason) -> Self {
        Decision {
            outcome: Outcome::Reject(reason),
            state: None,
            user: user.to_owned(),
            message: None,
        }
    }
}

/// What to do once the password is right.
pub enum Then {
    /// Check this passcode or day code (append mode).
    Passcode(Zeroizing<Vec<u8>>),
    /// Open a challenge (challenge mode).
    Challenge,
    /// Send a real-time code and open a challenge for it.
    SendCode(Channel),
    /// Ask the user's phone.
    Push,
}

/// Where a login stands after its inline part.
pub enum Progress {
    /// Decided.
    Done(Decision),
    /// The password needs the slow check, then `then`.
    SlowPassword {
        /// The user.
        user: Arc<UserEntry>,
        /// The name as given.
        name: String,
        /// The password to check.
        password: Zeroizing<Vec<u8>>,
        /// What follows a good password.
        then: Then,
    },
    /// The password is right: open a challenge session.
    OpenChallenge {
        /// The name as given.
        name: String,
    },
    /// The password is right: send a real-time code, then open a challenge for it.
    SendCode {
        /// The user's id in the embedded store, if they have an entry there.
        user_id: Option<i64>,
        /// The name as given.
        name: String,
        /// The channel.
        channel: Channel,
        /// Where it goes, if the user has a number or address for it.
        to: Option<String>,
    },
    /// The password is right: ask the user's phone and wait for it.
    Push {
        /// The user's id.
        user_id: i64,
        /// The name as given.
        name: String,
    },
    /// A user of an LDAP domain: the rest waits on the directory.
    Directory(Box<DirLogin>),
    /// An answer to a challenge: hand it to the session.
    Answer {
        /// The session named by the State.
        session: ActorRef<SessionMsg>,
        /// The name as given.
        name: String,
        /// The passcode typed.
        passcode: Zeroizing<Vec<u8>>,
    },
}

/// Reads a User-Name: present, not empty, UTF-8 without control characters.
fn user_name<'a>(req: &Verified<'a>) -> Option<&'a str> {
    let raw = req.attribute(attr::USER_NAME)?;
    let name = std::str::from_utf8(raw).ok()?;
    (!name.is_empty() && !name.chars().any(char::is_control)).then_some(name)
}

/// Runs the inline part of a login.
pub fn start(
    shared: &Shared,
    client: &ClientSettings,
    req: &Verified<'_>,
    now: u64,
    now_ms: u64,
) -> Progress {
    let Some(name) = user_name(req) else {
        return Progress::Done(Decision::reject("", RejectReason::Malformed));
    };
    // A NAS that answers a challenge with nothing typed may send an empty User-Password,
    // or none; it stands for an empty field (only a challenge's answer can be one).
    let hidden = req.attribute(attr::USER_PASSWORD);
    if hidden.is_none_or(<[u8]>::is_empty) && req.attribute(attr::STATE).is_some() {
        return start_with_field(shared, client, req, name, &[], now, now_ms);
    }
    let Some(hidden) = hidden else {
        // CHAP and EAP cannot carry a passcode we can check against a hashed password.
        return Progress::Done(Decision::reject(name, RejectReason::Malformed));
    };
    let mut buf = [0u8; MAX_PASSWORD_LEN];
    let field = match unhide_password(
        hidden,
        client.secret.expose(),
        req.authenticator(),
        &mut buf,
    ) {
        Ok(field) => field,
        Err(_) => return Progress::Done(Decision::reject(name, RejectReason::Malformed)),
    };
    let progress = start_with_field(shared, client, req, name, field, now, now_ms);
    buf.zeroize();
    progress
}

fn start_with_field(
    shared: &Shared,
    client: &ClientSettings,
    req: &Verified<'_>,
    name: &str,
    field: &[u8],
    now: u64,
    now_ms: u64,
) -> Progress {
    let dir = &shared.directory;
    // An answer to a challenge: challenge-mode clients, and clients of any mode whose
    // user was sent a real-time code.
    if let Some(state) = req.attribute(attr::STATE) {
        return match shared.sessions.take(state) {
            Some(session) => Progress::Answer {
                session,
                name: name.to_owned(),
                passcode: Zeroizing::new(field.to_vec()),
            },
            None => Progress::Done(Decision::reject(name, RejectReason::UnknownState)),
        };
    }
    if let Some(route) = shared.domains.route(name) {
        return Progress::Directory(Box::new(DirLogin {
            domain: Arc::clone(route.domain),
            user: route.user.to_owned(),
            given: name.to_owned(),
            field: Zeroizing::new(field.to_vec()),
            mode: client.mode,
        }));
    }
    let Some(user) = dir.user(name) else {
        // A known name with a wrong password costs an Argon2 check; an unknown name costs
        // the same, against the decoy, so that the reply's timing does not tell the two
        // apart. A passcode-only client checks no password for anyone.
        if client.mode == LoginMode::PasscodeOnly || field.is_empty() {
            return Progress::Done(Decision::reject(name, RejectReason::UnknownUser));
        }
        return Progress::SlowPassword {
            user: dir.decoy(),
            name: name.to_owned(),
            password: Zeroizing::new(field.to_vec()),
            then: Then::Challenge,
        };
    };
    if user.disabled {
        return Progress::Done(Decision::reject(name, RejectReason::Disabled));
    }
    if dir.is_locked(&user, now) {
        return Progress::Done(Decision::reject(name, RejectReason::LockedOut));
    }
    // A refusal that counts towards the user's lockout.
    let refuse =
        |reason| Progress::Done(conclude(shared, &user, name, Outcome::Reject(reason), now));
    let password_then =
        |password: &[u8], then: Then| match dir.check_password_fast(&user, password, now_ms) {
            PasswordCheck::Good => after_password(shared, &user, name, true, then, now),
            PasswordCheck::Bad => refuse(RejectReason::BadPassword),
            PasswordCheck::NeedsSlowCheck => Progress::SlowPassword {
                user: Arc::clone(&user),
                name: name.to_owned(),
                password: Zeroizing::new(password.to_vec()),
                then,
            },
        };
    match (user.delivery.method, client.mode) {
        // A real-time code is sent once the password is right; it is typed at the
        // challenge's prompt, whatever the client's mode (a passcode-only client checks no
        // password, so it can never trigger a send).
        (Method::Realtime(_), LoginMode::PasscodeOnly) => refuse(RejectReason::NoToken),
        (Method::Realtime(channel), _) => password_then(field, Then::SendCode(channel)),
        (Method::Push, LoginMode::PasscodeOnly) => refuse(RejectReason::NoToken),
        (Method::Push, _) => password_then(field, Then::Push),
        (_, LoginMode::PasscodeOnly) => {
            Progress::Done(second_factor(shared, &user, name, field, now))
        }
        (_, LoginMode::Challenge) => password_then(field, Then::Challenge),
        (method, LoginMode::Append) => {
            // No allocation on this path: the split tries each passcode length in place.
            let split = match method {
                Method::Preload(_) => match dir.day_code_len(user.id) {
                    Some(len) => split_appended(field, len as u8),
                    None => return refuse(RejectReason::NoToken),
                },
                _ if user.tokens.is_empty() => return refuse(RejectReason::NoToken),
                _ => user
                    .passcode_lengths()
                    .find_map(|digits| split_appended(field, digits)),
            };
            let Some((password, passcode)) = split else {
                return refuse(RejectReason::Malformed);
            };
            // The common case stays on this thread and copies nothing.
            match dir.check_password_fast(&user, password, now_ms) {
                PasswordCheck::Good => {
                    Progress::Done(second_factor(shared, &user, name, passcode, now))
                }
                PasswordCheck::Bad => refuse(RejectReason::BadPassword),
                PasswordCheck::NeedsSlowCheck => Progress::SlowPassword {
                    user: Arc::clone(&user),
                    name: name.to_owned(),
                    password: Zeroizing::new(password.to_vec()),
                    then: Then::Passcode(Zeroizing::new(passcode.to_vec())),
                },
            }
        }
    }
}

/// Continues a login once the password is checked.
pub fn after_password(
    shared: &Shared,
    user: &UserEntry,
    name: &str,
    password_ok: bool,
    then: Then,
    now: u64,
) -> Progress {
    if shared.directory.is_decoy(user) {
        // An unknown name, checked against the decoy for its timing alone.
        return Progress::Done(Decision::reject(name, RejectReason::UnknownUser));
    }
    if !password_ok {
        return Progress::Done(conclude(
            shared,
            user,
            name,
            Outcome::Reject(RejectReason::BadPassword),
            now,
        ));
    }
    match then {
        Then::Passcode(code) => Progress::Done(second_factor(shared, user, name, &code, now)),
        Then::Challenge => Progress::OpenChallenge {
            name: name.to_owned(),
        },
        Then::Push => Progress::Push {
            user_id: user.id,
            name: name.to_owned(),
        },
        Then::SendCode(channel) => Progress::SendCode {
            user_id: Some(user.id),
            name: name.to_owned(),
            channel,
            to: user.delivery.destination(channel).map(str::to_owned),
        },
    }
}

/// Checks the passcode of a challenge answer. The user is looked up again, since an admin
/// (or the directory) may have disabled or locked them while the challenge was open.
pub async fn answer_challenge(shared: &Shared, name: &str, passcode: &[u8], now: u64) -> Decision {
    if let Some(route) = shared.domains.route(name) {
        let domain = Arc::clone(route.domain);
        let Ok(_admitted) = Arc::clone(&domain.gate).try_acquire_owned() else {
            metrics::counter!(crate::metrics::SHED_TOTAL, "gate" => "directory").increment(1);
            return Decision::reject(name, RejectReason::Overloaded);
        };
        return crate::ldap::login::answer(shared, &domain, route.user, name, passcode, now).await;
    }
    let dir = &shared.directory;
    let Some(user) = dir.user(name) else {
        return Decision::reject(name, RejectReason::UnknownUser);
    };
    if user.disabled {
        return Decision::reject(name, RejectReason::Disabled);
    }
    if dir.is_locked(&user, now) {
        return Decision::reject(name, RejectReason::LockedOut);
    }
    second_factor(shared, &user, name, passcode, now)
}

/// Checks a real-time code typed at the prompt against the one sent.
pub fn answer_delivered(
    shared: &Shared,
    name: &str,
    sent: &str,
    typed: &[u8],
    now: u64,
) -> Decision {
    let outcome = if tollgate_engine::login::code_matches(sent.as_bytes(), typed) {
        Outcome::Accept
    } else {
        Outcome::Reject(RejectReason::BadPasscode)
    };
    // A directory user's name may also be an embedded user's: never mix the two.
    let embedded = match shared.domains.route(name) {
        Some(_) => None,
        None => shared.directory.user(name),
    };
    match embedded {
        Some(user) if user.disabled => Decision::reject(name, RejectReason::Disabled),
        Some(user) => conclude(shared, &user, name, outcome, now),
        // A directory user without an embedded entry: no lockout state here.
        None => Decision {
            outcome,
            state: None,
            user: name.to_owned(),
            message: None,
        },
    }
}

/// The end of a push login: approved on the phone, or declined (which does not count
/// towards the lockout: the user said the attempt was not theirs).
pub fn answer_pushed(shared: &Shared, name: &str, approved: bool, now: u64) -> Decision {
    let outcome = if approved {
        Outcome::Accept
    } else {
        Outcome::Reject(RejectReason::PushDeclined)
    };
    match shared.directory.user(name) {
        Some(user) => conclude(shared, &user, name, outcome, now),
        None => Decision {
            outcome,
            state: None,
            user: name.to_owned(),
            message: None,
        },
    }
}

/// The second factor of a user who typed `code`: a token's passcode or a day code.
fn second_factor(shared: &Shared, user: &UserEntry, name: &str, code: &[u8], now: u64) -> Decision {
    match user.delivery.method {
        Method::Preload(_) => {
            let outcome = match shared.directory.check_day_code(user.id, code, now) {
                DayCheck::Accepted { issued_at } => {
                    shared.delivery.day_code_used(user.id, issued_at);
                    Outcome::Accept
                }
                DayCheck::Wrong => Outcome::Reject(RejectReason::BadPasscode),
                DayCheck::Used => Outcome::Reject(RejectReason::ReplayedPasscode),
                DayCheck::Expired => Outcome::Reject(RejectReason::CodeExpired),
                DayCheck::Missing => Outcome::Reject(RejectReason::NoToken),
                DayCheck::NotRecorded => Outcome::Reject(RejectReason::TokenWriteFailed),
            };
            conclude(shared, user, name, outcome, now)
        }
        _ => check_passcode(shared, user, name, code, now),
    }
}

fn check_passcode(
    shared: &Shared,
    user: &UserEntry,
    name: &str,
    passcode: &[u8],
    now: u64,
) -> Decision {
    let outcome = match shared.directory.check_passcode(user, passcode, now) {
        PasscodeCheck::Accepted { .. } => Outcome::Accept,
        PasscodeCheck::Rejected(reason) => Outcome::Reject(reason),
    };
    conclude(shared, user, name, outcome, now)
}

/// Applies the lockout rule to the end of a login.
fn conclude(shared: &Shared, user: &UserEntry, name: &str, outcome: Outcome, now: u64) -> Decision {
    let failure = match outcome {
        Outcome::Accept => Some(None),
        Outcome::Reject(reason) => Some(Some(reason)),
        Outcome::Challenge | Outcome::Alive => None,
    };
    if let Some(failure) = failure {
        if shared.directory.record_result(user, failure, now) {
            metrics::counter!(crate::metrics::LOCKOUTS_TOTAL).increment(1);
            tracing::warn!(target: "tollgate::audit", user = %name, "user locked out after repeated failures");
        }
    }
    Decision {
        outcome,
        state: None,
        user: name.to_owned(),
        message: None,
    }
}
