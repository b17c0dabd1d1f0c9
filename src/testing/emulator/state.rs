//! What the emulator holds: subscriptions, events, entities, objects, the delivery log, and
//! the knobs of its fault injection; all behind one lock, never held across an `.await`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::clock::EmulatedClock;
use super::faults::{Effect, Fault, ObjectRead};
use super::rate::Arrivals;

/// Locks `mutex`, going on with its data if a holder panicked: the data stays consistent
/// since no update spans a panic point.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Everything the server, the sender and the [`Emulator`](super::Emulator) share.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) credentials: Option<(String, String)>,
    pub(super) delivery_timeout: Duration,
    pub(super) clock: EmulatedClock,
    pub(super) state: Mutex<State>,
    pub(super) counters: Counters,
    /// Wakes the sender when an attempt is scheduled.
    pub(super) wake: Notify,
    /// Held while attempts are made: the sender's rounds and a clock advance take turns,
    /// so every attempt is made once, in order.
    pub(super) sending: tokio::sync::Mutex<()>,
    pub(super) http: reqwest::Client,
}

/// Counts a test reads without the lock.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) requests: AtomicUsize,
    pub(super) token_requests: AtomicUsize,
    pub(super) regenerations: AtomicUsize,
    pub(super) throttled: AtomicUsize,
    pub(super) next_id: AtomicUsize,
}

impl Counters {
    pub(super) fn next(&self) -> usize {
        self.next_id.fetch_add(1, Ordering::SeqCst)
    }
}

/// One webhook subscription.
#[derive(Debug, Clone)]
pub(super) struct Subscription {
    pub(super) id: String,
    pub(super) object_type: String,
    pub(super) event_types: Vec<String>,
    pub(super) enabled: bool,
    pub(super) url: String,
    pub(super) secret: String,
}

impl Subscription {
    /// `WebhookSubscriptionResource`.
    pub(super) fn resource(&self) -> Value {
        json!({
            "id": self.id, "object_type": self.object_type, "event_types": self.event_types,
            "status": self.status(), "url": self.url,
        })
    }

    pub(super) fn status(&self) -> &'static str {
        if self.enabled { "enabled" } else { "disabled" }
    }

    /// Whether an event of `object_type` and `action` goes to this subscription: the same
    /// object type, and the action among the event types when any are listed (either
    /// spelling: `payable.paid` or `paid`).
    pub(super) fn covers(&self, object_type: &str, action: &str) -> bool {
        let short = action
            .strip_prefix(object_type)
            .and_then(|rest| rest.strip_prefix('.'))
            .unwrap_or(action);
        self.enabled
            && self.object_type == object_type
            && (self.event_types.is_empty()
                || self.event_types.iter().any(|t| t == action || t == short))
    }
}

/// A recorded event, `GET /events` shape, and the entity it belongs to.
#[derive(Debug, Clone)]
pub(super) struct StoredEvent {
    pub(super) entity_id: String,
    pub(super) value: Value,
}

/// What happens to a delivery next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Due {
    /// Another attempt.
    Attempt,
    /// A week of failures ends: its subscription is disabled.
    Disable,
}

/// One attempt at a delivery.
#[derive(Debug, Clone)]
pub(super) struct Attempt {
    /// On the emulated clock: when it fell due.
    pub(super) at: Timestamp,
    /// The receiver's status; `None` when there was no answer.
    pub(super) status: Option<u16>,
    /// Why there was no answer (refused, timed out), or the start of the answer's body.
    pub(super) response: Option<String>,
}

/// One event delivered to one subscription, with its attempts; or a delivery added as
/// it stands (`sent: None`), served as given.
#[derive(Debug, Clone)]
pub(super) struct Delivery {
    pub(super) id: String,
    pub(super) event_id: String,
    /// `None`: served for every entity.
    pub(super) entity_id: Option<String>,
    pub(super) subscription_id: Option<String>,
    pub(super) url: String,
    pub(super) created_at: Timestamp,
    pub(super) attempts: Vec<Attempt>,
    pub(super) next: Option<(Timestamp, Due)>,
    /// The signed body, for each attempt.
    pub(super) body: bytes::Bytes,
    /// For a delivery added as it stands: its `WebhookDeliveryResource`.
    pub(super) given: Option<Value>,
}

impl Delivery {
    pub(super) fn succeeded(&self) -> bool {
        match &self.given {
            Some(given) => given["was_successful"] == true,
            None => self
                .attempts
                .iter()
                .any(|a| a.status.is_some_and(|s| (200..300).contains(&s))),
        }
    }

    /// `WebhookDeliveryResource`.
    pub(super) fn resource(&self) -> Value {
        if let Some(given) = &self.given {
            return given.clone();
        }
        let last = self.attempts.last();
        json!({
            "id": self.id, "event_id": self.event_id,
            "requests_made_count": self.attempts.len(),
            "response": last.and_then(|a| a.response.clone()),
            "response_status_code": last.and_then(|a| a.status),
            "url": self.url, "was_successful": self.succeeded(),
        })
    }
}

/// An event asked for, recorded or not, as the ledger tells it.
#[derive(Debug, Clone)]
pub(super) struct Asked {
    pub(super) id: String,
    pub(super) action: String,
    pub(super) entity_id: String,
    pub(super) recorded: bool,
}

/// What a pagination token stands for: the filtered items, the offset, the page size.
pub(super) type PageCursor = (Vec<Value>, usize, usize);

/// How many entries each record of what was seen (the request log, object reads, delivery
/// queries) and the pagination tokens keep: the oldest go first, so that a long-running
/// emulator stays bounded. A token gone answers as an expired one.
pub(super) const KEEP: usize = 100_000;

/// Appends `item` to `log`, dropping the oldest beyond [`KEEP`].
pub(super) fn keep<T>(log: &mut VecDeque<T>, item: T) {
    if log.len() >= KEEP {
        log.pop_front();
    }
    log.push_back(item);
}

/// The emulator's data and the knobs of its fault injection.
#[derive(Debug)]
pub(super) struct State {
    pub(super) token_lifetime: Duration,
    pub(super) tokens: HashMap<String, Instant>,
    pub(super) expires_in: Option<Option<Value>>,
    pub(super) revoke_on_issue: bool,
    pub(super) subscriptions: Vec<Subscription>,
    pub(super) events: Vec<StoredEvent>,
    pub(super) asked: Vec<Asked>,
    pub(super) entities: Vec<Value>,
    pub(super) objects: HashMap<String, (Value, Option<String>)>,
    pub(super) deliveries: Vec<Delivery>,
    pub(super) pages: HashMap<String, PageCursor>,
    /// The tokens of `pages`, oldest first.
    pub(super) page_order: VecDeque<String>,
    pub(super) faults: VecDeque<Fault>,
    pub(super) creates: usize,
    pub(super) create_faults: HashMap<usize, Effect>,
    pub(super) page_size_cap: Option<usize>,
    pub(super) echo_page_tokens: usize,
    pub(super) empty_pages_with_new_tokens: usize,
    pub(super) expire_token_on_use: usize,
    pub(super) fail_token_on_use: usize,
    pub(super) rate_limit: Option<usize>,
    pub(super) arrivals: Arrivals,
    pub(super) object_reads: VecDeque<ObjectRead>,
    pub(super) object_429_every: usize,
    pub(super) object_read_count: usize,
    pub(super) object_delay: Duration,
    pub(super) request_log: VecDeque<String>,
    pub(super) delivery_queries: VecDeque<HashMap<String, String>>,
    /// The entity of each `GET /events` that started a listing (no pagination token).
    pub(super) events_listings: VecDeque<String>,
}

impl State {
    pub(super) fn new(rate_limit: Option<usize>) -> Self {
        Self {
            token_lifetime: Duration::from_secs(86_400),
            tokens: HashMap::new(),
            expires_in: None,
            revoke_on_issue: false,
            subscriptions: Vec::new(),
            events: Vec::new(),
            asked: Vec::new(),
            entities: Vec::new(),
            objects: HashMap::new(),
            deliveries: Vec::new(),
            pages: HashMap::new(),
            page_order: VecDeque::new(),
            faults: VecDeque::new(),
            creates: 0,
            create_faults: HashMap::new(),
            page_size_cap: None,
            echo_page_tokens: 0,
            empty_pages_with_new_tokens: 0,
            expire_token_on_use: 0,
            fail_token_on_use: 0,
            rate_limit,
            arrivals: Arrivals::default(),
            object_reads: VecDeque::new(),
            object_429_every: 0,
            object_read_count: 0,
            object_delay: Duration::ZERO,
            request_log: VecDeque::new(),
            delivery_queries: VecDeque::new(),
            events_listings: VecDeque::new(),
        }
    }

    pub(super) fn subscription_mut(&mut self, id: &str) -> Option<&mut Subscription> {
        self.subscriptions.iter_mut().find(|s| s.id == id)
    }

    /// Whether `entity_id` is one the emulator knows: listed, or with events.
    pub(super) fn knows_entity(&self, entity_id: &str) -> bool {
        self.entities.iter().any(|e| e["id"] == entity_id)
            || self.events.iter().any(|e| e.entity_id == entity_id)
    }

    /// Lists `entity_id` if it is not yet, as an active organization created now.
    pub(super) fn ensure_entity(&mut self, entity_id: &str, now: &str) {
        if !self.entities.iter().any(|e| e["id"] == entity_id) {
            self.entities.push(json!({
                "id": entity_id, "type": "organization", "status": "active",
                "created_at": now, "updated_at": now,
                "email": null, "phone": null, "website": null, "logo": null,
                "address": {"country": "DE", "city": "Berlin", "postal_code": "10115",
                    "line1": "Emulated street 1", "line2": null, "state": null},
                "organization": {"legal_name": "Emulated GmbH", "business_structure": null,
                    "directors_provided": null, "executives_provided": null,
                    "legal_entity_id": null, "owners_provided": null,
                    "representative_provided": null},
                "tax_id": null,
            }));
        }
    }

    /// Stops the pending attempts of `subscription_id`'s deliveries (it was disabled or
    /// deleted).
    pub(super) fn cancel_pending(&mut self, subscription_id: &str) {
        for delivery in &mut self.deliveries {
            if delivery.subscription_id.as_deref() == Some(subscription_id) {
                delivery.next = None;
            }
        }
    }
}
