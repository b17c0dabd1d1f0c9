//! Reproductions for review turn 4 (reconciler, checkpoints, watchdog). Each test asserts
//! what the crate promises; on the reviewed tree (418bf88) each one FAILS. C7 (T4-22) was
//! added with the fixes.
//!
//! cargo test --features client,metrics --test reconcile reconcile::review_turn4:: -- --nocapture --test-threads 1

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use monite_webhooks::client::Timer;
use monite_webhooks::jiff::Timestamp;
use monite_webhooks::metrics as m;
use monite_webhooks::reconcile::{CheckpointStore, FileCheckpoints};
use monite_webhooks::watchdog::Watchdog;
use support::client::client;
use support::fake_monite;

/// A clock that jumps instead of waiting, and adds up what was waited.
#[derive(Clone)]
struct Jumping(Arc<Mutex<(Instant, Duration)>>);

impl Jumping {
    fn new() -> Self {
        Self(Arc::new(Mutex::new((Instant::now(), Duration::ZERO))))
    }
}

impl Timer for Jumping {
    fn now(&self) -> Instant {
        self.0.lock().unwrap().0
    }
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let mut state = self.0.lock().unwrap();
        state.0 += duration;
        state.1 += duration;
        Box::pin(std::future::ready(()))
    }
}

// ---------------------------------------------------------------------------------------
// C1: FileCheckpoints::save rewrites and fsyncs the whole file for every entity, inside the
// (synchronous) call, under a std Mutex, on the async executor: a cycle over N entities
// writes O(N²) bytes and blocks the runtime thread N times. Fixed: a save marks the map
// dirty, and the flush the reconciler makes once per cycle writes the file, off the async
// threads.
// ---------------------------------------------------------------------------------------
#[tokio::test(flavor = "current_thread")]
async fn c1_file_checkpoints_rewrite_the_whole_file_for_each_entity() {
    let n: usize = std::env::var("C1_ENTITIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let path = std::env::temp_dir().join(format!("review-c1-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let store = FileCheckpoints::open(&path).unwrap();
    let at: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
    let started = Instant::now();
    let mut written: u64 = 0;
    let mut slowest = Duration::ZERO;
    for i in 0..n {
        let entity = format!("e0000000-0000-4000-8000-{i:012}");
        let one = Instant::now();
        store.save(&entity, at).await.unwrap();
        slowest = slowest.max(one.elapsed());
        written += std::fs::metadata(&path).map_or(0, |m| m.len());
    }
    // The end of the cycle.
    store.flush().await.unwrap();
    written += std::fs::metadata(&path).unwrap().len();
    let elapsed = started.elapsed();
    let size = std::fs::metadata(&path).unwrap().len();
    eprintln!(
        "C1 {n} saves: {elapsed:?} in all, slowest {slowest:?} (the executor blocked that \
         long), {written} bytes written for a final file of {size} bytes ({}x)",
        written / size
    );
    let reopened = FileCheckpoints::open(&path).unwrap().all().await.unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(reopened.len(), n, "a flushed checkpoint was lost");
    assert!(
        written < 100 * size,
        "{written} bytes written for a {size}-byte file"
    );
}

// ---------------------------------------------------------------------------------------
// C2: `monite_webhooks_subscription_enabled{object_type}` is one gauge per object type:
// with a disabled and an enabled subscription of the same type, it reads whichever was
// listed last, here 1 while a subscription is disabled.
// ---------------------------------------------------------------------------------------
#[test]
fn c2_the_enabled_gauge_reads_1_while_a_subscription_of_its_type_is_disabled() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let disabled = metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let (addr, fake) = fake_monite::start().await;
            fake.seed("payable", "https://old.example.com/hook", "disabled");
            fake.seed("payable", "https://new.example.com/hook", "enabled");
            let watchdog = Watchdog::builder(client(addr)).build().unwrap();
            let check = watchdog.run_once().await.unwrap();
            check.disabled.len()
        })
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let gauge = snapshot
        .iter()
        .find(|(key, _, _, _)| {
            let key = key.key();
            key.name() == m::SUBSCRIPTION_ENABLED
                && key
                    .labels()
                    .any(|l| l.key() == "object_type" && l.value() == "payable")
        })
        .map(|entry| match &entry.3 {
            DebugValue::Gauge(g) => g.into_inner(),
            other => panic!("not a gauge: {other:?}"),
        });
    eprintln!("C2 disabled subscriptions: {disabled}; gauge: {gauge:?}");
    assert_eq!(disabled, 1);
    assert_eq!(
        gauge,
        Some(0.0),
        "a disabled payable subscription, and the gauge says {gauge:?}"
    );
}

// ---------------------------------------------------------------------------------------
// C3: once the daily deep sweep is due, every cycle is a deep sweep of EVERY entity (8-day
// windows) until one deep cycle has no failure: one entity that keeps failing (a poison
// event, a 403) makes every cycle deep, forever. `last_deep` moves only on a clean deep
// cycle (src/client/reconcile/mod.rs:261). The day passes on the client's timer, which
// the reconciler schedules its deep sweeps by.
// ---------------------------------------------------------------------------------------
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c3_one_failing_entity_makes_every_cycle_a_deep_sweep() {
    use monite_webhooks::client::{Client, Environment};
    use monite_webhooks::jiff::SignedDuration;
    use monite_webhooks::reconcile::{DEEP_EVERY, MemoryCheckpoints, Reconciler};
    use monite_webhooks::{BoxError, Dispatcher, Event, Receiver, Secret, Verifier};
    // Requests go as fast as the jumping timer lets them: no rate limit on the fake.
    let (addr, fake) = fake_monite::start_with(|f| *f.rate_limit.get_mut().unwrap() = None).await;
    let timer = Jumping::new();
    let client = Client::builder(Environment::Custom(format!("http://{addr}/v1")))
        .credentials(fake_monite::CLIENT_ID, fake_monite::CLIENT_SECRET)
        .timer(timer.clone())
        .build()
        .unwrap();
    let entities = fake.add_entities(50);
    let at = (Timestamp::now() - SignedDuration::from_secs(600)).to_string();
    let poison = fake.commit_event(&entities[0], Some(&at));
    let dispatcher = Dispatcher::builder()
        .fallback(move |event: Event, _| {
            let fails = event.id() == Some(poison.as_str());
            async move {
                if fails {
                    Err::<(), BoxError>("this event's handler keeps failing".into())
                } else {
                    Ok(())
                }
            }
        })
        .build();
    let receiver = Receiver::new(
        Verifier::new(Secret::new("whsec_recovery").unwrap()),
        dispatcher,
    );
    let reconciler = Reconciler::builder(client, receiver, MemoryCheckpoints::default())
        .cold_per_cycle(1)
        .allow_process_local_store()
        .build()
        .unwrap();
    let mut cycles = Vec::new();
    let cycle = reconciler.run_once().await.unwrap();
    cycles.push((cycle.deep, cycle.swept + cycle.failed.len()));
    timer.sleep(DEEP_EVERY + Duration::from_secs(1)).await;
    for _ in 0..4 {
        let cycle = reconciler.run_once().await.unwrap();
        cycles.push((cycle.deep, cycle.swept + cycle.failed.len()));
    }
    eprintln!("C3 (deep, entities swept) per cycle: {cycles:?}");
    let deep: Vec<bool> = cycles.iter().map(|(deep, _)| *deep).collect();
    assert_eq!(
        deep,
        [false, true, false, false, false],
        "one deep sweep a day, not every cycle"
    );
    // After the deep cycle: the cold one of the turn, and the failing entity, which still
    // owes its deep window; not all 50.
    for (_, swept) in &cycles[2..] {
        assert!(*swept <= 2, "{cycles:?}");
    }
    // A day later the next deep sweep comes, though that entity never stopped failing.
    timer.sleep(DEEP_EVERY).await;
    assert!(reconciler.run_once().await.unwrap().deep);
}

// ---------------------------------------------------------------------------------------
// C4: the reconciler accepts a receiver on the default in-process `MemoryStore` (the
// example servers wire exactly that when neither DATABASE_URL nor REDIS_URL is set). After
// a restart the store is empty but the checkpoints are not: every event within the
// lookback (15 min at least) of each checkpoint runs a second time. Fixed: such a store is
// refused unless allowed by name; a store that outlives the process (here one the two
// "processes" share, as they would a database) runs the event once.
// ---------------------------------------------------------------------------------------
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c4_a_memory_store_reconciler_reruns_the_lookback_after_a_restart() {
    use std::collections::HashMap;

    use monite_webhooks::idempotency::{Claim, ClaimToken};
    use monite_webhooks::jiff::SignedDuration;
    use monite_webhooks::reconcile::{MemoryCheckpoints, Reconciler};
    use monite_webhooks::{BoxError, ErrorKind, Idempotency, IdempotencyStore, MemoryStore};
    use support::client::{counting_receiver, counting_receiver_over};

    /// A store outside either "process", as PostgreSQL or Redis is.
    #[derive(Clone, Default)]
    struct Outside(Arc<MemoryStore>);
    impl IdempotencyStore for Outside {
        async fn claim(
            &self,
            key: &str,
            token: &ClaimToken,
            lease: Duration,
        ) -> Result<Claim, BoxError> {
            self.0.claim(key, token, lease).await
        }
        async fn complete(
            &self,
            key: &str,
            token: &ClaimToken,
            retention: Duration,
        ) -> Result<bool, BoxError> {
            self.0.complete(key, token, retention).await
        }
        async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), BoxError> {
            self.0.release(key, token).await
        }
        fn survives_restart(&self) -> bool {
            true
        }
    }

    let (addr, fake) = fake_monite::start().await;
    let entity = fake.add_entities(1).remove(0);
    let at = (Timestamp::now() - SignedDuration::from_secs(300)).to_string();
    let event = fake.commit_event(&entity, Some(&at));
    let path = std::env::temp_dir().join(format!("review-c4-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let refused = Reconciler::builder(
        client(addr),
        counting_receiver(&runs, None),
        MemoryCheckpoints::default(),
    )
    .build()
    .unwrap_err();
    eprintln!("C4 over a MemoryStore: {refused}");
    assert_eq!(refused.kind(), ErrorKind::Misconfigured);
    assert!(refused.to_string().contains("allow_process_local_store"));
    let outside = Outside::default();
    for process in 0..2 {
        // Each "process": a fresh receiver, the same store outside it, the same
        // checkpoint file.
        let reconciler = Reconciler::builder(
            client(addr),
            counting_receiver_over(&runs, Idempotency::new(outside.clone())),
            FileCheckpoints::open(&path).unwrap(),
        )
        .build()
        .unwrap();
        let cycle = reconciler.run_once().await.unwrap();
        eprintln!("C4 process {process}: handled {}", cycle.handled);
    }
    let _ = std::fs::remove_file(&path);
    let ran = runs.lock().unwrap().get(&event).copied();
    eprintln!("C4 event {event} ran {ran:?} time(s)");
    assert_eq!(ran, Some(1), "the event ran again after the restart");
}

// ---------------------------------------------------------------------------------------
// C5: a `RateLimit-Reset` given as a Unix time is measured against the LOCAL clock
// (src/client/rate.rs:212), not Monite's `Date`, although `Retry-After` dates and sweep
// windows use Monite's clock. With the local clock an hour behind Monite's, a spent quota
// that resets in 5 s holds every request of the client for an hour (the 3,600 s clamp).
// ---------------------------------------------------------------------------------------
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c5_a_unix_ratelimit_reset_is_read_on_the_local_clock() {
    use axum::routing::get;
    use futures_util::TryStreamExt as _;
    use monite_webhooks::client::{Client, Environment, ListQuery};
    use monite_webhooks::jiff::SignedDuration;

    // Monite's clock is an hour ahead of ours; its quota is spent and resets in 5 s.
    let app = axum::Router::new()
        .route(
            "/v1/auth/token",
            axum::routing::post(|| async {
                axum::Json(serde_json::json!({
                    "access_token": "t", "expires_in": 3600, "token_type": "Bearer"
                }))
            }),
        )
        .route(
            "/v1/entities",
            get(|| async {
                let monite_now = Timestamp::now() + SignedDuration::from_hours(1);
                let date = monite_webhooks::jiff::fmt::rfc2822::DateTimePrinter::new()
                    .timestamp_to_rfc9110_string(&monite_now)
                    .unwrap();
                let reset = (monite_now.as_second() + 5).to_string();
                (
                    [
                        ("date", date),
                        ("ratelimit-limit", "30".to_owned()),
                        ("ratelimit-remaining", "0".to_owned()),
                        ("ratelimit-reset", reset),
                    ],
                    axum::Json(serde_json::json!({"data": []})),
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let timer = Jumping::new();
    let client = Client::builder(Environment::Custom(format!("http://{addr}/v1")))
        .credentials("id", "secret")
        .timer(timer.clone())
        .build()
        .unwrap();
    for _ in 0..2 {
        let _: Vec<_> = client
            .entities()
            .list(ListQuery::new())
            .try_collect()
            .await
            .unwrap();
    }
    let waited = timer.0.lock().unwrap().1;
    eprintln!("C5 the second request waited {waited:?} for a quota that resets in 5 s");
    assert!(waited <= Duration::from_secs(10), "waited {waited:?}");
}

// ---------------------------------------------------------------------------------------
// C6: `Recovery::in_flight_wait(Duration::MAX)` ("wait as long as it takes") panics with
// "overflow when adding duration to instant" as soon as one event is held in flight
// (src/client/recover.rs:337: `Instant::now() + self.in_flight_wait`).
// ---------------------------------------------------------------------------------------
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c6_an_unbounded_in_flight_wait_panics() {
    use monite_webhooks::jiff::SignedDuration;
    use monite_webhooks::{Dispatcher, Event, Receiver, Secret, Verifier};

    let (addr, fake) = fake_monite::start().await;
    let entity = fake.add_entities(1).remove(0);
    let at = (Timestamp::now() - SignedDuration::from_secs(600)).to_string();
    fake.commit_event(&entity, Some(&at));
    let receiver = Receiver::new(
        Verifier::new(Secret::new("whsec_recovery").unwrap()),
        Dispatcher::builder()
            .fallback(|_: Event, _| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
            })
            .build(),
    );
    // A delivery of the same event is being handled (3 s) while the recovery runs.
    let body = fake.entity_events()[0].to_string();
    let delivering = receiver.clone();
    tokio::spawn(async move {
        let event = Event::parse(bytes::Bytes::from(body)).unwrap();
        delivering.dispatch(event).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = client(addr);
    let recovering = receiver.clone();
    let run = tokio::spawn(async move {
        client
            .recover_missed_events(&recovering, entity)
            .in_flight_wait(Duration::MAX)
            .run()
            .await
            .map(|p| p.handled)
    })
    .await;
    eprintln!("C6 recovery with in_flight_wait(Duration::MAX): {run:?}");
    assert!(run.is_ok(), "the recovery panicked");
}

// ---------------------------------------------------------------------------------------
// C7 (T4-22): with `unhandled_status` not a success, the receiver releases an event no
// handler takes so that a retry runs it; a recovery counted it as done, so a sweep moved
// the checkpoint past it, and only the next deep sweep came back to it.
// ---------------------------------------------------------------------------------------
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c7_a_sweep_does_not_pass_an_event_the_receiver_released() {
    use http::StatusCode;
    use monite_webhooks::jiff::SignedDuration;
    use monite_webhooks::reconcile::{MemoryCheckpoints, Reconciler};
    use monite_webhooks::{Dispatcher, ErrorKind, Receiver, Secret, Verifier};

    let (addr, fake) = fake_monite::start().await;
    let entity = fake.add_entities(1).remove(0);
    let at = (Timestamp::now() - SignedDuration::from_secs(300)).to_string();
    let event = fake.commit_event(&entity, Some(&at));
    let verifier = || Verifier::new(Secret::new("whsec_recovery").unwrap());
    // No handler takes the event, and the receiver answers such events 503 for a retry.
    let releasing = Receiver::builder(verifier(), Dispatcher::builder().build())
        .unhandled_status(StatusCode::SERVICE_UNAVAILABLE)
        .build();
    let reconciler = Reconciler::builder(
        client(addr),
        releasing.clone(),
        MemoryCheckpoints::default(),
    )
    .allow_process_local_store()
    .build()
    .unwrap();
    let cycle = reconciler.run_once().await.unwrap();
    eprintln!("C7 cycle: {cycle:?}");
    assert_eq!(cycle.swept, 0, "the sweep went past a released event");
    assert!(cycle.failed[0].1.contains(&event), "{:?}", cycle.failed);
    assert!(
        reconciler.status().await.unwrap().is_empty(),
        "the checkpoint moved"
    );
    let client = client(addr);
    let run = client
        .recover_missed_events(&releasing, &entity)
        .run()
        .await;
    assert_eq!(run.unwrap_err().kind(), ErrorKind::Handler);
    // Answered 200 (the default), an event no handler takes is done: counted, passed.
    let acknowledging = Receiver::new(verifier(), Dispatcher::builder().build());
    let done = client
        .recover_missed_events(&acknowledging, &entity)
        .run()
        .await
        .unwrap();
    assert_eq!(done.unhandled, 1);
}
