//! Requeuing inbox events by filter (`PostgresInbox::requeue`, the command line's
//! `inbox requeue`, once `inbox replay`) against a real PostgreSQL: a dry run counts exactly
//! what the requeue then takes, each filter field narrows, running events are never
//! replayed, replayed events wait behind live ones, and a replayed event is handled again
//! with a fresh count of tries.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use monite_webhooks::inbox::{
    InboxState, PostgresInbox, REQUEUE_BATCH, Report, RequeueFilter, RetrySchedule, Workers,
};
use monite_webhooks::jiff::Timestamp;
use monite_webhooks::{Dispatcher, Event, EventType, ObjectType, Receiver, Secret, Verifier};
use sqlx::PgPool;
use support::inbox::{inbox_on, wait_for};
use support::pg::PgServer;

fn envelope(id: &str, action: &str) -> String {
    let object_type = action.split('.').next().unwrap();
    format!(
        r#"{{"id":"{id}","action":"{action}","object":{{"id":"o"}},"object_type":"{object_type}","entity_id":"e"}}"#
    )
}

async fn accept(inbox: &PostgresInbox, id: &str, action: &str) {
    let event = Event::parse(envelope(id, action)).unwrap();
    Receiver::inbox_builder(
        Verifier::new(Secret::new("whsec_replay").unwrap()),
        inbox.clone(),
    )
    .build()
    .receive_event(event)
    .await
    .unwrap();
}

/// One row of the grid: its event id, event, state and age in hours.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    action: &'static str,
    state: &'static str,
    hours: i32,
}

const ACTIONS: [&str; 4] = [
    "payable.created",
    "payable.updated",
    "counterpart.created",
    "receivable.created",
];
const STATES: [&str; 4] = ["done", "dead", "pending", "running"];
const AGES: [i32; 3] = [72, 24, 1];

fn grid() -> Vec<Row> {
    let mut rows = Vec::new();
    for action in ACTIONS {
        for state in STATES {
            for hours in AGES {
                rows.push(Row {
                    id: format!("{action}-{state}-{hours}h"),
                    action,
                    state,
                    hours,
                });
            }
        }
    }
    rows
}

/// Puts every row of the grid back in its state, age and first attempt (set in SQL: no
/// waiting), as if none had been replayed.
async fn reset(pool: &PgPool, rows: &[Row]) {
    for row in rows {
        sqlx::query(
            "UPDATE monite_webhook_inbox_events SET state = $2, \
               received_at = now() - $3 * interval '1 hour', priority = 0, attempt = 1, \
               attempt_base = 0, lapses = 0, run_at = now() + interval '1 hour', \
               locked_until = CASE WHEN $2 = 'running' THEN now() + interval '1 hour' END, \
               locked_by = CASE WHEN $2 = 'running' THEN 'busy' END, \
               done_at = CASE WHEN $2 = 'done' THEN now() END \
             WHERE event_id = $1",
        )
        .bind(&row.id)
        .bind(row.state)
        .bind(row.hours)
        .execute(pool)
        .await
        .unwrap();
    }
}

/// The event ids requeued by the last replay: pending at replay priority, attempts
/// counted afresh. Running rows are checked untouched.
async fn requeued(pool: &PgPool) -> Vec<String> {
    let mut ids: Vec<String> = sqlx::query_scalar(
        "SELECT event_id FROM monite_webhook_inbox_events \
         WHERE state = 'pending' AND priority < 0 AND attempt_base = attempt \
           AND run_at <= now() ORDER BY event_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    ids.sort();
    let running: Vec<(String, Option<String>, i32)> = sqlx::query_as(
        "SELECT state, locked_by, attempt FROM monite_webhook_inbox_events \
         WHERE event_id LIKE '%-running-%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(
        running
            .iter()
            .all(|r| r == &("running".to_owned(), Some("busy".to_owned()), 1)),
        "a running event was replayed: {running:?}"
    );
    ids
}

async fn utc_hours_ago(pool: &PgPool, hours: i32) -> Timestamp {
    sqlx::query_scalar(
        "SELECT to_char((now() - $1 * interval '1 hour') AT TIME ZONE 'UTC', \
           'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
    )
    .bind(hours)
    .fetch_one(pool)
    .await
    .map(|utc: String| utc.parse().unwrap())
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_counts_what_the_replay_requeues_and_each_filter_narrows() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let pool = store.pool().clone();
    let rows = grid();
    for row in &rows {
        accept(&inbox, &row.id, row.action).await;
    }
    let two_days_ago = utc_hours_ago(&pool, 48).await;
    let two_hours_ago = utc_hours_ago(&pool, 2).await;

    type Want = fn(&Row) -> bool;
    let mut cases: Vec<(&str, RequeueFilter, Want)> = Vec::new();
    let mut filter = RequeueFilter::default();
    cases.push(("everything", filter.clone(), |_| true));
    filter.object_type = Some(ObjectType::Counterpart);
    cases.push(("object type", filter.clone(), |r| {
        r.action.starts_with("counterpart.")
    }));
    filter = RequeueFilter::default();
    filter.event = Some(EventType::Updated);
    cases.push(("event", filter.clone(), |r| r.action == "payable.updated"));
    filter = RequeueFilter::default();
    filter.state = Some(InboxState::Dead);
    cases.push(("state", filter.clone(), |r| r.state == "dead"));
    filter.state = Some(InboxState::Running);
    cases.push(("state running", filter.clone(), |_| false));
    filter = RequeueFilter::default();
    filter.since = Some(two_days_ago);
    cases.push(("since", filter.clone(), |r| r.hours < 48));
    filter = RequeueFilter::default();
    filter.until = Some(two_days_ago);
    cases.push(("until", filter.clone(), |r| r.hours > 48));
    filter.since = Some(two_days_ago);
    filter.until = Some(two_hours_ago);
    cases.push(("since and until", filter.clone(), |r| r.hours == 24));
    filter.until = None;
    filter.object_type = Some(ObjectType::Payable);
    filter.state = Some(InboxState::Done);
    cases.push(("all at once", filter.clone(), |r| {
        r.hours < 48 && r.action.starts_with("payable.") && r.state == "done"
    }));

    for (name, filter, want) in cases {
        reset(&pool, &rows).await;
        // Running events are never replayed, whatever the filter.
        let mut expected: Vec<String> = rows
            .iter()
            .filter(|r| r.state != "running" && want(r))
            .map(|r| r.id.clone())
            .collect();
        expected.sort();
        let counted = inbox.requeue(&filter, true).await.unwrap();
        assert_eq!(requeued(&pool).await, Vec::<String>::new(), "{name}: dry");
        let replayed = inbox.requeue(&filter, false).await.unwrap();
        assert_eq!(counted, replayed, "{name}: the dry run counts the replay");
        assert_eq!(
            usize::try_from(replayed).unwrap(),
            expected.len(),
            "{name}: {filter:?}"
        );
        assert_eq!(requeued(&pool).await, expected, "{name}: which rows");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_events_wait_behind_live_ones_and_run_again_with_fresh_tries() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let pool = store.pool().clone();
    for id in ["old-1", "old-2", "flaky"] {
        accept(&inbox, id, "payable.created").await;
    }
    // Every handled event, in order; `flaky` fails its first three attempts.
    let handled = Arc::new(Mutex::new(Vec::<String>::new()));
    let failures = Arc::new(Mutex::new(Vec::<(i32, i32, bool)>::new()));
    let workers = |inbox: &PostgresInbox| {
        let seen = Arc::clone(&handled);
        let failed = Arc::clone(&failures);
        let dispatcher = Dispatcher::builder()
            .on_object(ObjectType::Payable, move |event: Event| {
                let id = event.id().unwrap().to_owned();
                let mut seen = seen.lock().unwrap();
                seen.push(id.clone());
                let calls = seen.iter().filter(|s| **s == id).count();
                async move {
                    if id == "flaky" && calls <= 3 {
                        return Err(std::io::Error::other("flaky"));
                    }
                    Ok(())
                }
            })
            .build();
        // One task taking one event at a time: the order of claims is the order handled.
        Workers::builder(inbox.clone(), dispatcher)
            .concurrency(1)
            .batch(1)
            .poll_interval(Duration::from_millis(20))
            .retry(RetrySchedule::new([Duration::ZERO], 2).with_jitter(|d| d))
            .on_report(move |report| {
                let heard = match report {
                    Report::AttemptFailed { attempt, tries, .. } => (*attempt, *tries, false),
                    Report::Dead { attempt, tries, .. } => (*attempt, *tries, true),
                    _ => return,
                };
                failed.lock().unwrap().push(heard);
            })
            .start()
            .unwrap()
    };
    let first = workers(&inbox);
    wait_for(
        &pool,
        "SELECT count(*) FROM monite_webhook_inbox_events WHERE state IN ('done', 'dead')",
        3,
    )
    .await;
    first.shutdown().await;
    assert_eq!(
        inbox.status().await.unwrap().dead,
        1,
        "flaky is out of tries"
    );

    let mut filter = RequeueFilter::default();
    filter.object_type = Some(ObjectType::Payable);
    assert_eq!(inbox.requeue(&filter, false).await.unwrap(), 3);
    for id in ["live-1", "live-2", "live-3", "live-4"] {
        accept(&inbox, id, "payable.created").await;
    }
    let before = handled.lock().unwrap().len();
    let second = workers(&inbox);
    wait_for(
        &pool,
        "SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'done'",
        7,
    )
    .await;
    second.shutdown().await;

    let handled = handled.lock().unwrap()[before..].to_vec();
    assert_eq!(
        handled[..4],
        ["live-1", "live-2", "live-3", "live-4"],
        "live events first: {handled:?}"
    );
    let mut replayed = handled[4..].to_vec();
    replayed.sort();
    assert_eq!(
        replayed,
        ["flaky", "flaky", "old-1", "old-2"],
        "each replayed event handled again; flaky twice"
    );
    // Dead after tries 1 and 2; replayed, its tries start again at 1, so a third failure
    // is retried instead of burying it at once, and the fourth attempt succeeds.
    assert_eq!(
        *failures.lock().unwrap(),
        [(1, 1, false), (2, 2, true), (3, 1, false)]
    );
    let flaky: (String, i32) = sqlx::query_as(
        "SELECT state, attempt FROM monite_webhook_inbox_events WHERE event_id = 'flaky'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(flaky, ("done".to_owned(), 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_replay_goes_in_batches_by_row_id_and_reports_each() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let pool = store.pool().clone();
    // 2,600 done events, every 26th running (100 of them): set in SQL, no workers.
    sqlx::query(
        "INSERT INTO monite_webhook_inbox_events (dedup_key, namespace, event_id, object_type, \
           event, body, headers, state, attempt, locked_until) \
         SELECT 'billing:evt:bulk-' || g, 'billing', 'bulk-' || g, 'payable', \
           'payable.created', convert_to('{}', 'UTF8'), '{}'::jsonb, \
           CASE WHEN g % 26 = 0 THEN 'running' ELSE 'done' END, 1, \
           CASE WHEN g % 26 = 0 THEN now() + interval '1 hour' END \
         FROM generate_series(1, 2600) AS g",
    )
    .execute(&pool)
    .await
    .unwrap();
    let filter = RequeueFilter::default();
    assert_eq!(inbox.requeue(&filter, true).await.unwrap(), 2500);
    // After the first batch, a matching event arrives: it is live, not part of the replay.
    let mut reports = Vec::new();
    let runtime = tokio::runtime::Handle::current();
    let replayed = inbox
        .requeue_with_progress(&filter, |progress| {
            if reports.is_empty() {
                tokio::task::block_in_place(|| {
                    runtime.block_on(
                        sqlx::query(
                            "INSERT INTO monite_webhook_inbox_events (dedup_key, namespace, \
                               object_type, event, body, headers, state) \
                             VALUES ('billing:evt:late', 'billing', 'payable', \
                               'payable.created', '', '{}', 'done')",
                        )
                        .execute(&pool),
                    )
                })
                .unwrap();
            }
            reports.push(*progress);
        })
        .await
        .unwrap();
    assert_eq!(replayed, 2500);
    let batches: Vec<(u64, u64)> = reports.iter().map(|p| (p.batch, p.requeued)).collect();
    assert_eq!(
        batches,
        [(1000, 1000), (1000, 2000), (500, 2500)],
        "batches of REQUEUE_BATCH"
    );
    assert_eq!(REQUEUE_BATCH, 1000);
    // Each batch ends on the highest row id it took: every 26th id is running.
    let through: Vec<i64> = reports.iter().map(|p| p.through_id).collect();
    assert_eq!(through, [1039, 2079, 2599]);
    let status = inbox.status().await.unwrap();
    assert_eq!(
        (status.pending, status.running, status.done),
        (2500, 100, Some(1)),
        "the late event was left alone"
    );
    // A filter that matches nothing reports no batch.
    let mut none = RequeueFilter::default();
    none.object_type = Some(ObjectType::Counterpart);
    let mut calls = 0;
    let replayed = inbox
        .requeue_with_progress(&none, |_| calls += 1)
        .await
        .unwrap();
    assert_eq!((replayed, calls), (0, 0));
}
