//! The actor of one RADIUS client (one NAS or concentrator).
//!
//! It owns the client's secret and policy, its duplicate cache and its rate limit, and the
//! reply buffer it encodes into. It verifies every request before trusting any of it,
//! answers retransmits from the cache, runs CPU-only logins inline and hands slow steps
//! away, and writes every reply, audit line and metric of its client.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use metrics::{Counter, Histogram};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tollgate_engine::login::{reply_code, Outcome, RejectReason};
use tollgate_engine::radius::{attr, encode_reply, verify_request, Code, Packet, Verified};

use super::login::{self, Decision, Progress};
use super::session::Answer;
use super::{ClientSettings, DedupKey, DuplicateCache, Job, Seen, SessionMsg, Shared};
use crate::audit::AuditEvent;
use crate::metrics as m;
use crate::{unix_now, unix_now_ms};

/// Messages of a [`ClientActor`].
pub enum ClientMsg {
    /// A datagram from this client, admitted by its gate.
    Packet(Job),
    /// A login that left the actor (slow password check, challenge session) is decided.
    Completed {
        /// The request.
        job: Job,
        /// The decision.
        decision: Decision,
    },
    /// A request entered in the duplicate cache will not be answered.
    Abandoned(DedupKey),
    /// The client's settings changed.
    Reconfigure(Arc<ClientSettings>),
    /// Panics on purpose, to show supervision at work.
    #[cfg(feature = "fault-injection")]
    Panic,
}

/// The actor of one RADIUS client.
pub struct ClientActor;

/// Start-up arguments of a [`ClientActor`].
pub struct ClientActorArgs {
    /// The client.
    pub settings: Arc<ClientSettings>,
    /// What all clients share.
    pub shared: Arc<Shared>,
}

struct Meters {
    accept: Counter,
    reject: Counter,
    challenge: Counter,
    alive: Counter,
    duplicates: Counter,
    latency_accept: Histogram,
    latency_reject: Histogram,
    latency_challenge: Histogram,
}

impl Meters {
    fn new(s: &ClientSettings) -> Self {
        let client = s.name.to_string();
        let mode = s.mode.as_str();
        let reply = |result: &'static str| metrics::counter!(m::REPLIES_TOTAL, "client" => client.clone(), "mode" => mode, "result" => result);
        let latency = |result: &'static str| metrics::histogram!(m::LATENCY_SECONDS, "client" => client.clone(), "result" => result);
        Meters {
            accept: reply("accept"),
            reject: reply("reject"),
            challenge: reply("challenge"),
            alive: reply("alive"),
            duplicates: metrics::counter!(m::DUPLICATES_TOTAL, "client" => client.clone()),
            latency_accept: latency("accept"),
            latency_reject: latency("reject"),
            latency_challenge: latency("challenge"),
        }
    }
}

/// State of a [`ClientActor`].
pub struct ClientActorState {
    settings: Arc<ClientSettings>,
    shared: Arc<Shared>,
    dedup: DuplicateCache,
    limiter: Option<DefaultDirectRateLimiter>,
    meters: Meters,
    /// The reply buffer, reused for every reply so encoding does not allocate.
    out: Vec<u8>,
}

fn limiter_for(rate: u32) -> Option<DefaultDirectRateLimiter> {
    NonZeroU32::new(rate).map(|r| RateLimiter::direct(Quota::per_second(r)))
}

fn count_drop(client: &str, reason: &'static str) {
    metrics::counter!(m::DROPPED_TOTAL, "client" => client.to_owned(), "reason" => reason)
        .increment(1);
}

impl Actor for ClientActor {
    type Msg = ClientMsg;
    type State = ClientActorState;
    type Arguments = ClientActorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: ClientActorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let shared = args.shared;
        Ok(ClientActorState {
            dedup: DuplicateCache::new(shared.dedup_window, shared.dedup_entries),
            limiter: limiter_for(args.settings.rate_limit),
            meters: Meters::new(&args.settings),
            settings: args.settings,
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
            ClientMsg::Packet(job) => state.on_packet(&myself, job).await,
            ClientMsg::Completed { mut job, decision } => {
                let bytes = std::mem::take(&mut job.bytes);
                let verified = Packet::decode(&bytes).ok().and_then(|p| {
                    verify_request(
                        p,
                        state.settings.secret.expose(),
                        state.settings.require_message_authenticator,
                    )
                    .ok()
                });
                match verified {
                    Some(v) => state.finish(&v, job, decision),
                    // The secret changed while the login was out; the request cannot be
                    // answered under the new one, and the NAS will retry.
                    None => count_drop(&state.settings.name, "reconfigured"),
                }
            }
            ClientMsg::Abandoned(key) => state.dedup.abandon(&key),
            ClientMsg::Reconfigure(settings) => {
                if settings.rate_limit != state.settings.rate_limit {
                    state.limiter = limiter_for(settings.rate_limit);
                }
                if settings.name != state.settings.name || settings.mode != state.settings.mode {
                    state.meters = Meters::new(&settings);
                }
                state.settings = settings;
            }
            #[cfg(feature = "fault-injection")]
            ClientMsg::Panic => panic!("fault injection: client actor asked to panic"),
        }
        Ok(())
    }
}

impl ClientActorState {
    async fn on_packet(&mut self, myself: &ActorRef<ClientMsg>, mut job: Job) {
        let name = Arc::clone(&self.settings.name);
        let bytes = std::mem::take(&mut job.bytes);
        let packet = match Packet::decode(&bytes) {
            Ok(p) => p,
            Err(e) => return count_drop(&name, e.as_str()),
        };
        let verified = match verify_request(
            packet,
            self.settings.secret.expose(),
            self.settings.require_message_authenticator,
        ) {
            Ok(v) => v,
            Err(e) => return count_drop(&name, e.as_str()),
        };
        match packet.code() {
            Code::StatusServer => {
                metrics::counter!(m::REQUESTS_TOTAL, "client" => name.to_string(), "code" => "status_server").increment(1);
                let decision = Decision {
                    outcome: Outcome::Alive,
                    state: None,
                    user: String::new(),
                };
                return self.finish(&verified, job, decision);
            }
            Code::AccessRequest => {}
            _ => return count_drop(&name, "unsupported_code"),
        }
        let key = DedupKey {
            peer: job.peer,
            identifier: packet.identifier(),
            authenticator: *packet.authenticator(),
        };
        match self.dedup.begin(key, job.received) {
            Seen::New => {}
            Seen::InProgress => {
                self.meters.duplicates.increment(1);
                return;
            }
            Seen::Answered(reply) => {
                self.meters.duplicates.increment(1);
                send(&job, reply);
                return;
            }
        }
        if let Some(limiter) = &self.limiter {
            if limiter.check().is_err() {
                self.dedup.abandon(&key);
                return count_drop(&name, "rate_limited");
            }
        }
        job.mark_pending(myself.clone(), key);
        let now = unix_now();
        let progress = login::start(&self.shared, &self.settings, &verified, now, unix_now_ms());
        match progress {
            Progress::Done(decision) => self.finish(&verified, job, decision),
            Progress::OpenChallenge { name: user } => {
                let decision = self
                    .shared
                    .sessions
                    .open(&self.shared, &self.settings.name, &user, now)
                    .await;
                self.finish(&verified, job, decision);
            }
            Progress::SlowPassword {
                user,
                name: user_name,
                password,
                then,
            } => {
                let Ok(permit) = Arc::clone(&self.shared.slow_gate).try_acquire_owned() else {
                    metrics::counter!(m::SHED_TOTAL, "gate" => "password_check").increment(1);
                    let decision = Decision {
                        outcome: Outcome::Reject(RejectReason::Overloaded),
                        state: None,
                        user: user_name,
                    };
                    return self.finish(&verified, job, decision);
                };
                job.bytes = bytes.clone();
                let shared = Arc::clone(&self.shared);
                let client = Arc::clone(&self.settings.name);
                let me = myself.clone();
                tokio::spawn(async move {
                    let _admitted = permit;
                    let ok = {
                        let _cpu = shared.cpu_gate.acquire().await;
                        let dir = Arc::clone(&shared.directory);
                        let user = Arc::clone(&user);
                        tokio::task::spawn_blocking(move || {
                            dir.check_password_slow(&user, &password, unix_now_ms())
                        })
                        .await
                        .unwrap_or(false)
                    };
                    metrics::counter!(m::PASSWORD_CHECKS_TOTAL, "path" => "argon2", "result" => if ok { "good" } else { "bad" }).increment(1);
                    let now = unix_now();
                    let decision =
                        match login::after_password(&shared, &user, &user_name, ok, then, now) {
                            Progress::Done(d) => d,
                            Progress::OpenChallenge { name } => {
                                shared.sessions.open(&shared, &client, &name, now).await
                            }
                            // after_password only decides or opens a challenge.
                            _ => Decision {
                                outcome: Outcome::Reject(RejectReason::Malformed),
                                state: None,
                                user: user_name,
                            },
                        };
                    if let Err(err) = me.cast(ClientMsg::Completed { job, decision }) {
                        // The actor was restarted meanwhile; the job is dropped with the
                        // message, and the NAS retransmits.
                        tracing::debug!(%err, "client actor gone before a slow login completed");
                    }
                });
            }
            Progress::Answer {
                session,
                name: user_name,
                passcode,
            } => {
                job.bytes = bytes.clone();
                let answer = SessionMsg::Answer(Box::new(Answer {
                    client: Arc::clone(&self.settings.name),
                    user: user_name.clone(),
                    passcode,
                    job,
                    reply_to: myself.clone(),
                }));
                if let Err(ractor::MessagingErr::SendErr(SessionMsg::Answer(answer))) =
                    session.cast(answer)
                {
                    let job = answer.job;
                    let decision = Decision {
                        outcome: Outcome::Reject(RejectReason::UnknownState),
                        state: None,
                        user: user_name,
                    };
                    self.finish(&verified, job, decision);
                }
            }
        }
    }

    /// Encodes and sends the reply to a decided request, remembers it for retransmits,
    /// and records the audit line and metrics.
    fn finish(&mut self, request: &Verified<'_>, mut job: Job, decision: Decision) {
        let Some(code) = reply_code(request.code(), decision.outcome) else {
            return;
        };
        let mut attrs: [(u8, &[u8]); 2] = [(0, &[]), (0, &[])];
        let mut n = 0;
        if let (Outcome::Challenge, Some(state)) = (decision.outcome, &decision.state) {
            attrs[0] = (attr::STATE, state.as_slice());
            attrs[1] = (
                attr::REPLY_MESSAGE,
                self.shared.challenge_message.as_bytes(),
            );
            n = 2;
        }
        if let Err(e) = encode_reply(
            &mut self.out,
            code,
            request,
            self.settings.secret.expose(),
            &attrs[..n],
        ) {
            tracing::error!(client = %self.settings.name, error = %e, "cannot encode a reply");
            return;
        }
        send(&job, &self.out);
        let now = Instant::now();
        if let Some(key) = job.settle() {
            self.dedup.finish(key, &self.out, now);
        }
        let latency = now.saturating_duration_since(job.received);
        let meters = &self.meters;
        match decision.outcome {
            Outcome::Accept => {
                meters.accept.increment(1);
                meters.latency_accept.record(latency.as_secs_f64());
            }
            Outcome::Reject(reason) => {
                meters.reject.increment(1);
                meters.latency_reject.record(latency.as_secs_f64());
                metrics::counter!(m::REJECTS_TOTAL, "client" => self.settings.name.to_string(), "reason" => reason.as_str()).increment(1);
            }
            Outcome::Challenge => {
                meters.challenge.increment(1);
                meters.latency_challenge.record(latency.as_secs_f64());
            }
            Outcome::Alive => {
                meters.alive.increment(1);
                return;
            }
        }
        self.shared.audit.record(&AuditEvent {
            user: &decision.user,
            client: &self.settings.name,
            peer: job.peer.ip(),
            mode: self.settings.mode,
            outcome: decision.outcome,
            latency,
        });
    }
}

/// Sends a reply without waiting: a full socket buffer hands the send to a task.
fn send(job: &Job, bytes: &[u8]) {
    match job.socket.try_send_to(bytes, job.peer) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            let socket = Arc::clone(&job.socket);
            let peer = job.peer;
            let bytes = bytes.to_vec();
            tokio::spawn(async move {
                if let Err(e) = socket.send_to(&bytes, peer).await {
                    tracing::debug!(%peer, error = %e, "reply not sent");
                }
            });
        }
        Err(e) => tracing::debug!(peer = %job.peer, error = %e, "reply not sent"),
    }
}
