//! Challenge sessions: one [`SessionActor`] per open Access-Challenge, under the
//! [`SessionSupervisor`], found by their State through the [`SessionRegistry`].
//!
//! A session is opened when the password of a challenge-mode login is right. It holds the
//! engine's [`ChallengeSession`] (random State, client, user, expiry) and lives until it is
//! answered once or its time runs out. Their number is bounded by a semaphore: when it is
//! full, new logins are refused with a reject instead of growing memory. A crash of one
//! session is reported to the supervisor and touches no other session.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use rand::RngCore;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tollgate_engine::login::{ChallengeSession, Outcome, RejectReason, SessionError, STATE_LEN};
use zeroize::Zeroizing;

use super::login::{self, Decision};
use super::{ClientMsg, Job, Shared};
use crate::metrics as m;
use crate::unix_now;

/// Messages of a [`SessionActor`].
pub enum SessionMsg {
    /// The second Access-Request of the login, carrying the State and the passcode.
    Answer(Box<Answer>),
    /// The session's time ran out.
    Expire,
    /// A request to hold until the phone answers (wait mode).
    Hold(Job, ActorRef<ClientMsg>),
    /// The phone's decision on a push login.
    Pushed {
        /// Approved (with the right number, when one was asked).
        approved: bool,
        /// The user picked another number than the prompt's.
        wrong_number: bool,
    },
}

/// A push login's state in its session.
pub struct PushWait {
    /// The id the phone names it by.
    pub id: String,
    /// The request held until the phone answers (wait mode, or a challenge answered
    /// before the phone).
    pub held: Option<(Job, ActorRef<ClientMsg>)>,
    /// The phone's decision, once it came.
    pub decided: Option<bool>,
}

/// What a push session was opened with.
pub struct PushOpened {
    /// The pending login's id.
    pub id: String,
    /// The challenge that answers the NAS now (challenge mode).
    pub challenge: Option<Decision>,
    /// The numbers the phone offers.
    pub numbers: Vec<u8>,
}

/// An answer to a challenge.
pub struct Answer {
    /// The client it came from.
    pub client: Arc<str>,
    /// The User-Name it carries.
    pub user: String,
    /// The passcode typed.
    pub passcode: Zeroizing<Vec<u8>>,
    /// The request, to be handed back decided.
    pub job: Job,
    /// The client actor that answers the NAS.
    pub reply_to: ActorRef<ClientMsg>,
}

/// Open challenge sessions by State, and the gate that bounds their number.
pub struct SessionRegistry {
    by_state: DashMap<[u8; STATE_LEN], ActorRef<SessionMsg>>,
    gate: Arc<Semaphore>,
    supervisor: std::sync::OnceLock<ActorCell>,
}

impl SessionRegistry {
    /// A registry allowing `max` sessions at once.
    pub fn new(max: usize) -> Self {
        SessionRegistry {
            by_state: DashMap::new(),
            gate: Arc::new(Semaphore::new(max)),
            supervisor: std::sync::OnceLock::new(),
        }
    }

    /// Sets the supervisor that sessions are linked to (once, at start-up).
    pub fn set_supervisor(&self, cell: ActorCell) {
        let _ = self.supervisor.set(cell);
    }

    /// Number of open sessions.
    pub fn len(&self) -> usize {
        self.by_state.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.by_state.is_empty()
    }

    /// Takes the session named by `state` out of the registry: a State is answered once.
    pub fn take(&self, state: &[u8]) -> Option<ActorRef<SessionMsg>> {
        let key: [u8; STATE_LEN] = state.try_into().ok()?;
        self.by_state.remove(&key).map(|(_, s)| s)
    }

    fn forget_actor(&self, id: ractor::ActorId) {
        self.by_state.retain(|_, s| s.get_id() != id);
    }

    /// Opens a session for `user` challenged by `client`, and returns the decision that
    /// answers the NAS: a challenge carrying the new State, or a reject when the server
    /// cannot hold one more session.
    pub async fn open(&self, shared: &Arc<Shared>, client: &str, user: &str, now: u64) -> Decision {
        self.open_with(shared, client, user, now, None).await
    }

    /// Opens a session that expects a code just sent to the user, with its own prompt and
    /// lifetime.
    pub async fn open_with(
        &self,
        shared: &Arc<Shared>,
        client: &str,
        user: &str,
        now: u64,
        sent: Option<SentCode>,
    ) -> Decision {
        let reject = |reason| Decision::reject(user, reason);
        let Ok(permit) = Arc::clone(&self.gate).try_acquire_owned() else {
            metrics::counter!(m::SHED_TOTAL, "gate" => "sessions").increment(1);
            return reject(RejectReason::SessionsFull);
        };
        let Some(supervisor) = self.supervisor.get() else {
            return reject(RejectReason::SessionsFull);
        };
        let mut state = [0u8; STATE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut state);
        let ttl = sent
            .as_ref()
            .map_or(shared.challenge_ttl_secs, |s| s.ttl_secs);
        let message = sent.as_ref().map(|s| s.prompt.clone());
        let session = ChallengeSession::new(state, client, user, now, ttl);
        let args = SessionArgs {
            session,
            shared: Arc::clone(shared),
            sent,
            push: None,
            expiry: None,
            _permit: permit,
        };
        match Actor::spawn_linked(None, SessionActor, args, supervisor.clone()).await {
            Ok((actor, _)) => {
                self.by_state.insert(state, actor);
                metrics::gauge!(m::SESSIONS_ACTIVE).increment(1.0);
                Decision {
                    outcome: Outcome::Challenge,
                    state: Some(state),
                    user: user.to_owned(),
                    message,
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start a challenge session");
                reject(RejectReason::SessionsFull)
            }
        }
    }
}

impl SessionRegistry {
    /// Opens a push session for `user` (id `user_id`) of `client`. In wait mode `held` is
    /// the request, kept until the phone answers; in challenge mode the returned challenge
    /// answers the NAS now and shows the number to pick. On failure the held request comes
    /// back with the refusal that answers it.
    #[allow(clippy::too_many_arguments)]
    pub async fn open_push(
        &self,
        shared: &Arc<Shared>,
        client: &Arc<str>,
        user: &str,
        user_id: i64,
        held: Option<(Job, ActorRef<ClientMsg>)>,
        now: u64,
    ) -> Result<PushOpened, (Option<(Job, ActorRef<ClientMsg>)>, Decision)> {
        let reject = |reason| Decision::reject(user, reason);
        let Ok(permit) = Arc::clone(&self.gate).try_acquire_owned() else {
            metrics::counter!(m::SHED_TOTAL, "gate" => "sessions").increment(1);
            return Err((held, reject(RejectReason::SessionsFull)));
        };
        let Some(supervisor) = self.supervisor.get() else {
            return Err((held, reject(RejectReason::SessionsFull)));
        };
        let challenge_mode = held.is_none();
        let mut state = [0u8; STATE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut state);
        let mut id_bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id_bytes);
        let id: String = id_bytes.iter().map(|b| format!("{b:02x}")).collect();
        let ttl = shared.push_timeout_secs;
        // Number matching needs a prompt to show the number: challenge mode only.
        let (number, numbers) = if challenge_mode {
            let mut r = [0u8; 8];
            rand::rngs::OsRng.fill_bytes(&mut r);
            let (right, choices) = tollgate_engine::push::number_choices(r);
            (Some(right), choices.to_vec())
        } else {
            (None, Vec::new())
        };
        let session = ChallengeSession::new(state, client, user, now, ttl);
        let args = SessionArgs {
            session,
            shared: Arc::clone(shared),
            sent: None,
            push: Some(PushWait {
                id: id.clone(),
                held: None,
                decided: None,
            }),
            expiry: None,
            _permit: permit,
        };
        let actor = match Actor::spawn_linked(None, SessionActor, args, supervisor.clone()).await {
            Ok((actor, _)) => actor,
            Err(e) => {
                tracing::error!(error = %e, "cannot start a push session");
                return Err((held, reject(RejectReason::SessionsFull)));
            }
        };
        metrics::gauge!(m::SESSIONS_ACTIVE).increment(1.0);
        if let Some((job, reply_to)) = held {
            if let Err(ractor::MessagingErr::SendErr(SessionMsg::Hold(job, reply_to))) =
                actor.cast(SessionMsg::Hold(job, reply_to))
            {
                return Err((Some((job, reply_to)), reject(RejectReason::SessionsFull)));
            }
        } else {
            self.by_state.insert(state, actor.clone());
        }
        shared.push.insert(
            id.clone(),
            user_id,
            Arc::clone(client),
            now,
            now + ttl,
            number,
            numbers.clone(),
            actor,
        );
        let challenge = number.map(|n| Decision {
            outcome: Outcome::Challenge,
            state: Some(state),
            user: user.to_owned(),
            message: Some(shared.push_prompt.replace("{number}", &n.to_string())),
        });
        Ok(PushOpened {
            id,
            challenge,
            numbers,
        })
    }
}

/// The actor of one challenge session.
pub struct SessionActor;

/// A code sent to the user that the session expects as its answer.
pub struct SentCode {
    /// The code.
    pub code: Zeroizing<String>,
    /// Reply-Message of the challenge (`Enter the passcode sent to ...7391`).
    pub prompt: String,
    /// Seconds the code stays valid.
    pub ttl_secs: u64,
}

/// Start-up arguments of a [`SessionActor`].
pub struct SessionArgs {
    session: ChallengeSession,
    shared: Arc<Shared>,
    /// The code sent, for a real-time code session.
    sent: Option<SentCode>,
    /// The push wait, for a push session.
    push: Option<PushWait>,
    /// The timer that expires the session. It holds a reference to the actor, so it is
    /// cancelled when the session ends earlier: left to run, each answered session's
    /// actor stayed in memory until its expiry (about 5 KB for 120 s; the soak saw the
    /// server grow by 36 MB/s at 10,000 challenge logins per second).
    expiry: Option<ractor::concurrency::JoinHandle<Result<(), ractor::MessagingErr<SessionMsg>>>>,
    /// Held for the session's life: its place under the session bound.
    _permit: OwnedSemaphorePermit,
}

impl Actor for SessionActor {
    type Msg = SessionMsg;
    type State = SessionArgs;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SessionMsg>,
        args: SessionArgs,
    ) -> Result<SessionArgs, ActorProcessingErr> {
        let ttl = args.session.expires_at.saturating_sub(unix_now());
        let mut args = args;
        args.expiry = Some(myself.send_after(Duration::from_secs(ttl), || SessionMsg::Expire));
        Ok(args)
    }

    async fn handle(
        &self,
        myself: ActorRef<SessionMsg>,
        msg: SessionMsg,
        args: &mut SessionArgs,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SessionMsg::Answer(answer) => {
                let Answer {
                    client,
                    user,
                    passcode,
                    job,
                    reply_to,
                } = *answer;
                let now = unix_now();
                if let Err(e) = args.session.redeem(&client, &user, now) {
                    let reason = match e {
                        SessionError::Expired => RejectReason::ChallengeExpired,
                        _ => RejectReason::UnknownState,
                    };
                    let _ = reply_to.cast(ClientMsg::Completed {
                        job,
                        decision: Decision::reject(&user, reason),
                    });
                    myself.stop(None);
                    return Ok(());
                }
                let decision = match (&args.sent, &mut args.push) {
                    (Some(sent), _) => {
                        login::answer_delivered(&args.shared, &user, &sent.code, &passcode, now)
                    }
                    (None, Some(push)) => match push.decided {
                        Some(approved) => login::answer_pushed(&args.shared, &user, approved, now),
                        // A passcode instead of the phone.
                        None if !passcode.is_empty() => {
                            login::answer_challenge(&args.shared, &user, &passcode, now).await
                        }
                        // Enter pressed before the phone answered: wait for it.
                        None => {
                            push.held = Some((job, reply_to));
                            return Ok(());
                        }
                    },
                    (None, None) => {
                        login::answer_challenge(&args.shared, &user, &passcode, now).await
                    }
                };
                let _ = reply_to.cast(ClientMsg::Completed { job, decision });
                myself.stop(None);
            }
            SessionMsg::Hold(job, reply_to) => {
                if let Some(push) = &mut args.push {
                    push.held = Some((job, reply_to));
                }
            }
            SessionMsg::Pushed {
                approved,
                wrong_number,
            } => {
                let user = args.session.user.clone();
                if wrong_number {
                    tracing::warn!(target: "tollgate::audit", user = %user, client = %args.session.client, "push approval with the wrong number: taken as a decline");
                } else if !approved {
                    tracing::warn!(target: "tollgate::audit", user = %user, client = %args.session.client, "user declined the login on their phone: reported as not theirs");
                }
                let Some(push) = &mut args.push else {
                    return Ok(());
                };
                push.decided = Some(approved);
                if let Some((job, reply_to)) = push.held.take() {
                    let decision = login::answer_pushed(&args.shared, &user, approved, unix_now());
                    let _ = reply_to.cast(ClientMsg::Completed { job, decision });
                    myself.stop(None);
                }
            }
            SessionMsg::Expire => {
                args.shared.sessions.by_state.remove(&args.session.state);
                if let Some((job, reply_to)) = args.push.as_mut().and_then(|p| p.held.take()) {
                    let decision = Decision::reject(&args.session.user, RejectReason::PushTimeout);
                    let _ = reply_to.cast(ClientMsg::Completed { job, decision });
                }
                myself.stop(None);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SessionMsg>,
        args: &mut SessionArgs,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(expiry) = args.expiry.take() {
            expiry.abort();
        }
        args.shared.sessions.by_state.remove(&args.session.state);
        if let Some(push) = &args.push {
            args.shared.push.remove(&push.id);
        }
        metrics::gauge!(m::SESSIONS_ACTIVE).decrement(1.0);
        Ok(())
    }
}

/// Parent of every session. Sessions are not restarted (their NAS has moved on); a failed
/// one is logged, counted and removed from the registry.
pub struct SessionSupervisor;

impl Actor for SessionSupervisor {
    type Msg = ();
    type State = Arc<Shared>;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        shared: Arc<Shared>,
    ) -> Result<Arc<Shared>, ActorProcessingErr> {
        Ok(shared)
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<()>,
        event: SupervisionEvent,
        shared: &mut Arc<Shared>,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(cell, err) = event {
            tracing::error!(actor = %cell.get_id(), error = %err, "a challenge session failed");
            metrics::counter!(m::ACTOR_RESTARTS_TOTAL, "kind" => "session").increment(1);
            metrics::gauge!(m::SESSIONS_ACTIVE).decrement(1.0);
            shared.sessions.forget_actor(cell.get_id());
            shared.push.forget_session(cell.get_id());
        }
        Ok(())
    }
}
