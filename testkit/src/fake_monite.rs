//! A local stand-in for Monite's API, following its documented schemas and behaviour:
//! `X-Monite-Version` on every request (400 without it), `X-Monite-Entity-Id` on `/events`
//! and `/webhook_deliveries` (400 without it), bearer tokens from `POST /auth/token` that
//! expire (401), opaque pagination tokens that stand for the original query, `{"error":
//! {"message"}}` and 422 `{"detail": [...]}` bodies; and injected faults: a refusal (429,
//! 5xx), a failure after the request was carried out (a 504 from a gateway, a connection
//! reset after the status), any body in place of the real answer, tokens revoked when a new
//! one is issued, odd `expires_in` values, pagination tokens echoed back, endless empty
//! pages with new tokens, a fault on the n-th create, and a cap on the page size (to spread
//! a few subscriptions over many pages). It also enforces Monite's rate limit (30 requests
//! per second by default, `429` with `Retry-After` past it, `RateLimit-*` headers on every
//! answer, `Date` too), serves `GET /entities` and per-entity events (added at any time, so
//! an event can be committed late), and can let pagination tokens expire.
//!
//! It also serves objects (`GET` of any other path under `/v1`, such as
//! `/v1/payables/{id}`): [`Fake::put_object`] stores one, [`Fake::change_object`] changes it,
//! [`Fake::delete_object`] makes it answer 404, [`Fake::object_429_every`] answers 429 to
//! every n-th object read, [`Fake::object_delay`] holds each answer back, and
//! [`Fake::object_reads`] tells what each read sent.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// The partner's client id the fake issues tokens to.
pub const CLIENT_ID: &str = "8a7f5c1e-0d2b-4b6a-9c3e-1f2a3b4c5d6e";
/// The partner's client secret, with [`CLIENT_ID`].
pub const CLIENT_SECRET: &str = "partner-client-secret";
/// The entity whose events and deliveries the fake serves from its fixtures.
pub const ENTITY_ID: &str = "c381e88f-7019-4f06-9fbb-3bab8d88348a";

/// What to do to the next request whose path starts with `path_prefix`.
#[derive(Clone, Debug)]
pub struct Fault {
    /// The start of the paths it applies to (`/v1/webhook_subscriptions`).
    pub path_prefix: &'static str,
    /// What the fake does instead of answering as usual.
    pub effect: Effect,
}

/// What an injected fault does to a request.
#[derive(Clone, Debug)]
pub enum Effect {
    /// Answer this status (an error body) without carrying the request out.
    Refuse {
        /// The status answered.
        status: StatusCode,
        /// A `Retry-After` header, in seconds.
        retry_after: Option<u64>,
    },
    /// Carry the request out, then answer this status instead (a gateway timing out).
    AfterCommit(StatusCode),
    /// Carry the request out, send its status and headers and part of its body, then
    /// reset the connection.
    ResetAfterHeaders,
    /// Answer this status and JSON text without carrying the request out.
    Answer(StatusCode, String),
}

/// What a pagination token stands for: the filtered items, the offset, the page size.
type PageCursor = (Vec<Value>, usize, usize);

/// The fake's state: what it serves, the faults due, and what it has seen. Tests change it
/// through [`start_with`] before it serves, and through its methods and public fields after.
#[derive(Debug, Default)]
pub struct Fake {
    /// How long a token issued from now on lasts, in seconds (a day unless changed).
    pub token_lifetime_secs: Mutex<u64>,
    /// `POST /auth/token` requests so far.
    pub token_requests: AtomicUsize,
    /// `Some(None)`: answer tokens without `expires_in`; `Some(Some(v))`: with `v`.
    pub expires_in: Mutex<Option<Option<Value>>>,
    /// Issuing a token revokes every earlier one.
    pub revoke_on_issue: AtomicBool,
    /// How many more listings with a `pagination_token` answer an empty page that gives the
    /// same token back.
    pub echo_page_tokens: AtomicUsize,
    /// How many more listings answer an empty page with a new `next_pagination_token`
    /// each time (a listing that never ends, token after token).
    pub empty_pages_with_new_tokens: AtomicUsize,
    /// Secrets regenerated so far (`POST .../regenerate_secret` carried out).
    pub regenerations: AtomicUsize,
    tokens: Mutex<HashMap<String, Instant>>,
    /// Faults due, in order: each applies to the next request under its path.
    pub faults: Mutex<VecDeque<Fault>>,
    /// Requests so far, throttled or not.
    pub requests: AtomicUsize,
    subscriptions: Mutex<Vec<Value>>,
    next_id: AtomicUsize,
    pages: Mutex<HashMap<String, PageCursor>>,
    /// The events of [`ENTITY_ID`]: `tests/data/monite-api/events.json` unless changed.
    pub events: Vec<Value>,
    /// The delivery log, each with a `created_at` that filters it (as Monite's does) and is
    /// not served (its schema has no such field).
    deliveries: Mutex<Vec<Value>>,
    /// The query of each `GET /webhook_deliveries`, in order.
    delivery_queries: Mutex<Vec<HashMap<String, String>>>,
    /// The object types `POST /webhook_subscriptions` takes: the OpenAPI document's
    /// `WebhookObjectType` enum.
    object_types: Vec<Value>,
    /// At most this many items per page, whatever `limit` asks (Monite's own cap is 100).
    pub page_size_cap: Mutex<Option<usize>>,
    /// Creates (`POST` to the collection) seen so far, and the faults due on given ones.
    creates: AtomicUsize,
    create_faults: Mutex<HashMap<usize, Effect>>,
    /// Requests allowed in any second; `None`: no limit.
    pub rate_limit: Mutex<Option<usize>>,
    /// When each request arrived, throttled or not.
    arrivals: Mutex<Vec<Instant>>,
    /// Requests answered 429 by the rate limit.
    pub throttled: AtomicUsize,
    /// Entities of `GET /entities`; events of any of them are in `entity_events`.
    pub entities: Mutex<Vec<Value>>,
    /// Events of the entities above, each with its `entity_id`.
    pub entity_events: Mutex<Vec<Value>>,
    /// The n-th listing from now that follows a pagination token finds it expired (400);
    /// 0: none.
    pub expire_token_on_use: AtomicUsize,
    /// The n-th listing from now that follows a pagination token answers 500 (once);
    /// 0: none.
    pub fail_token_on_use: AtomicUsize,
    /// Objects by path under `/v1`, each with the entity whose header reads it (`None`:
    /// read without one).
    objects: Mutex<HashMap<String, (Value, Option<String>)>>,
    /// What each object read sent, in order.
    object_reads: Mutex<Vec<ObjectRead>>,
    /// Every n-th object read answers 429 (`Retry-After: 0`); 0: none.
    object_429_every: AtomicUsize,
    /// Object reads so far, answered or not.
    object_read_count: AtomicUsize,
    /// How long each object read is held before its answer.
    pub object_delay: Mutex<Duration>,
    /// `METHOD path` of every request, in order of arrival.
    request_log: Mutex<Vec<String>>,
    /// The entity of each `GET /events` that started a listing (no pagination token).
    events_listings: Mutex<Vec<String>>,
}

/// What one object read (`GET` of an object's path) sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRead {
    /// The path, `/v1` included.
    pub path: String,
    /// `X-Monite-Entity-Id`, if sent.
    pub entity_id: Option<String>,
    /// `X-Monite-Version`, if sent.
    pub version: Option<String>,
    /// Whether it carried a bearer token.
    pub bearer: bool,
    /// The status answered.
    pub status: u16,
}

impl Fake {
    /// Every token issued so far stops working, as if revoked.
    pub fn revoke_tokens(&self) {
        self.tokens.lock().unwrap().clear();
    }

    /// Queues `fault` behind those already due.
    pub fn inject(&self, fault: Fault) {
        self.faults.lock().unwrap().push_back(fault);
    }

    /// `effect` on the `nth` create from now (1 is the next one), whatever other faults
    /// are queued.
    pub fn inject_on_create(&self, nth: usize, effect: Effect) {
        let at = self.creates.load(Ordering::SeqCst) + nth - 1;
        self.create_faults.lock().unwrap().insert(at, effect);
    }

    /// A subscription that exists without this test having seen its secret (made by
    /// another tool, or its secret lost); returns its id.
    pub fn seed(&self, object_type: &str, url: &str, status: &str) -> String {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        let id = format!("5eed0000-4a2f-4ed2-8160-{n:012}");
        self.subscriptions.lock().unwrap().push(json!({
            "id": id, "object_type": object_type, "event_types": [], "status": status, "url": url,
        }));
        id
    }

    /// Sets a subscription's status, as Monite does after a week of failed deliveries.
    pub fn set_status(&self, id: &str, status: &str) {
        let mut all = self.subscriptions.lock().unwrap();
        let subscription = find_mut(&mut all, id).unwrap();
        subscription["status"] = json!(status);
    }

    /// The events of [`ENTITY_ID`].
    pub fn events(&self) -> &[Value] {
        &self.events
    }

    /// The most requests that arrived within any one second.
    pub fn max_requests_in_a_second(&self) -> usize {
        let arrivals = self.arrivals.lock().unwrap();
        let mut start = 0;
        let mut most = 0;
        for (end, at) in arrivals.iter().enumerate() {
            while *at - arrivals[start] >= Duration::from_secs(1) {
                start += 1;
            }
            most = most.max(end + 1 - start);
        }
        most
    }

    /// Adds `n` entities (`e0000000-...`), returning their ids.
    pub fn add_entities(&self, n: usize) -> Vec<String> {
        let mut entities = self.entities.lock().unwrap();
        let first = entities.len();
        let ids: Vec<String> = (first..first + n)
            .map(|i| format!("e0000000-0000-4000-8000-{i:012}"))
            .collect();
        for id in &ids {
            entities.push(json!({"id": id, "type": "organization", "status": "active",
                "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z"}));
        }
        ids
    }

    /// Commits an event of `entity_id` created at `created_at` (RFC 3339, or `None` for
    /// `null`); it is visible from now on, whatever its time. Returns its id.
    pub fn commit_event(&self, entity_id: &str, created_at: Option<&str>) -> String {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        let id = format!("ee000000-0000-4000-8000-{n:012}");
        self.entity_events.lock().unwrap().push(json!({
            "id": id, "created_at": created_at, "action": "payable.created",
            "api_version": "2024-05-25", "description": "payable created",
            "entity_id": entity_id, "object": {"id": format!("0b000000-0000-4000-8000-{n:012}")},
            "object_type": "payable",
        }));
        id
    }

    /// The subscriptions that exist now, under both paths.
    pub fn subscriptions(&self) -> Vec<Value> {
        self.subscriptions.lock().unwrap().clone()
    }

    /// Adds a delivery to the log, created at `created_at` (RFC 3339); returns its id.
    pub fn add_delivery(&self, created_at: &str, was_successful: bool) -> String {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        let id = format!("dd000000-0000-4000-8000-{n:012}");
        self.deliveries.lock().unwrap().push(json!({
            "id": id, "event_id": format!("ee000000-0000-4000-9000-{n:012}"),
            "requests_made_count": if was_successful { 1 } else { 28 },
            "response": null, "response_status_code": if was_successful { 200 } else { 503 },
            "url": "https://example.com/webhooks/monite", "was_successful": was_successful,
            "created_at": created_at,
        }));
        id
    }

    /// Stores `object` at `path` (after `/v1`, such as `/payables/p1`), read with
    /// `entity_id`'s header (`None`: read without one, as entities are).
    pub fn put_object(&self, path: &str, entity_id: Option<&str>, object: Value) {
        self.objects
            .lock()
            .unwrap()
            .insert(format!("/v1{path}"), (object, entity_id.map(str::to_owned)));
    }

    /// Changes the object at `path`.
    pub fn change_object(&self, path: &str, change: impl FnOnce(&mut Value)) {
        let mut objects = self.objects.lock().unwrap();
        change(&mut objects.get_mut(&format!("/v1{path}")).unwrap().0);
    }

    /// Deletes the object at `path`: reads answer 404 from now on.
    pub fn delete_object(&self, path: &str) {
        self.objects.lock().unwrap().remove(&format!("/v1{path}"));
    }

    /// Every `n`-th object read from now on answers 429 with `Retry-After: 0`; 0 stops it.
    pub fn object_429_every(&self, n: usize) {
        self.object_read_count.store(0, Ordering::SeqCst);
        self.object_429_every.store(n, Ordering::SeqCst);
    }

    /// What each object read sent, in order.
    pub fn object_reads(&self) -> Vec<ObjectRead> {
        self.object_reads.lock().unwrap().clone()
    }

    /// `METHOD path` of every request so far, in order of arrival.
    pub fn request_log(&self) -> Vec<String> {
        self.request_log.lock().unwrap().clone()
    }

    /// The entity of each `GET /events` that started a listing (its first page, with no
    /// pagination token) and was answered, in order of arrival: a sweep of an entity's
    /// window lists it once.
    pub fn events_listings(&self) -> Vec<String> {
        self.events_listings.lock().unwrap().clone()
    }

    /// The query of each `GET /webhook_deliveries` so far.
    pub fn delivery_queries(&self) -> Vec<HashMap<String, String>> {
        self.delivery_queries.lock().unwrap().clone()
    }
}

fn fixture(name: &str) -> Value {
    fixture_at(&format!("monite-api/{name}"))
}

/// The JSON file `tests/data/<path>` of the library's checkout, where Monite's documented
/// answers are kept: the library's tests read them too.
#[must_use]
pub fn fixture_at(path: &str) -> Value {
    let file = format!("{}/../tests/data/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": {"message": message}}))).into_response()
}

/// Starts the fake on a free loopback port.
pub async fn start() -> (SocketAddr, Arc<Fake>) {
    start_with(|_| {}).await
}

/// Starts the fake with its data changed by `configure`.
pub async fn start_with(configure: impl FnOnce(&mut Fake)) -> (SocketAddr, Arc<Fake>) {
    let mut fake = Fake {
        token_lifetime_secs: Mutex::new(86_400),
        events: fixture("events.json")["data"].as_array().unwrap().clone(),
        // The fixture's deliveries were created an hour ago.
        deliveries: Mutex::new(
            fixture("webhook_deliveries.json")["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    let mut d = d.clone();
                    let at = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
                    d["created_at"] = json!(at.to_string());
                    d
                })
                .collect(),
        ),
        object_types:
            fixture_at("monite-openapi-webhooks.json")["components"]["schemas"]["WebhookObjectType"]
                ["enum"]
                .as_array()
                .unwrap()
                .clone(),
        rate_limit: Mutex::new(Some(30)),
        ..Fake::default()
    };
    configure(&mut fake);
    let fake = Arc::new(fake);
    let authenticated = Router::new()
        .route(
            "/v1/webhook_subscriptions",
            post(create).get(list_subscriptions),
        )
        .route("/v1/webhook_settings", post(create).get(list_subscriptions))
        .route(
            "/v1/webhook_subscriptions/{id}",
            get(get_subscription).patch(update).delete(delete),
        )
        .route(
            "/v1/webhook_settings/{id}",
            get(get_subscription).patch(update).delete(delete),
        )
        .route("/v1/webhook_subscriptions/{id}/{action}", post(action))
        .route("/v1/webhook_settings/{id}/{action}", post(action))
        .route("/v1/events", get(list_events))
        .route("/v1/events/{id}", get(get_event))
        .route("/v1/webhook_deliveries", get(list_deliveries))
        .route("/v1/entities", get(list_entities))
        .route("/v1/{*path}", get(get_object))
        .route_layer(middleware::from_fn_with_state(fake.clone(), authenticate));
    let app = Router::new()
        .route("/v1/auth/token", post(token))
        .merge(authenticated)
        .layer(middleware::from_fn_with_state(
            fake.clone(),
            faults_and_version,
        ))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, fake)
}

/// Injected faults first; then the version header every Monite request needs.
async fn faults_and_version(
    State(fake): State<Arc<Fake>>,
    request: Request,
    next: Next,
) -> Response {
    fake.requests.fetch_add(1, Ordering::SeqCst);
    fake.request_log
        .lock()
        .unwrap()
        .push(format!("{} {}", request.method(), request.uri().path()));
    let mut response = match throttle(&fake) {
        Err(refused) => *refused,
        Ok(remaining) => {
            let mut response = answer(&fake, request, next).await;
            if let Some((limit, remaining)) = remaining {
                let headers = response.headers_mut();
                headers.insert("ratelimit-limit", limit.into());
                headers.insert("ratelimit-remaining", remaining.into());
                headers.insert("ratelimit-reset", 1.into());
            }
            response
        }
    };
    let date = jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&jiff::Timestamp::now())
        .unwrap();
    response.headers_mut().insert("date", date.parse().unwrap());
    response
}

/// Past the rate limit, a 429 with `Retry-After`; below it, the limit and what is left of
/// it this second. Every request counts.
fn throttle(fake: &Fake) -> Result<Option<(usize, usize)>, Box<Response>> {
    let now = Instant::now();
    let mut arrivals = fake.arrivals.lock().unwrap();
    arrivals.push(now);
    let Some(limit) = *fake.rate_limit.lock().unwrap() else {
        return Ok(None);
    };
    let in_last_second = arrivals
        .iter()
        .rev()
        .take_while(|at| now - **at < Duration::from_secs(1))
        .count();
    if in_last_second > limit {
        fake.throttled.fetch_add(1, Ordering::SeqCst);
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
        response.headers_mut().insert("retry-after", 1.into());
        return Err(Box::new(response));
    }
    Ok(Some((limit, limit - in_last_second)))
}

async fn answer(fake: &Arc<Fake>, request: Request, next: Next) -> Response {
    let fake = fake.clone();
    let path = request.uri().path().to_owned();
    let fault = {
        let mut faults = fake.faults.lock().unwrap();
        let due = faults
            .front()
            .is_some_and(|f| path.starts_with(f.path_prefix));
        if due { faults.pop_front() } else { None }
    };
    let mut effect = fault.map(|f| f.effect);
    let collection = path == "/v1/webhook_subscriptions" || path == "/v1/webhook_settings";
    if request.method() == axum::http::Method::POST && collection {
        let n = fake.creates.fetch_add(1, Ordering::SeqCst);
        if let Some(due) = fake.create_faults.lock().unwrap().remove(&n) {
            effect = Some(due);
        }
    }
    match effect {
        Some(Effect::Refuse {
            status,
            retry_after,
        }) => {
            let mut response = error(status, "injected failure");
            if let Some(seconds) = retry_after {
                response.headers_mut().insert("retry-after", seconds.into());
            }
            return response;
        }
        Some(Effect::Answer(status, body)) => {
            let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
            return (status, json, body).into_response();
        }
        _ => {}
    }
    if !request.headers().contains_key("x-monite-version") {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(fixture("missing_api_version.json")),
        )
            .into_response();
    }
    let response = next.run(request).await;
    match effect {
        Some(Effect::AfterCommit(status)) => error(status, "injected failure after commit"),
        Some(Effect::ResetAfterHeaders) => reset_after_headers(response).await,
        _ => response,
    }
}

/// An object read: the object, 404 once deleted (or never stored), 400 without the entity
/// header it needs, 429 on demand.
async fn get_object(State(fake): State<Arc<Fake>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let headers = request.headers();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut read = ObjectRead {
        path: path.clone(),
        entity_id: header("x-monite-entity-id"),
        version: header("x-monite-version"),
        bearer: header("authorization").is_some_and(|v| v.starts_with("Bearer ")),
        status: 200,
    };
    drop(request);
    let n = fake.object_read_count.fetch_add(1, Ordering::SeqCst) + 1;
    let every = fake.object_429_every.load(Ordering::SeqCst);
    let delay = *fake.object_delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let stored = fake.objects.lock().unwrap().get(&path).cloned();
    let response = if every > 0 && n % every == 0 {
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
        response.headers_mut().insert("retry-after", 0.into());
        response
    } else {
        match stored {
            None => error(StatusCode::NOT_FOUND, "Object not found"),
            Some((_, Some(entity))) if read.entity_id.as_deref() != Some(entity.as_str()) => error(
                StatusCode::BAD_REQUEST,
                "Missing or unknown x-monite-entity-id header",
            ),
            Some((object, _)) => axum::Json(object).into_response(),
        }
    };
    read.status = response.status().as_u16();
    fake.object_reads.lock().unwrap().push(read);
    response
}

/// `response`'s status and headers and the first half of its body, then a reset.
async fn reset_after_headers(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let half = body.slice(..body.len() / 2);
    let chunks = futures_util::stream::unfold(Some(half), |half| async move {
        match half {
            Some(half) => Some((Ok(half), None)),
            None => {
                // Let the status and the first chunk reach the client before the reset.
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some((
                    Err(std::io::Error::other("connection reset by the fake")),
                    None,
                ))
            }
        }
    });
    Response::from_parts(parts, axum::body::Body::from_stream(chunks))
}

async fn authenticate(State(fake): State<Arc<Fake>>, request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let valid = fake
        .tokens
        .lock()
        .unwrap()
        .get(&token)
        .is_some_and(|expiry| *expiry > Instant::now());
    if !valid {
        return error(StatusCode::UNAUTHORIZED, "Invalid or expired access token");
    }
    let path = request.uri().path();
    let needs_entity = path.starts_with("/v1/events") || path.starts_with("/v1/webhook_deliveries");
    if needs_entity
        && request
            .headers()
            .get("x-monite-entity-id")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| {
                v != ENTITY_ID && !fake.entities.lock().unwrap().iter().any(|e| e["id"] == v)
            })
    {
        return error(
            StatusCode::BAD_REQUEST,
            "Missing or unknown x-monite-entity-id header",
        );
    }
    next.run(request).await
}

async fn token(State(fake): State<Arc<Fake>>, axum::Json(body): axum::Json<Value>) -> Response {
    fake.token_requests.fetch_add(1, Ordering::SeqCst);
    if body["client_id"] != CLIENT_ID
        || body["client_secret"] != CLIENT_SECRET
        || body["grant_type"] != "client_credentials"
    {
        return error(StatusCode::UNAUTHORIZED, "Invalid client credentials");
    }
    let n = fake.token_requests.load(Ordering::SeqCst);
    let token = format!("token-{n}");
    let lifetime = *fake.token_lifetime_secs.lock().unwrap();
    {
        let mut tokens = fake.tokens.lock().unwrap();
        if fake.revoke_on_issue.load(Ordering::SeqCst) {
            tokens.clear();
        }
        tokens.insert(
            token.clone(),
            Instant::now() + Duration::from_secs(lifetime),
        );
    }
    let mut answer = json!({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"});
    match fake.expires_in.lock().unwrap().clone() {
        Some(Some(value)) => answer["expires_in"] = value,
        Some(None) => {
            answer.as_object_mut().unwrap().remove("expires_in");
        }
        None => {}
    }
    axum::Json(answer).into_response()
}

fn new_secret(fake: &Fake) -> String {
    format!(
        "whsec_fake{:024}",
        fake.next_id.fetch_add(1, Ordering::SeqCst)
    )
}

async fn create(State(fake): State<Arc<Fake>>, axum::Json(body): axum::Json<Value>) -> Response {
    let url = body["url"].as_str().unwrap_or_default();
    if !url.starts_with("https://") {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(fixture("validation_error.json")),
        )
            .into_response();
    }
    if !fake.object_types.contains(&body["object_type"]) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({"detail": [{"loc": ["body", "object_type"],
                "msg": "Input should be one of the WebhookObjectType values",
                "type": "enum"}]})),
        )
            .into_response();
    }
    let n = fake.next_id.fetch_add(1, Ordering::SeqCst);
    let subscription = json!({
        "id": format!("f3c64af7-4a2f-4ed2-8160-{n:012}"),
        "object_type": body["object_type"],
        "event_types": body.get("event_types").cloned().unwrap_or(json!([])),
        "status": "enabled",
        "url": url,
    });
    fake.subscriptions
        .lock()
        .unwrap()
        .push(subscription.clone());
    let mut answer = subscription;
    answer["secret"] = json!(new_secret(&fake));
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

fn find(fake: &Fake, id: &str) -> Option<Value> {
    fake.subscriptions
        .lock()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .cloned()
}

/// The subscription `id` among `all`, to change it in place.
fn find_mut<'a>(all: &'a mut [Value], id: &str) -> Option<&'a mut Value> {
    all.iter_mut().find(|s| s["id"] == id)
}

async fn get_subscription(State(fake): State<Arc<Fake>>, Path(id): Path<String>) -> Response {
    match find(&fake, &id) {
        Some(subscription) => axum::Json(subscription).into_response(),
        None => error(StatusCode::NOT_FOUND, "Webhook subscription not found"),
    }
}

async fn update(
    State(fake): State<Arc<Fake>>,
    Path(id): Path<String>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut all = fake.subscriptions.lock().unwrap();
    let Some(subscription) = find_mut(&mut all, &id) else {
        return error(StatusCode::NOT_FOUND, "Webhook subscription not found");
    };
    for field in ["url", "object_type", "event_types"] {
        if let Some(value) = body.get(field).filter(|v| !v.is_null()) {
            subscription[field] = value.clone();
        }
    }
    axum::Json(subscription.clone()).into_response()
}

async fn delete(State(fake): State<Arc<Fake>>, Path(id): Path<String>) -> Response {
    let mut all = fake.subscriptions.lock().unwrap();
    let before = all.len();
    all.retain(|s| s["id"] != id);
    if all.len() == before {
        return error(StatusCode::NOT_FOUND, "Webhook subscription not found");
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn action(
    State(fake): State<Arc<Fake>>,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let mut all = fake.subscriptions.lock().unwrap();
    let Some(subscription) = find_mut(&mut all, &id) else {
        return error(StatusCode::NOT_FOUND, "Webhook subscription not found");
    };
    match action.as_str() {
        "enable" => subscription["status"] = json!("enabled"),
        "disable" => subscription["status"] = json!("disabled"),
        "regenerate_secret" => {
            let mut answer = subscription.clone();
            drop(all);
            fake.regenerations.fetch_add(1, Ordering::SeqCst);
            answer["secret"] = json!(new_secret(&fake));
            return axum::Json(answer).into_response();
        }
        _ => return error(StatusCode::NOT_FOUND, "Not found"),
    }
    axum::Json(subscription.clone()).into_response()
}

/// Monite's pagination: the first request carries the filters; a `pagination_token` stands
/// for that query and a position, and every other parameter is then ignored.
fn paginate(fake: &Fake, items: Vec<Value>, query: &HashMap<String, String>) -> Response {
    let endless = fake
        .empty_pages_with_new_tokens
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if endless {
        let token = format!("empty-{}", fake.next_id.fetch_add(1, Ordering::SeqCst));
        return axum::Json(json!({"data": [], "next_pagination_token": token})).into_response();
    }
    if let Some(token) = query.get("pagination_token") {
        let echo = fake
            .echo_page_tokens
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if echo {
            return axum::Json(json!({"data": [], "next_pagination_token": token})).into_response();
        }
    }
    if query.contains_key("pagination_token") {
        let fail = fake
            .fail_token_on_use
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok_and(|n| n == 1);
        if fail {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "injected failure on a page",
            );
        }
    }
    if let Some(token) = query.get("pagination_token") {
        let expire = fake
            .expire_token_on_use
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok_and(|n| n == 1);
        if expire {
            fake.pages.lock().unwrap().remove(token);
        }
    }
    let (items, offset, limit) = match query.get("pagination_token") {
        Some(token) => match fake.pages.lock().unwrap().get(token).cloned() {
            Some(page) => page,
            None => return error(StatusCode::BAD_REQUEST, "Invalid pagination token"),
        },
        None => {
            let limit = query
                .get("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(100);
            if !(1..=100).contains(&limit) {
                return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(json!({"detail": [{"loc": ["query", "limit"], "msg": "Input should be between 1 and 100", "type": "range"}]}))).into_response();
            }
            let cap = fake.page_size_cap.lock().unwrap().unwrap_or(100);
            (items, 0, limit.min(cap))
        }
    };
    let end = (offset + limit).min(items.len());
    let data = items[offset..end].to_vec();
    let next = (end < items.len()).then(|| {
        let token = format!("page-{}", fake.next_id.fetch_add(1, Ordering::SeqCst));
        fake.pages
            .lock()
            .unwrap()
            .insert(token.clone(), (items.clone(), end, limit));
        token
    });
    axum::Json(json!({"data": data, "next_pagination_token": next, "prev_pagination_token": null}))
        .into_response()
}

fn filtered(items: &[Value], query: &HashMap<String, String>) -> Vec<Value> {
    let mut items: Vec<Value> = items
        .iter()
        .filter(|i| {
            query
                .get("object_type")
                .is_none_or(|t| i["object_type"] == t.as_str())
        })
        .filter(|i| {
            query
                .get("event_id")
                .is_none_or(|t| i["event_id"] == t.as_str())
        })
        .filter(|i| {
            // Compared as times, not text: `Z` and `+00:00`, any precision. A `null`
            // `created_at` matches no time filter.
            let at = i["created_at"].as_str().and_then(time);
            let bound = |name: &str| query.get(name).map(|t| time(t).unwrap());
            match (bound("created_at__gte"), bound("created_at__lte"), at) {
                (None, None, _) => true,
                (_, _, None) => false,
                (from, to, Some(at)) => from.is_none_or(|f| at >= f) && to.is_none_or(|t| at <= t),
            }
        })
        .cloned()
        .collect();
    if query.get("sort").is_some_and(|s| s == "created_at") {
        items.sort_by_key(|i| i["created_at"].as_str().and_then(time));
    }
    if query.get("order").is_some_and(|o| o == "desc") {
        items.reverse();
    }
    items
}

async fn list_subscriptions(
    State(fake): State<Arc<Fake>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let all = fake.subscriptions.lock().unwrap().clone();
    let items = filtered(&all, &query);
    paginate(&fake, items, &query)
}

async fn list_events(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let entity = headers
        .get("x-monite-entity-id")
        .and_then(|v| v.to_str().ok());
    if !query.contains_key("pagination_token") {
        fake.events_listings
            .lock()
            .unwrap()
            .push(entity.unwrap_or_default().to_owned());
    }
    let items = if entity == Some(ENTITY_ID) {
        filtered(&fake.events, &query)
    } else {
        let all = fake.entity_events.lock().unwrap();
        let own: Vec<Value> = all
            .iter()
            .filter(|e| e["entity_id"].as_str() == entity)
            .cloned()
            .collect();
        drop(all);
        filtered(&own, &query)
    };
    paginate(&fake, items, &query)
}

fn time(text: &str) -> Option<jiff::Timestamp> {
    text.parse().ok()
}

async fn list_entities(
    State(fake): State<Arc<Fake>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let all = fake.entities.lock().unwrap().clone();
    paginate(&fake, all, &query)
}

async fn get_event(State(fake): State<Arc<Fake>>, Path(id): Path<String>) -> Response {
    match fake.events.iter().find(|e| e["id"] == id.as_str()) {
        Some(event) => axum::Json(event.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "Event not found"),
    }
}

async fn list_deliveries(
    State(fake): State<Arc<Fake>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    fake.delivery_queries.lock().unwrap().push(query.clone());
    let all = fake.deliveries.lock().unwrap().clone();
    let mut items = filtered(&all, &query);
    for item in &mut items {
        item.as_object_mut().unwrap().remove("created_at");
    }
    paginate(&fake, items, &query)
}

/// Headers a test can use to speak to the fake without the client.
#[must_use]
pub fn raw_headers(token: Option<&str>, version: bool, entity: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
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
