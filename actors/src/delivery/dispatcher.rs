//! The gateway dispatcher: the actor that empties the outbox.
//!
//! It is woken when a message is written (`Kick`) and once a second (`Tick`, for retries
//! that fall due). It reads due messages in batches no larger than its free workers, sends
//! each on a task of its own (at most `workers` at once), and records the result: a
//! delivered message is deleted; a failed one is tried on the next gateway of its channel
//! at once (failover) and, when every gateway failed, again later with exponential back-off
//! and jitter; after `max_attempts`, or on a permanent refusal, it becomes a dead letter.
//! The actor itself never waits on a gateway or on the store.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use rand::Rng;

use super::gateway::{Gateway, SendError};
use super::outbox::Outbox;
use super::{Channel, Message};
use crate::metrics as m;
use crate::store::OutboxRecord;

/// Messages of the [`GatewayDispatcher`].
pub enum DispatcherMsg {
    /// A message was written: look for work now.
    Kick,
    /// The periodic look for retries that fell due.
    Tick,
    /// Due messages read from the outbox.
    Fetched(Vec<OutboxRecord>),
    /// A read of the outbox failed.
    FetchFailed,
    /// A message's attempt ended (delivered, rescheduled or dead).
    Done(i64),
}

/// Retry rules.
#[derive(Copy, Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts before a message becomes a dead letter.
    pub max_attempts: u32,
    /// First delay.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl RetryPolicy {
    /// The delay before attempt `attempts + 1`: doubling from `base`, capped at `max`,
    /// with a random part so that a gateway that comes back is not hit by every message at
    /// once.
    pub fn delay(&self, attempts: u32, jitter: f64) -> Duration {
        let doubled = self
            .base
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
        let capped = doubled.min(self.max);
        capped.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

/// The gateways of each channel, in failover order.
pub type Routes = HashMap<Channel, Vec<Arc<Gateway>>>;

/// Start-up arguments of the [`GatewayDispatcher`].
pub struct DispatcherArgs {
    /// The outbox.
    pub outbox: Arc<Outbox>,
    /// Which channels are failing: set and cleared here, read by logins.
    pub health: Arc<super::ChannelHealth>,
    /// Gateways by channel.
    pub routes: Routes,
    /// Messages sent at once.
    pub workers: usize,
    /// Retry rules.
    pub retry: RetryPolicy,
}

/// The actor that empties the outbox.
pub struct GatewayDispatcher;

/// State of the [`GatewayDispatcher`].
pub struct DispatcherState {
    args: Arc<DispatcherArgs>,
    busy: HashSet<i64>,
    fetching: bool,
    again: bool,
}

impl Actor for GatewayDispatcher {
    type Msg = DispatcherMsg;
    type State = DispatcherState;
    type Arguments = DispatcherArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<DispatcherMsg>,
        args: DispatcherArgs,
    ) -> Result<DispatcherState, ActorProcessingErr> {
        // Every series exists from start-up, at zero, so that dashboards and alerts see a
        // quiet outbox rather than no data.
        for (channel, gateways) in &args.routes {
            let channel = channel.as_str();
            for gateway in gateways {
                metrics::counter!(m::DELIVERY_SENT_TOTAL, "channel" => channel, "gateway" => gateway.name().to_owned())
                    .increment(0);
            }
            metrics::counter!(m::DELIVERY_RETRIED_TOTAL, "channel" => channel).increment(0);
            metrics::counter!(m::DELIVERY_FAILED_TOTAL, "channel" => channel).increment(0);
            metrics::counter!(m::DELIVERY_THROTTLED_TOTAL, "channel" => channel).increment(0);
        }
        metrics::counter!(m::PUSH_TOKENS_FORGOTTEN_TOTAL).increment(0);
        gauges(&args.outbox);
        myself.send_interval(Duration::from_secs(1), || DispatcherMsg::Tick);
        // Whatever a previous run left in the outbox goes out now.
        let _ = myself.cast(DispatcherMsg::Kick);
        Ok(DispatcherState {
            args: Arc::new(args),
            busy: HashSet::new(),
            fetching: false,
            again: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<DispatcherMsg>,
        msg: DispatcherMsg,
        state: &mut DispatcherState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DispatcherMsg::Kick | DispatcherMsg::Tick => {
                if matches!(msg, DispatcherMsg::Tick) {
                    gauges(&state.args.outbox);
                }
                state.fetch(&myself);
            }
            DispatcherMsg::Fetched(messages) => {
                state.fetching = false;
                for record in messages {
                    if !state.busy.insert(record.id) {
                        continue;
                    }
                    let args = Arc::clone(&state.args);
                    let me = myself.clone();
                    tokio::spawn(async move {
                        let id = record.id;
                        attempt(&args, record).await;
                        let _ = me.cast(DispatcherMsg::Done(id));
                    });
                }
                if std::mem::take(&mut state.again) {
                    state.fetch(&myself);
                }
            }
            DispatcherMsg::FetchFailed => state.fetching = false,
            DispatcherMsg::Done(id) => {
                state.busy.remove(&id);
                // A worker is free: there may be more waiting.
                state.fetch(&myself);
            }
        }
        Ok(())
    }
}

impl DispatcherState {
    fn fetch(&mut self, myself: &ActorRef<DispatcherMsg>) {
        if self.fetching {
            self.again = true;
            return;
        }
        let free = self.args.workers.saturating_sub(self.busy.len());
        if free == 0 {
            return;
        }
        self.fetching = true;
        let busy = self.busy.clone();
        let outbox = Arc::clone(&self.args.outbox);
        let me = myself.clone();
        tokio::spawn(async move {
            let now = crate::unix_now() as i64;
            match outbox.run(move |s| s.due_messages(now, free, &busy)).await {
                Ok(messages) => {
                    let _ = me.cast(DispatcherMsg::Fetched(messages));
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox");
                    let _ = me.cast(DispatcherMsg::FetchFailed);
                }
            }
        });
    }
}

fn gauges(outbox: &Arc<Outbox>) {
    let outbox = Arc::clone(outbox);
    tokio::spawn(async move {
        if let Ok((live, dead)) = outbox.run(|s| s.outbox_counts()).await {
            metrics::gauge!(m::DELIVERY_QUEUED).set(live as f64);
            metrics::gauge!(m::DELIVERY_DEAD_LETTERS).set(dead as f64);
        }
    });
}

/// One attempt at a message: every gateway of its channel in turn, then the bookkeeping.
async fn attempt(args: &DispatcherArgs, record: OutboxRecord) {
    let channel = record.channel;
    let Some(body) = record.body else {
        return;
    };
    let message = Message {
        id: record.id,
        key: record.key,
        channel,
        to: record.to,
        subject: record.subject,
        body,
    };
    let gateways = args.routes.get(&channel).map(Vec::as_slice).unwrap_or(&[]);
    let mut last = format!("no gateway for {}", channel.as_str());
    let mut permanent = gateways.is_empty();
    for gateway in gateways {
        let started = Instant::now();
        let result = gateway.send(&message).await;
        metrics::histogram!(m::DELIVERY_DURATION_SECONDS, "channel" => channel.as_str())
            .record(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => {
                metrics::counter!(m::DELIVERY_SENT_TOTAL, "channel" => channel.as_str(), "gateway" => gateway.name().to_owned())
                    .increment(1);
                let id = message.id;
                if let Err(e) = args.outbox.run(move |s| s.delivered(id)).await {
                    // It went out; if the row stays, a restart sends it again. Say so.
                    tracing::error!(id, error = %e, "a delivered message could not be removed from the outbox");
                }
                if let Some(since) = args.health.delivered(channel) {
                    catch_up(args, channel, since).await;
                }
                return;
            }
            Err(SendError::Transient(why)) => {
                tracing::warn!(id = message.id, gateway = gateway.name(), reason = %why, "gateway failed; trying the next");
                last = format!("{}: {why}", gateway.name());
            }
            Err(SendError::Permanent(why)) => {
                tracing::warn!(id = message.id, gateway = gateway.name(), reason = %why, "gateway refused the message");
                last = format!("{}: {why}", gateway.name());
                permanent = true;
                break;
            }
            Err(SendError::Unregistered(why)) => {
                tracing::warn!(id = message.id, gateway = gateway.name(), reason = %why, "push token unregistered");
                forget_destination(args, message.id, message.to).await;
                return;
            }
        }
    }
    let attempts = record.attempts.saturating_add(1);
    let id = message.id;
    if !permanent && !gateways.is_empty() && args.health.failed(channel, crate::unix_now()) {
        tracing::warn!(channel = channel.as_str(), reason = %last, "every gateway of the channel is failing; its messages wait in the outbox");
    }
    if permanent || attempts >= args.retry.max_attempts {
        metrics::counter!(m::DELIVERY_FAILED_TOTAL, "channel" => channel.as_str()).increment(1);
        tracing::error!(id, attempts, reason = %last, "message is a dead letter");
        let _ = args
            .outbox
            .run(move |s| s.mark_dead(id, attempts, &last))
            .await;
    } else {
        metrics::counter!(m::DELIVERY_RETRIED_TOTAL, "channel" => channel.as_str()).increment(1);
        let jitter: f64 = rand::thread_rng().gen();
        let delay = args.retry.delay(attempts, jitter);
        let at = crate::unix_now() as i64 + delay.as_secs_f64().ceil() as i64;
        let _ = args
            .outbox
            .run(move |s| s.retry_later(id, attempts, at, &last))
            .await;
    }
}

/// A channel's gateways answer again after failing since `since`: every message of the
/// channel waiting out its back-off is due now, so that the codes users are waiting for go
/// out within seconds of the gateway's return rather than at their next retry (minutes
/// later after a long outage). The dispatcher fetches them when this attempt is done.
async fn catch_up(args: &DispatcherArgs, channel: Channel, since: u64) {
    let now = crate::unix_now() as i64;
    match args.outbox.run(move |s| s.due_now(channel, now)).await {
        Ok(waiting) => tracing::warn!(
            channel = channel.as_str(),
            failed_for_secs = (now as u64).saturating_sub(since),
            waiting,
            "the channel's gateway answers again; sending what waited"
        ),
        Err(e) => {
            tracing::error!(channel = channel.as_str(), error = %e, "cannot bring the waiting messages forward; they go at their next retry")
        }
    }
}

/// A push token the service no longer knows: the devices holding it lose it (their keys
/// stay, so their users can still approve by polling), the messages waiting for it are
/// dropped (none could ever be delivered; this is no failure for an admin to act on), and
/// the store's change log tells every server sharing the store.
async fn forget_destination(args: &DispatcherArgs, id: i64, token: String) {
    metrics::counter!(m::PUSH_TOKENS_FORGOTTEN_TOTAL).increment(1);
    match args.outbox.run(move |s| s.forget_push_token(&token)).await {
        Ok(devices) => {
            tracing::warn!(target: "tollgate::audit", id, devices, "push token unregistered by the push service; forgotten");
        }
        Err(e) => {
            tracing::error!(id, error = %e, "an unregistered push token could not be forgotten")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_with_jitter_and_a_cap() {
        let p = RetryPolicy {
            max_attempts: 8,
            base: Duration::from_secs(2),
            max: Duration::from_secs(60),
        };
        assert_eq!(p.delay(1, 1.0), Duration::from_secs(2));
        assert_eq!(p.delay(2, 1.0), Duration::from_secs(4));
        assert_eq!(p.delay(3, 0.0), Duration::from_secs(4));
        assert_eq!(p.delay(10, 1.0), Duration::from_secs(60));
        assert_eq!(p.delay(u32::MAX, 1.0), Duration::from_secs(60));
    }
}
