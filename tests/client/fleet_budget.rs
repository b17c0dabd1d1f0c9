//! The rate budget shared by a fleet: several clients, each with a `Fleet` of its own on one
//! real PostgreSQL or one real `redis-server` (replicas, as far as the store can tell),
//! against the fake Monite, which counts what arrives in any second.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::TryStreamExt as _;
use monite_webhooks::client::{Client, Environment, Timer};
use monite_webhooks::fleet::Fleet;
use monite_webhooks::{ErrorKind, Event};
use serde_json::json;
use support::client::fault;
use support::fake_monite::{self, CLIENT_ID, CLIENT_SECRET, ENTITY_ID, Fake};

/// The store the replicas share, and how a replica connects to it.
enum Shared {
    #[cfg(feature = "postgres")]
    Postgres(support::pg::PgServer),
    #[cfg(feature = "redis")]
    Redis(support::redis::RedisServer),
}

impl Shared {
    /// A new replica's fleet: its own connection (pool) to the store.
    async fn fleet(&self, replica: &str) -> Fleet {
        let fleet = match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(server) => Fleet::postgres(
                &monite_webhooks::PostgresStore::connect(&server.url(), "fleet")
                    .await
                    .unwrap(),
            ),
            #[cfg(feature = "redis")]
            Self::Redis(server) => Fleet::redis(
                &monite_webhooks::RedisStore::connect(&server.url(), "fleet")
                    .await
                    .unwrap(),
            ),
        };
        fleet.ensure_schema().await.unwrap();
        fleet.with_replica(replica)
    }

    /// Whether the store holds every replica back now: its hold reaches past its clock.
    async fn holding(&self) -> bool {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(server) => {
                let pool = sqlx::PgPool::connect(&server.url()).await.unwrap();
                let held: Option<bool> = sqlx::query_scalar(
                    "SELECT hold_until > clock_timestamp() FROM monite_webhook_fleet_budget \
                     WHERE namespace = 'fleet'",
                )
                .fetch_optional(&pool)
                .await
                .unwrap();
                held == Some(true)
            }
            #[cfg(feature = "redis")]
            Self::Redis(server) => {
                let key = "monite-webhooks:fleet:fleet:budget:monite-api";
                let hold = server.cli(&["HGET", key, "hold_until"]);
                let time = server.cli(&["TIME"]);
                let mut time = time.lines().map(|l| l.trim().parse::<i64>().unwrap());
                let now = time.next().unwrap() * 1_000_000 + time.next().unwrap();
                hold.parse::<i64>().is_ok_and(|hold| hold > now)
            }
        }
    }

    /// Stops the store, as a crash would.
    fn stop(&mut self) {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(server) => server.stop(),
            #[cfg(feature = "redis")]
            Self::Redis(server) => server.stop(),
        }
    }

    /// Starts it again (Redis empty, PostgreSQL with its data).
    fn start_again(&mut self) {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(server) => server.start_again(),
            #[cfg(feature = "redis")]
            Self::Redis(server) => server.restart(),
        }
    }
}

/// A replica's clock: real sleeps, read `skew_secs` away from every other replica's
/// (hours, either way), and every sleep recorded.
#[derive(Clone)]
struct ReplicaTimer {
    skew_secs: i64,
    sleeps: Arc<Mutex<Vec<Duration>>>,
}

impl ReplicaTimer {
    fn skewed(skew_secs: i64) -> Self {
        Self {
            skew_secs,
            sleeps: Arc::default(),
        }
    }

    fn sleeps(&self) -> Vec<Duration> {
        self.sleeps.lock().unwrap().clone()
    }
}

impl Timer for ReplicaTimer {
    fn now(&self) -> Instant {
        // Shifted ahead first, so that a clock behind never reads before the process began.
        let shifted = Instant::now() + Duration::from_secs(10 * 3600);
        let skew = Duration::from_secs(self.skew_secs.unsigned_abs());
        if self.skew_secs >= 0 {
            shifted + skew
        } else {
            shifted - skew
        }
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        self.sleeps.lock().unwrap().push(duration);
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A replica: a client of the fake with `max_rate` for the whole fleet, on `fleet`.
fn replica(addr: SocketAddr, max_rate: f64, fleet: &Fleet, timer: ReplicaTimer) -> Client {
    Client::builder(Environment::Custom(format!("http://{addr}/v1")))
        .credentials(CLIENT_ID, CLIENT_SECRET)
        .max_rate(max_rate)
        .max_retries(5)
        .timer(timer)
        .fleet(fleet)
        .build()
        .unwrap()
}

/// `count` listings, one after another: background requests.
async fn list(client: &Client, count: usize) {
    for _ in 0..count {
        client
            .webhook_subscriptions()
            .list(Default::default())
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
    }
}

fn requests(fake: &Fake) -> usize {
    fake.requests()
}

#[test]
fn a_fleet_and_its_clients_are_shared_across_tasks() {
    fn shared<T: Clone + Send + Sync + 'static>() {}
    shared::<Fleet>();
    shared::<Client>();
}

/// Three replicas whose clocks read hours apart, two tasks each listing as fast as the
/// budget lets them: together they stay within the one budget (a second can hold the
/// slots at both its ends), where alone each would send the whole budget.
async fn replicas_with_skewed_clocks_stay_within_one_budget(shared: Shared) {
    let (addr, fake) = fake_monite::start().await;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, skew) in [-7200, 0, 5400].into_iter().enumerate() {
        let fleet = shared.fleet(&format!("replica-{i}")).await;
        let client = replica(addr, 10.0, &fleet, ReplicaTimer::skewed(skew));
        for _ in 0..2 {
            let client = client.clone();
            tasks.spawn(async move { list(&client, 5).await });
        }
    }
    tasks.join_all().await;
    // 30 listings and a token per replica.
    assert_eq!(requests(&fake), 33);
    let most = fake.max_requests_in_a_second();
    assert!(
        most <= 11,
        "{most} requests within one second, fleet budget 10"
    );
    assert_eq!(fake.throttled(), 0);
}

/// A `429` with `Retry-After` answered to one replica holds the others back: the next
/// request of another replica waits out the hold, on the store's clock.
async fn a_429_on_one_replica_holds_every_replica(shared: Shared) {
    let (addr, fake) = fake_monite::start().await;
    let timer_a = ReplicaTimer::skewed(0);
    let timer_b = ReplicaTimer::skewed(3600);
    let a = replica(addr, 50.0, &shared.fleet("a").await, timer_a);
    let b = replica(addr, 50.0, &shared.fleet("b").await, timer_b.clone());
    // Both have their tokens: what follows is one listing each.
    list(&a, 1).await;
    list(&b, 1).await;
    fake.inject(fault(
        "/v1/webhook_subscriptions",
        http::StatusCode::TOO_MANY_REQUESTS,
        Some(3),
    ));
    let first = tokio::spawn(async move { list(&a, 1).await });
    let mut polls = 0;
    while !shared.holding().await {
        polls += 1;
        assert!(polls < 400, "the 429 never reached the shared store");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = timer_b.sleeps().len();
    list(&b, 1).await;
    let waited: Duration = timer_b.sleeps()[before..].iter().sum();
    assert!(
        waited > Duration::from_secs(2) && waited <= Duration::from_secs(3),
        "the other replica waited {waited:?} after a Retry-After of 3 s"
    );
    first.await.unwrap();
    // Two tokens, two listings, the 429 and its retry, the other replica's listing: none
    // answered 429 but the injected one.
    assert_eq!(requests(&fake), 7);
    assert_eq!(fake.throttled(), 0);
}

fn payable_event() -> Event {
    Event::parse(
        json!({
            "id": "f8130c42-6c0f-4b9d-81db-38c08712b8bc",
            "action": "payable.paid",
            "object_type": "payable",
            "object": {"id": "p1"},
            "entity_id": ENTITY_ID,
            "webhook_subscription_id": "f3c64af7-4a2f-4ed2-8160-d66b6a8ac4ba",
            "description": "payable.paid",
            "api_version": "2024-05-25",
            "created_at": "2024-03-04T20:06:48.593225+00:00",
        })
        .to_string(),
    )
    .unwrap()
}

/// Two replicas listing in the background with the fleet's budget backed up; a third
/// fetches the object of a live event: its request reaches Monite behind at most the
/// headroom of background slots already booked (two, plus the one going), not behind the
/// others' queues.
async fn a_live_fetch_goes_ahead_of_other_replicas_background_requests(shared: Shared) {
    let (addr, fake) = fake_monite::start().await;
    fake.put_object(
        "/payables/p1",
        Some(ENTITY_ID),
        json!({"id": "p1", "status": "paid", "created_at": "2024-03-01T00:00:00Z",
            "updated_at": "2024-03-04T20:00:00Z"}),
    );
    let live = replica(
        addr,
        8.0,
        &shared.fleet("live").await,
        ReplicaTimer::skewed(0),
    );
    // Its token first, so that the fetch is one request.
    list(&live, 1).await;
    let mut background = tokio::task::JoinSet::new();
    for name in ["sweeping-a", "sweeping-b"] {
        let client = replica(
            addr,
            8.0,
            &shared.fleet(name).await,
            ReplicaTimer::skewed(0),
        );
        for _ in 0..4 {
            let client = client.clone();
            background.spawn(async move { list(&client, 100).await });
        }
    }
    // Backed up: each background replica has requests waiting for the fleet's slots.
    while requests(&fake) < 12 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Each background replica's queue has reached the shared store by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let before = fake.request_log().len();
        assert_eq!(live.fetch(&payable_event()).await.unwrap().name(), "found");
        let log = fake.request_log();
        let at = log[before..]
            .iter()
            .position(|l| l == "GET /v1/payables/p1")
            .unwrap();
        assert!(
            at <= 3,
            "the fetch came after {at} background requests: {log:?}"
        );
    }
    background.abort_all();
    assert!(fake.max_requests_in_a_second() <= 9);
}

/// With the store down, a request fails with `StoreUnavailable` and is not sent (a budget
/// that cannot be read cannot be kept); with the store back, the next one goes.
async fn a_failing_store_fails_requests_and_sends_none(mut shared: Shared) {
    let (addr, fake) = fake_monite::start().await;
    let fleet = shared.fleet("alone").await;
    let client = replica(addr, 50.0, &fleet, ReplicaTimer::skewed(0));
    list(&client, 1).await;
    let sent = requests(&fake);
    shared.stop();
    let error = client
        .webhook_subscriptions()
        .list(Default::default())
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::StoreUnavailable, "{error}");
    assert!(
        error
            .to_string()
            .starts_with("the fleet's rate budget cannot be read"),
        "{error}"
    );
    assert_eq!(requests(&fake), sent, "a request went out without its slot");
    shared.start_again();
    // The store's client reconnects on its own; PostgreSQL's schema survived, Redis starts
    // empty and needs none.
    let mut recovered = false;
    for _ in 0..100 {
        let listing = client.webhook_subscriptions().list(Default::default());
        if listing.try_collect::<Vec<_>>().await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        recovered,
        "the client did not recover once the store was back"
    );
    assert_eq!(requests(&fake), sent + 1);
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use support::pg::PgServer;

    fn shared() -> Shared {
        Shared::Postgres(PgServer::start())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_with_skewed_clocks_stay_within_one_budget() {
        super::replicas_with_skewed_clocks_stay_within_one_budget(shared()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_429_on_one_replica_holds_every_replica() {
        super::a_429_on_one_replica_holds_every_replica(shared()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_live_fetch_goes_ahead_of_other_replicas_background_requests() {
        super::a_live_fetch_goes_ahead_of_other_replicas_background_requests(shared()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_store_fails_requests_and_sends_none() {
        super::a_failing_store_fails_requests_and_sends_none(shared()).await;
    }
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use support::redis::RedisServer;

    fn shared() -> Shared {
        Shared::Redis(RedisServer::start())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_with_skewed_clocks_stay_within_one_budget() {
        super::replicas_with_skewed_clocks_stay_within_one_budget(shared()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_429_on_one_replica_holds_every_replica() {
        super::a_429_on_one_replica_holds_every_replica(shared()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_live_fetch_goes_ahead_of_other_replicas_background_requests() {
        super::a_live_fetch_goes_ahead_of_other_replicas_background_requests(shared()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_store_fails_requests_and_sends_none() {
        super::a_failing_store_fails_requests_and_sends_none(shared()).await;
    }
}

/// The budget's series, read back through metrics-util's debugging recorder: draws by lane
/// and result, waits by lane, the hold a `429` set, and each round trip to the store.
#[cfg(all(feature = "metrics", feature = "redis"))]
#[test]
fn the_budgets_use_waits_and_holds_are_counted() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use monite_webhooks::metrics as m;

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut shared = Shared::Redis(support::redis::RedisServer::start());
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let (addr, fake) = fake_monite::start().await;
            fake.put_object(
                "/payables/p1",
                Some(ENTITY_ID),
                json!({"id": "p1", "status": "paid"}),
            );
            let fleet = shared.fleet("counted").await;
            let client = replica(addr, 50.0, &fleet, ReplicaTimer::skewed(0));
            // A token and a listing; a 429 (held 1 s) and its retry; a fetch.
            list(&client, 1).await;
            fake.inject(fault(
                "/v1/webhook_subscriptions",
                http::StatusCode::TOO_MANY_REQUESTS,
                Some(1),
            ));
            list(&client, 1).await;
            client.fetch(&payable_event()).await.unwrap();
            // One draw the store cannot give.
            shared.stop();
            let listing = client.webhook_subscriptions().list(Default::default());
            listing.try_collect::<Vec<_>>().await.unwrap_err();
        });
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let find = |name: &str, labels: &[(&str, &str)]| {
        snapshot
            .iter()
            .filter(|(key, _, _, _)| {
                let key = key.key();
                key.name() == name
                    && labels
                        .iter()
                        .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
            })
            .map(|entry| &entry.3)
            .collect::<Vec<_>>()
    };
    let counter = |name: &str, labels: &[(&str, &str)]| match find(name, labels).as_slice() {
        [DebugValue::Counter(n)] => *n,
        other => panic!("{name} {labels:?}: {other:?}"),
    };
    let samples = |name: &str, labels: &[(&str, &str)]| -> Vec<f64> {
        match find(name, labels).as_slice() {
            [DebugValue::Histogram(values)] => values.iter().map(|v| v.into_inner()).collect(),
            other => panic!("{name} {labels:?}: {other:?}"),
        }
    };
    let background = [("lane", "background"), ("result", "ok")];
    assert_eq!(counter(m::BUDGET_DRAWS, &background), 4);
    assert_eq!(
        counter(m::BUDGET_DRAWS, &[("lane", "live"), ("result", "ok")]),
        1
    );
    let failed = [("lane", "background"), ("result", "error")];
    assert_eq!(counter(m::BUDGET_DRAWS, &failed), 1);
    assert_eq!(counter(m::BUDGET_HOLDS, &[("reason", "rate_limited")]), 1);
    // Every slot's wait, by lane; the retry slept out its `Retry-After` before asking, so
    // no wait of the budget reaches the hold's second.
    let waits = samples(m::BUDGET_WAIT, &[("lane", "background")]);
    assert_eq!(waits.len(), 4);
    assert!(waits.iter().all(|w| *w < 1.0), "{waits:?}");
    assert_eq!(samples(m::BUDGET_WAIT, &[("lane", "live")]).len(), 1);
    let reserves = samples(
        m::BUDGET_STORE_DURATION,
        &[("op", "reserve"), ("result", "ok")],
    );
    assert_eq!(reserves.len(), 5);
    let holds = samples(
        m::BUDGET_STORE_DURATION,
        &[("op", "hold"), ("result", "ok")],
    );
    assert_eq!(holds.len(), 1);
}
