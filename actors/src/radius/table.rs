//! The client table: which client a datagram belongs to, by its source address.
//!
//! It is rebuilt whole when clients change or an actor is restarted and published through
//! an `ArcSwap`, so the UDP workers read it without a lock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use ractor::ActorRef;
use tokio::sync::Semaphore;

use super::{ClientCore, ClientMsg};

/// One client as the UDP workers see it.
pub struct ClientSlot {
    /// Settings, duplicate cache, rate limit and meters.
    pub core: Arc<ClientCore>,
    /// The actor that runs the client's slow steps.
    pub actor: ActorRef<ClientMsg>,
    /// Admission to that actor: requests handed over and not yet answered.
    pub gate: Arc<Semaphore>,
    /// The gate's size.
    pub capacity: usize,
}

/// Clients by source address: exact hosts first, then networks, longest prefix first.
#[derive(Default)]
pub struct ClientTable {
    hosts: HashMap<IpAddr, Arc<ClientSlot>>,
    networks: Vec<(IpNet, Arc<ClientSlot>)>,
}

impl ClientTable {
    /// Builds a table from slots.
    pub fn new(slots: impl IntoIterator<Item = Arc<ClientSlot>>) -> Self {
        let mut table = ClientTable::default();
        for slot in slots {
            let net = slot.core.settings.address.0;
            if net.prefix_len() == net.max_prefix_len() {
                table.hosts.insert(net.addr(), slot);
            } else {
                table.networks.push((net, slot));
            }
        }
        table
            .networks
            .sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        table
    }

    /// The client a datagram from `ip` belongs to.
    pub fn lookup(&self, ip: IpAddr) -> Option<&Arc<ClientSlot>> {
        // A dual-stack socket reports IPv4 peers as IPv4-mapped IPv6 addresses.
        let ip = ip.to_canonical();
        self.hosts.get(&ip).or_else(|| {
            self.networks
                .iter()
                .find(|(net, _)| net.contains(&ip))
                .map(|(_, slot)| slot)
        })
    }

    /// Every slot.
    pub fn slots(&self) -> impl Iterator<Item = &Arc<ClientSlot>> {
        self.hosts
            .values()
            .chain(self.networks.iter().map(|(_, s)| s))
    }

    /// Number of clients.
    pub fn len(&self) -> usize {
        self.hosts.len() + self.networks.len()
    }

    /// Whether there are no clients.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
