//! Inbox workers in real processes against a real PostgreSQL: a worker process killed
//! with SIGKILL mid-handler, again and again, loses no event and, with a transactional
//! handler, doubles none; two processes of four workers each handle 20,000 events
//! exactly once. Counted in SQL: `handled_events` has no unique constraint, so a double
//! effect would show as two rows.
//!
//! The worker process is this test binary run again with `INBOX_CRASH_CHILD` set, which
//! turns the `child_workers` test into a worker process.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use monite_webhooks::inbox::{PostgresInbox, RetrySchedule, Workers};
use monite_webhooks::{Dispatcher, Event, ObjectType, PostgresStore, Receiver, Secret, Verifier};
use sqlx::PgPool;
use support::pg::PgServer;

const CHILD_ENV: &str = "INBOX_CRASH_CHILD";
const HANDLED_EVENTS: &str = "CREATE TABLE IF NOT EXISTS handled_events (event_id text NOT NULL, \
     object_type text, event text, handled_at timestamptz NOT NULL DEFAULT now())";

fn envelope(n: usize) -> String {
    format!(
        r#"{{"id":"evt-{n}","created_at":"2024-03-04T20:06:48.593225+00:00","action":"payable.created","api_version":"2024-01-31","entity_id":"entity-{}","description":"d","object":{{"id":"587fd280"}},"object_type":"payable","webhook_subscription_id":"f3c64af7"}}"#,
        n % 10
    )
}

/// The worker process: a transactional handler that records the event in
/// `handled_events`, sleeping up to `INBOX_CRASH_SLEEP_MS` inside the transaction so that
/// a kill lands mid-handler. Runs until killed.
#[test]
fn child_workers() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return; // Run as a test: nothing to do.
    };
    let sleep_ms: u64 = std::env::var("INBOX_CRASH_SLEEP_MS")
        .unwrap()
        .parse()
        .unwrap();
    let name = std::env::var("INBOX_CRASH_NAME").unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = PostgresStore::connect(&url, "test").await.unwrap();
        let handler = store.transactional(move |event: Event, tx| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO handled_events (event_id, object_type, event) VALUES ($1, $2, $3)",
                )
                .bind(event.id())
                .bind(event.object_type().as_str())
                .bind(event.action())
                .execute(&mut *tx)
                .await?;
                if sleep_ms > 0 {
                    // Spread over the range from the event's number: no clock, no RNG.
                    let n: u64 = event.id().unwrap()[4..].parse().unwrap();
                    tokio::time::sleep(Duration::from_millis(n * 7 % sleep_ms)).await;
                }
                Ok(())
            })
        });
        let dispatcher = Dispatcher::builder()
            .on_object(ObjectType::Payable, handler)
            .build();
        let _workers = Workers::builder(PostgresInbox::new(&store), dispatcher)
            .concurrency(4)
            .batch(16)
            .lease(Duration::from_secs(1))
            .poll_interval(Duration::from_millis(50))
            .max_lapses(1000)
            .retry(RetrySchedule::new([Duration::ZERO], 1000))
            .name(name)
            .start()
            .unwrap();
        std::future::pending::<()>().await;
    });
}

fn spawn_child(url: &str, name: &str, sleep_ms: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &crate::support::process::test_name(module_path!(), "child_workers"),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, url)
        .env("INBOX_CRASH_NAME", name)
        .env("INBOX_CRASH_SLEEP_MS", sleep_ms.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Accepts events `0..count` through the inbox, as the receiver would.
async fn accept_events(server: &PgServer, count: usize) -> PgPool {
    let store = PostgresStore::connect(&server.url(), "test").await.unwrap();
    let inbox = PostgresInbox::new(&store);
    inbox.ensure_schema().await.unwrap();
    sqlx::query(HANDLED_EVENTS)
        .execute(store.pool())
        .await
        .unwrap();
    let accept =
        Receiver::inbox_builder(Verifier::new(Secret::new("whsec_crash").unwrap()), inbox).build();
    let tasks: Vec<_> = (0..8)
        .map(|lane| {
            let accept = accept.clone();
            tokio::spawn(async move {
                for n in (lane..count).step_by(8) {
                    let event = Event::parse(envelope(n)).unwrap();
                    accept.receive_event(event).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    store.pool().clone()
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn wait_until_all_done(pool: &PgPool, total: i64) {
    for _ in 0..1200 {
        let done = count(
            pool,
            "SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'done'",
        )
        .await;
        if done == total {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not every event was done within two minutes");
}

async fn assert_exactly_once(pool: &PgPool, total: i64) {
    assert_eq!(
        count(pool, "SELECT count(*) FROM handled_events").await,
        total,
        "one effect per event: none lost, none doubled"
    );
    assert_eq!(
        count(pool, "SELECT count(DISTINCT event_id) FROM handled_events").await,
        total
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM monite_webhook_inbox_events e LEFT JOIN handled_events h \
             ON h.event_id = e.event_id WHERE h.event_id IS NULL"
        )
        .await,
        0,
        "every event done has its effect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_handler_loses_nothing_and_doubles_nothing() {
    let server = PgServer::start();
    const TOTAL: usize = 1000;
    let pool = accept_events(&server, TOTAL).await;
    // Killed five times while its handlers sleep inside their transactions.
    for round in 0..5_u64 {
        let mut child = spawn_child(&server.url(), &format!("killed{round}"), 40);
        tokio::time::sleep(Duration::from_millis(300 + round * 150)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let lapsed_before_last = count(
        &pool,
        "SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'running'",
    )
    .await;
    let mut last = spawn_child(&server.url(), "survivor", 40);
    wait_until_all_done(&pool, TOTAL as i64).await;
    last.kill().unwrap();
    last.wait().unwrap();
    assert_exactly_once(&pool, TOTAL as i64).await;
    let lapsed = count(
        &pool,
        "SELECT count(*) FROM monite_webhook_inbox_attempts WHERE outcome = 'lapsed'",
    )
    .await;
    assert!(
        lapsed > 0 && lapsed_before_last > 0,
        "kills left leases held mid-handler, rescued later ({lapsed} lapsed)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_of_four_workers_handle_20000_events_exactly_once() {
    let server = PgServer::start();
    const TOTAL: usize = 20_000;
    let pool = accept_events(&server, TOTAL).await;
    let mut first = spawn_child(&server.url(), "first", 0);
    let mut second = spawn_child(&server.url(), "second", 0);
    wait_until_all_done(&pool, TOTAL as i64).await;
    for child in [&mut first, &mut second] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert_exactly_once(&pool, TOTAL as i64).await;
    let processes = count(
        &pool,
        "SELECT count(DISTINCT split_part(worker, '-', 1)) FROM monite_webhook_inbox_attempts",
    )
    .await;
    assert_eq!(processes, 2, "both processes took events");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM monite_webhook_inbox_attempts WHERE outcome = 'done'"
        )
        .await,
        TOTAL as i64,
        "one done attempt per event"
    );
}
