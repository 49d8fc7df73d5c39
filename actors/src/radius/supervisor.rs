//! The supervisor of the client actors: it starts one per client, restarts one that
//! fails, follows changes to the client list, and publishes the client table that the UDP
//! workers read.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::Semaphore;

use super::{ClientActor, ClientCore, ClientSettings, ClientSlot, ClientTable, Shared};
use crate::metrics as m;

/// Messages of the [`RadiusSupervisor`].
pub enum RadiusSupervisorMsg {
    /// The full, current list of clients.
    SetClients(Vec<Arc<ClientSettings>>),
    /// Makes the named client's actor panic, to show it is restarted.
    #[cfg(feature = "fault-injection")]
    CrashClient(String),
}

/// Start-up arguments of the [`RadiusSupervisor`].
pub struct RadiusSupervisorArgs {
    /// What client actors share.
    pub shared: Arc<Shared>,
    /// The table the listeners read.
    pub table: Arc<ArcSwap<ClientTable>>,
    /// The first client list.
    pub clients: Vec<Arc<ClientSettings>>,
    /// Admission bound per client.
    pub max_in_flight: u32,
}

/// Supervisor of the client actors.
pub struct RadiusSupervisor;

/// State of the [`RadiusSupervisor`].
pub struct RadiusSupervisorState {
    shared: Arc<Shared>,
    table: Arc<ArcSwap<ClientTable>>,
    slots: HashMap<Arc<str>, Arc<ClientSlot>>,
    by_actor: HashMap<ActorId, Arc<str>>,
    max_in_flight: u32,
}

impl RadiusSupervisorState {
    async fn spawn_client(
        &mut self,
        myself: &ActorRef<RadiusSupervisorMsg>,
        core: Arc<ClientCore>,
        gate: Arc<Semaphore>,
    ) -> Result<(), ActorProcessingErr> {
        let (actor, _) = Actor::spawn_linked(
            None,
            ClientActor,
            Arc::clone(&self.shared),
            myself.get_cell(),
        )
        .await?;
        let name = Arc::clone(&core.settings.name);
        self.by_actor.insert(actor.get_id(), Arc::clone(&name));
        self.slots.insert(
            name,
            Arc::new(ClientSlot {
                core,
                actor,
                gate,
                capacity: self.max_in_flight as usize,
            }),
        );
        Ok(())
    }

    fn publish(&self) {
        self.table
            .store(Arc::new(ClientTable::new(self.slots.values().cloned())));
    }

    async fn set_clients(
        &mut self,
        myself: &ActorRef<RadiusSupervisorMsg>,
        clients: Vec<Arc<ClientSettings>>,
    ) -> Result<(), ActorProcessingErr> {
        let wanted: HashMap<Arc<str>, Arc<ClientSettings>> = clients
            .into_iter()
            .map(|c| (Arc::clone(&c.name), c))
            .collect();
        let gone: Vec<Arc<str>> = self
            .slots
            .keys()
            .filter(|name| !wanted.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(slot) = self.slots.remove(&name) {
                self.by_actor.remove(&slot.actor.get_id());
                slot.actor.stop(Some("client removed".to_owned()));
                tracing::info!(client = %name, "RADIUS client removed");
            }
        }
        for (name, settings) in wanted {
            match self.slots.get(&name) {
                Some(slot) if slot.core.settings == settings => {}
                Some(slot) => {
                    // New settings make a new core (and an empty duplicate cache); requests
                    // in flight finish with the core they were verified with.
                    let updated = Arc::new(ClientSlot {
                        core: Arc::new(ClientCore::new(settings, &self.shared)),
                        actor: slot.actor.clone(),
                        gate: Arc::clone(&slot.gate),
                        capacity: slot.capacity,
                    });
                    self.slots.insert(name.clone(), updated);
                    tracing::info!(client = %name, "RADIUS client updated");
                }
                None => {
                    let gate = Arc::new(Semaphore::new(self.max_in_flight as usize));
                    tracing::info!(client = %name, address = %settings.address, mode = %settings.mode, "RADIUS client added");
                    let core = Arc::new(ClientCore::new(settings, &self.shared));
                    self.spawn_client(myself, core, gate).await?;
                }
            }
        }
        self.publish();
        Ok(())
    }
}

impl Actor for RadiusSupervisor {
    type Msg = RadiusSupervisorMsg;
    type State = RadiusSupervisorState;
    type Arguments = RadiusSupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: RadiusSupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = RadiusSupervisorState {
            shared: args.shared,
            table: args.table,
            slots: HashMap::new(),
            by_actor: HashMap::new(),
            max_in_flight: args.max_in_flight,
        };
        state.set_clients(&myself, args.clients).await?;
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: RadiusSupervisorMsg,
        state: &mut RadiusSupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RadiusSupervisorMsg::SetClients(clients) => state.set_clients(&myself, clients).await?,
            #[cfg(feature = "fault-injection")]
            RadiusSupervisorMsg::CrashClient(name) => {
                if let Some(slot) = state.slots.get(name.as_str()) {
                    let _ = slot.actor.cast(super::ClientMsg::Panic);
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut RadiusSupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(name) = state.by_actor.remove(&cell.get_id()) else {
                    return Ok(());
                };
                tracing::error!(client = %name, error = %err, "client actor failed; restarting it");
                metrics::counter!(m::ACTOR_RESTARTS_TOTAL, "kind" => "client").increment(1);
                if let Some(slot) = state.slots.remove(&name) {
                    // The gate is kept: permits held by jobs of the failed actor come back
                    // as those jobs are dropped.
                    state
                        .spawn_client(&myself, Arc::clone(&slot.core), Arc::clone(&slot.gate))
                        .await?;
                    state.publish();
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.by_actor.remove(&cell.get_id());
            }
            _ => {}
        }
        Ok(())
    }
}
