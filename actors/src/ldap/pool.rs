//! The supervised pool of directory connections.
//!
//! Each connection is a [`ConnActor`] that owns one LDAP connection and runs one operation
//! at a time on it. A domain has two pools: search connections, bound as the service
//! account, and bind connections, which only ever check user passwords (so a user's bind
//! never changes the identity a search runs under). An operation goes to the member with
//! the fewest operations queued. Admission is bounded before anything reaches a mailbox:
//! the caller holds a permit of the domain's gate for the whole login.
//!
//! [`DirectorySupervisor`] starts the members, restarts one that fails (an operation that
//! was running on it is answered `Unavailable` when its reply channel drops), and probes
//! dead servers on a timer so they come back into use.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::oneshot;

use super::conn::{self, Endpoints, Held, Op, OpResult};
use super::DirError;
use crate::metrics as m;

/// What a pool member serves.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Searches and writes as the service account.
    Search,
    /// Checks user passwords by binding.
    Bind,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Search => "search",
            Role::Bind => "bind",
        }
    }
}

/// Messages of a [`ConnActor`].
pub enum ConnMsg {
    /// Run an operation and answer on the channel.
    Run(Op, oneshot::Sender<Result<OpResult, DirError>>, LoadGuard),
    /// Panics on purpose, to show supervision at work.
    #[cfg(feature = "fault-injection")]
    Panic,
}

/// One member's place in its pool: the actor (replaced on restart) and its queue length.
pub struct Member {
    actor: ArcSwap<ActorRef<ConnMsg>>,
    load: AtomicUsize,
}

/// Counts an operation against its member until it is answered or dropped.
pub struct LoadGuard(Arc<Member>);

impl Drop for LoadGuard {
    fn drop(&mut self) {
        self.0.load.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The members of one role in one domain.
pub struct Pool {
    members: Vec<Arc<Member>>,
}

impl Pool {
    /// Sends `op` to the least loaded member and waits for its answer.
    pub async fn run(&self, op: Op) -> Result<OpResult, DirError> {
        let member = self
            .members
            .iter()
            .min_by_key(|m| m.load.load(Ordering::Relaxed))
            .ok_or(DirError::Unavailable)?;
        member.load.fetch_add(1, Ordering::Relaxed);
        let guard = LoadGuard(Arc::clone(member));
        let (tx, rx) = oneshot::channel();
        let actor = member.actor.load();
        if actor.cast(ConnMsg::Run(op, tx, guard)).is_err() {
            return Err(DirError::Unavailable);
        }
        // A member that dies with the operation drops the sender.
        rx.await.unwrap_or(Err(DirError::Unavailable))
    }

    /// Actors of the members (for fault injection in tests).
    pub fn actors(&self) -> Vec<ActorRef<ConnMsg>> {
        self.members
            .iter()
            .map(|m| ActorRef::clone(&m.actor.load()))
            .collect()
    }
}

/// A connection actor.
pub struct ConnActor;

/// Start-up arguments and state of a [`ConnActor`].
pub struct ConnState {
    ends: Arc<Endpoints>,
    role: Role,
    held: Option<Held>,
}

impl Actor for ConnActor {
    type Msg = ConnMsg;
    type State = ConnState;
    type Arguments = (Arc<Endpoints>, Role);

    async fn pre_start(
        &self,
        _myself: ActorRef<ConnMsg>,
        (ends, role): (Arc<Endpoints>, Role),
    ) -> Result<ConnState, ActorProcessingErr> {
        // Connections open on first use: a directory that is down at start-up delays no one.
        Ok(ConnState {
            ends,
            role,
            held: None,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ConnMsg>,
        msg: ConnMsg,
        state: &mut ConnState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ConnMsg::Run(op, reply, _load) => {
                if reply.is_closed() {
                    return Ok(());
                }
                let started = std::time::Instant::now();
                let result = conn::run_with_failover(
                    &state.ends,
                    &mut state.held,
                    state.role == Role::Search,
                    &op,
                )
                .await;
                metrics::histogram!(m::LDAP_OPERATION_SECONDS, "domain" => state.ends.domain.clone(), "role" => state.role.as_str())
                    .record(started.elapsed().as_secs_f64());
                if result.is_err() {
                    metrics::counter!(m::LDAP_ERRORS_TOTAL, "domain" => state.ends.domain.clone(), "role" => state.role.as_str())
                        .increment(1);
                }
                let _ = reply.send(result);
            }
            #[cfg(feature = "fault-injection")]
            ConnMsg::Panic => panic!("fault injection: directory connection asked to panic"),
        }
        Ok(())
    }
}

/// Messages of the [`DirectorySupervisor`].
pub enum SupervisorMsg {
    /// Probe the dead servers of every domain.
    Probe,
}

/// One domain's pools as the supervisor builds them.
pub struct DomainPools {
    /// Search connections.
    pub search: Pool,
    /// Bind connections.
    pub bind: Pool,
}

/// Supervises every domain's connection actors and probes dead servers.
pub struct DirectorySupervisor;

/// State of the [`DirectorySupervisor`].
pub struct SupervisorState {
    domains: Vec<Arc<Endpoints>>,
    by_actor: HashMap<ActorId, (Arc<Endpoints>, Role, Arc<Member>)>,
}

/// What the supervisor is started with: each domain's endpoints and pool sizes, and where
/// to put the pools it builds.
pub struct SupervisorArgs {
    /// (endpoints, search connections, bind connections) per domain.
    pub domains: Vec<(Arc<Endpoints>, usize, usize)>,
    /// Filled with one entry per domain, in order, once the members run.
    pub pools: oneshot::Sender<Vec<DomainPools>>,
    /// How often dead servers are probed.
    pub probe_every: Duration,
}

impl DirectorySupervisor {
    async fn spawn_member(
        myself: &ActorRef<SupervisorMsg>,
        ends: &Arc<Endpoints>,
        role: Role,
    ) -> Result<ActorRef<ConnMsg>, ActorProcessingErr> {
        let (actor, _) =
            Actor::spawn_linked(None, ConnActor, (Arc::clone(ends), role), myself.get_cell())
                .await?;
        Ok(actor)
    }
}

impl Actor for DirectorySupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut state = SupervisorState {
            domains: Vec::new(),
            by_actor: HashMap::new(),
        };
        let mut built = Vec::new();
        for (ends, searchers, binders) in args.domains {
            let mut pools = DomainPools {
                search: Pool {
                    members: Vec::new(),
                },
                bind: Pool {
                    members: Vec::new(),
                },
            };
            for (role, n) in [(Role::Search, searchers), (Role::Bind, binders)] {
                for _ in 0..n {
                    let actor = Self::spawn_member(&myself, &ends, role).await?;
                    let member = Arc::new(Member {
                        actor: ArcSwap::from_pointee(actor.clone()),
                        load: AtomicUsize::new(0),
                    });
                    state.by_actor.insert(
                        actor.get_id(),
                        (Arc::clone(&ends), role, Arc::clone(&member)),
                    );
                    match role {
                        Role::Search => pools.search.members.push(member),
                        Role::Bind => pools.bind.members.push(member),
                    }
                }
            }
            state.domains.push(ends);
            built.push(pools);
        }
        let _ = args.pools.send(built);
        myself.send_interval(args.probe_every, || SupervisorMsg::Probe);
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Probe => {
                for ends in &state.domains {
                    for i in ends.dead().collect::<Vec<_>>() {
                        let ends = Arc::clone(ends);
                        // Probes run beside the supervisor: a slow server never holds up a
                        // restart.
                        tokio::spawn(async move {
                            conn::probe(&ends, i).await;
                        });
                    }
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        // A member that stops normally is being shut down with the tree; only a failure
        // is restarted.
        let SupervisionEvent::ActorFailed(cell, err) = event else {
            return Ok(());
        };
        let why = err.to_string();
        let Some((ends, role, member)) = state.by_actor.remove(&cell.get_id()) else {
            return Ok(());
        };
        tracing::error!(domain = %ends.domain, role = role.as_str(), reason = %why, "directory connection actor failed; restarting it");
        metrics::counter!(m::ACTOR_RESTARTS_TOTAL, "kind" => "directory_connection").increment(1);
        let actor = Self::spawn_member(&myself, &ends, role).await?;
        member.actor.store(Arc::new(actor.clone()));
        state.by_actor.insert(actor.get_id(), (ends, role, member));
        Ok(())
    }
}
