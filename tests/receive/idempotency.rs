//! Exactly-once handling: one behavioural table run against the in-memory store and against
//! a real `redis-server` (feature `redis`), plus replicas sharing Redis and Redis going away.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::fixture::{self, deliver, deliver_until_not_in_flight, fresh_id};

use http::StatusCode;
use monite_webhooks::idempotency::{ClaimToken, KeyScope};
use monite_webhooks::{
    Dispatcher, Event, Idempotency, IdempotencyStore, MemoryStore, ObjectType, Receiver,
    ReceiverBuilder, Verifier,
};
use tokio::sync::Semaphore;

/// Handler runs per event id, and what the handlers do per action.
#[derive(Clone)]
struct World {
    runs: Arc<Mutex<HashMap<String, usize>>>,
    // `tag.updated` waits here until the test lets it finish.
    gate: Arc<Semaphore>,
}

impl Default for World {
    fn default() -> Self {
        Self {
            runs: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        }
    }
}

impl World {
    fn runs(&self, id: &str) -> usize {
        self.runs.lock().unwrap().get(id).copied().unwrap_or(0)
    }

    fn receiver(&self, idempotency: Idempotency) -> Receiver {
        self.receiver_with(idempotency, &[ObjectType::Tag], |builder| builder)
    }

    /// A receiver with handlers for `objects`, configured further by `configure`.
    fn receiver_with(
        &self,
        idempotency: Idempotency,
        objects: &[ObjectType],
        configure: impl FnOnce(ReceiverBuilder) -> ReceiverBuilder,
    ) -> Receiver {
        let dispatcher = objects
            .iter()
            .fold(Dispatcher::builder(), |builder, object| {
                let world = self.clone();
                builder.on_object(object.clone(), move |event: Event| {
                    let world = world.clone();
                    async move { world.handle(event).await }
                })
            })
            .build();
        let builder =
            Receiver::builder(Verifier::new(fixture::secret(fixture::CURRENT)), dispatcher)
                .idempotency(idempotency);
        configure(builder).build()
    }

    /// Waits (a few seconds at most) until `id` has run `runs` times.
    async fn wait_for_runs(&self, id: &str, runs: usize) {
        for _ in 0..500 {
            if self.runs(id) >= runs {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{id} ran {} times, expected {runs}", self.runs(id));
    }

    async fn handle(&self, event: Event) -> Result<(), std::io::Error> {
        let id = event.id().unwrap_or("legacy").to_owned();
        let run = {
            let mut runs = self.runs.lock().unwrap();
            let run = runs.entry(id).or_default();
            *run += 1;
            *run
        };
        match event.action() {
            "tag.updated" => self.gate.acquire().await.unwrap().forget(),
            "tag.slow" => tokio::time::sleep(Duration::from_millis(50)).await,
            "tag.deleted" if run == 1 => return Err(std::io::Error::other("first attempt fails")),
            "tag.panics" if run == 1 => panic!("first attempt panics"),
            _ => {}
        }
        Ok(())
    }
}

fn body(id: &str, action: &str) -> String {
    let object_type = action.split('.').next().unwrap_or("tag");
    format!(
        r#"{{"id":"{id}","object_type":"{object_type}","action":"{action}","object":{{"id":"o"}},"webhook_subscription_id":"sub-1"}}"#
    )
}

/// Starts a delivery of `body`, waits until its handler has started, then drops it, as
/// when Monite or a proxy gives up and closes the connection.
async fn deliver_and_hang_up(world: &World, receiver: &Receiver, id: &str, body: &str) {
    let runs = world.runs(id);
    let (receiver, body) = (receiver.clone(), body.to_owned());
    let delivery = tokio::spawn(async move { deliver(&receiver, &body).await });
    world.wait_for_runs(id, runs + 1).await;
    delivery.abort();
    assert!(delivery.await.unwrap_err().is_cancelled());
}

/// With the store down, a delivery is answered `503` and runs nothing; once the store is
/// back, Monite's retry is handled, once.
#[cfg(any(feature = "redis", feature = "postgres"))]
async fn down_then_back(world: &World, receiver: &Receiver, mut store_up: impl FnMut(bool)) {
    let id = fresh_id();
    store_up(false);
    assert_eq!(
        deliver(receiver, &body(&id, "tag.created")).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(world.runs(&id), 0, "a handler ran without the store");

    store_up(true);
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        status = deliver(receiver, &body(&id, "tag.created")).await;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, StatusCode::OK, "the receiver did not recover");
    assert_eq!(world.runs(&id), 1);
}

/// The behaviour every store must show, through the receiver.
async fn behaviour_table<S: IdempotencyStore + Clone>(store: S) {
    let world = World::default();
    let receiver = world.receiver(Idempotency::new(store.clone()));

    // A duplicate after success answers 200 and runs nothing.
    let id = fresh_id();
    assert_eq!(
        deliver(&receiver, &body(&id, "tag.created")).await,
        StatusCode::OK
    );
    assert_eq!(
        deliver(&receiver, &body(&id, "tag.created")).await,
        StatusCode::OK
    );
    assert_eq!(world.runs(&id), 1, "duplicate after success");

    // By default the event id alone is the key: another subscription's delivery of the
    // same event is a duplicate; per subscription, it is another delivery to handle.
    let other_subscription = body(&id, "tag.created").replace("sub-1", "sub-2");
    assert_eq!(
        deliver(&receiver, &other_subscription).await,
        StatusCode::OK
    );
    assert_eq!(world.runs(&id), 1, "per-event key");
    let per_subscription =
        world.receiver(Idempotency::new(store.clone()).with_scope(KeyScope::PerSubscription));
    assert_eq!(
        deliver(&per_subscription, &other_subscription).await,
        StatusCode::OK
    );
    assert_eq!(world.runs(&id), 2, "per-subscription key");

    // A duplicate while the first is in flight answers 409; after it finishes, 200.
    let id = fresh_id();
    let first = {
        let receiver = receiver.clone();
        let body = body(&id, "tag.updated");
        tokio::spawn(async move { deliver(&receiver, &body).await })
    };
    while world.runs(&id) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        deliver(&receiver, &body(&id, "tag.updated")).await,
        StatusCode::CONFLICT
    );
    world.gate.add_permits(1);
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    assert_eq!(
        deliver(&receiver, &body(&id, "tag.updated")).await,
        StatusCode::OK
    );
    assert_eq!(world.runs(&id), 1, "duplicate while in flight");

    // A failed attempt releases its claim: Monite's retry runs the handler again.
    let id = fresh_id();
    assert_eq!(
        deliver(&receiver, &body(&id, "tag.deleted")).await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        deliver(&receiver, &body(&id, "tag.deleted")).await,
        StatusCode::OK
    );
    assert_eq!(
        deliver(&receiver, &body(&id, "tag.deleted")).await,
        StatusCode::OK
    );
    assert_eq!(world.runs(&id), 2, "retry after failure");

    // So does a panic.
    let id = fresh_id();
    assert_eq!(
        deliver(&receiver, &body(&id, "tag.panics")).await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        deliver(&receiver, &body(&id, "tag.panics")).await,
        StatusCode::OK
    );
    assert_eq!(world.runs(&id), 2, "retry after panic");

    // A claim left by a crashed instance blocks until its lease runs out, then is taken over.
    let id = fresh_id();
    let short =
        world.receiver(Idempotency::new(store.clone()).with_lease(Duration::from_millis(300)));
    let crashed = ClaimToken::new();
    let key = format!("evt:{id}");
    let claimed = store
        .claim(&key, &crashed, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(claimed, monite_webhooks::idempotency::Claim::Acquired);
    assert_eq!(
        deliver(&short, &body(&id, "tag.created")).await,
        StatusCode::CONFLICT
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        deliver(&short, &body(&id, "tag.created")).await,
        StatusCode::OK
    );
    assert_eq!(world.runs(&id), 1, "lease expiry");
    // The crashed instance's late release must not free the new owner's done mark.
    store.release(&key, &crashed).await.unwrap();
    assert_eq!(
        deliver(&short, &body(&id, "tag.created")).await,
        StatusCode::OK
    );
    assert_eq!(world.runs(&id), 1, "stale release");

    // Legacy envelopes name no event: two real updates of one object are byte-identical,
    // so by default each delivery runs; a window merges them only within it.
    let legacy = r#"{"object_id":"o-legacy","object_type":"tag","action":"update","name":"hook"}"#
        .replace("o-legacy", &fresh_id());
    let before = world.runs("legacy");
    assert_eq!(deliver(&receiver, &legacy).await, StatusCode::OK);
    assert_eq!(deliver(&receiver, &legacy).await, StatusCode::OK);
    assert_eq!(
        world.runs("legacy"),
        before + 2,
        "legacy updates are not merged"
    );
    let windowed = world.receiver(
        Idempotency::new(store.clone()).with_legacy_dedup_window(Duration::from_secs(60)),
    );
    assert_eq!(deliver(&windowed, &legacy).await, StatusCode::OK);
    assert_eq!(deliver(&windowed, &legacy).await, StatusCode::OK);
    assert_eq!(world.runs("legacy"), before + 3, "legacy window");

    // An event no handler takes, answered 503 so that Monite retries: the retry is not a
    // duplicate, and once it reaches a receiver with a handler, the handler runs.
    let id = fresh_id();
    let answer_503 =
        |builder: ReceiverBuilder| builder.unhandled_status(StatusCode::SERVICE_UNAVAILABLE);
    let old = world.receiver_with(Idempotency::new(store.clone()), &[], answer_503);
    let new = world.receiver_with(
        Idempotency::new(store.clone()),
        &[ObjectType::Payable],
        answer_503,
    );
    let payable = body(&id, "payable.created");
    assert_eq!(
        deliver(&old, &payable).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        deliver(&old, &payable).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(deliver(&new, &payable).await, StatusCode::OK);
    assert_eq!(deliver(&new, &payable).await, StatusCode::OK);
    assert_eq!(world.runs(&id), 1, "unhandled retry");

    // A delivery dropped mid-handler releases its claim: the retry runs the handler.
    let id = fresh_id();
    deliver_and_hang_up(&world, &receiver, &id, &body(&id, "tag.updated")).await;
    world.gate.add_permits(1);
    assert_eq!(
        deliver_until_not_in_flight(&receiver, &body(&id, "tag.updated")).await,
        StatusCode::OK
    );
    assert_eq!(world.runs(&id), 2, "cancelled, then retried");

    // With spawned handlers, a dropped delivery's handler runs on to the end: retries get
    // 409 meanwhile, then 200 with no second run.
    let spawned = world.receiver_with(Idempotency::new(store.clone()), &[ObjectType::Tag], |b| {
        b.spawn_handlers(|task| {
            tokio::spawn(task);
        })
    });
    let id = fresh_id();
    deliver_and_hang_up(&world, &spawned, &id, &body(&id, "tag.updated")).await;
    assert_eq!(
        deliver(&spawned, &body(&id, "tag.updated")).await,
        StatusCode::CONFLICT
    );
    world.gate.add_permits(1);
    assert_eq!(
        deliver_until_not_in_flight(&spawned, &body(&id, "tag.updated")).await,
        StatusCode::OK
    );
    assert_eq!(
        world.runs(&id),
        1,
        "the spawned handler finished; no second run"
    );

    // Many concurrent duplicates across two receivers sharing the store: one run.
    let other = world.receiver(Idempotency::new(store));
    concurrent_duplicates_run_once(&world, &[receiver, other]).await;
}

/// Delivers each of 5 events 10 times at once, spread over `receivers`.
async fn concurrent_duplicates_run_once(world: &World, receivers: &[Receiver]) {
    let ids: Vec<String> = (0..5).map(|_| fresh_id()).collect();
    let mut deliveries = Vec::new();
    for round in 0..10 {
        for id in &ids {
            let receiver = receivers[round % receivers.len()].clone();
            let body = body(id, "tag.slow");
            deliveries.push(tokio::spawn(async move { deliver(&receiver, &body).await }));
        }
    }
    let mut statuses = Vec::new();
    for delivery in deliveries {
        statuses.push(delivery.await.unwrap());
    }
    for id in &ids {
        assert_eq!(world.runs(id), 1, "{id} ran more than once");
    }
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    // Every event was handled by exactly one of its deliveries: a later one sees it done.
    for id in &ids {
        assert_eq!(
            deliver(&receivers[0], &body(id, "tag.slow")).await,
            StatusCode::OK
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_behaviour() {
    behaviour_table(MemoryStore::new()).await;
}

#[tokio::test]
async fn without_idempotency_every_delivery_runs() {
    let world = World::default();
    let dispatcher = {
        let world = world.clone();
        Dispatcher::builder()
            .on_object(ObjectType::Tag, move |event: Event| {
                let world = world.clone();
                async move { world.handle(event).await }
            })
            .build()
    };
    let receiver = Receiver::builder(Verifier::new(fixture::secret(fixture::CURRENT)), dispatcher)
        .without_idempotency()
        .build();
    let id = fresh_id();
    for _ in 0..3 {
        assert_eq!(
            deliver(&receiver, &body(&id, "tag.created")).await,
            StatusCode::OK
        );
    }
    assert_eq!(world.runs(&id), 3);
}

/// F7: two services sharing one store, each with a subscription of its own to the same
/// object type, receive the same event (one id); each runs its own handler once, because
/// each has its own namespace.
#[cfg(any(feature = "redis", feature = "postgres"))]
async fn two_services_on_one_store_each_handle_the_event<S: IdempotencyStore>(
    billing: S,
    ledger: S,
) {
    let (a, b) = (World::default(), World::default());
    let billing = a.receiver(Idempotency::new(billing));
    let ledger = b.receiver(Idempotency::new(ledger));
    let id = fresh_id();
    for receiver in [&billing, &ledger] {
        assert_eq!(
            deliver(receiver, &body(&id, "tag.created")).await,
            StatusCode::OK
        );
    }
    assert_eq!(
        (a.runs(&id), b.runs(&id)),
        (1, 1),
        "one service took the other's done mark for its own"
    );
    // Each still answers its own duplicates without running again.
    assert_eq!(
        deliver(&ledger, &body(&id, "tag.created")).await,
        StatusCode::OK
    );
    assert_eq!(b.runs(&id), 1);
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use crate::support::redis::RedisServer;
    use monite_webhooks::RedisStore;
    use std::net::TcpListener;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_store_behaviour() {
        let server = RedisServer::start();
        let store = RedisStore::connect(&server.url(), "test").await.unwrap();
        behaviour_table(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_with_their_own_connections_run_each_event_once() {
        let server = RedisServer::start();
        let world = World::default();
        // As two processes would: separate connections, one Redis.
        let a = world.receiver(Idempotency::new(
            RedisStore::connect(&server.url(), "test").await.unwrap(),
        ));
        let b = world.receiver(Idempotency::new(
            RedisStore::connect(&server.url(), "test").await.unwrap(),
        ));
        concurrent_duplicates_run_once(&world, &[a, b]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_down_answers_503_runs_nothing_and_recovers() {
        let mut server = RedisServer::start();
        let world = World::default();
        let receiver = world.receiver(Idempotency::new(
            RedisStore::connect(&server.url(), "test").await.unwrap(),
        ));
        down_then_back(&world, &receiver, |up| {
            if up { server.restart() } else { server.stop() }
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_services_sharing_redis_keep_their_events_apart() {
        let server = RedisServer::start();
        two_services_on_one_store_each_handle_the_event(
            RedisStore::connect(&server.url(), "billing").await.unwrap(),
            RedisStore::connect(&server.url(), "ledger").await.unwrap(),
        )
        .await;
        for bad in ["", "a b", "a:b", "x".repeat(65).as_str(), "é"] {
            let error = RedisStore::connect(&server.url(), bad).await.unwrap_err();
            assert_eq!(
                error.kind(),
                monite_webhooks::ErrorKind::Misconfigured,
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn connecting_to_nothing_is_a_clear_error() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let error = RedisStore::connect(&format!("redis://:hunter2@127.0.0.1:{port}/"), "test")
            .await
            .unwrap_err();
        assert_eq!(error.kind(), monite_webhooks::ErrorKind::StoreUnavailable);
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    /// Every form of Redis URL redis-rs takes, each with its password, refused or
    /// unreachable: no message, `Debug` or source prints the password.
    #[tokio::test]
    async fn no_form_of_url_prints_its_password() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        for url in [
            format!("redis://:hunter2-secret@127.0.0.1:{port}/0"),
            format!("redis://user:hunter2-secret@127.0.0.1:{port}/0"),
            format!("rediss://:hunter2-secret@127.0.0.1:{port}/0"),
            format!("redis://:hunter2%2Dsecret@127.0.0.1:{port}/0"),
            "redis+unix:///nonexistent/redis.sock?db=0&pass=hunter2-secret".to_owned(),
            "redis+unix:///nonexistent/redis.sock?password=hunter2-secret".to_owned(),
            "unix:///nonexistent/redis.sock?pass=hunter2-secret".to_owned(),
            "host=127.0.0.1 password=hunter2-secret".to_owned(),
        ] {
            let error = RedisStore::connect(&url, "test").await.unwrap_err();
            support::fixture::assert_no_secret(&error, "hunter2-secret", &url);
        }
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use crate::support::pg::PgServer;
    use monite_webhooks::PostgresStore;

    async fn store(server: &PgServer) -> PostgresStore {
        let store = PostgresStore::connect(&server.url(), "test").await.unwrap();
        store.ensure_schema().await.unwrap();
        store
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_store_behaviour() {
        let server = PgServer::start();
        behaviour_table(store(&server).await).await;
    }

    /// A store that cannot be reached answers `503`, and the failure hook hears it: the
    /// watchdog counts it as a failed delivery, as Monite does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_store_reaches_on_failure() {
        let mut server = PgServer::start();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let hook = Arc::clone(&heard);
        let receiver = Receiver::builder(
            Verifier::new(fixture::secret(fixture::CURRENT)),
            Dispatcher::builder().build(),
        )
        .store(store(&server).await)
        .on_failure(move |_, error| hook.lock().unwrap().push(error.kind()))
        .build();
        server.stop();
        let status = fixture::deliver(&receiver, &body(&fresh_id(), "payable.created")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            *heard.lock().unwrap(),
            [monite_webhooks::ErrorKind::StoreUnavailable]
        );
    }

    /// An event id holding U+0000 (JSON allows it; PostgreSQL's `text` does not) is still
    /// claimed, marked done and deduplicated, apart from the id with U+FFFD in its place.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_key_holding_nul_is_deduplicated_by_its_exact_id() {
        let server = PgServer::start();
        let store = store(&server).await;
        let lease = Duration::from_secs(60);
        let token = ClaimToken::new();
        let claim = |key: &'static str| {
            let store = store.clone();
            async move { store.claim(key, &ClaimToken::new(), lease).await.unwrap() }
        };
        use monite_webhooks::idempotency::Claim;
        assert_eq!(
            store.claim("evt:a\0b", &token, lease).await.unwrap(),
            Claim::Acquired
        );
        assert!(store.complete("evt:a\0b", &token, lease).await.unwrap());
        assert_eq!(claim("evt:a\0b").await, Claim::Done);
        assert_eq!(claim("evt:a\u{FFFD}b").await, Claim::Acquired, "another id");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_with_their_own_pools_run_each_event_once() {
        let server = PgServer::start();
        let world = World::default();
        // As two processes would: separate pools, one database; both create the schema.
        let (a, b) = tokio::join!(store(&server), store(&server));
        let (a, b) = (
            world.receiver(Idempotency::new(a)),
            world.receiver(Idempotency::new(b)),
        );
        concurrent_duplicates_run_once(&world, &[a.clone(), b.clone()]).await;

        // 50 deliveries of one event at once, over both replicas: one run.
        let id = fresh_id();
        let deliveries: Vec<_> = (0..50)
            .map(|i| {
                let receiver = if i % 2 == 0 { a.clone() } else { b.clone() };
                let body = body(&id, "tag.slow");
                tokio::spawn(async move { deliver(&receiver, &body).await })
            })
            .collect();
        let mut statuses = Vec::new();
        for delivery in deliveries {
            statuses.push(delivery.await.unwrap());
        }
        assert_eq!(world.runs(&id), 1, "{statuses:?}");
        assert!(statuses.contains(&StatusCode::OK), "{statuses:?}");
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT),
            "{statuses:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_down_answers_503_runs_nothing_and_recovers() {
        let mut server = PgServer::start();
        let world = World::default();
        let receiver = world.receiver(Idempotency::new(store(&server).await));
        down_then_back(&world, &receiver, |up| {
            if up {
                server.start_again()
            } else {
                server.stop()
            }
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expired_rows_are_pruned_without_a_cron_job() {
        let server = PgServer::start();
        let store = store(&server).await.with_prune_interval(Duration::ZERO);
        let world = World::default();
        let receiver = world
            .receiver(Idempotency::new(store.clone()).with_retention(Duration::from_millis(200)));
        let old = fresh_id();
        assert_eq!(
            deliver(&receiver, &body(&old, "tag.created")).await,
            StatusCode::OK
        );
        let rows = |key: String| {
            let pool = store.pool().clone();
            async move {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM monite_webhook_claims WHERE key = $1",
                )
                .bind(key)
                .fetch_one(&pool)
                .await
                .unwrap()
            }
        };
        assert_eq!(rows(format!("test:evt:{old}")).await, 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Any claim may start the prune; it runs in the background.
        let new = fresh_id();
        assert_eq!(
            deliver(&receiver, &body(&new, "tag.created")).await,
            StatusCode::OK
        );
        for _ in 0..100 {
            if rows(format!("test:evt:{old}")).await == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            rows(format!("test:evt:{old}")).await,
            0,
            "the expired mark stayed"
        );
        assert_eq!(
            rows(format!("test:evt:{new}")).await,
            1,
            "the fresh mark went"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_services_sharing_a_database_keep_their_events_apart() {
        let server = PgServer::start();
        let billing = PostgresStore::connect(&server.url(), "billing")
            .await
            .unwrap();
        billing.ensure_schema().await.unwrap();
        let ledger = PostgresStore::connect(&server.url(), "ledger")
            .await
            .unwrap();
        two_services_on_one_store_each_handle_the_event(billing.clone(), ledger).await;
        for bad in ["", "a b", "a:b", "x".repeat(65).as_str()] {
            let error = PostgresStore::new(billing.pool().clone(), bad).unwrap_err();
            assert_eq!(
                error.kind(),
                monite_webhooks::ErrorKind::Misconfigured,
                "{bad:?}"
            );
        }
    }

    /// F15: `with_prune_interval(Duration::MAX)` leaves expired rows to the user's own
    /// `prune`: no claim prunes them, not even the first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_endless_prune_interval_never_prunes_by_itself() {
        let server = PgServer::start();
        let store = store(&server).await.with_prune_interval(Duration::MAX);
        let world = World::default();
        let receiver = world
            .receiver(Idempotency::new(store.clone()).with_retention(Duration::from_millis(1)));
        for _ in 0..2 {
            let id = fresh_id();
            assert_eq!(
                deliver(&receiver, &body(&id, "tag.created")).await,
                StatusCode::OK
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM monite_webhook_claims")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(rows, 2, "a prune ran by itself");
        assert_eq!(store.prune().await.unwrap(), 2);
    }

    #[tokio::test]
    async fn connecting_to_nothing_is_a_clear_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let error =
            PostgresStore::connect(&format!("postgres://u:hunter2@127.0.0.1:{port}/db"), "test")
                .await
                .unwrap_err();
        assert_eq!(error.kind(), monite_webhooks::ErrorKind::StoreUnavailable);
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    /// Every form of connection string PostgreSQL users write, each with its password,
    /// refused or unreachable: no message, `Debug` or source prints the password.
    #[tokio::test]
    async fn no_form_of_connection_string_prints_its_password() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        for url in [
            format!("postgres://app:hunter2-secret@127.0.0.1:{port}/app"),
            format!("postgresql://app:hunter2%2Dsecret@127.0.0.1:{port}/app"),
            format!("postgres://127.0.0.1:{port}/app?user=app&password=hunter2-secret"),
            format!(
                "postgres://app@127.0.0.1:{port}/app?sslmode=prefer&sslpassword=hunter2-secret"
            ),
            "postgresql:///app?host=/nonexistent&password=hunter2-secret".to_owned(),
            format!("host=127.0.0.1 port={port} user=app password=hunter2-secret dbname=app"),
            format!("host=127.0.0.1 port={port} password = 'hunter2-secret'"),
            format!("postgres://127.0.0.1:{port}/app password=hunter2-secret"),
        ] {
            let error = PostgresStore::connect(&url, "test").await.unwrap_err();
            support::fixture::assert_no_secret(&error, "hunter2-secret", &url);
        }
    }

    #[tokio::test]
    async fn table_prefixes_are_checked() {
        let server = PgServer::start();
        let store = store(&server).await;
        for bad in ["", "1x", "a b", "a;drop", "a.b.c", "x\"y"] {
            let error = store.clone().with_table_prefix(bad).unwrap_err();
            assert_eq!(error.kind(), monite_webhooks::ErrorKind::Misconfigured);
        }
        sqlx::query("CREATE SCHEMA billing")
            .execute(store.pool())
            .await
            .unwrap();
        let prefixed = store.with_table_prefix("billing.hooks").unwrap();
        prefixed.ensure_schema().await.unwrap();
        let (key, token, lease) = ("evt:prefixed", ClaimToken::new(), Duration::from_secs(60));
        let claimed = prefixed.claim(key, &token, lease).await.unwrap();
        assert_eq!(claimed, monite_webhooks::idempotency::Claim::Acquired);
        assert!(prefixed.complete(key, &token, lease).await.unwrap());
        let again = prefixed
            .claim(key, &ClaimToken::new(), lease)
            .await
            .unwrap();
        assert_eq!(again, monite_webhooks::idempotency::Claim::Done);
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM billing.hooks_claims")
            .fetch_one(prefixed.pool())
            .await
            .unwrap();
        assert_eq!(rows, 1);
    }
}
