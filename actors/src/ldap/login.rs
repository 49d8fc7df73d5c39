//! The login procedure of a directory user.
//!
//! It runs as a task beside the client actor (it waits on the directory) and holds a
//! permit of the domain's gate for its whole life. In order: find the user (a search as
//! the service account), refuse what the directory says is disabled, expired or locked,
//! apply the group rules, find the user's tokens (in the directory's token attribute or in
//! the embedded store under `user@domain`), check the password by binding as the user,
//! then the passcode. A passcode accepted from a directory record is written back before
//! the answer, with a swap that fails if another server advanced the record first.

use std::sync::Arc;

use tollgate_config::GroupPolicy;
use tollgate_engine::login::{split_appended, LoginMode, Outcome, RejectReason};
use tollgate_engine::otp::{self, Verdict};
use zeroize::Zeroizing;

use super::domain::{Account, BindResult, DirUser, SwapResult};
use super::record::DirToken;
use super::{DirError, Domain};
use crate::delivery::Channel;
use crate::radius::{Decision, Shared};
use crate::state::{PasscodeCheck, UserEntry};
use crate::store::Method;

/// A directory login handed over by the inline path.
pub struct DirLogin {
    /// The user's domain.
    pub domain: Arc<Domain>,
    /// The name without its domain part.
    pub user: String,
    /// The name as typed, for the audit line.
    pub given: String,
    /// The User-Password field as the client sent it.
    pub field: Zeroizing<Vec<u8>>,
    /// How the client presents the factors.
    pub mode: LoginMode,
}

/// Where a directory login ends.
pub enum DirOutcome {
    /// Decided.
    Done(Decision),
    /// The password is right; ask for the passcode.
    Challenge {
        /// The name as typed.
        name: String,
    },
    /// The password is right; send a real-time code and ask for it.
    SendCode {
        /// The name as typed.
        name: String,
        /// The user's embedded entry, if any.
        user_id: Option<i64>,
        /// The channel.
        channel: Channel,
        /// The destination: set by an admin, or read from the directory.
        to: Option<String>,
    },
    /// The password is right; ask the phones enrolled for the user's embedded entry and
    /// wait for one to answer.
    Push {
        /// The name as typed.
        name: String,
        /// The user's embedded entry, which holds the devices.
        user_id: i64,
    },
}

/// The user's tokens, wherever they are kept.
enum Tokens {
    Embedded(Arc<UserEntry>),
    Directory(Vec<(String, DirToken)>),
}

impl Tokens {
    fn is_empty(&self) -> bool {
        match self {
            Tokens::Embedded(u) => u.tokens.is_empty(),
            Tokens::Directory(t) => t.is_empty(),
        }
    }

    /// Distinct passcode lengths, shortest first.
    fn lengths(&self) -> Vec<u8> {
        let mut l: Vec<u8> = match self {
            Tokens::Embedded(u) => u.passcode_lengths().collect(),
            Tokens::Directory(t) => t.iter().map(|(_, t)| t.params.digits).collect(),
        };
        l.sort_unstable();
        l.dedup();
        l
    }
}

/// What the login knows once the user is found and allowed to try.
struct Found {
    user: DirUser,
    policy: GroupPolicy,
    shadow: Option<Arc<UserEntry>>,
    tokens: Tokens,
}

fn reject(name: &str, reason: RejectReason) -> Decision {
    Decision::reject(name, reason)
}

fn unavailable(domain: &Domain, name: &str, err: &DirError) -> Decision {
    match err {
        DirError::Ambiguous(n) => {
            tracing::warn!(domain = %domain.name, user = %name, entries = n, "login name matches several directory entries; refused");
            reject(name, RejectReason::UnknownUser)
        }
        other => {
            tracing::warn!(domain = %domain.name, user = %name, error = %other, "directory could not answer a login");
            reject(name, RejectReason::DirectoryUnavailable)
        }
    }
}

/// Finds the user and everything the login needs, or the refusal that ends it.
async fn find(
    shared: &Shared,
    domain: &Domain,
    user: &str,
    given: &str,
    now: u64,
) -> Result<Found, Decision> {
    let found = match domain.find_user(user, now).await {
        Ok(Some(u)) => u,
        Ok(None) => return Err(reject(given, RejectReason::UnknownUser)),
        Err(e) => return Err(unavailable(domain, given, &e)),
    };
    if let Some(reason) = account_refusal(found.account) {
        return Err(reject(given, reason));
    }
    let policy = domain.policy(&found);
    if policy == GroupPolicy::Reject {
        return Err(reject(given, RejectReason::NotPermitted));
    }
    let shadow = shared.directory.user(&found.qualified);
    if let Some(s) = &shadow {
        if s.disabled {
            return Err(reject(given, RejectReason::Disabled));
        }
    }
    let locked = match &shadow {
        Some(s) => shared.directory.is_locked(s, now),
        None => domain
            .lockouts
            .get(&found.qualified)
            .is_some_and(|l| l.is_locked(now)),
    };
    if locked {
        return Err(reject(given, RejectReason::LockedOut));
    }
    let tokens = if domain.config.tokens_in_directory {
        Tokens::Directory(domain.tokens(&found))
    } else {
        match &shadow {
            Some(s) => Tokens::Embedded(Arc::clone(s)),
            None => Tokens::Directory(Vec::new()),
        }
    };
    Ok(Found {
        user: found,
        policy,
        shadow,
        tokens,
    })
}

fn account_refusal(account: Account) -> Option<RejectReason> {
    match account {
        Account::Active => None,
        Account::Disabled => Some(RejectReason::Disabled),
        Account::Expired => Some(RejectReason::Expired),
        Account::Locked => Some(RejectReason::LockedOut),
        Account::PasswordExpired => Some(RejectReason::PasswordExpired),
    }
}

/// Runs a directory login to its end (or to its challenge).
pub async fn run(shared: &Shared, login: DirLogin, now: u64) -> DirOutcome {
    let DirLogin {
        domain,
        user,
        given,
        field,
        mode,
    } = login;
    let found = match find(shared, &domain, &user, &given, now).await {
        Ok(f) => f,
        Err(d) => return DirOutcome::Done(d),
    };
    let refuse = |found: &Found, reason| {
        DirOutcome::Done(conclude(
            shared,
            &domain,
            found,
            &given,
            Outcome::Reject(reason),
            now,
        ))
    };
    let password_only = found.policy == GroupPolicy::PasswordOnly;
    // A user whose embedded entry asks for real-time codes gets one once the directory
    // accepts the password; the number or address set by an admin wins over the
    // directory's.
    let realtime = match found.shadow.as_ref().map(|s| s.delivery.method) {
        Some(Method::Realtime(channel)) if !password_only => Some(channel),
        _ => None,
    };
    // Likewise a user whose embedded entry asks for push approval: the phones enrolled
    // for that entry are asked once the directory accepts the password.
    let push = match found.shadow.as_ref() {
        Some(s) if s.delivery.method == Method::Push && !password_only => Some(s.id),
        _ => None,
    };
    if let Some(user_id) = push {
        if mode == LoginMode::PasscodeOnly {
            return refuse(&found, RejectReason::NoToken);
        }
        return match password(&domain, &found, &field).await {
            Err(d) => DirOutcome::Done(with_name(d, &given)),
            Ok(Some(reason)) => refuse(&found, reason),
            Ok(None) => DirOutcome::Push {
                name: given,
                user_id,
            },
        };
    }
    if let Some(channel) = realtime {
        if mode == LoginMode::PasscodeOnly {
            return refuse(&found, RejectReason::NoToken);
        }
        return match password(&domain, &found, &field).await {
            Err(d) => DirOutcome::Done(with_name(d, &given)),
            Ok(Some(reason)) => refuse(&found, reason),
            Ok(None) => {
                let shadow = found.shadow.as_ref();
                let to = shadow
                    .and_then(|s| s.delivery.destination(channel).map(str::to_owned))
                    .or_else(|| match channel {
                        Channel::Email => found.user.mail.clone(),
                        Channel::Sms | Channel::Voice => found.user.mobile.clone(),
                        Channel::Fcm | Channel::Apns => None,
                    });
                DirOutcome::SendCode {
                    name: given,
                    user_id: shadow.map(|s| s.id),
                    channel,
                    to,
                }
            }
        };
    }
    match mode {
        LoginMode::PasscodeOnly => {
            if found.tokens.is_empty() {
                return refuse(&found, RejectReason::NoToken);
            }
            let outcome = check_passcode(shared, &domain, &found, &field, now).await;
            DirOutcome::Done(conclude(shared, &domain, &found, &given, outcome, now))
        }
        LoginMode::Challenge => match password(&domain, &found, &field).await {
            Err(d) => DirOutcome::Done(with_name(d, &given)),
            Ok(Some(reason)) => refuse(&found, reason),
            Ok(None) if password_only => DirOutcome::Done(conclude(
                shared,
                &domain,
                &found,
                &given,
                Outcome::Accept,
                now,
            )),
            Ok(None) if found.tokens.is_empty() => refuse(&found, RejectReason::NoToken),
            Ok(None) => DirOutcome::Challenge { name: given },
        },
        LoginMode::Append => {
            let (pass, code): (&[u8], &[u8]) = if password_only {
                (&field, &[])
            } else {
                if found.tokens.is_empty() {
                    return refuse(&found, RejectReason::NoToken);
                }
                match found
                    .tokens
                    .lengths()
                    .into_iter()
                    .find_map(|d| split_appended(&field, d))
                {
                    Some(split) => split,
                    None => return refuse(&found, RejectReason::Malformed),
                }
            };
            match password(&domain, &found, pass).await {
                Err(d) => DirOutcome::Done(with_name(d, &given)),
                Ok(Some(reason)) => refuse(&found, reason),
                Ok(None) if password_only => DirOutcome::Done(conclude(
                    shared,
                    &domain,
                    &found,
                    &given,
                    Outcome::Accept,
                    now,
                )),
                Ok(None) => {
                    let outcome = check_passcode(shared, &domain, &found, code, now).await;
                    DirOutcome::Done(conclude(shared, &domain, &found, &given, outcome, now))
                }
            }
        }
    }
}

fn with_name(mut d: Decision, name: &str) -> Decision {
    d.user = name.to_owned();
    d
}

/// Checks the password: `Ok(None)` when right, `Ok(Some(reason))` when refused, `Err`
/// when the directory could not tell.
async fn password(
    domain: &Domain,
    found: &Found,
    password: &[u8],
) -> Result<Option<RejectReason>, Decision> {
    match domain.check_password(&found.user.dn, password).await {
        Ok(BindResult::Good) => {
            metrics::counter!(crate::metrics::PASSWORD_CHECKS_TOTAL, "path" => "ldap", "result" => "good").increment(1);
            Ok(None)
        }
        Ok(BindResult::Bad) => {
            metrics::counter!(crate::metrics::PASSWORD_CHECKS_TOTAL, "path" => "ldap", "result" => "bad").increment(1);
            Ok(Some(RejectReason::BadPassword))
        }
        Ok(BindResult::Account(a)) => Ok(account_refusal(a)),
        Err(e) => Err(unavailable(domain, &found.user.qualified, &e)),
    }
}

/// Answers a challenge opened for a directory user: the user is looked up again, since
/// the directory or an admin may have disabled them meanwhile.
pub async fn answer(
    shared: &Shared,
    domain: &Domain,
    user: &str,
    given: &str,
    passcode: &[u8],
    now: u64,
) -> Decision {
    let found = match find(shared, domain, user, given, now).await {
        Ok(f) => f,
        Err(d) => return d,
    };
    let outcome = check_passcode(shared, domain, &found, passcode, now).await;
    conclude(shared, domain, &found, given, outcome, now)
}

async fn check_passcode(
    shared: &Shared,
    domain: &Domain,
    found: &Found,
    code: &[u8],
    now: u64,
) -> Outcome {
    match &found.tokens {
        Tokens::Embedded(entry) => match shared.directory.check_passcode(entry, code, now) {
            PasscodeCheck::Accepted { .. } => Outcome::Accept,
            PasscodeCheck::Rejected(r) => Outcome::Reject(r),
        },
        Tokens::Directory(tokens) => {
            if tokens.is_empty() {
                return Outcome::Reject(RejectReason::NoToken);
            }
            let dn = &found.user.dn;
            let lock = domain.entry_lock(dn);
            let outcome = {
                let _held = lock.lock().await;
                check_directory_tokens(shared, domain, found, code, now).await
            };
            domain.release_entry_lock(dn, lock);
            outcome
        }
    }
}

/// Checks a passcode against records read afresh under the entry's lock, and writes the
/// advanced record back before accepting.
async fn check_directory_tokens(
    shared: &Shared,
    domain: &Domain,
    found: &Found,
    code: &[u8],
    now: u64,
) -> Outcome {
    let dn = &found.user.dn;
    let current = match domain.read_token_values(dn).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(domain = %domain.name, user = %found.user.qualified, error = %e, "token records could not be read");
            return Outcome::Reject(RejectReason::DirectoryUnavailable);
        }
    };
    let tokens = domain.open_tokens(&found.user, &current);
    if tokens.is_empty() {
        return Outcome::Reject(RejectReason::NoToken);
    }
    let mut reason = RejectReason::BadPasscode;
    for (value, token) in &tokens {
        if code.len() != usize::from(token.params.digits) {
            continue;
        }
        match otp::verify(
            &token.secret,
            &token.params,
            &token.state,
            code,
            now,
            &shared.directory.otp_policy,
        ) {
            Verdict::Accepted { state, .. } => {
                let next = DirToken {
                    params: token.params,
                    secret: token.secret.clone(),
                    state,
                };
                let sealed = domain.seal(&found.user, &next);
                return match domain.write_token(dn, Some(value), sealed, &current).await {
                    Ok(SwapResult::Written) => Outcome::Accept,
                    Ok(SwapResult::Conflict) => Outcome::Reject(RejectReason::ReplayedPasscode),
                    Ok(SwapResult::AccessDenied) => Outcome::Reject(RejectReason::TokenWriteFailed),
                    Err(e) => {
                        tracing::warn!(domain = %domain.name, user = %found.user.qualified, error = %e, "token record not written back");
                        Outcome::Reject(RejectReason::TokenWriteFailed)
                    }
                };
            }
            Verdict::Rejected(otp::RejectReason::Replayed) => {
                reason = RejectReason::ReplayedPasscode;
            }
            Verdict::Rejected(_) => {}
        }
    }
    Outcome::Reject(reason)
}

/// Applies the lockout rule to the end of a directory login.
fn conclude(
    shared: &Shared,
    domain: &Domain,
    found: &Found,
    given: &str,
    outcome: Outcome,
    now: u64,
) -> Decision {
    let failure = match outcome {
        Outcome::Accept => Some(None),
        Outcome::Reject(reason) => Some(Some(reason)),
        Outcome::Challenge | Outcome::Alive => None,
    };
    if let Some(failure) = failure {
        let locked_now = match &found.shadow {
            Some(entry) => shared.directory.record_result(entry, failure, now),
            None => {
                // Only users with failures have an entry: the map is bounded by the
                // directory's users who failed lately, never by traffic.
                let policy = &shared.directory.lockout_policy;
                match failure {
                    None => {
                        domain.lockouts.remove(&found.user.qualified);
                        false
                    }
                    Some(r) if r.counts_towards_lockout() => domain
                        .lockouts
                        .entry(found.user.qualified.clone())
                        .or_default()
                        .record_failure(now, policy),
                    Some(_) => false,
                }
            }
        };
        if locked_now {
            metrics::counter!(crate::metrics::LOCKOUTS_TOTAL).increment(1);
            tracing::warn!(target: "tollgate::audit", user = %given, "user locked out after repeated failures");
        }
    }
    Decision {
        outcome,
        state: None,
        user: given.to_owned(),
        message: None,
    }
}
