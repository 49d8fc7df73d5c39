//! Delivered codes: real-time codes sent at login, preload day codes, the durable outbox,
//! the gateway dispatcher that empties it, and the gateways that carry a message to a
//! phone or a mailbox.

pub mod dispatcher;
pub mod gateway;
pub mod outbox;
pub mod scheduler;

use std::sync::Arc;

use zeroize::Zeroizing;

/// How a message reaches the user.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// A text message to a mobile number.
    Sms,
    /// An e-mail.
    Email,
    /// A voice call that reads the message out.
    Voice,
    /// A push notification through Firebase Cloud Messaging (Android).
    ///
    /// A [`Message`] of a push channel has `to` = the device's push token (FCM
    /// registration token, APNs device token in hex), `subject` = the notification's title
    /// and `body` = a JSON object `{"title": "...", "body": "...", "data": {"k": "v", ...},
    /// "expires_at": <unix seconds>}` in which `body` is the notification's text, `data` a
    /// map of strings handed to the app (the challenge id, say), and `title` (else
    /// `subject`) and `expires_at` are optional. Build it with
    /// [`gateway::PushPayload::to_body`].
    Fcm,
    /// A push notification through the Apple Push Notification service (iOS); the message
    /// is laid out as for [`Channel::Fcm`].
    Apns,
}

impl Channel {
    /// Every channel, in [`Channel::index`] order.
    pub const ALL: [Channel; 5] = [
        Channel::Sms,
        Channel::Email,
        Channel::Voice,
        Channel::Fcm,
        Channel::Apns,
    ];

    /// Its place in [`Channel::ALL`].
    pub fn index(self) -> usize {
        match self {
            Channel::Sms => 0,
            Channel::Email => 1,
            Channel::Voice => 2,
            Channel::Fcm => 3,
            Channel::Apns => 4,
        }
    }

    /// How a prompt names it to the user.
    pub fn spoken(self) -> &'static str {
        match self {
            Channel::Sms => "text message",
            Channel::Email => "e-mail",
            Channel::Voice => "voice call",
            Channel::Fcm | Channel::Apns => "push notification",
        }
    }

    /// `sms`, `email`, `voice`, `fcm` or `apns`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
            Channel::Voice => "voice",
            Channel::Fcm => "fcm",
            Channel::Apns => "apns",
        }
    }

    /// Parses `sms`, `email`, `voice`, `fcm` or `apns`.
    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "sms" => Some(Channel::Sms),
            "email" => Some(Channel::Email),
            "voice" => Some(Channel::Voice),
            "fcm" => Some(Channel::Fcm),
            "apns" => Some(Channel::Apns),
            _ => None,
        }
    }
}

/// One message for a gateway to carry. Its body holds a passcode: it is never logged.
pub struct Message {
    /// Outbox id (unique; gateways may pass it on as an idempotency key).
    pub id: i64,
    /// Drawn at random when the message was written and the same at every attempt: with
    /// `id`, a name for the message that no other message shares, even one whose id the
    /// store reused (the SMTP gateway's Message-ID).
    pub key: u64,
    /// The channel.
    pub channel: Channel,
    /// Mobile number (E.164 as given) or e-mail address.
    pub to: String,
    /// Subject line (e-mail only; empty otherwise).
    pub subject: String,
    /// The text (SMS, e-mail body) or the words to speak (voice).
    pub body: Zeroizing<String>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("channel", &self.channel)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

/// Why a code could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The user has no number or address for the channel.
    #[error("no destination for {0}")]
    NoDestination(&'static str),
    /// The destination was sent too many codes lately.
    #[error("too many codes to this destination")]
    Throttled,
    /// The outbox could not take the message.
    #[error("outbox: {0}")]
    Outbox(String),
}

/// Fills a message template.
pub fn render(template: &str, code: &str, channel: Channel, minutes: u64, days: u32) -> String {
    let code_text = match channel {
        // Spoken one digit at a time: "1 2 3 4 5 6".
        Channel::Voice => code.chars().map(String::from).collect::<Vec<_>>().join(" "),
        _ => code.to_owned(),
    };
    template
        .replace("{code}", &code_text)
        .replace("{minutes}", &minutes.to_string())
        .replace("{days}", &days.to_string())
}

/// Whether each channel's gateways are failing, as the dispatcher last found them: set
/// when a message failed on every gateway of its channel for a reason that may pass, and
/// cleared by the next message delivered on it. A login that sends a code on a failing
/// channel says so in its prompt.
#[derive(Default)]
pub struct ChannelHealth {
    /// Per channel ([`Channel::index`]): when the failure began (Unix seconds), 0 when
    /// the channel works.
    failing_since: [std::sync::atomic::AtomicU64; 5],
}

impl ChannelHealth {
    /// Whether `channel` is failing.
    pub fn is_failing(&self, channel: Channel) -> bool {
        self.failing_since[channel.index()].load(std::sync::atomic::Ordering::Relaxed) != 0
    }

    /// A message failed on every gateway of `channel`; returns whether that began a
    /// failure.
    pub fn failed(&self, channel: Channel, now: u64) -> bool {
        self.failing_since[channel.index()]
            .compare_exchange(
                0,
                now.max(1),
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
            )
            .is_ok()
    }

    /// A message was delivered on `channel`; returns when the failure it ends began, if
    /// one did.
    pub fn delivered(&self, channel: Channel) -> Option<u64> {
        match self.failing_since[channel.index()].swap(0, std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            since => Some(since),
        }
    }
}

/// The delivered-codes service shared by logins, the scheduler and the CLI-facing parts:
/// templates, the per-destination limit, the outbox and the dispatcher's doorbell.
pub struct Delivery {
    /// Settings.
    pub config: tollgate_config::DeliveryConfig,
    /// The outbox.
    pub outbox: Arc<outbox::Outbox>,
    /// Which channels are failing.
    pub health: Arc<ChannelHealth>,
    dispatcher: ractor::ActorRef<dispatcher::DispatcherMsg>,
    limiter: dashmap::DashMap<String, (u64, u32)>,
    used: tokio::sync::mpsc::Sender<(i64, i64)>,
}

impl Delivery {
    /// A fresh code.
    pub fn new_code(&self) -> Zeroizing<String> {
        let mut random = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut random);
        Zeroizing::new(tollgate_engine::login::numeric_code(
            random,
            self.config.code_digits,
        ))
    }

    /// Counts a code for `to` against the hourly limit; false when over it.
    fn admit(&self, to: &str, now: u64) -> bool {
        let limit = self.config.max_per_destination_per_hour;
        if limit == 0 {
            return true;
        }
        let hour = now / 3600;
        if self.limiter.len() > 100_000 {
            self.limiter.retain(|_, (h, _)| *h == hour);
        }
        let key: String = to
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_lowercase();
        let mut entry = self.limiter.entry(key).or_insert((hour, 0));
        if entry.0 != hour {
            *entry = (hour, 0);
        }
        if entry.1 >= limit {
            return false;
        }
        entry.1 += 1;
        true
    }

    /// The Reply-Message of a challenge whose code went to `masked` on `channel`: the
    /// usual prompt, or, while the channel's gateways are failing, the delayed one.
    pub fn prompt(&self, channel: Channel, masked: &str) -> String {
        if self.health.is_failing(channel) {
            self.config
                .delayed_prompt
                .replace("{to}", masked)
                .replace("{channel}", channel.spoken())
        } else {
            self.config.prompt.replace("{to}", masked)
        }
    }

    /// Writes a real-time code's message to the outbox (durably) and wakes the
    /// dispatcher. Returns the masked destination for the prompt.
    pub async fn send_realtime(
        &self,
        user_id: Option<i64>,
        channel: Channel,
        to: Option<&str>,
        code: &str,
    ) -> Result<String, DeliveryError> {
        let to = to
            .filter(|t| !t.trim().is_empty())
            .ok_or(DeliveryError::NoDestination(channel.as_str()))?;
        if !self.admit(to, crate::unix_now()) {
            metrics::counter!(crate::metrics::DELIVERY_THROTTLED_TOTAL, "channel" => channel.as_str()).increment(1);
            return Err(DeliveryError::Throttled);
        }
        let minutes = self.config.realtime_ttl_secs.div_ceil(60);
        let (template, subject) = match channel {
            Channel::Sms => (&self.config.sms_template, String::new()),
            Channel::Voice => (&self.config.voice_template, String::new()),
            Channel::Email => (
                &self.config.email_template,
                self.config.email_subject.clone(),
            ),
            // Push notifications carry an approval request, not a passcode.
            Channel::Fcm | Channel::Apns => {
                return Err(DeliveryError::NoDestination(channel.as_str()))
            }
        };
        let message = crate::store::NewMessage {
            channel,
            to: to.to_owned(),
            subject,
            body: Zeroizing::new(render(template, code, channel, minutes, 0)),
            user_id,
            purpose: "realtime",
        };
        self.outbox
            .run(move |s| s.enqueue(&[message]))
            .await
            .map_err(|e| DeliveryError::Outbox(e.to_string()))?;
        self.kick();
        Ok(tollgate_engine::login::masked(to))
    }

    /// The message that carries a day code.
    pub fn day_code_message(
        &self,
        user_id: i64,
        settings: &crate::store::DeliverySettings,
        code: &str,
        purpose: &'static str,
    ) -> Option<crate::store::NewMessage> {
        let crate::store::Method::Preload(channel) = settings.method else {
            return None;
        };
        let to = settings.destination(channel)?;
        let p = &self.config.preload;
        let (template, subject) = match channel {
            Channel::Email => (&p.email_template, self.config.email_subject.clone()),
            _ => (&p.sms_template, String::new()),
        };
        Some(crate::store::NewMessage {
            channel,
            to: to.to_owned(),
            subject,
            body: Zeroizing::new(render(template, code, channel, 0, p.days)),
            user_id: Some(user_id),
            purpose,
        })
    }

    /// A day code was used: a new one is issued and sent (on the replacement task).
    pub fn day_code_used(&self, user_id: i64, issued_at: i64) {
        if self.used.try_send((user_id, issued_at)).is_err() {
            metrics::counter!(crate::metrics::SHED_TOTAL, "gate" => "daycode_replace").increment(1);
            tracing::error!(
                user_id,
                "day-code replacement queue full; the next batch will send one"
            );
        }
    }

    /// Wakes the dispatcher.
    pub fn kick(&self) {
        let _ = self.dispatcher.cast(dispatcher::DispatcherMsg::Kick);
    }

    /// Stops the dispatcher.
    pub fn stop(&self) {
        self.dispatcher.stop(Some("server stopping".to_owned()));
    }
}

/// Issues (and records, and sends) new day codes for `users`: one transaction, then the
/// codes go into the directory in memory.
pub fn issue_day_codes(
    delivery: &Delivery,
    store: &mut crate::store::Store,
    directory: &crate::state::Directory,
    users: &[(i64, crate::store::DeliverySettings)],
    progress: Option<(&str, i64)>,
    purpose: &'static str,
) -> Result<usize, crate::store::StoreError> {
    // Issue stamps are in milliseconds, so that a code replaced within the second it was
    // issued still counts as newer.
    let now_ms = crate::unix_now_ms() as i64;
    let expires = now_ms / 1000 + i64::from(delivery.config.preload.days) * 86_400;
    let mut issued = Vec::with_capacity(users.len());
    for (user_id, settings) in users {
        let code = delivery.new_code();
        // A user without a destination gets no code (and no message); they are logged.
        let Some(message) = delivery.day_code_message(*user_id, settings, &code, purpose) else {
            tracing::warn!(user_id, "preload user has no destination for their channel");
            continue;
        };
        issued.push(crate::store::IssuedCode {
            user_id: *user_id,
            code,
            message,
        });
    }
    store.issue_day_codes(&issued, now_ms, expires, progress)?;
    for c in issued.iter() {
        directory.install_day_code(crate::store::DayCodeRecord {
            user_id: c.user_id,
            code: c.code.clone(),
            issued_at: now_ms,
            expires_at: expires,
            used: false,
        });
    }
    metrics::counter!(crate::metrics::DAYCODES_ISSUED_TOTAL, "reason" => purpose)
        .increment(issued.len() as u64);
    Ok(issued.len())
}

/// Everything [`start`] builds.
pub struct Started {
    /// The service.
    pub delivery: Arc<Delivery>,
    /// The scheduler of the daily batch.
    pub scheduler: ractor::ActorRef<scheduler::SchedulerMsg>,
}

/// Why delivery could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// A gateway's settings.
    #[error("gateway: {0}")]
    Gateway(String),
    /// An actor.
    #[error("cannot start {0}")]
    Spawn(String),
}

/// Starts the outbox, the dispatcher with its gateways, the replacement task and the
/// day-code scheduler.
pub async fn start(
    config: &tollgate_config::Config,
    directory: Arc<crate::state::Directory>,
) -> Result<Started, StartError> {
    let outbox = outbox::Outbox::open(&config.data_dir)?;
    let routes = gateway_routes(config)?;
    let health = Arc::new(ChannelHealth::default());
    let (dispatcher, _) = ractor::Actor::spawn(
        None,
        dispatcher::GatewayDispatcher,
        dispatcher::DispatcherArgs {
            outbox: Arc::clone(&outbox),
            health: Arc::clone(&health),
            routes,
            workers: config.delivery.workers,
            retry: dispatcher::RetryPolicy {
                max_attempts: config.delivery.max_attempts,
                base: std::time::Duration::from_millis(config.delivery.retry_base_ms),
                max: std::time::Duration::from_millis(config.delivery.retry_max_ms),
            },
        },
    )
    .await
    .map_err(|e| StartError::Spawn(format!("the gateway dispatcher: {e}")))?;
    let (used_tx, used_rx) = tokio::sync::mpsc::channel(65_536);
    let delivery = Arc::new(Delivery {
        config: config.delivery.clone(),
        outbox: Arc::clone(&outbox),
        health,
        dispatcher,
        limiter: dashmap::DashMap::new(),
        used: used_tx,
    });
    tokio::spawn(replace_used(
        Arc::clone(&delivery),
        Arc::clone(&directory),
        used_rx,
    ));
    let (scheduler, _) = ractor::Actor::spawn(
        None,
        scheduler::DayCodeScheduler,
        scheduler::SchedulerArgs {
            delivery: Arc::clone(&delivery),
            directory,
            data_dir: config.data_dir.clone(),
        },
    )
    .await
    .map_err(|e| StartError::Spawn(format!("the day-code scheduler: {e}")))?;
    Ok(Started {
        delivery,
        scheduler,
    })
}

/// Issues a new day code for each used one, one at a time, as they come.
async fn replace_used(
    delivery: Arc<Delivery>,
    directory: Arc<crate::state::Directory>,
    mut used: tokio::sync::mpsc::Receiver<(i64, i64)>,
) {
    while let Some((user_id, issued_at)) = used.recv().await {
        let Some(user) = directory.user_by_id(user_id) else {
            continue;
        };
        // Already replaced (the start after a crash asks again for codes whose replacement
        // may have gone out before the crash): one new code per used one, not two.
        if directory
            .day_code_issued_at(user_id)
            .is_some_and(|current| current > issued_at)
        {
            continue;
        }
        let settings = user.delivery.clone();
        let d = Arc::clone(&delivery);
        let dir = Arc::clone(&directory);
        let result = delivery
            .outbox
            .run(move |store| {
                store.day_code_used(user_id, issued_at, crate::unix_now() as i64)?;
                issue_day_codes(&d, store, &dir, &[(user_id, settings)], None, "replace")
            })
            .await;
        match result {
            Ok(_) => delivery.kick(),
            Err(e) => tracing::error!(user_id, error = %e, "cannot issue a replacement day code"),
        }
    }
}

/// The gateways of each channel: the configured ones in order, and the built-in outbox
/// file for a channel that has none.
fn gateway_routes(config: &tollgate_config::Config) -> Result<dispatcher::Routes, StartError> {
    let mut routes: dispatcher::Routes = std::collections::HashMap::new();
    for g in &config.gateways {
        let gateway =
            gateway::Gateway::from_config(g).map_err(|e| StartError::Gateway(e.to_string()))?;
        routes
            .entry(gateway.channel())
            .or_default()
            .push(Arc::new(gateway));
    }
    let file = config
        .delivery
        .outbox_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("outbox.log"));
    for channel in [
        Channel::Sms,
        Channel::Email,
        Channel::Voice,
        Channel::Fcm,
        Channel::Apns,
    ] {
        if !routes.contains_key(&channel) {
            let gateway = gateway::Gateway::outbox_file(channel, &file)
                .map_err(|e| StartError::Gateway(e.to_string()))?;
            routes.entry(channel).or_default().push(Arc::new(gateway));
        }
    }
    Ok(routes)
}

/// Sends a push notification to each of the user's phones that has a push address (the
/// others poll). The notification carries no secret: the pending login's id, the client,
/// and the numbers to offer; the phone signs its answer. It goes through the outbox like
/// every message (written durably, then sent by the dispatcher).
pub fn notify_push(
    shared: &crate::radius::Shared,
    devices: &[Arc<crate::state::DeviceEntry>],
    opened: &crate::radius::PushOpened,
    client: &str,
    user: &str,
) {
    let expires_at = crate::unix_now() + shared.push_timeout_secs;
    let numbers = opened
        .numbers
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let messages: Vec<crate::store::NewMessage> = devices
        .iter()
        .filter_map(|d| {
            let channel = match d.platform {
                crate::store::Platform::Fcm => Channel::Fcm,
                crate::store::Platform::Apns => Channel::Apns,
                crate::store::Platform::Poll => return None,
            };
            let token = d.push_token.clone()?;
            let mut data = std::collections::BTreeMap::new();
            data.insert("challenge".to_owned(), opened.id.clone());
            data.insert("client".to_owned(), client.to_owned());
            if !numbers.is_empty() {
                data.insert("numbers".to_owned(), numbers.clone());
            }
            let payload = gateway::PushPayload {
                title: Some("Login request".to_owned()),
                body: format!("Approve the login of {user} through {client}?"),
                data,
                expires_at: Some(expires_at),
            };
            Some(crate::store::NewMessage {
                channel,
                to: token,
                subject: "Login request".to_owned(),
                body: payload.to_body(),
                user_id: None,
                purpose: "push",
            })
        })
        .collect();
    if messages.is_empty() {
        return;
    }
    let delivery = Arc::clone(&shared.delivery);
    tokio::spawn(async move {
        match delivery.outbox.run(move |s| s.enqueue(&messages)).await {
            Ok(_) => delivery.kick(),
            Err(e) => tracing::error!(error = %e, "push notifications not written to the outbox"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_begins_once_and_ends_at_the_next_delivery() {
        let health = ChannelHealth::default();
        assert!(!health.is_failing(Channel::Email));
        assert_eq!(health.delivered(Channel::Email), None);
        assert!(health.failed(Channel::Email, 1_000));
        assert!(!health.failed(Channel::Email, 1_005), "already failing");
        assert!(health.is_failing(Channel::Email));
        assert!(!health.is_failing(Channel::Sms));
        assert_eq!(health.delivered(Channel::Email), Some(1_000));
        assert!(!health.is_failing(Channel::Email));
        for (i, c) in Channel::ALL.into_iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }
}
