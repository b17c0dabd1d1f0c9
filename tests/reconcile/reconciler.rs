//! The reconciler against the fake Monite (which enforces 30 requests/s): many entities,
//! late commits, ties across pages, an expiring pagination token, `created_at: null`, a
//! 5xx, a failing handler. In every case: no event missed (nulls aside), none handled
//! twice, no checkpoint ahead of what was handled, the rate within the budget.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use monite_webhooks::client::{Client, Environment};
use monite_webhooks::jiff::{SignedDuration, Timestamp};
use monite_webhooks::reconcile::{
    CheckpointStore, FileCheckpoints, MemoryCheckpoints, Reconciler, ReconcilerBuilder, Report,
};
use monite_webhooks::{ErrorKind, Event};
use support::client::{counting_receiver, fault};
use support::fake_monite::{self, CLIENT_ID, CLIENT_SECRET, Fake};

type Runs = Arc<Mutex<HashMap<String, usize>>>;

fn client(addr: std::net::SocketAddr, max_rate: f64) -> Client {
    Client::builder(Environment::Custom(format!("http://{addr}/v1")))
        .credentials(CLIENT_ID, CLIENT_SECRET)
        .max_rate(max_rate)
        .build()
        .unwrap()
}

fn ago(seconds: i64) -> String {
    (Timestamp::now() - SignedDuration::from_secs(seconds)).to_string()
}

/// Every event the fake holds with a `created_at` at or before `until` ran exactly once;
/// none ran twice; events with a null `created_at` are counted apart.
fn assert_each_once(fake: &Fake, runs: &Runs, until: Timestamp) -> usize {
    let runs = runs.lock().unwrap();
    let mut nulls = 0;
    for event in fake.entity_events().iter() {
        let id = event["id"].as_str().unwrap();
        match event["created_at"].as_str() {
            None => {
                nulls += 1;
                assert_eq!(runs.get(id), None, "a null created_at cannot be swept");
            }
            Some(at) if at.parse::<Timestamp>().unwrap() <= until => {
                assert_eq!(runs.get(id), Some(&1), "event {id} at {at}");
            }
            Some(_) => {}
        }
    }
    assert!(runs.values().all(|n| *n == 1), "an event ran twice");
    nulls
}

async fn checkpoint_of(store: &dyn CheckpointStore, entity: &str) -> Option<Timestamp> {
    store.load(entity).await.unwrap()
}

/// The reconciler is shared and its cycles spawned: they must be `Send`.
#[tokio::test]
async fn the_reconciler_is_shareable_and_its_futures_can_be_spawned() {
    fn shareable<T: Clone + Send + Sync + 'static>(_: &T) {}
    fn sendable<T: Send>(_: &T) {}
    let (addr, _fake) = fake_monite::start().await;
    let runs = Runs::default();
    let reconciler = Reconciler::builder(
        client(addr, 25.0),
        counting_receiver(&runs, None),
        MemoryCheckpoints::default(),
    )
    .allow_process_local_store()
    .build()
    .unwrap();
    shareable(&reconciler);
    sendable(&reconciler.run_once());
    let watchdog = monite_webhooks::watchdog::Watchdog::builder(client(addr, 25.0))
        .build()
        .unwrap();
    shareable(&watchdog);
    sendable(&watchdog.run_once());
    // `start` spawns the loops themselves; their handles move between tasks.
    fn handle<T: Send + Sync + 'static>() {}
    handle::<monite_webhooks::reconcile::ReconcilerHandle>();
    handle::<monite_webhooks::watchdog::WatchdogHandle>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_entities_swept_once_each_within_the_budget() {
    let (addr, fake) = fake_monite::start().await;
    let entities = fake.add_entities(1_000);
    for (i, entity) in entities.iter().enumerate().step_by(7) {
        fake.commit_event(entity, Some(&ago(3_600 + i as i64)));
    }
    let runs = Runs::default();
    let checkpoints = Arc::new(MemoryCheckpoints::default());
    let reconciler = Reconciler::builder(
        client(addr, 22.0),
        counting_receiver(&runs, None),
        SharedStore(checkpoints.clone()),
    )
    .allow_process_local_store()
    .build()
    .unwrap();
    let cycle = reconciler.run_once().await.unwrap();
    assert_eq!(cycle.swept, 1_000, "{:?}", cycle.failed);
    assert_eq!(cycle.handled, entities.len().div_ceil(7));
    let now = Timestamp::now();
    assert_each_once(&fake, &runs, now);
    for entity in &entities {
        let at = checkpoint_of(&*checkpoints, entity).await.unwrap();
        assert!(
            at <= now - SignedDuration::from_secs(29),
            "checkpoint ahead"
        );
    }
    assert_eq!(fake.throttled(), 0);
    assert!(fake.max_requests_in_a_second() <= 23);
}

/// The store, shared with the test so it can read the checkpoints.
struct SharedStore(Arc<MemoryCheckpoints>);

impl CheckpointStore for SharedStore {
    fn load<'a>(
        &'a self,
        entity_id: &'a str,
    ) -> monite_webhooks::reconcile::StoreFuture<'a, Option<Timestamp>> {
        self.0.load(entity_id)
    }
    fn save<'a>(
        &'a self,
        entity_id: &'a str,
        at: Timestamp,
    ) -> monite_webhooks::reconcile::StoreFuture<'a, ()> {
        self.0.save(entity_id, at)
    }
    fn all(&self) -> monite_webhooks::reconcile::StoreFuture<'_, Vec<(String, Timestamp)>> {
        self.0.all()
    }
}

fn reconciler(
    fake_addr: std::net::SocketAddr,
    runs: &Runs,
    store: &Arc<MemoryCheckpoints>,
    fail_once: Option<String>,
) -> Reconciler {
    Reconciler::builder(
        client(fake_addr, 25.0),
        counting_receiver(runs, fail_once),
        SharedStore(store.clone()),
    )
    .page_size(100)
    .allow_process_local_store()
    .build()
    .unwrap()
}

#[tokio::test]
async fn ties_across_pages_a_late_commit_and_nulls() {
    let (addr, fake) = fake_monite::start().await;
    let entity = fake.add_entities(1).remove(0);
    // 250 events on one timestamp, over three pages of 100.
    let tie = ago(600);
    for _ in 0..250 {
        fake.commit_event(&entity, Some(&tie));
    }
    fake.commit_event(&entity, None);
    let runs = Runs::default();
    let store = Arc::new(MemoryCheckpoints::default());
    let reconciler = reconciler(addr, &runs, &store, None);
    let first = reconciler.run_once().await.unwrap();
    assert_eq!(first.handled, 250);
    let checkpoint = checkpoint_of(&*store, &entity).await.unwrap();
    // Committed after the sweep, with a created_at the lookback less a second before the
    // checkpoint: the next window still reaches it.
    let late = checkpoint - SignedDuration::from_secs(15 * 60 - 1);
    let late_id = fake.commit_event(&entity, Some(&late.to_string()));
    let second = reconciler.run_once().await.unwrap();
    assert_eq!(second.handled, 1, "the late commit was missed");
    assert_eq!(second.duplicates, 250, "the window overlaps the last one");
    assert_eq!(runs.lock().unwrap().get(&late_id), Some(&1));
    let nulls = assert_each_once(&fake, &runs, Timestamp::now());
    assert_eq!(nulls, 1);
}

#[tokio::test]
async fn an_expired_pagination_token_restarts_the_window() {
    let (addr, fake) = fake_monite::start().await;
    let entity = fake.add_entities(1).remove(0);
    for i in 0..250 {
        fake.commit_event(&entity, Some(&ago(900 - i)));
    }
    // The second page's token is refused, as if it expired.
    fake.expire_token_on_use(2);
    let runs = Runs::default();
    let store = Arc::new(MemoryCheckpoints::default());
    let reconciler = reconciler(addr, &runs, &store, None);
    let outcome = reconciler.sweep_entity(&entity, false).await.unwrap();
    assert_eq!(outcome.restarts, 1);
    assert_eq!(outcome.handled, 250);
    assert!(
        outcome.duplicates >= 100,
        "the restart skipped what was handled"
    );
    assert_each_once(&fake, &runs, Timestamp::now());
}

#[tokio::test]
async fn a_5xx_on_a_later_page_is_retried_within_the_sweep() {
    let (addr, fake) = fake_monite::start().await;
    let entity = fake.add_entities(1).remove(0);
    for i in 0..250 {
        fake.commit_event(&entity, Some(&ago(900 - i)));
    }
    // The second page answers 500 once: the client retries it (a read), same token.
    fake.fail_token_on_use(1);
    let runs = Runs::default();
    let store = Arc::new(MemoryCheckpoints::default());
    let reconciler = reconciler(addr, &runs, &store, None);
    let outcome = reconciler.sweep_entity(&entity, false).await.unwrap();
    assert_eq!(
        (outcome.handled, outcome.duplicates, outcome.restarts),
        (250, 0, 0)
    );
    assert_eq!(fake.fail_token_on_use_left(), 0, "the fault never fired");
    assert!(checkpoint_of(&*store, &entity).await.is_some());
    assert_each_once(&fake, &runs, Timestamp::now());
}

#[tokio::test]
async fn a_failure_holds_back_its_own_entity_only() {
    let (addr, fake) = fake_monite::start().await;
    let entities = fake.add_entities(3);
    let failing = fake.commit_event(&entities[0], Some(&ago(300)));
    for entity in &entities[1..] {
        fake.commit_event(entity, Some(&ago(300)));
    }
    let runs = Runs::default();
    let store = Arc::new(MemoryCheckpoints::default());
    let reports = Arc::new(Mutex::new(Vec::new()));
    let seen = reports.clone();
    let reconciler = Reconciler::builder(
        client(addr, 25.0),
        counting_receiver(&runs, Some(failing.clone())),
        SharedStore(store.clone()),
    )
    .on_report(move |r: &Report| seen.lock().unwrap().push(r.clone()))
    .allow_process_local_store()
    .build()
    .unwrap();
    let first = reconciler.run_once().await.unwrap();
    assert_eq!(first.failed.len(), 1);
    assert_eq!(first.failed[0].0, entities[0]);
    assert_eq!(
        checkpoint_of(&*store, &entities[0]).await,
        None,
        "held back"
    );
    for entity in &entities[1..] {
        assert!(checkpoint_of(&*store, entity).await.is_some());
    }
    assert!(
        reports
            .lock()
            .unwrap()
            .iter()
            .any(|r| matches!(r, Report::SweepStale { .. }))
    );
    // Monite failing one page beyond the retries holds its entity back the same way.
    for _ in 0..4 {
        fake.inject(fault("/v1/events", StatusCode::INTERNAL_SERVER_ERROR, None));
    }
    let second = reconciler.sweep_entity(&entities[1], false).await;
    assert_eq!(second.unwrap_err().kind(), ErrorKind::Api);
    // Next time, the failed event is handled (its first run failed, so it ran twice by
    // design: a failed handler is retried) and every other event once.
    let third = reconciler.run_once().await.unwrap();
    assert!(third.failed.is_empty(), "{:?}", third.failed);
    assert_eq!(runs.lock().unwrap().remove(&failing), Some(2));
    let status = reconciler.status().await.unwrap();
    assert_eq!(status.len(), 3);
    assert!(status.iter().all(|s| s.last_error.is_none()));
}

#[tokio::test]
async fn an_event_delivered_and_swept_runs_once() {
    let (addr, fake) = fake_monite::start().await;
    let entity = fake.add_entities(1).remove(0);
    let id = fake.commit_event(&entity, Some(&ago(120)));
    let runs = Runs::default();
    let receiver = counting_receiver(&runs, None);
    // Delivered first, through the same receiver.
    let body = fake
        .entity_events()
        .iter()
        .find(|e| e["id"] == id.as_str())
        .unwrap()
        .to_string();
    let event = Event::parse(bytes::Bytes::from(body)).unwrap();
    receiver.dispatch(event).await.unwrap();
    let reconciler =
        Reconciler::builder(client(addr, 25.0), receiver, MemoryCheckpoints::default())
            .allow_process_local_store()
            .build()
            .unwrap();
    let cycle = reconciler.run_once().await.unwrap();
    assert_eq!((cycle.handled, cycle.duplicates), (0, 1));
    assert_eq!(runs.lock().unwrap().get(&id), Some(&1));
}

#[tokio::test]
async fn a_lookback_past_the_stores_retention_is_refused() {
    let (addr, _fake) = fake_monite::start().await;
    let runs = Runs::default();
    let error = Reconciler::builder(
        client(addr, 25.0),
        counting_receiver(&runs, None),
        MemoryCheckpoints::default(),
    )
    .lookback(Duration::from_secs(30 * 24 * 60 * 60))
    .allow_process_local_store()
    .build()
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Misconfigured);
}

#[tokio::test]
async fn a_first_window_past_the_stores_retention_is_refused() {
    let (addr, _fake) = fake_monite::start().await;
    let runs = Runs::default();
    let build = |configure: &dyn Fn(ReconcilerBuilder) -> ReconcilerBuilder| {
        configure(
            Reconciler::builder(
                client(addr, 25.0),
                counting_receiver(&runs, None),
                MemoryCheckpoints::default(),
            )
            .allow_process_local_store(),
        )
        .build()
    };
    // The default store remembers 8 days.
    let month = Duration::from_secs(30 * 24 * 60 * 60);
    let error = build(&|b| b.since(month)).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Misconfigured);
    assert!(error.to_string().contains("since"), "{error}");
    let long_ago = Timestamp::now() - SignedDuration::try_from(month).unwrap();
    let error = build(&|b| b.since_time(long_ago)).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Misconfigured);
    assert!(error.to_string().contains("since_time"), "{error}");
    // Within the retention, both are taken.
    let week = Duration::from_secs(7 * 24 * 60 * 60);
    build(&|b| b.since(week)).unwrap();
    let recently = Timestamp::now() - SignedDuration::try_from(week).unwrap();
    build(&|b| b.since_time(recently)).unwrap();
}

#[tokio::test]
async fn file_checkpoints_survive_and_stay_small() {
    let path = std::env::temp_dir().join(format!("reconcile-checkpoints-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let store = FileCheckpoints::open(&path).unwrap();
    let at: Timestamp = "2026-12-01T12:34:56.789012Z".parse().unwrap();
    for i in 0..1_000 {
        store
            .save(&format!("e0000000-0000-4000-8000-{i:012}"), at)
            .await
            .unwrap();
    }
    // An earlier time never moves a checkpoint back.
    let id = "e0000000-0000-4000-8000-000000000007";
    store
        .save(id, at - SignedDuration::from_secs(60))
        .await
        .unwrap();
    // Written once, by the flush the reconciler makes after each cycle.
    store.flush().await.unwrap();
    let again = FileCheckpoints::open(&path).unwrap();
    assert_eq!(again.load(id).await.unwrap(), Some(at));
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size <= 64 * 1_000 + 64, "{size} bytes for 1,000 entities");
    std::fs::write(&path, "not a checkpoint\n").unwrap();
    assert_eq!(
        FileCheckpoints::open(&path).unwrap_err().kind(),
        ErrorKind::Checkpoints
    );
    std::fs::remove_file(&path).unwrap();
}

/// Checkpoints kept pending until `flush`, as `FileCheckpoints` keeps them: `written` is
/// what would survive the process. Counts the loads, one per entity a cycle sweeps.
#[derive(Default)]
struct Deferred {
    pending: Mutex<Vec<(String, Timestamp)>>,
    written: Arc<MemoryCheckpoints>,
    loads: Arc<std::sync::atomic::AtomicUsize>,
}

impl CheckpointStore for Deferred {
    fn load<'a>(
        &'a self,
        entity_id: &'a str,
    ) -> monite_webhooks::reconcile::StoreFuture<'a, Option<Timestamp>> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.written.load(entity_id)
    }
    fn save<'a>(
        &'a self,
        entity_id: &'a str,
        at: Timestamp,
    ) -> monite_webhooks::reconcile::StoreFuture<'a, ()> {
        self.pending
            .lock()
            .unwrap()
            .push((entity_id.to_owned(), at));
        Box::pin(std::future::ready(Ok(())))
    }
    fn all(&self) -> monite_webhooks::reconcile::StoreFuture<'_, Vec<(String, Timestamp)>> {
        self.written.all()
    }
    fn flush(&self) -> monite_webhooks::reconcile::StoreFuture<'_, ()> {
        Box::pin(async move {
            let pending = std::mem::take(&mut *self.pending.lock().unwrap());
            for (entity_id, at) in pending {
                self.written.save(&entity_id, at).await?;
            }
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_entity_in_progress_finish_saves_checkpoints_and_stops() {
    let (addr, fake) = fake_monite::start().await;
    let entities = fake.add_entities(5);
    for entity in &entities {
        fake.commit_event(entity, Some(&ago(600)));
    }
    // Each event's handler takes 300 ms: the shutdown comes in the middle of the cycle.
    let handled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = handled.clone();
    let receiver = monite_webhooks::Receiver::new(
        monite_webhooks::Verifier::new(monite_webhooks::Secret::new("whsec_recovery").unwrap()),
        monite_webhooks::Dispatcher::builder()
            .fallback(move |_: Event, _| {
                let counted = counted.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    counted.fetch_add(1, Ordering::SeqCst);
                }
            })
            .build(),
    );
    let store = Deferred::default();
    let written = store.written.clone();
    let loads = store.loads.clone();
    let running = Reconciler::builder(client(addr, 25.0), receiver, store)
        .every(Duration::from_millis(50))
        .allow_process_local_store()
        .start()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while loads.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "the first entity's sweep began"
    );
    running.shutdown().await;

    // The entity in progress finished, the next were not started.
    let handled_at_shutdown = handled.load(Ordering::SeqCst);
    assert!(
        (1..entities.len()).contains(&handled_at_shutdown),
        "{handled_at_shutdown} of {} events handled",
        entities.len()
    );
    // Every entity whose sweep finished has its checkpoint written, and only those.
    let saved = written.all().await.unwrap();
    assert_eq!(saved.len(), handled_at_shutdown, "{saved:?}");
    let now = Timestamp::now();
    assert!(
        saved
            .iter()
            .all(|(_, at)| *at <= now - SignedDuration::from_secs(29))
    );
    // No cycle runs afterwards.
    let loads_at_shutdown = loads.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        loads.load(Ordering::SeqCst),
        loads_at_shutdown,
        "a sweep after shutdown"
    );
    assert_eq!(handled.load(Ordering::SeqCst), handled_at_shutdown);
}

#[tokio::test]
async fn a_zero_pace_is_refused() {
    let (addr, _fake) = fake_monite::start().await;
    let runs = Runs::default();
    let refused = Reconciler::builder(
        client(addr, 25.0),
        counting_receiver(&runs, None),
        MemoryCheckpoints::default(),
    )
    .allow_process_local_store()
    .every(Duration::ZERO)
    .build()
    .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Misconfigured);
}
