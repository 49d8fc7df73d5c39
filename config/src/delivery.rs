//! `[delivery]`: delivered codes (real-time and preload) and the outbox that sends them.
//!
//! Which gateway carries a message is `[[gateway]]`'s business; this section says what the
//! messages say, how long codes live, how often one destination may be sent a code, how the
//! outbox retries, and when the day-code batch runs.

use std::path::PathBuf;

use serde::Deserialize;

use crate::ConfigError;

/// `[delivery]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Digits of a delivered code (6 to 10).
    pub code_digits: u8,
    /// Seconds a real-time code stays valid.
    pub realtime_ttl_secs: u64,
    /// Reply-Message of the challenge after a real-time code was sent; `{to}` is the
    /// masked destination (`...7391`).
    pub prompt: String,
    /// The same while the channel's gateways are failing (the code waits in the outbox and
    /// goes out when one answers again); `{to}` as above, `{channel}` is `text message`,
    /// `e-mail` or `voice call`.
    pub delayed_prompt: String,
    /// SMS text of a real-time code: `{code}`, `{minutes}`.
    pub sms_template: String,
    /// Words spoken by a voice call: `{code}` is read digit by digit, `{minutes}`.
    pub voice_template: String,
    /// Subject of a code e-mail.
    pub email_subject: String,
    /// Body of a real-time code e-mail: `{code}`, `{minutes}`.
    pub email_template: String,
    /// Codes one destination may be sent per hour at login (toll-fraud guard); 0 turns
    /// the limit off.
    pub max_per_destination_per_hour: u32,
    /// Messages being sent at once.
    pub workers: usize,
    /// Attempts before a message becomes a dead letter.
    pub max_attempts: u32,
    /// First retry delay in milliseconds; it doubles each attempt (with jitter).
    pub retry_base_ms: u64,
    /// Longest retry delay in milliseconds.
    pub retry_max_ms: u64,
    /// File of the built-in outbox gateway, used for every channel that has no
    /// `[[gateway]]`; `<data_dir>/outbox.log` when not given.
    pub outbox_file: Option<PathBuf>,
    /// Preload day codes.
    pub preload: PreloadConfig,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            code_digits: 6,
            realtime_ttl_secs: 300,
            prompt: "Enter the passcode sent to {to}".to_owned(),
            delayed_prompt: "Your passcode for {to} is delayed: the {channel} service is not answering. It will be sent as soon as it does; enter it then".to_owned(),
            sms_template: "Your passcode is {code}. It expires in {minutes} minutes.".to_owned(),
            voice_template: "Your passcode is {code}. Again, your passcode is {code}.".to_owned(),
            email_subject: "Your passcode".to_owned(),
            email_template: "Your passcode is {code}.\n\nIt expires in {minutes} minutes. If you did not try to log in, tell your helpdesk.\n".to_owned(),
            max_per_destination_per_hour: 10,
            workers: 8,
            max_attempts: 8,
            retry_base_ms: 2_000,
            retry_max_ms: 600_000,
            outbox_file: None,
            preload: PreloadConfig::default(),
        }
    }
}

/// `[delivery.preload]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreloadConfig {
    /// Days a day code stays valid.
    pub days: u32,
    /// Time of day (UTC, `HH:MM`) the batch sends day codes to everyone who needs one.
    pub send_at: String,
    /// Users per batch (one transaction each).
    pub batch: usize,
    /// Pause between batches, in milliseconds, to spread the load on the gateways.
    pub batch_pause_ms: u64,
    /// SMS text of a day code: `{code}`, `{days}`.
    pub sms_template: String,
    /// Body of a day-code e-mail: `{code}`, `{days}`.
    pub email_template: String,
}

impl Default for PreloadConfig {
    fn default() -> Self {
        PreloadConfig {
            days: 3,
            send_at: "06:00".to_owned(),
            batch: 1_000,
            batch_pause_ms: 0,
            sms_template: "Your passcode is {code}. It is valid for {days} days or one login."
                .to_owned(),
            email_template:
                "Your passcode is {code}.\n\nIt is valid for {days} days or one login.\n".to_owned(),
        }
    }
}

impl PreloadConfig {
    /// Minutes after midnight UTC of the daily run.
    pub fn send_at_minutes(&self) -> Option<u32> {
        let (h, m) = self.send_at.split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60 && self.send_at.len() == 5).then_some(h * 60 + m)
    }
}

impl DeliveryConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, msg: &str| Err(ConfigError::invalid(format!("delivery.{key}"), msg));
        if !(6..=10).contains(&self.code_digits) {
            return bad("code_digits", "must be between 6 and 10");
        }
        if !(30..=3600).contains(&self.realtime_ttl_secs) {
            return bad("realtime_ttl_secs", "must be between 30 and 3600 seconds");
        }
        if self.prompt.len() > 200 {
            return bad("prompt", "must fit one Reply-Message with the destination");
        }
        if self.delayed_prompt.len() > 200 {
            return bad(
                "delayed_prompt",
                "must fit one Reply-Message with the destination",
            );
        }
        for (key, t) in [
            ("sms_template", &self.sms_template),
            ("voice_template", &self.voice_template),
            ("email_template", &self.email_template),
            ("preload.sms_template", &self.preload.sms_template),
            ("preload.email_template", &self.preload.email_template),
        ] {
            if !t.contains("{code}") {
                return bad(key, "must contain {code}");
            }
        }
        if self.workers == 0 || self.workers > 1024 {
            return bad("workers", "must be between 1 and 1024");
        }
        if !(1..=100).contains(&self.max_attempts) {
            return bad("max_attempts", "must be between 1 and 100");
        }
        if self.retry_base_ms == 0 || self.retry_base_ms > self.retry_max_ms {
            return bad(
                "retry_base_ms",
                "must be at least 1 and at most retry_max_ms",
            );
        }
        if !(1..=365).contains(&self.preload.days) {
            return bad("preload.days", "must be between 1 and 365");
        }
        if self.preload.send_at_minutes().is_none() {
            return bad("preload.send_at", "must be a UTC time of day as HH:MM");
        }
        if !(1..=100_000).contains(&self.preload.batch) {
            return bad("preload.batch", "must be between 1 and 100000");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn defaults_are_valid_and_errors_name_their_key() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.delivery.realtime_ttl_secs, 300);
        assert_eq!(c.delivery.preload.send_at_minutes(), Some(360));
        for (text, key) in [
            ("[delivery]\ncode_digits = 4\n", "delivery.code_digits"),
            (
                "[delivery]\nsms_template = \"hi\"\n",
                "delivery.sms_template",
            ),
            (
                "[delivery.preload]\nsend_at = \"25:00\"\n",
                "delivery.preload.send_at",
            ),
            (
                "[delivery.preload]\nsend_at = \"6:00\"\n",
                "delivery.preload.send_at",
            ),
            ("[delivery]\nretry_base_ms = 0\n", "delivery.retry_base_ms"),
            ("[delivery]\nworkerz = 1\n", "delivery"),
        ] {
            let err = Config::parse(text).expect_err(text);
            assert!(
                err.key_path().unwrap_or("").starts_with(key),
                "{text}: {err}"
            );
        }
    }
}
