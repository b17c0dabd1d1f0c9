//! The key scheme: which deliveries count as the same event, and the key they share.

use sha2::Digest as _;

use crate::event::Event;
use crate::signature::hex;

/// Which deliveries count as the same event.
///
/// Monite creates one subscription per object type, and an event has one object type, so
/// an event reaches one subscription: its `id` alone identifies it. Events fetched from
/// `GET /events` (recovery) name no subscription, so only the event id lets a recovered
/// event and its delivery share a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum KeyScope {
    /// The event `id` alone: an event is handled once however many subscriptions deliver
    /// it, and once whether it was delivered, recovered from `GET /events`, or both. The
    /// default.
    #[default]
    PerEvent,
    /// `(webhook_subscription_id, id)`: each subscription's delivery of an event is handled
    /// once. Only for two subscriptions of one object type whose deliveries must each run;
    /// a recovered event then needs `Recovery::as_subscription` to match its delivery.
    PerSubscription,
}

impl KeyScope {
    /// An event's key in this scope (see [`Idempotency::key`]); a legacy envelope's, only
    /// when `legacy_dedup` (then keyed by its body).
    pub(crate) fn key(self, event: &Event, legacy_dedup: bool) -> Option<String> {
        Some(match (event.id(), event.webhook_subscription_id(), self) {
            // `concat` sizes the key once; `format!` costs a third of a duplicate's dispatch.
            (Some(id), Some(subscription), Self::PerSubscription) => {
                ["sub:", subscription, ":evt:", id].concat()
            }
            (Some(id), _, _) => ["evt:", id].concat(),
            (None, _, _) => {
                if !legacy_dedup {
                    return None;
                }
                let mut key = String::with_capacity(69);
                key.push_str("body:");
                hex::encode_into(&sha2::Sha256::digest(event.body()), &mut key);
                key
            }
        })
    }
}
