//! The project's tests' Monite: the shipped emulator (`monite_webhooks::testing::Emulator`,
//! feature `emulator`), seeded with the documented answers of `tests/data/monite-api/`
//! (the events of [`ENTITY_ID`], a delivery log) and with the names the tests have always
//! used. The CLI's tests include this same file, so there is one fake.

#![allow(dead_code, reason = "each test uses what it needs")]
#![allow(
    unreachable_pub,
    reason = "also included by the CLI's tests as a module"
)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use monite_webhooks::testing::Emulator;
pub use monite_webhooks::testing::emulator::{Effect, Fault, ObjectRead};
pub use monite_webhooks_testkit::fixture::fixture_at;
use serde_json::{Value, json};

/// The partner's client id the fake issues tokens to.
pub const CLIENT_ID: &str = "8a7f5c1e-0d2b-4b6a-9c3e-1f2a3b4c5d6e";
/// The partner's client secret, with [`CLIENT_ID`].
pub const CLIENT_SECRET: &str = "partner-client-secret";
/// The entity whose events and deliveries the fake serves from its fixtures.
pub const ENTITY_ID: &str = monite_webhooks::testing::emulator::DEFAULT_ENTITY_ID;

/// What a test may change before the fake starts.
#[derive(Debug)]
pub struct Setup {
    /// The events of [`ENTITY_ID`]: `tests/data/monite-api/events.json` unless changed.
    pub events: Vec<Value>,
    /// Requests allowed in any second (30, Monite's); `None`: no limit.
    pub rate_limit: Mutex<Option<usize>>,
}

/// The running fake: the emulator, and the fixture events it was seeded with.
#[derive(Debug)]
pub struct Fake {
    emulator: Emulator,
    events: Vec<Value>,
    committed: Mutex<Vec<Value>>,
    next_id: AtomicUsize,
}

fn fixture(name: &str) -> Value {
    fixture_at(&format!("monite-api/{name}"))
}

/// Starts the fake on a free loopback port.
pub async fn start() -> (SocketAddr, Arc<Fake>) {
    start_with(|_| {}).await
}

/// Starts the fake with its data changed by `configure`.
pub async fn start_with(configure: impl FnOnce(&mut Setup)) -> (SocketAddr, Arc<Fake>) {
    let mut setup = Setup {
        events: fixture("events.json")["data"].as_array().unwrap().clone(),
        rate_limit: Mutex::new(Some(30)),
    };
    configure(&mut setup);
    let rate_limit = *setup.rate_limit.lock().unwrap();
    let emulator = Emulator::builder()
        .credentials(CLIENT_ID, CLIENT_SECRET)
        .rate_limit(rate_limit)
        .start()
        .await
        .unwrap();
    for event in &setup.events {
        emulator.insert_event(ENTITY_ID, event.clone());
    }
    // The fixture's deliveries were created an hour ago.
    let hour_ago = monite_webhooks::jiff::Timestamp::now()
        - monite_webhooks::jiff::SignedDuration::from_hours(1);
    for delivery in fixture("webhook_deliveries.json")["data"]
        .as_array()
        .unwrap()
    {
        emulator.add_delivery(delivery.clone(), hour_ago);
    }
    let addr = emulator.addr();
    (
        addr,
        Arc::new(Fake {
            emulator,
            events: setup.events,
            committed: Mutex::new(Vec::new()),
            next_id: AtomicUsize::new(0),
        }),
    )
}

impl Fake {
    /// The emulator underneath, for what the names below do not cover.
    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    /// Every token issued so far stops working, as if revoked.
    pub fn revoke_tokens(&self) {
        self.emulator.revoke_tokens();
    }

    /// Issuing a token revokes every earlier one.
    pub fn revoke_on_issue(&self, revoke: bool) {
        self.emulator.revoke_tokens_on_issue(revoke);
    }

    /// Queues `fault` behind those already due.
    pub fn inject(&self, fault: Fault) {
        self.emulator.inject(fault);
    }

    /// `effect` on the `nth` create from now (1 is the next one).
    pub fn inject_on_create(&self, nth: usize, effect: Effect) {
        self.emulator.inject_on_create(nth, effect);
    }

    /// A subscription that exists without this test having seen its secret; its id.
    pub fn seed(&self, object_type: &str, url: &str, status: &str) -> String {
        self.emulator
            .add_subscription(object_type, url, status == "enabled")
    }

    /// Sets a subscription's status, as Monite does after a week of failed deliveries.
    pub fn set_status(&self, id: &str, status: &str) {
        assert!(
            self.emulator
                .set_subscription_enabled(id, status == "enabled")
        );
    }

    /// The events of [`ENTITY_ID`] the fake was seeded with.
    pub fn events(&self) -> &[Value] {
        &self.events
    }

    /// The most requests that arrived within any one second.
    pub fn max_requests_in_a_second(&self) -> usize {
        self.emulator.max_requests_in_a_second()
    }

    /// Adds `n` entities (`e0000000-...`), returning their ids.
    pub fn add_entities(&self, n: usize) -> Vec<String> {
        self.emulator.add_entities(n)
    }

    /// Commits an event of `entity_id` created at `created_at` (RFC 3339, or `None` for
    /// `null`); it is visible from now on, whatever its time. Returns its id.
    pub fn commit_event(&self, entity_id: &str, created_at: Option<&str>) -> String {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        let id = format!("ee000000-0000-4000-8000-{n:012}");
        let event = json!({
            "id": id, "created_at": created_at, "action": "payable.created",
            "api_version": "2024-05-25", "description": "payable created",
            "entity_id": entity_id,
            "object": {"id": format!("0b000000-0000-4000-8000-{n:012}")},
            "object_type": "payable",
        });
        self.emulator.insert_event(entity_id, event.clone());
        self.committed.lock().unwrap().push(event);
        id
    }

    /// The events [`commit_event`](Self::commit_event) committed, in order.
    pub fn entity_events(&self) -> Vec<Value> {
        self.committed.lock().unwrap().clone()
    }

    /// The subscriptions that exist now.
    pub fn subscriptions(&self) -> Vec<Value> {
        self.emulator.subscriptions()
    }

    /// Adds a delivery to the log, created at `created_at` (RFC 3339); returns its id.
    pub fn add_delivery(&self, created_at: &str, was_successful: bool) -> String {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        let id = format!("dd000000-0000-4000-8000-{n:012}");
        self.emulator.add_delivery(
            json!({
                "id": id, "event_id": format!("ee000000-0000-4000-9000-{n:012}"),
                "requests_made_count": if was_successful { 1 } else { 28 },
                "response": null, "response_status_code": if was_successful { 200 } else { 503 },
                "url": "https://example.com/webhooks/monite", "was_successful": was_successful,
            }),
            created_at.parse().unwrap(),
        );
        id
    }

    /// Stores `object` at `path` (after `/v1`), read with `entity_id`'s header.
    pub fn put_object(&self, path: &str, entity_id: Option<&str>, object: Value) {
        self.emulator.put_object(path, entity_id, object);
    }

    /// Changes the object at `path`.
    pub fn change_object(&self, path: &str, change: impl FnOnce(&mut Value)) {
        assert!(
            self.emulator.change_object(path, change),
            "no object at {path}"
        );
    }

    /// Deletes the object at `path`: reads answer 404 from now on.
    pub fn delete_object(&self, path: &str) {
        self.emulator.delete_object(path);
    }

    /// Every `n`-th object read from now on answers 429 with `Retry-After: 0`; 0 stops it.
    pub fn object_429_every(&self, n: usize) {
        self.emulator.object_429_every(n);
    }

    /// Holds each object read's answer back this long.
    pub fn set_object_delay(&self, delay: Duration) {
        self.emulator.set_object_delay(delay);
    }

    /// What each object read sent, in order.
    pub fn object_reads(&self) -> Vec<ObjectRead> {
        self.emulator.object_reads()
    }

    /// `METHOD path` of every request so far, in order of arrival.
    pub fn request_log(&self) -> Vec<String> {
        self.emulator.request_log()
    }

    /// The entity of each listing of events (its first page), in order.
    pub fn events_listings(&self) -> Vec<String> {
        self.emulator.events_listings()
    }

    /// The query of each `GET /webhook_deliveries` so far.
    pub fn delivery_queries(&self) -> Vec<HashMap<String, String>> {
        self.emulator.delivery_queries()
    }

    /// Requests so far, throttled or not.
    pub fn requests(&self) -> usize {
        self.emulator.requests()
    }

    /// `POST /auth/token` requests so far.
    pub fn token_requests(&self) -> usize {
        self.emulator.token_requests()
    }

    /// Secrets regenerated so far.
    pub fn regenerations(&self) -> usize {
        self.emulator.regenerations()
    }

    /// Requests answered 429 by the rate limit.
    pub fn throttled(&self) -> usize {
        self.emulator.throttled()
    }

    /// How long a token issued from now on lasts, in seconds.
    pub fn set_token_lifetime_secs(&self, seconds: u64) {
        self.emulator
            .set_token_lifetime(Duration::from_secs(seconds));
    }

    /// `Some(None)`: answer tokens without `expires_in`; `Some(Some(v))`: with `v`.
    pub fn set_expires_in(&self, expires_in: Option<Option<Value>>) {
        self.emulator.set_expires_in(expires_in);
    }

    /// At most this many items per page, whatever `limit` asks.
    pub fn set_page_size_cap(&self, cap: Option<usize>) {
        self.emulator.set_page_size_cap(cap);
    }

    /// How many more listings with a `pagination_token` answer an empty page that gives the
    /// same token back.
    pub fn echo_page_tokens(&self, n: usize) {
        self.emulator.echo_page_tokens(n);
    }

    /// How many more listings answer an empty page with a new token each time.
    pub fn empty_pages_with_new_tokens(&self, n: usize) {
        self.emulator.empty_pages_with_new_tokens(n);
    }

    /// The n-th listing from now that follows a pagination token finds it expired.
    pub fn expire_token_on_use(&self, n: usize) {
        self.emulator.expire_token_on_use(n);
    }

    /// The n-th listing from now that follows a pagination token answers 500 (once).
    pub fn fail_token_on_use(&self, n: usize) {
        self.emulator.fail_token_on_use(n);
    }

    /// Listings with a token left before the failure `fail_token_on_use` set.
    pub fn fail_token_on_use_left(&self) -> usize {
        self.emulator.token_failure_countdown()
    }
}

/// Headers a test can use to speak to the fake without the client.
pub fn raw_headers(token: Option<&str>, version: bool, entity: bool) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    if version {
        headers.insert("x-monite-version", "2024-01-31".parse().unwrap());
    }
    if entity {
        headers.insert("x-monite-entity-id", ENTITY_ID.parse().unwrap());
    }
    headers
}
