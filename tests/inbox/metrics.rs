//! The inbox's metrics and backlog hook against a real PostgreSQL, read back through
//! metrics-util's debugging recorder: the gauges of a known mix of rows, the counters of a
//! known run, and the backlog hook firing for an old pending event and not a fresh one.
//!
//! Each test runs on a current-thread runtime inside `with_local_recorder`, so the workers'
//! tasks record into the test's recorder, and a sample's gauges and hook call are done by
//! the time the test's own task sees the gauges.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use metrics::{SharedString, Unit};
use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use monite_webhooks::inbox::{Report, RetrySchedule, Workers};
use monite_webhooks::metrics as m;
use monite_webhooks::{Dispatcher, Event, HandlerResult, ObjectType};
use sqlx::PgPool;
use support::fixture::{deliver, fresh_id};
use support::inbox::{envelope, inbox_on, receiver, wait_for};
use support::pg::PgServer;

/// Runs `test` on a current-thread runtime recording into a fresh debugging recorder.
fn recorded<F: Future<Output = ()>>(test: impl FnOnce(Snapshotter) -> F) {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || runtime.block_on(test(snapshotter)));
}

/// What the recorder holds; taking it resets the recorder's counters and gauges.
type Snapshot = Vec<(CompositeKey, Option<Unit>, Option<SharedString>, DebugValue)>;

/// The value of the metric `name` whose labels include all of `labels`.
fn value<'a>(
    snapshot: &'a Snapshot,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'a DebugValue> {
    snapshot
        .iter()
        .find(|(key, _, _, _)| {
            let key = key.key();
            key.name() == name
                && labels
                    .iter()
                    .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
        })
        .map(|entry| &entry.3)
}

fn gauge(snapshot: &Snapshot, name: &str) -> Option<f64> {
    match value(snapshot, name, &[]) {
        Some(DebugValue::Gauge(g)) => Some(g.0),
        _ => None,
    }
}

fn counter(snapshot: &Snapshot, name: &str, labels: &[(&str, &str)]) -> u64 {
    match value(snapshot, name, labels) {
        Some(DebugValue::Counter(n)) => *n,
        _ => 0,
    }
}

fn histogram_len(snapshot: &Snapshot, name: &str, labels: &[(&str, &str)]) -> usize {
    match value(snapshot, name, labels) {
        Some(DebugValue::Histogram(h)) => h.len(),
        _ => 0,
    }
}

/// Waits (at most a minute) for the workers' first sample to set the gauges; answers the
/// snapshot holding them.
async fn first_sample(snapshotter: &Snapshotter) -> Snapshot {
    for _ in 0..600 {
        let snapshot = snapshotter.snapshot().into_vec();
        if gauge(&snapshot, m::INBOX_PENDING).is_some() {
            return snapshot;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the workers never sampled the backlog");
}

/// Inserts `count` rows of `namespace` in `state`, received `age_secs` ago, with
/// `attempt` attempts since a base of 0; pending rows are due in an hour, so no worker
/// takes them, and running rows hold a lease for an hour, so no rescue frees them.
async fn rows(
    pool: &PgPool,
    namespace: &str,
    state: &str,
    count: i32,
    age_secs: i32,
    attempt: i32,
) {
    sqlx::query(
        "INSERT INTO monite_webhook_inbox_events (dedup_key, namespace, object_type, event, \
           body, headers, state, attempt, received_at, run_at, locked_until) \
         SELECT $1 || ':' || $3 || ':' || $6 || ':' || n || ':' || gen_random_uuid(), $1, \
           'payable', 'payable.created', '\\x7b7d', '{}', $2, $6, \
           now() - $5 * interval '1 second', now() + interval '1 hour', \
           CASE WHEN $2 = 'running' THEN now() + interval '1 hour' END \
         FROM generate_series(1, $4) AS n",
    )
    .bind(namespace)
    .bind(state)
    .bind(state)
    .bind(count)
    .bind(age_secs)
    .bind(attempt)
    .execute(pool)
    .await
    .unwrap();
}

#[test]
fn the_gauges_count_each_state_and_the_oldest_pending_age() {
    recorded(|snapshotter| async move {
        let server = PgServer::start();
        let (store, inbox) = inbox_on(&server, "billing").await;
        let pool = store.pool();
        rows(pool, "billing", "pending", 2, 5, 0).await;
        rows(pool, "billing", "pending", 1, 600, 0).await;
        rows(pool, "billing", "pending", 2, 30, 2).await;
        rows(pool, "billing", "running", 1, 30, 1).await;
        rows(pool, "billing", "dead", 4, 30, 3).await;
        rows(pool, "billing", "done", 5, 3000, 1).await;
        // Another namespace's rows are not this inbox's.
        rows(pool, "other", "pending", 7, 9000, 0).await;
        rows(pool, "other", "dead", 7, 9000, 1).await;
        let workers = Workers::builder(inbox.clone(), Dispatcher::builder().build())
            .concurrency(1)
            .start()
            .unwrap();
        let sampled = first_sample(&snapshotter).await;
        workers.shutdown().await;
        assert_eq!(gauge(&sampled, m::INBOX_PENDING), Some(5.0));
        // One meaning of pending: what `inbox status` counts is what the gauge shows.
        let counts = inbox.status().await.unwrap();
        assert_eq!((counts.pending, counts.retrying), (5, 2));
        assert_eq!((counts.running, counts.dead, counts.done), (1, 4, Some(5)));
        assert_eq!(gauge(&sampled, m::INBOX_RETRYING), Some(2.0));
        assert_eq!(gauge(&sampled, m::INBOX_RUNNING), Some(1.0));
        assert_eq!(gauge(&sampled, m::INBOX_DEAD), Some(4.0));
        let age = gauge(&sampled, m::INBOX_OLDEST_PENDING_AGE).unwrap();
        // Received 600 s before the sample, which came within the minute `first_sample` waits.
        assert!((600.0..660.0).contains(&age), "oldest pending age {age}");
    });
}

#[test]
fn a_known_run_is_counted_by_event_type_without_ids() {
    recorded(|snapshotter| async move {
        let server = PgServer::start();
        let (store, inbox) = inbox_on(&server, "billing").await;
        let receiver = receiver(&inbox);
        let first = envelope(&fresh_id(), "entity-good");
        assert_eq!(deliver(&receiver, &first).await, StatusCode::ACCEPTED);
        assert_eq!(deliver(&receiver, &first).await, StatusCode::OK);
        let second = envelope(&fresh_id(), "entity-good");
        assert_eq!(deliver(&receiver, &second).await, StatusCode::ACCEPTED);
        let bad = envelope(&fresh_id(), "entity-bad");
        assert_eq!(deliver(&receiver, &bad).await, StatusCode::ACCEPTED);
        let dispatcher = Dispatcher::builder()
            .on_object(ObjectType::Payable, |event: Event| async move {
                let result: HandlerResult = if event.entity_id() == Some("entity-bad") {
                    Err("the ledger refused it".into())
                } else {
                    Ok(())
                };
                result
            })
            .build();
        // Two attempts: the bad event fails once with a retry, then once into `dead`.
        let workers = Workers::builder(inbox, dispatcher)
            .concurrency(1)
            .poll_interval(Duration::from_millis(20))
            .retry(RetrySchedule::new([Duration::ZERO], 2).with_jitter(|d| d))
            .start()
            .unwrap();
        wait_for(
            store.pool(),
            "SELECT count(*) FROM monite_webhook_inbox_events WHERE state IN ('done', 'dead')",
            3,
        )
        .await;
        workers.shutdown().await;
        let s = &snapshotter.snapshot().into_vec();
        assert_eq!(counter(s, m::INBOX_ACCEPTED, &[]), 3);
        assert_eq!(counter(s, m::INBOX_DUPLICATES, &[]), 1);
        assert_eq!(
            histogram_len(s, m::INBOX_ACCEPT_DURATION, &[("result", "ok")]),
            4
        );
        let payable = [("object_type", "payable"), ("event", "payable.created")];
        assert_eq!(counter(s, m::INBOX_ATTEMPTS, &payable), 4);
        let retry = [payable[0], payable[1], ("after", "retry")];
        let dead = [payable[0], payable[1], ("after", "dead")];
        assert_eq!(counter(s, m::INBOX_FAILURES, &retry), 1);
        assert_eq!(counter(s, m::INBOX_FAILURES, &dead), 1);
        assert_eq!(
            histogram_len(s, m::INBOX_HANDLER_DURATION, &[("outcome", "ok")]),
            2
        );
        assert_eq!(
            histogram_len(s, m::INBOX_HANDLER_DURATION, &[("outcome", "error")]),
            2
        );
        for (key, _, _, _) in s {
            assert!(
                key.key()
                    .labels()
                    .all(|l| !["entity_id", "event_id", "id"].contains(&l.key())
                        && !l.value().starts_with("entity-")),
                "an id as a label: {key:?}"
            );
        }
    });
}

/// The backlogs the hook reported for `namespace`'s rows, once the workers sampled them:
/// (pending, oldest) each.
fn backlogs_reported(
    namespace: &'static str,
    age_secs: i32,
    concurrency: usize,
) -> Vec<(i64, Duration)> {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let hook = Arc::clone(&heard);
    recorded(|snapshotter| async move {
        let server = PgServer::start();
        let (store, inbox) = inbox_on(&server, namespace).await;
        rows(store.pool(), namespace, "pending", 2, age_secs, 0).await;
        let workers = Workers::builder(inbox, Dispatcher::builder().build())
            .concurrency(concurrency)
            .poll_interval(Duration::from_millis(20))
            .backlog_alert_after(Duration::from_secs(60))
            .on_report(move |report| {
                if let Report::BacklogOld { counts, oldest, .. } = report {
                    let pending = i64::try_from(counts.pending).unwrap();
                    hook.lock().unwrap().push((pending, *oldest));
                }
            })
            .start()
            .unwrap();
        first_sample(&snapshotter).await;
        // Every worker loops many times in this second; the sample is due once in five.
        tokio::time::sleep(Duration::from_secs(1)).await;
        workers.shutdown().await;
    });
    heard.lock().unwrap().clone()
}

#[test]
fn the_backlog_hook_fires_once_for_an_old_pending_event_and_not_for_a_fresh_one() {
    let old = backlogs_reported("old", 600, 4);
    assert_eq!(old.len(), 1, "one report per sampling period: {old:?}");
    assert_eq!(old[0].0, 2);
    assert!(old[0].1 >= Duration::from_secs(600), "{old:?}");
    let fresh = backlogs_reported("fresh", 5, 4);
    assert!(fresh.is_empty(), "a backlog of 5 s reported: {fresh:?}");
}

/// `metrics::describe()`, the crate's one, describes the inbox's series too.
#[test]
fn the_one_describe_gives_the_inbox_series_their_help() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        m::describe();
        metrics::gauge!(m::INBOX_PENDING).set(1.0);
        metrics::counter!(m::INBOX_ATTEMPTS).increment(1);
    });
    let text = handle.render();
    for line in [
        "# HELP monite_webhooks_inbox_pending Inbox events pending, first attempts and retries",
        "# HELP monite_webhooks_inbox_attempts_total Inbox attempts, by event type",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}
