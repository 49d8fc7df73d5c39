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
        myself.send_after(Duration::from_secs(ttl), || SessionMsg::Expire);
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
                let decision = match args.session.redeem(&client, &user, now) {
                    Ok(()) => match &args.sent {
                        Some(sent) => {
                            login::answer_delivered(&args.shared, &user, &sent.code, &passcode, now)
                        }
                        None => login::answer_challenge(&args.shared, &user, &passcode, now).await,
                    },
                    Err(e) => Decision::reject(
                        &user,
                        match e {
                            SessionError::Expired => RejectReason::ChallengeExpired,
                            _ => RejectReason::UnknownState,
                        },
                    ),
                };
                let _ = reply_to.cast(ClientMsg::Completed { job, decision });
                myself.stop(None);
            }
            SessionMsg::Expire => {
                args.shared.sessions.by_state.remove(&args.session.state);
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
        args.shared.sessions.by_state.remove(&args.session.state);
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
        }
        Ok(())
    }
}
