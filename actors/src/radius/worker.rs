//! The UDP workers: the fast path of every request.
//!
//! Each worker is an OS thread with its own socket bound to the listening address with
//! `SO_REUSEPORT`, so the kernel spreads NASes (by source address and port) over the
//! workers and no two threads contend for one socket. A worker receives a datagram, finds
//! its client, verifies, deduplicates and decodes it, and runs the login inline: with the
//! password in the verified-credential cache, everything is CPU work of a few
//! microseconds, and the reply leaves from the same thread. Only what would wait — an
//! Argon2 check, opening or answering a challenge session — is handed to the client's
//! actor, behind the client's admission gate.
//!
//! Nothing here is queued: a worker that is busy leaves datagrams in its socket buffer,
//! where the kernel drops the excess (and counts it) under overload.
//!
//! Single use across a crash costs this path one copy of 32 bytes per accept: the login
//! writes its record into the used-code journal's shared mapping (`state/journal.rs`)
//! before the reply is even built, so no reply can leave ahead of it.

use std::net::{SocketAddr, UdpSocket};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};
use tollgate_engine::radius::{verify_request_with, Code, Packet};

use super::batch::{enable_timestamps, RecvBatch, SendBatch, Shedder};
use super::core::{count_drop, Arrival};
use super::login::{self, Decision, Progress};
use super::{ClientMsg, ClientTable, DedupKey, Job, Seen, Shared};
use crate::metrics as m;

/// How often a worker looks at the stop flag while its socket is idle.
const POLL: Duration = Duration::from_millis(50);

/// Receive buffer asked of the kernel per socket: room for bursts while a worker is busy.
const RECV_BUFFER: usize = 4 << 20;

/// What every worker shares.
pub struct WorkerContext {
    /// Clients by source address.
    pub table: Arc<ArcSwap<ClientTable>>,
    /// What logins share.
    pub shared: Arc<Shared>,
    /// Set to stop the workers.
    pub stop: Arc<AtomicBool>,
    /// Longest wait in the socket of a request answered under persistent overload.
    pub max_wait: Duration,
    /// How long waits stay above `max_wait` before shedding starts.
    pub overload_after: Duration,
}

/// A UDP socket for `addr`, dual-stack on an IPv6 address.
fn udp_socket(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Serve IPv4 too on a wildcard IPv6 address, as a dual-stack listener is expected to.
        let _ = socket.set_only_v6(false);
    }
    Ok(socket)
}

/// Binds `count` sockets to `addr` with `SO_REUSEPORT`. With port 0, the first socket picks
/// the port and the others join it. A port that any other socket holds is refused
/// (`AddrInUse`): `SO_REUSEPORT` alone would let a second server of the same user join it,
/// and the kernel would split the NASes between the two without a word.
pub fn bind_sockets(addr: SocketAddr, count: usize) -> std::io::Result<Vec<Arc<UdpSocket>>> {
    if addr.port() != 0 {
        // A socket without SO_REUSEPORT binds only to a port nobody holds. It is closed
        // before the workers' sockets bind; a server starting in that instant could still
        // slip in, which the data directory's lock covers for servers of one directory.
        udp_socket(addr)?.bind(&addr.into())?;
    }
    let mut sockets = Vec::with_capacity(count.max(1));
    let mut bind_to = addr;
    for _ in 0..count.max(1) {
        let socket = udp_socket(bind_to)?;
        socket.set_reuse_port(true)?;
        // The kernel may grant less than asked; that only shortens the burst it absorbs.
        let _ = socket.set_recv_buffer_size(RECV_BUFFER);
        socket.bind(&bind_to.into())?;
        let socket: UdpSocket = socket.into();
        socket.set_read_timeout(Some(POLL))?;
        bind_to = socket.local_addr()?;
        sockets.push(Arc::new(socket));
    }
    Ok(sockets)
}

/// Starts one worker thread per socket.
pub fn spawn_workers(
    sockets: &[Arc<UdpSocket>],
    ctx: &Arc<WorkerContext>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    sockets
        .iter()
        .enumerate()
        .map(|(i, socket)| {
            let socket = Arc::clone(socket);
            let ctx = Arc::clone(ctx);
            std::thread::Builder::new()
                .name(format!("tollgate-udp-{i}"))
                .spawn(move || run_worker(&socket, &ctx))
        })
        .collect()
}

fn run_worker(socket: &Arc<UdpSocket>, ctx: &WorkerContext) {
    let policy = crate::sched::udp_worker();
    tracing::debug!(?policy, "UDP worker scheduling");
    let mut batch = RecvBatch::new();
    let mut shedder = Shedder::new(ctx.max_wait, ctx.overload_after);
    let mut sends = SendBatch::new();
    let panics = metrics::counter!(m::ACTOR_RESTARTS_TOTAL, "kind" => "udp_worker");
    let shed = metrics::counter!(m::SHED_TOTAL, "gate" => "queue");
    if let Err(e) = enable_timestamps(socket) {
        // Without arrival times every wait reads as zero: nothing is shed for lateness.
        tracing::warn!(error = %e, "no arrival times on the RADIUS socket; late requests will not be shed");
    }
    while !ctx.stop.load(Ordering::Relaxed) {
        let taken = match batch.recv(socket) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => {
                // ICMP errors of earlier sends surface here; they say nothing about the
                // next datagram.
                tracing::debug!(error = %e, "receive error");
                continue;
            }
        };
        shedder.received(taken);
        for i in 0..taken {
            let Some(datagram) = batch.get(i) else {
                count_drop("unknown", "malformed");
                continue;
            };
            let now = Instant::now();
            // Replies that have waited long enough for others leave before this one is
            // worked on.
            sends.flush_if_due(socket, now);
            // The one wall-clock read of the datagram: its wait, the login's clock and the
            // audit record's time all come from it.
            let wall = SystemTime::now();
            let waited = datagram.waited(wall);
            let was_shedding = shedder.is_shedding();
            let drop_it = shedder.shed(waited, now);
            if was_shedding != shedder.is_shedding() {
                if was_shedding {
                    tracing::info!("RADIUS worker caught up; no longer shedding late requests");
                } else {
                    tracing::warn!(
                        waited_us = waited.as_micros() as u64,
                        "RADIUS worker persistently behind; shedding requests that waited too long"
                    );
                }
            }
            if drop_it {
                shed.increment(1);
                continue;
            }
            // Latency counts from the datagram's arrival, wait in the socket included.
            let received = now.checked_sub(waited).unwrap_or(now);
            let peer = datagram.peer;
            // A bug that panics on one datagram must not take the listener down with it:
            // the datagram is dropped, the panic counted and logged, and the worker goes on.
            let out = sends.buffer();
            let replied = catch_unwind(AssertUnwindSafe(|| {
                let arrival = Arrival {
                    peer,
                    received,
                    wall,
                };
                handle(ctx, socket, datagram.bytes, arrival, out)
            }));
            match replied {
                Ok(true) => sends.queue(peer, socket, now),
                Ok(false) => {}
                Err(_) => {
                    panics.increment(1);
                    tracing::error!(%peer, "a UDP worker panicked on a datagram; it was dropped");
                }
            }
        }
        // The replies to this batch leave together.
        if !sends.is_empty() {
            sends.flush(socket);
        }
    }
}

/// Works on one datagram. Returns true when `out` holds a reply to send to `peer`.
fn handle(
    ctx: &WorkerContext,
    socket: &Arc<UdpSocket>,
    datagram: &[u8],
    arrival: Arrival,
    out: &mut Vec<u8>,
) -> bool {
    let Arrival {
        peer,
        received,
        wall,
    } = arrival;
    let table = ctx.table.load();
    let Some(slot) = table.lookup(peer.ip()) else {
        count_drop("unknown", "unknown_client");
        return false;
    };
    let core = &slot.core;
    let settings = &core.settings;
    let packet = match Packet::decode(datagram) {
        Ok(p) => p,
        Err(e) => {
            count_drop(&settings.name, e.as_str());
            return false;
        }
    };
    let verified = match verify_request_with(
        packet,
        settings.secret.expose(),
        &settings.mac,
        settings.signature_policy(),
    ) {
        Ok(v) => v,
        Err(e) => {
            count_drop(&settings.name, e.as_str());
            return false;
        }
    };
    let shared = &ctx.shared;
    match packet.code() {
        Code::StatusServer => {
            let alive = Decision {
                outcome: tollgate_engine::login::Outcome::Alive,
                state: None,
                user: String::new(),
                message: None,
            };
            return core.finish(shared, &verified, arrival, None, &alive, out);
        }
        Code::AccessRequest => {}
        _ => {
            count_drop(&settings.name, "unsupported_code");
            return false;
        }
    }
    core.count_request();
    let key = DedupKey {
        peer,
        identifier: packet.identifier(),
        authenticator: *packet.authenticator(),
    };
    {
        let mut dedup = core.dedup();
        match dedup.begin(key, received) {
            Seen::New => {}
            Seen::InProgress => {
                core.meters.duplicates.increment(1);
                return false;
            }
            Seen::Answered(reply) => {
                core.meters.duplicates.increment(1);
                out.clear();
                out.extend_from_slice(reply);
                return true;
            }
        }
    }
    if !core.admit_rate() {
        core.dedup().abandon(&key);
        count_drop(&settings.name, "rate_limited");
        return false;
    }
    let since_epoch = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (now, now_ms) = (since_epoch.as_secs(), since_epoch.as_millis() as u64);
    match login::start(shared, settings, &verified, now, now_ms) {
        Progress::Done(decision) => {
            core.finish(shared, &verified, arrival, Some(key), &decision, out)
        }
        progress => {
            let Ok(permit) = Arc::clone(&slot.gate).try_acquire_owned() else {
                core.dedup().abandon(&key);
                metrics::counter!(m::SHED_TOTAL, "gate" => "client").increment(1);
                return false;
            };
            metrics::gauge!(m::IN_FLIGHT, "client" => settings.name.to_string())
                .set((slot.capacity - slot.gate.available_permits()) as f64);
            let job = Job::new(
                datagram.to_vec(),
                peer,
                Arc::clone(socket),
                received,
                Arc::clone(core),
                key,
                Some(permit),
            );
            if slot
                .actor
                .cast(ClientMsg::Continue { job, progress })
                .is_err()
            {
                // The job came back inside the error and was dropped there, which took its
                // entry out of the duplicate cache; the NAS will retransmit.
                count_drop(&settings.name, "actor_down");
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_held_by_another_server_is_refused() {
        let first = bind_sockets("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let addr = first[0].local_addr().unwrap();
        assert_eq!(
            first[1].local_addr().unwrap(),
            addr,
            "the workers share the port"
        );
        // A second server, with SO_REUSEPORT like the first, must not join it.
        let e = bind_sockets(addr, 2).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
        // Nor may it take a port that a plain socket holds.
        let plain = UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = bind_sockets(plain.local_addr().unwrap(), 1).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
        // Once the first server is gone, its port is free again.
        drop(first);
        let again = bind_sockets(addr, 2).unwrap();
        assert_eq!(again.len(), 2);
        assert!(again.iter().all(|s| s.local_addr().unwrap() == addr));
    }
}
