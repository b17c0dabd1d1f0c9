//! A local Monite that retries, disables and recovers like the real one: its API under
//! `/v1` (auth, webhook subscriptions, events, the delivery log, entities, the objects
//! events name) with Monite's shapes and rate limit; deliveries signed and retried on
//! Monite's schedule, the subscription disabled after a week of failures and its events
//! not recorded while it is; a clock of its own to fast-forward; and a ledger of what
//! happened. The same emulator runs from the command line (`monite-webhooks emulate`).
//!
//! ```no_run
//! use std::time::Duration;
//! use monite_webhooks::client::{Client, Environment};
//! use monite_webhooks::testing::Emulator;
//!
//! # async fn run() -> Result<(), monite_webhooks::Error> {
//! let monite = Emulator::builder().start().await?;
//! let client = Client::builder(Environment::Custom(monite.base_url()))
//!     .credentials(monite.client_id(), monite.client_secret())
//!     .build()?;
//! // ... subscribe your receiver with `client`, then:
//! monite.trigger("payable.paid", "my-entity", None)?;
//! monite.advance(Duration::from_secs(7 * 24 * 3600)).await; // a week of retries
//! let ledger = monite.ledger();
//! # let _ = (client, ledger); Ok(()) }
//! ```
//!
//! What differs from Monite: `http://` subscription URLs are taken for loopback hosts
//! (where receivers under test listen), any credentials are taken unless some were set,
//! attempts are recorded at the time they fell due on the emulated clock, and nothing is
//! kept once it stops.

mod api;
mod clock;
mod control;
mod deliveries;
mod faults;
mod ledger;
mod rate;
mod record;
mod state;

use std::collections::HashMap;
use std::hash::{BuildHasher as _, Hasher as _};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use self::deliveries::{RETRY_INTERVALS, RETRY_WINDOW, attempt_offset};
pub use self::faults::{Effect, Fault, ObjectRead};
pub use self::ledger::{Ledger, LedgerAttempt, LedgerEvent, LedgerSubscription};
pub use self::rate::DEFAULT_RATE_LIMIT;
pub use self::record::Triggered;
use self::state::{Delivery, Shared, State, StoredEvent, Subscription, lock};
use crate::{Error, ErrorKind, Result};

/// The entity an event is about when a trigger names none.
pub const DEFAULT_ENTITY_ID: &str = "c381e88f-7019-4f06-9fbb-3bab8d88348a";

/// The client id [`Emulator::client_id`] gives when no credentials were set (any pair is
/// taken then).
const ANY_CLIENT_ID: &str = "emulator-client-id";
const ANY_CLIENT_SECRET: &str = "emulator-client-secret";

/// Random bits for tokens and secrets, from the standard library's per-process random keys
/// and a counter: unpredictable enough for a local tool, no dependency.
pub(crate) fn random_u64() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    hasher.finish()
}

/// How every secret the emulator issues starts, so that a test can look for one in what a
/// program printed or logged.
pub const SECRET_PREFIX: &str = "whsec_emulated";

/// A fresh secret: [`SECRET_PREFIX`] and base64 of 24 random bytes (what follows `whsec_` is
/// base64 as a whole, for either key convention).
pub(crate) fn new_secret() -> String {
    use base64::Engine as _;
    let bytes: Vec<u8> = (0..3).flat_map(|_| random_u64().to_le_bytes()).collect();
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// A [`ErrorKind::Misconfigured`] error saying `what`, caused by the error it is given.
fn misconfigured<E: Into<crate::error::BoxError>>(what: String) -> impl FnOnce(E) -> Error {
    move |e| Error::new(ErrorKind::Misconfigured, what).with_source(e)
}

/// Sets up an [`Emulator`]: where it listens, the credentials it takes, its rate limit,
/// how long a delivery may take, how fast its clock runs.
#[derive(Debug, Clone)]
#[must_use]
pub struct EmulatorBuilder {
    addr: SocketAddr,
    credentials: Option<(String, String)>,
    rate_limit: Option<usize>,
    delivery_timeout: Duration,
    time_scale: f64,
}

impl EmulatorBuilder {
    /// Where to listen; a free loopback port (`127.0.0.1:0`) by default.
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Take only this client id and secret at `POST /auth/token`; any pair by default.
    pub fn credentials(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.credentials = Some((client_id.into(), client_secret.into()));
        self
    }

    /// Requests taken in any one second before `429`: Monite's 30 by default; `None`: no
    /// limit.
    pub fn rate_limit(mut self, per_second: Option<usize>) -> Self {
        self.rate_limit = per_second;
        self
    }

    /// How long a receiver may take to answer a delivery before the attempt counts as
    /// failed; 10 seconds by default, as Monite's.
    pub fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }

    /// The emulated clock runs `factor` times as fast as the wall clock; 1 by default.
    pub fn time_scale(mut self, factor: f64) -> Self {
        self.time_scale = factor;
        self
    }

    /// Starts the emulator: it listens, serves and delivers until
    /// [`Emulator::shutdown`], the last clone of the [`Emulator`] dropped, or the end of the
    /// Tokio runtime.
    ///
    /// # Errors
    /// [`ErrorKind::Misconfigured`] if the address cannot be listened on, the time scale
    /// is not a positive number, or the HTTP client cannot be built.
    pub async fn start(self) -> Result<Emulator> {
        if !(self.time_scale.is_finite() && self.time_scale > 0.0 && self.time_scale <= 1e9) {
            return Err(Error::new(
                ErrorKind::Misconfigured,
                "the emulator's time scale must be a positive number up to 1e9",
            ));
        }
        let tls = crate::client::tls::config().map_err(misconfigured(
            "cannot set up TLS for the emulator's deliveries".into(),
        ))?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(concat!(
                "monite-webhooks-emulator/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(misconfigured(
                "cannot build the emulator's HTTP client".into(),
            ))?;
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .map_err(misconfigured(format!(
                "the emulator cannot listen on {}",
                self.addr
            )))?;
        let addr = listener
            .local_addr()
            .map_err(misconfigured("the emulator's address is unknown".into()))?;
        let shared = Arc::new(Shared {
            credentials: self.credentials,
            delivery_timeout: self.delivery_timeout,
            clock: clock::EmulatedClock::new(self.time_scale),
            state: Mutex::new(State::new(self.rate_limit)),
            counters: state::Counters::default(),
            wake: tokio::sync::Notify::new(),
            sending: tokio::sync::Mutex::new(()),
            http,
        });
        let app = api::router(&shared)
            .merge(control::router())
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut server_stop = stopped.clone();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = server_stop.wait_for(|stop| *stop).await;
                })
                .await;
        });
        let sender = tokio::spawn(deliveries::run(shared.clone(), stopped));
        Ok(Emulator {
            shared,
            addr,
            running: Arc::new(Running {
                stop,
                tasks: Mutex::new(vec![server, sender]),
            }),
        })
    }
}

/// Its tasks, and the signal that stops them.
#[derive(Debug)]
struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// A running local Monite: see [the module](self). Cheap to clone; every clone is the same
/// emulator.
#[derive(Debug, Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    running: Arc<Running>,
}

impl Emulator {
    /// Sets up an emulator: a free loopback port, any credentials, Monite's rate limit
    /// (30 requests a second), a 10-second delivery timeout, a clock at the wall clock's
    /// pace.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            credentials: None,
            rate_limit: Some(DEFAULT_RATE_LIMIT),
            delivery_timeout: Duration::from_secs(10),
            time_scale: 1.0,
        }
    }

    /// Where it listens.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its API's base URL, `http://ADDR/v1`: a client's `Environment::Custom`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The client id it takes (any, when none was set: this one then).
    #[must_use]
    pub fn client_id(&self) -> &str {
        self.shared
            .credentials
            .as_ref()
            .map_or(ANY_CLIENT_ID, |(id, _)| id.as_str())
    }

    /// The client secret it takes with [`client_id`](Self::client_id).
    #[must_use]
    pub fn client_secret(&self) -> &str {
        self.shared
            .credentials
            .as_ref()
            .map_or(ANY_CLIENT_SECRET, |(_, secret)| secret.as_str())
    }

    /// Now, on its clock.
    #[must_use]
    pub fn now(&self) -> jiff::Timestamp {
        self.shared.clock.now()
    }

    /// Records the event `action` (`payable.paid`) of `entity_id` about `object` (its
    /// state, kept for the object's `GET`; a new id when `None`), as Monite would: only if
    /// an enabled subscription covers it, and then delivered to each.
    ///
    /// # Errors
    /// [`ErrorKind::Misconfigured`] if the action, entity id or object is malformed.
    pub fn trigger(
        &self,
        action: &str,
        entity_id: &str,
        object: Option<Value>,
    ) -> Result<Triggered> {
        record::check(action, entity_id, object.as_ref())
            .map_err(|reason| Error::new(ErrorKind::Misconfigured, reason))?;
        Ok(record::record(&self.shared, action, entity_id, object))
    }

    /// Moves its clock forward by `by`, making every delivery attempt that falls due on the
    /// way, in order, before it returns.
    pub async fn advance(&self, by: Duration) {
        deliveries::advance(&self.shared, by).await;
    }

    /// Makes every delivery attempt due now, before it returns.
    pub async fn deliver_due(&self) {
        deliveries::advance(&self.shared, Duration::ZERO).await;
    }

    /// What happened: every event asked for, its attempts, every subscription.
    #[must_use]
    pub fn ledger(&self) -> Ledger {
        Ledger::of(&lock(&self.shared.state))
    }

    /// Stops serving and delivering, and waits (a second at most) for both to end.
    pub async fn shutdown(&self) {
        let _ = self.running.stop.send(true);
        let tasks: Vec<_> = lock(&self.running.tasks).drain(..).collect();
        for mut task in tasks {
            // Open keep-alive connections hold a graceful shutdown; they are cut after that.
            if tokio::time::timeout(Duration::from_secs(1), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }

    // Data, set up directly.

    /// Lists an entity (`GET /entities`), with no events yet.
    pub fn add_entity(&self, entity_id: &str) {
        let now = clock::rfc3339(self.now());
        lock(&self.shared.state).ensure_entity(entity_id, &now);
    }

    /// Lists `n` new entities (`e0000000-...`), returning their ids.
    #[must_use]
    pub fn add_entities(&self, n: usize) -> Vec<String> {
        let mut state = lock(&self.shared.state);
        let first = state.entities.len();
        let ids: Vec<String> = (first..first + n)
            .map(|i| format!("e0000000-0000-4000-8000-{i:012}"))
            .collect();
        for id in &ids {
            state.ensure_entity(id, "2024-01-01T00:00:00+00:00");
        }
        ids
    }

    /// Puts `event` (`EventResource`, as `GET /events` answers it) among `entity_id`'s
    /// events as it stands, delivered to no one: an event recorded earlier, or late.
    pub fn insert_event(&self, entity_id: &str, event: Value) {
        lock(&self.shared.state).events.push(StoredEvent {
            entity_id: entity_id.to_owned(),
            value: event,
        });
    }

    /// `entity_id`'s events, recorded or inserted, in order.
    #[must_use]
    pub fn events(&self, entity_id: &str) -> Vec<Value> {
        lock(&self.shared.state)
            .events
            .iter()
            .filter(|e| e.entity_id == entity_id)
            .map(|e| e.value.clone())
            .collect()
    }

    /// Puts `delivery` (`WebhookDeliveryResource`) in the delivery log of every entity, as
    /// created at `created_at` (which its `created_at` filters read).
    pub fn add_delivery(&self, delivery: Value, created_at: jiff::Timestamp) {
        let mut state = lock(&self.shared.state);
        state.deliveries.push(Delivery {
            id: delivery["id"].as_str().unwrap_or_default().to_owned(),
            event_id: delivery["event_id"].as_str().unwrap_or_default().to_owned(),
            entity_id: None,
            subscription_id: None,
            url: delivery["url"].as_str().unwrap_or_default().to_owned(),
            created_at,
            attempts: Vec::new(),
            next: None,
            body: bytes::Bytes::new(),
            given: Some(delivery),
        });
    }

    /// A subscription made elsewhere (its secret not shown to the test); returns its id.
    #[must_use]
    pub fn add_subscription(&self, object_type: &str, url: &str, enabled: bool) -> String {
        let n = self.shared.counters.next();
        let id = format!("5eed0000-4a2f-4ed2-8160-{n:012}");
        lock(&self.shared.state).subscriptions.push(Subscription {
            id: id.clone(),
            object_type: object_type.to_owned(),
            event_types: Vec::new(),
            enabled,
            url: url.to_owned(),
            secret: new_secret(),
        });
        id
    }

    /// Enables or disables subscription `id`, as Monite does after a week of failures
    /// (pending attempts then cancelled); `false` if there is no such subscription.
    #[must_use]
    pub fn set_subscription_enabled(&self, id: &str, enabled: bool) -> bool {
        let mut state = lock(&self.shared.state);
        let Some(subscription) = state.subscription_mut(id) else {
            return false;
        };
        subscription.enabled = enabled;
        if !enabled {
            state.cancel_pending(id);
        }
        true
    }

    /// The subscriptions that exist now (`WebhookSubscriptionResource`).
    #[must_use]
    pub fn subscriptions(&self) -> Vec<Value> {
        lock(&self.shared.state)
            .subscriptions
            .iter()
            .map(Subscription::resource)
            .collect()
    }

    /// Stores `object` at `path` (after `/v1`: `/payables/p1`), read with `entity_id`'s
    /// header (`None`: without one).
    pub fn put_object(&self, path: &str, entity_id: Option<&str>, object: Value) {
        lock(&self.shared.state)
            .objects
            .insert(format!("/v1{path}"), (object, entity_id.map(str::to_owned)));
    }

    /// Changes the object at `path`; `false` if there is none.
    pub fn change_object(&self, path: &str, change: impl FnOnce(&mut Value)) -> bool {
        let mut state = lock(&self.shared.state);
        match state.objects.get_mut(&format!("/v1{path}")) {
            Some((object, _)) => {
                change(object);
                true
            }
            None => false,
        }
    }

    /// Deletes the object at `path`: its reads answer `404` from now on.
    pub fn delete_object(&self, path: &str) {
        lock(&self.shared.state)
            .objects
            .remove(&format!("/v1{path}"));
    }

    // Faults.

    /// Queues `fault` behind those already due.
    pub fn inject(&self, fault: Fault) {
        lock(&self.shared.state).faults.push_back(fault);
    }

    /// `effect` on the `nth` subscription create from now (1: the next), whatever other
    /// faults are queued.
    pub fn inject_on_create(&self, nth: usize, effect: Effect) {
        let mut state = lock(&self.shared.state);
        let at = state.creates + nth.max(1) - 1;
        state.create_faults.insert(at, effect);
    }

    /// Every token issued so far stops working, as if revoked.
    pub fn revoke_tokens(&self) {
        lock(&self.shared.state).tokens.clear();
    }

    /// Whether issuing a token revokes every earlier one.
    pub fn revoke_tokens_on_issue(&self, revoke: bool) {
        lock(&self.shared.state).revoke_on_issue = revoke;
    }

    /// How long tokens issued from now on last (a day by default).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        lock(&self.shared.state).token_lifetime = lifetime;
    }

    /// The token answer's `expires_in`: `None` as issued, `Some(None)` left out,
    /// `Some(Some(v))` this value.
    pub fn set_expires_in(&self, expires_in: Option<Option<Value>>) {
        lock(&self.shared.state).expires_in = expires_in;
    }

    /// At most `cap` items per page, whatever `limit` asks (Monite's own cap is 100).
    pub fn set_page_size_cap(&self, cap: Option<usize>) {
        lock(&self.shared.state).page_size_cap = cap;
    }

    /// The next `n` listings that follow a pagination token answer an empty page giving the
    /// same token back.
    pub fn echo_page_tokens(&self, n: usize) {
        lock(&self.shared.state).echo_page_tokens = n;
    }

    /// The next `n` listings answer an empty page with a new token each (a listing that
    /// never ends).
    pub fn empty_pages_with_new_tokens(&self, n: usize) {
        lock(&self.shared.state).empty_pages_with_new_tokens = n;
    }

    /// The `n`-th listing from now that follows a pagination token finds it expired
    /// (`400`); 0: none.
    pub fn expire_token_on_use(&self, n: usize) {
        lock(&self.shared.state).expire_token_on_use = n;
    }

    /// The `n`-th listing from now that follows a pagination token answers `500` (once);
    /// 0: none.
    pub fn fail_token_on_use(&self, n: usize) {
        lock(&self.shared.state).fail_token_on_use = n;
    }

    /// How many listings with a token are left before the failure
    /// [`fail_token_on_use`](Self::fail_token_on_use) set (0 once it happened).
    #[must_use]
    pub fn token_failure_countdown(&self) -> usize {
        lock(&self.shared.state).fail_token_on_use
    }

    /// Every `n`-th object read from now on answers `429` with `Retry-After: 0`; 0 stops it.
    pub fn object_429_every(&self, n: usize) {
        let mut state = lock(&self.shared.state);
        state.object_read_count = 0;
        state.object_429_every = n;
    }

    /// Holds each object read's answer back this long.
    pub fn set_object_delay(&self, delay: Duration) {
        lock(&self.shared.state).object_delay = delay;
    }

    /// Requests taken in any one second before `429`; `None`: no limit.
    pub fn set_rate_limit(&self, per_second: Option<usize>) {
        lock(&self.shared.state).rate_limit = per_second;
    }

    // What it saw.

    /// API requests so far, throttled or not (the `/_emulator` ones aside).
    #[must_use]
    pub fn requests(&self) -> usize {
        self.shared.counters.requests.load(Ordering::SeqCst)
    }

    /// `POST /auth/token` requests so far.
    #[must_use]
    pub fn token_requests(&self) -> usize {
        self.shared.counters.token_requests.load(Ordering::SeqCst)
    }

    /// Secrets regenerated so far.
    #[must_use]
    pub fn regenerations(&self) -> usize {
        self.shared.counters.regenerations.load(Ordering::SeqCst)
    }

    /// Requests answered `429` by the rate limit so far.
    #[must_use]
    pub fn throttled(&self) -> usize {
        self.shared.counters.throttled.load(Ordering::SeqCst)
    }

    /// The most API requests that arrived within any one second.
    #[must_use]
    pub fn max_requests_in_a_second(&self) -> usize {
        lock(&self.shared.state).arrivals.most()
    }

    /// `METHOD path` of every API request so far (the last 100,000), in order of arrival.
    #[must_use]
    pub fn request_log(&self) -> Vec<String> {
        lock(&self.shared.state)
            .request_log
            .iter()
            .cloned()
            .collect()
    }

    /// What each object read sent (the last 100,000), in order.
    #[must_use]
    pub fn object_reads(&self) -> Vec<ObjectRead> {
        lock(&self.shared.state)
            .object_reads
            .iter()
            .cloned()
            .collect()
    }

    /// The entity of each `GET /events` that started a listing (its first page, with no
    /// pagination token), in order of arrival (the last 100,000): a sweep of an entity's
    /// window lists it once, so this tells how many times each entity was swept.
    #[must_use]
    pub fn events_listings(&self) -> Vec<String> {
        lock(&self.shared.state)
            .events_listings
            .iter()
            .cloned()
            .collect()
    }

    /// The query of each `GET /webhook_deliveries` so far (the last 100,000).
    #[must_use]
    pub fn delivery_queries(&self) -> Vec<HashMap<String, String>> {
        lock(&self.shared.state)
            .delivery_queries
            .iter()
            .cloned()
            .collect()
    }
}
