//! The shared core of one RADIUS client: its settings, duplicate cache, rate limit and
//! meters, used both by the UDP workers (inline logins) and by the client's actor (logins
//! that left the fast path), and the one function that turns a decision into a reply.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use metrics::{Counter, Histogram};
use tollgate_engine::login::{reply_code, Outcome};
use tollgate_engine::radius::{attr, encode_reply_with, Verified};

use super::login::Decision;
use super::{ClientSettings, DedupKey, DuplicateCache, Shared};
use crate::audit::{AuditEvent, ClientTag};
use crate::metrics as m;

/// Pre-registered metric handles of one client, so that the per-packet path does not
/// look metrics up by name.
pub struct Meters {
    requests: Counter,
    accept: Counter,
    reject: Counter,
    challenge: Counter,
    alive: Counter,
    /// Retransmits answered from the cache or joined to a request in progress.
    pub duplicates: Counter,
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
            requests: metrics::counter!(m::REQUESTS_TOTAL, "client" => client.clone()),
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

/// Where a request came from and when: what its reply and audit record need besides the
/// request and the decision.
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    /// Source address and port.
    pub peer: SocketAddr,
    /// When it arrived (its wait in the socket included).
    pub received: Instant,
    /// The wall-clock time of the decision, for the audit record. A login decided inline
    /// gives the time its worker read on arrival, microseconds earlier.
    pub wall: SystemTime,
}

/// Everything about one client that the fast path and the actor share.
pub struct ClientCore {
    /// The client's settings; a change of settings makes a new core.
    pub settings: Arc<ClientSettings>,
    /// Recent requests and their replies. Held only for a lookup or an insert.
    dedup: Mutex<DuplicateCache>,
    limiter: Option<DefaultDirectRateLimiter>,
    /// The client's tag in the audit trail.
    audit_tag: ClientTag,
    /// Metric handles.
    pub meters: Meters,
}

/// Counts a datagram dropped without a reply.
pub fn count_drop(client: &str, reason: &'static str) {
    metrics::counter!(m::DROPPED_TOTAL, "client" => client.to_owned(), "reason" => reason)
        .increment(1);
}

impl ClientCore {
    /// A core for `settings`.
    pub fn new(settings: Arc<ClientSettings>, shared: &Shared) -> Self {
        ClientCore {
            dedup: Mutex::new(DuplicateCache::new(
                shared.dedup_window,
                shared.dedup_entries,
            )),
            limiter: NonZeroU32::new(settings.rate_limit)
                .map(|r| RateLimiter::direct(Quota::per_second(r))),
            meters: Meters::new(&settings),
            audit_tag: shared.audit.client(&settings.name),
            settings,
        }
    }

    /// The duplicate cache, locked. A panic while it was held cannot leave it half
    /// written (every operation replaces whole entries), so poisoning is ignored.
    pub fn dedup(&self) -> MutexGuard<'_, DuplicateCache> {
        self.dedup.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the client is within its rate limit (always, when it has none).
    pub fn admit_rate(&self) -> bool {
        self.limiter.as_ref().is_none_or(|l| l.check().is_ok())
    }

    /// Counts a request received and verified.
    pub fn count_request(&self) {
        self.meters.requests.increment(1);
    }

    /// Encodes the reply to a decided request into `out`, records it for retransmits
    /// under `dedup_key`, and writes the audit record and metrics. Returns false when the
    /// request gets no reply (the decision table says so, or encoding failed).
    pub fn finish(
        &self,
        shared: &Shared,
        request: &Verified<'_>,
        arrival: Arrival,
        dedup_key: Option<DedupKey>,
        decision: &Decision,
        out: &mut Vec<u8>,
    ) -> bool {
        let Arrival {
            peer,
            received,
            wall,
        } = arrival;
        let Some(code) = reply_code(request.code(), decision.outcome) else {
            return false;
        };
        let mut attrs: [(u8, &[u8]); 2] = [(0, &[]), (0, &[])];
        let mut n = 0;
        if let (Outcome::Challenge, Some(state)) = (decision.outcome, &decision.state) {
            attrs[0] = (attr::STATE, state.as_slice());
            attrs[1] = (
                attr::REPLY_MESSAGE,
                decision
                    .message
                    .as_deref()
                    .unwrap_or(&shared.challenge_message)
                    .as_bytes(),
            );
            n = 2;
        }
        if let Err(e) = encode_reply_with(
            out,
            code,
            request,
            self.settings.secret.expose(),
            &self.settings.mac,
            &attrs[..n],
        ) {
            tracing::error!(client = %self.settings.name, error = %e, "cannot encode a reply");
            return false;
        }
        let now = Instant::now();
        if let Some(key) = dedup_key {
            self.dedup().finish(key, out, now);
        }
        let latency = now.saturating_duration_since(received);
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
                return true;
            }
        }
        shared.audit.record(&AuditEvent {
            time: wall,
            user: &decision.user,
            client: self.audit_tag,
            peer: peer.ip(),
            mode: self.settings.mode,
            outcome: decision.outcome,
            latency,
        });
        true
    }
}
