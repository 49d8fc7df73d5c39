//! A UDP listener: receives datagrams, finds their client, admits or sheds them.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::{ClientMsg, ClientTable, Job};
use crate::metrics as m;

/// Receives on `socket` until `stop` turns true.
///
/// Nothing here parses RADIUS: the listener only routes by source address and applies
/// admission, so its loop stays short whatever arrives.
pub async fn run_listener(
    socket: Arc<UdpSocket>,
    table: Arc<ArcSwap<ClientTable>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; tollgate_engine::radius::MAX_PACKET_LEN];
    let unknown =
        metrics::counter!(m::DROPPED_TOTAL, "client" => "unknown", "reason" => "unknown_client");
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = stop.changed() => break,
        };
        let (n, peer) = match received {
            Ok(x) => x,
            Err(e) => {
                // ICMP errors of earlier sends surface here on some systems; they say
                // nothing about the next datagram.
                tracing::debug!(error = %e, "receive error");
                continue;
            }
        };
        let table = table.load();
        let Some(slot) = table.lookup(peer.ip()) else {
            unknown.increment(1);
            continue;
        };
        let Ok(permit) = Arc::clone(&slot.gate).try_acquire_owned() else {
            metrics::counter!(m::SHED_TOTAL, "gate" => "client").increment(1);
            continue;
        };
        let job = Job::new(buf[..n].to_vec(), peer, Arc::clone(&socket), Some(permit));
        if slot.actor.cast(ClientMsg::Packet(job)).is_err() {
            metrics::counter!(m::DROPPED_TOTAL, "client" => slot.settings.name.to_string(), "reason" => "actor_down").increment(1);
        }
    }
}
