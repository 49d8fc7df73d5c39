//! What a push notification carries, and how it travels in a [`Message`] of the `fcm` and
//! `apns` channels.
//!
//! A [`Message`] has no room for a push notification's data, and the outbox stores
//! messages as they are, so a push message's `body` is a small JSON document,
//! [`PushPayload`]: the notification's title and text, a map of strings for the app, and
//! an optional expiry. `to` is the device's push token and `subject` the title, used when
//! the document has none. Both push gateways read the same document, so one message can be
//! routed to either.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::SendError;
use crate::delivery::Message;

/// Most bytes of a notification both services accept (APNs: the whole JSON payload; FCM:
/// the notification and data together).
pub(super) const MAX_NOTIFICATION_BYTES: usize = 4096;

/// The body of a push message: `{"title": "...", "body": "...", "data": {...},
/// "expires_at": 1700000000}`.
///
/// Unknown keys are refused, so that a typo in the code that writes messages shows up as
/// a failed send instead of a notification without its data.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushPayload {
    /// The notification's title; the message's `subject` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The notification's text.
    pub body: String,
    /// Strings handed to the app with the notification (the challenge id, say). Keys
    /// reserved by either service (`aps`, `from`, `message_type`, `notification`, and
    /// any starting with `google` or `gcm`) are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// When the notification stops being worth delivering (Unix seconds); the gateway's
    /// `ttl_secs` from the moment of sending when absent. A message whose time has passed
    /// is not sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

impl std::fmt::Debug for PushPayload {
    // The data may carry a challenge's secret: only its keys are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushPayload")
            .field("data_keys", &self.data.keys().collect::<Vec<_>>())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl PushPayload {
    /// The JSON text that goes into [`Message::body`].
    pub fn to_body(&self) -> Zeroizing<String> {
        // A struct of strings, integers and a string map always serialises.
        Zeroizing::new(serde_json::to_string(self).unwrap_or_default())
    }
}

/// A push message read and checked, ready for either service.
pub(super) struct Notification {
    pub title: String,
    pub body: String,
    pub data: BTreeMap<String, String>,
    /// Seconds the service may hold the notification for an offline device.
    pub ttl_secs: u64,
    /// The same limit as a Unix time for APNs' `apns-expiration` (0: deliver now or never).
    pub expires_at: u64,
}

impl Notification {
    /// Reads a push message's body; `now` is the Unix time of sending and `default_ttl`
    /// the gateway's `ttl_secs`. A body that is not a [`PushPayload`], a reserved data key
    /// or an expiry already past is a permanent failure: sending again cannot help.
    pub fn read(msg: &Message, now: u64, default_ttl: u64) -> Result<Notification, SendError> {
        let payload: PushPayload = serde_json::from_str(&msg.body).map_err(|e| {
            // serde_json's message names the key or the position, never the value.
            SendError::Permanent(format!(
                "the push message's body is not a push payload: {e}"
            ))
        })?;
        if let Some(key) = payload.data.keys().find(|k| reserved_key(k)) {
            return Err(SendError::Permanent(format!(
                "the data key `{key}` is reserved by the push services"
            )));
        }
        let (ttl_secs, expires_at) = match payload.expires_at {
            Some(at) if at <= now => {
                return Err(SendError::Permanent(
                    "the notification expired before it could be sent".to_owned(),
                ))
            }
            Some(at) => (at - now, at),
            None if default_ttl == 0 => (0, 0),
            None => (default_ttl, now + default_ttl),
        };
        Ok(Notification {
            title: payload.title.unwrap_or_else(|| msg.subject.clone()),
            body: payload.body,
            data: payload.data,
            ttl_secs,
            expires_at,
        })
    }
}

/// Keys the services keep for themselves: APNs' `aps` dictionary beside the app's keys,
/// and FCM's reserved words.
fn reserved_key(key: &str) -> bool {
    key.is_empty()
        || matches!(key, "aps" | "from" | "message_type" | "notification")
        || key.starts_with("google")
        || key.starts_with("gcm")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::Channel;

    fn message(body: &str) -> Message {
        Message {
            key: 7,
            id: 1,
            channel: Channel::Fcm,
            to: "token".to_owned(),
            subject: "Sign-in request".to_owned(),
            body: Zeroizing::new(body.to_owned()),
        }
    }

    #[test]
    fn a_payload_round_trips_through_the_body() {
        let p = PushPayload {
            title: None,
            body: "alice on vpn.example.com".to_owned(),
            data: BTreeMap::from([("challenge".to_owned(), "c-81".to_owned())]),
            expires_at: Some(1_000_120),
        };
        let text = p.to_body();
        assert_eq!(
            *text,
            r#"{"body":"alice on vpn.example.com","data":{"challenge":"c-81"},"expires_at":1000120}"#
        );
        let n = Notification::read(&message(&text), 1_000_000, 300).unwrap();
        assert_eq!(n.title, "Sign-in request", "the subject stands in");
        assert_eq!(n.body, "alice on vpn.example.com");
        assert_eq!(n.data["challenge"], "c-81");
        assert_eq!((n.ttl_secs, n.expires_at), (120, 1_000_120));
    }

    #[test]
    fn the_gateway_ttl_applies_without_an_expiry() {
        let n = Notification::read(&message(r#"{"title":"T","body":"B"}"#), 50, 300).unwrap();
        assert_eq!(n.title, "T");
        assert!(n.data.is_empty());
        assert_eq!((n.ttl_secs, n.expires_at), (300, 350));
        let n = Notification::read(&message(r#"{"body":"B"}"#), 50, 0).unwrap();
        assert_eq!((n.ttl_secs, n.expires_at), (0, 0));
    }

    #[test]
    fn bad_bodies_are_permanent_failures() {
        for (body, why) in [
            ("Your code is 123456", "not a push payload"),
            (r#"{"title":"T"}"#, "not a push payload"),
            (r#"{"body":"B","dat":{}}"#, "not a push payload"),
            (r#"{"body":"B","data":{"n":1}}"#, "not a push payload"),
            (r#"{"body":"B","data":{"aps":"x"}}"#, "`aps` is reserved"),
            (r#"{"body":"B","data":{"google.c.a":"x"}}"#, "reserved"),
            (r#"{"body":"B","data":{"from":"x"}}"#, "reserved"),
            (r#"{"body":"B","expires_at":100}"#, "expired"),
        ] {
            let e = Notification::read(&message(body), 100, 300)
                .err()
                .unwrap_or_else(|| panic!("{body} was accepted"));
            assert!(!e.is_transient(), "{e}");
            assert!(e.to_string().contains(why), "{body}: {e}");
        }
    }

    #[test]
    fn debug_shows_keys_only() {
        let p = PushPayload {
            body: "text".to_owned(),
            data: BTreeMap::from([("nonce".to_owned(), "s3cr3t".to_owned())]),
            ..PushPayload::default()
        };
        let shown = format!("{p:?}");
        assert!(
            shown.contains("nonce") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }
}
