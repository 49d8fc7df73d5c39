//! The actor of one RADIUS client (one NAS or concentrator): the part of the client's work
//! that waits.
//!
//! The UDP workers run every login that is CPU work alone. What would wait comes here with
//! its admission permit: a password that only Argon2 can check (run on a blocking thread,
//! at most one per core), a challenge session to open, or a challenge answer to hand to its
//! session. When the outcome is known the actor encodes the reply with the client's core
//! and sends it from the socket the request came in on.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tollgate_engine::login::{LoginMode, RejectReason};
use tollgate_engine::radius::{verify_request_with, Packet};

use super::login::{self, Decision, Progress};
use super::session::{Answer, SentCode};
use super::{Job, SessionMsg, Shared};
use crate::ldap::login::DirOutcome;
use crate::metrics as m;
use crate::state::SlowCheck;
use crate::{unix_now, unix_now_ms};

/// Messages of a [`ClientActor`].
pub enum ClientMsg {
    /// A request the fast path could not finish, and where its login stands.
    Continue {
        /// The request.
        job: Job,
        /// What is left to do.
        progress: Progress,
    },
    /// A login that left the actor (slow password check, challenge session) is decided.
    Completed {
        /// The request.
        job: Job,
        /// The decision.
        decision: Decision,
    },
    /// Panics on purpose, to show supervision at work.
    #[cfg(feature = "fault-injection")]
    Panic,
}

/// The actor of one RADIUS client.
pub struct ClientActor;

/// State of a [`ClientActor`].
pub struct ClientActorState {
    shared: Arc<Shared>,
    /// The reply buffer, reused for every reply.
    out: Vec<u8>,
}

impl Actor for ClientActor {
    type Msg = ClientMsg;
    type State = ClientActorState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        shared: Arc<Shared>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(ClientActorState {
            shared,
            out: Vec::with_capacity(tollgate_engine::radius::MAX_PACKET_LEN),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: ClientMsg,
        state: &mut ClientActorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ClientMsg::Continue { job, progress } => {
                state.continue_login(&myself, job, progress).await
            }
            ClientMsg::Completed { job, decision } => state.finish(job, &decision),
            #[cfg(feature = "fault-injection")]
            ClientMsg::Panic => panic!("fault injection: client actor asked to panic"),
        }
        Ok(())
    }
}

/// Carries a login that is past its password to its decision: opens a challenge, or sends
/// a real-time code and opens a challenge that expects it.
pub async fn settle(shared: &Arc<Shared>, client: &str, progress: Progress) -> Decision {
    let now = unix_now();
    match progress {
        Progress::Done(d) => d,
        Progress::OpenChallenge { name } => shared.sessions.open(shared, client, &name, now).await,
        Progress::SendCode {
            user_id,
            name,
            channel,
            to,
        } => {
            let code = shared.delivery.new_code();
            match shared
                .delivery
                .send_realtime(user_id, channel, to.as_deref(), &code)
                .await
            {
                Ok(masked) => {
                    let sent = SentCode {
                        prompt: shared.delivery.prompt(channel, &masked),
                        ttl_secs: shared.delivery.config.realtime_ttl_secs,
                        code,
                    };
                    shared
                        .sessions
                        .open_with(shared, client, &name, now, Some(sent))
                        .await
                }
                Err(e) => {
                    tracing::warn!(target: "tollgate::audit", user = %name, channel = channel.as_str(), error = %e, "real-time code not sent");
                    Decision::reject(&name, RejectReason::DeliveryFailed)
                }
            }
        }
        // Only the steps above follow a password (a push login is settled by
        // `push_or_settle`, which holds the request).
        Progress::SlowPassword { name, .. }
        | Progress::Answer { name, .. }
        | Progress::Push { name, .. } => Decision::reject(&name, RejectReason::Malformed),
        Progress::Directory(login) => Decision::reject(&login.given, RejectReason::Malformed),
    }
}

/// Settles a login past its password and answers it through `me`, or, for a push login,
/// parks the request in a push session that answers it when the phone does.
pub async fn push_or_settle(
    shared: Arc<Shared>,
    me: ActorRef<ClientMsg>,
    job: Job,
    progress: Progress,
) {
    let decision = match progress {
        Progress::Push { user_id, name } => {
            match hold_for_push(&shared, &me, job, user_id, &name).await {
                None => return,
                Some((job, decision)) => {
                    let _ = me.cast(ClientMsg::Completed { job, decision });
                    return;
                }
            }
        }
        other => settle(&shared, &job.core.settings.name, other).await,
    };
    if let Err(err) = me.cast(ClientMsg::Completed { job, decision }) {
        // The actor was restarted meanwhile; dropping the job frees its duplicate-cache
        // entry and the NAS retransmits.
        tracing::debug!(%err, "client actor gone before a login completed");
    }
}

/// Opens a push login and notifies the user's phones. Returns the request with the
/// decision that answers it now, or `None` when the session holds it.
async fn hold_for_push(
    shared: &Arc<Shared>,
    me: &ActorRef<ClientMsg>,
    mut job: Job,
    user_id: i64,
    name: &str,
) -> Option<(Job, Decision)> {
    let devices = shared.directory.devices_of(user_id);
    if devices.is_empty() {
        return Some((job, Decision::reject(name, RejectReason::NoDevice)));
    }
    let client = Arc::clone(&job.core.settings.name);
    let now = unix_now();
    if job.core.settings.mode == LoginMode::Challenge {
        // Answer Access-Challenge now, with the number to pick on the phone.
        return match shared
            .sessions
            .open_push(shared, &client, name, user_id, None, now)
            .await
        {
            Ok(opened) => {
                crate::delivery::notify_push(shared, &devices, &opened, &client, name);
                let decision = opened
                    .challenge
                    .unwrap_or_else(|| Decision::reject(name, RejectReason::SessionsFull));
                Some((job, decision))
            }
            Err((_, decision)) => Some((job, decision)),
        };
    }
    // Hold the request: the NAS retransmits, and its retransmits join this one. The
    // session bound counts a held request; the client's in-flight gate does not.
    job.release_admission();
    match shared
        .sessions
        .open_push(shared, &client, name, user_id, Some((job, me.clone())), now)
        .await
    {
        Ok(opened) => {
            crate::delivery::notify_push(shared, &devices, &opened, &client, name);
            None
        }
        Err((held, decision)) => held.map(|(job, _)| (job, decision)),
    }
}

impl ClientActorState {
    async fn continue_login(&mut self, myself: &ActorRef<ClientMsg>, job: Job, progress: Progress) {
        let now = unix_now();
        match progress {
            Progress::Done(decision) => self.finish(job, &decision),
            Progress::OpenChallenge { name } => {
                let decision = self
                    .shared
                    .sessions
                    .open(&self.shared, &job.core.settings.name, &name, now)
                    .await;
                self.finish(job, &decision);
            }
            Progress::SlowPassword {
                user,
                name,
                password,
                then,
            } => {
                let Ok(permit) = Arc::clone(&self.shared.slow_gate).try_acquire_owned() else {
                    metrics::counter!(m::SHED_TOTAL, "gate" => "password_check").increment(1);
                    return self.finish(job, &Decision::reject(&name, RejectReason::Overloaded));
                };
                let shared = Arc::clone(&self.shared);
                let me = myself.clone();
                tokio::spawn(async move {
                    let _admitted = permit;
                    let check = {
                        let dir = Arc::clone(&shared.directory);
                        let user = Arc::clone(&user);
                        shared
                            .checks
                            .run(move || dir.check_password_slow(&user, &password, unix_now_ms()))
                            .await
                            .unwrap_or(SlowCheck::Wrong)
                    };
                    let (path, result) = match check {
                        SlowCheck::Verified => ("argon2", "good"),
                        SlowCheck::Wrong => ("argon2", "bad"),
                        SlowCheck::Remembered => ("cache_after_wait", "good"),
                    };
                    metrics::counter!(m::PASSWORD_CHECKS_TOTAL, "path" => path, "result" => result)
                        .increment(1);
                    let ok = check.good();
                    let now = unix_now();
                    let progress = login::after_password(&shared, &user, &name, ok, then, now);
                    push_or_settle(shared, me, job, progress).await;
                });
            }
            // A push login is bounded by the session gate it opens (its request holds the
            // client's admission permit until it is parked there).
            Progress::Push { .. } => {
                let shared = Arc::clone(&self.shared);
                let me = myself.clone();
                tokio::spawn(push_or_settle(shared, me, job, progress));
            }
            Progress::SendCode { .. } => {
                let Ok(permit) = Arc::clone(&self.shared.slow_gate).try_acquire_owned() else {
                    metrics::counter!(m::SHED_TOTAL, "gate" => "delivery").increment(1);
                    let Progress::SendCode { name, .. } = progress else {
                        return;
                    };
                    return self.finish(job, &Decision::reject(&name, RejectReason::Overloaded));
                };
                let shared = Arc::clone(&self.shared);
                let me = myself.clone();
                tokio::spawn(async move {
                    let _admitted = permit;
                    push_or_settle(shared, me, job, progress).await;
                });
            }
            Progress::Directory(login) => {
                let Ok(permit) = Arc::clone(&login.domain.gate).try_acquire_owned() else {
                    metrics::counter!(m::SHED_TOTAL, "gate" => "directory").increment(1);
                    return self.finish(
                        job,
                        &Decision::reject(&login.given, RejectReason::Overloaded),
                    );
                };
                let shared = Arc::clone(&self.shared);
                let me = myself.clone();
                tokio::spawn(async move {
                    let admitted = permit;
                    let decision = match crate::ldap::login::run(&shared, *login, now).await {
                        DirOutcome::Done(d) => d,
                        DirOutcome::Push { name, user_id } => {
                            // The directory's part is done: the held login waits under the
                            // session gate, not the domain's.
                            drop(admitted);
                            let progress = Progress::Push { user_id, name };
                            return push_or_settle(shared, me, job, progress).await;
                        }
                        DirOutcome::SendCode {
                            name,
                            user_id,
                            channel,
                            to,
                        } => {
                            let progress = Progress::SendCode {
                                user_id,
                                name,
                                channel,
                                to,
                            };
                            settle(&shared, &job.core.settings.name, progress).await
                        }
                        DirOutcome::Challenge { name } => {
                            shared
                                .sessions
                                .open(&shared, &job.core.settings.name, &name, unix_now())
                                .await
                        }
                    };
                    if let Err(err) = me.cast(ClientMsg::Completed { job, decision }) {
                        tracing::debug!(%err, "client actor gone before a directory login completed");
                    }
                });
            }
            Progress::Answer {
                session,
                name,
                passcode,
            } => {
                let answer = SessionMsg::Answer(Box::new(Answer {
                    client: Arc::clone(&job.core.settings.name),
                    user: name.clone(),
                    passcode,
                    job,
                    reply_to: myself.clone(),
                }));
                if let Err(ractor::MessagingErr::SendErr(SessionMsg::Answer(answer))) =
                    session.cast(answer)
                {
                    self.finish(
                        answer.job,
                        &Decision::reject(&name, RejectReason::UnknownState),
                    );
                }
            }
        }
    }

    /// Encodes, records and sends the reply to a decided job.
    fn finish(&mut self, mut job: Job, decision: &Decision) {
        let core = Arc::clone(&job.core);
        let key = job.settle();
        let bytes = std::mem::take(&mut job.bytes);
        let settings = &core.settings;
        let Some(verified) = Packet::decode(&bytes).ok().and_then(|p| {
            verify_request_with(
                p,
                settings.secret.expose(),
                &settings.mac,
                settings.signature_policy(),
            )
            .ok()
        }) else {
            // The fast path verified these same bytes with this same core; this cannot fail.
            tracing::error!(client = %settings.name, "a handed-over request no longer verifies");
            if let Some(key) = key {
                core.dedup().abandon(&key);
            }
            return;
        };
        if core.finish(
            &self.shared,
            &verified,
            super::core::Arrival {
                peer: job.peer,
                received: job.received,
                wall: std::time::SystemTime::now(),
            },
            key,
            decision,
            &mut self.out,
        ) {
            if let Err(e) = job.socket.send_to(&self.out, job.peer) {
                tracing::debug!(peer = %job.peer, error = %e, "reply not sent");
            }
        }
    }
}
