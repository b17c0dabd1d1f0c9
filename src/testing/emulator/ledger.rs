//! The ledger: what happened, for a test to read at its end. Every event asked for
//! (recorded or not), its attempts and whether one was acknowledged; every subscription
//! and its status.

use serde::Serialize;

use super::clock::rfc3339;
use super::state::{Delivery, State};
use std::collections::HashMap;

/// What the emulator did, as `GET /_emulator/ledger` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Ledger {
    /// Every event asked for, in order.
    pub events: Vec<LedgerEvent>,
    /// Every subscription that exists now.
    pub subscriptions: Vec<LedgerSubscription>,
}

/// One event asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LedgerEvent {
    /// Its id (also of an event not recorded, which no API answer names).
    pub id: String,
    /// `payable.paid`, say.
    pub action: String,
    /// The entity it is about.
    pub entity_id: String,
    /// Whether it was recorded: `false` when no enabled subscription covered it.
    pub recorded: bool,
    /// The attempts to deliver it, to every subscription, in order.
    pub attempts: Vec<LedgerAttempt>,
    /// Whether a delivery of it got a `2xx`.
    pub acknowledged: bool,
}

/// One attempt at delivering an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LedgerAttempt {
    /// The subscription it went to.
    pub subscription_id: String,
    /// When it fell due, on the emulated clock (RFC 3339).
    pub at: String,
    /// Seconds from the delivery's first attempt (0 for the first).
    pub offset_seconds: i64,
    /// The receiver's status; `None` when there was no answer (refused, timed out).
    pub status: Option<u16>,
}

/// One subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LedgerSubscription {
    /// Its id.
    pub id: String,
    /// The object type it is for.
    pub object_type: String,
    /// `enabled` or `disabled`.
    pub status: String,
}

impl Ledger {
    pub(super) fn of(state: &State) -> Self {
        let mut by_event: HashMap<&str, Vec<&Delivery>> = HashMap::new();
        for delivery in &state.deliveries {
            by_event
                .entry(delivery.event_id.as_str())
                .or_default()
                .push(delivery);
        }
        let events = state
            .asked
            .iter()
            .map(|asked| {
                let deliveries = by_event.get(asked.id.as_str()).into_iter().flatten();
                let mut attempts = Vec::new();
                let mut acknowledged = false;
                for delivery in deliveries {
                    acknowledged |= delivery.succeeded();
                    let first = delivery.attempts.first().map(|a| a.at);
                    for attempt in &delivery.attempts {
                        attempts.push(LedgerAttempt {
                            subscription_id: delivery.subscription_id.clone().unwrap_or_default(),
                            at: rfc3339(attempt.at),
                            offset_seconds: first
                                .map_or(0, |f| attempt.at.duration_since(f).as_secs()),
                            status: attempt.status,
                        });
                    }
                }
                LedgerEvent {
                    id: asked.id.clone(),
                    action: asked.action.clone(),
                    entity_id: asked.entity_id.clone(),
                    recorded: asked.recorded,
                    attempts,
                    acknowledged,
                }
            })
            .collect();
        let subscriptions = state
            .subscriptions
            .iter()
            .map(|s| LedgerSubscription {
                id: s.id.clone(),
                object_type: s.object_type.clone(),
                status: s.status().to_owned(),
            })
            .collect();
        Self {
            events,
            subscriptions,
        }
    }
}
