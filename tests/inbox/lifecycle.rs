//! The inbox against a real PostgreSQL: accepting (one durable write, `202`, `200` for a
//! duplicate, `503` when PostgreSQL is down), attempt fencing after a rescue, retries on
//! the schedule, and a poison event going dead while the rest flow.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::StatusCode;
use monite_webhooks::inbox::{
    AfterFailure, AttemptId, AttemptRecord, ClaimRequest, Completed, InboxStore, PostgresInbox,
    Report, RetrySchedule, Workers,
};
use monite_webhooks::{Dispatcher, ErrorKind, Event, ObjectType, Outcome, Receiver};
use support::fixture::{deliver, fresh_id};
use support::inbox::{envelope, inbox_on, receiver, scalar, wait_for};
use support::pg::PgServer;
use support::swallowing;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_writes_once_answers_duplicates_200_and_runs_no_handler() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let ran = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&ran);
    // An inbox receiver takes no handlers: these run only in workers, none started here.
    let _handlers = Dispatcher::builder()
        .on_object(ObjectType::Payable, move |_: Event| {
            counted.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .build();
    let receiver = receiver(&inbox);
    let id = fresh_id();
    let body = envelope(&id, "entity-1");
    assert_eq!(deliver(&receiver, &body).await, StatusCode::ACCEPTED);
    assert_eq!(deliver(&receiver, &body).await, StatusCode::OK);
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "no handler runs before the answer"
    );
    let (key, state, signature, stored_body, entity): (
        String,
        String,
        Option<String>,
        Vec<u8>,
        String,
    ) = sqlx::query_as(
        "SELECT dedup_key, state, headers->>'monite-signature', body, entity_id \
             FROM monite_webhook_inbox_events",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(key, format!("billing:evt:{id}"));
    assert_eq!(state, "pending");
    assert!(
        signature.unwrap().starts_with("t="),
        "the signature is kept to re-verify"
    );
    assert_eq!(stored_body, body.as_bytes(), "the raw body, as received");
    assert_eq!(entity, "entity-1");
    // Another service on the same database has its own key for the same event.
    let (_, other) = inbox_on(&server, "shipping").await;
    assert_eq!(
        deliver(&receiver_of(&other), &body).await,
        StatusCode::ACCEPTED
    );
}

fn receiver_of(inbox: &PostgresInbox) -> Receiver {
    receiver(inbox)
}

/// An inbox receiver has no handlers: `dispatch` is refused, and `receive_event` (what the
/// reconciler and recovery use) writes the event to the inbox, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbox_receiver_refuses_dispatch_and_accepts_with_receive_event() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let receiver = receiver(&inbox);
    let event = Event::parse(envelope(&fresh_id(), "entity-1")).unwrap();
    let refused = receiver.dispatch(event.clone()).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Misconfigured);
    assert_eq!(
        receiver.receive_event(event.clone()).await.unwrap(),
        Outcome::Accepted
    );
    assert_eq!(
        receiver.receive_event(event).await.unwrap(),
        Outcome::Duplicate
    );
    let rows = scalar(
        store.pool(),
        "SELECT count(*) FROM monite_webhook_inbox_events",
    )
    .await;
    assert_eq!(rows, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_answers_503_while_postgres_is_down() {
    let mut server = PgServer::start();
    let (_store, inbox) = inbox_on(&server, "billing").await;
    let receiver = receiver_of(&inbox);
    server.stop();
    let body = envelope(&fresh_id(), "e");
    assert_eq!(
        deliver(&receiver, &body).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    server.start_again();
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..100 {
        status = deliver(&receiver, &body).await;
        if status != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::ACCEPTED, "Monite's retry is accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_after_a_rescue_changes_nothing() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    assert_eq!(
        deliver(&receiver_of(&inbox), &envelope(&fresh_id(), "e")).await,
        StatusCode::ACCEPTED
    );
    let lease = Duration::from_secs(60);
    let first = inbox
        .claim(&ClaimRequest::new("slow", 10, lease))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    let held = first[0].attempt;
    assert_eq!(held.attempt, 1);
    assert!(
        inbox
            .claim(&ClaimRequest::new("other", 10, lease))
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    // The slow worker's lease lapses (set in SQL: no sleeping), and it is rescued.
    sqlx::query("UPDATE monite_webhook_inbox_events SET locked_until = now() - interval '1 s'")
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(inbox.rescue(3, 25).await.unwrap(), 1);
    let second = inbox
        .claim(&ClaimRequest::new("fast", 10, lease))
        .await
        .unwrap();
    assert_eq!(second[0].attempt, AttemptId::new(held.row, 2));
    let report = AttemptRecord::new("slow", Duration::from_millis(5));
    assert!(!inbox.complete(held, &report).await.unwrap(), "fenced");
    assert!(
        !inbox.fail(held, &report, AfterFailure::Dead).await.unwrap(),
        "fenced"
    );
    let late = Completed {
        attempt: held,
        duration: Duration::from_millis(5),
    };
    assert!(
        inbox
            .complete_batch("slow", &[late])
            .await
            .unwrap()
            .is_empty(),
        "fenced in a batch too"
    );
    assert_eq!(inbox.heartbeat(&[held], lease).await.unwrap(), 0);
    let state: (String, i32) =
        sqlx::query_as("SELECT state, attempt FROM monite_webhook_inbox_events")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(
        state,
        ("running".to_owned(), 2),
        "the late attempt changed nothing"
    );
    assert!(
        inbox
            .complete(
                AttemptId::new(held.row, 2),
                &AttemptRecord::new("fast", Duration::ZERO)
            )
            .await
            .unwrap()
    );
    let log: Vec<(i32, String, Option<String>)> = sqlx::query_as(
        "SELECT attempt, outcome, worker FROM monite_webhook_inbox_attempts ORDER BY attempt",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(
        log,
        [
            (1, "lapsed".to_owned(), Some("slow".to_owned())),
            (2, "done".to_owned(), Some("fast".to_owned()))
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_lease_keeps_lapsing_goes_dead() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    deliver(&receiver_of(&inbox), &envelope(&fresh_id(), "e")).await;
    for lapse in 1..=3 {
        let claimed = inbox
            .claim(&ClaimRequest::new("dies", 1, Duration::from_secs(60)))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "claimable again after lapse {lapse}");
        sqlx::query("UPDATE monite_webhook_inbox_events SET locked_until = now()")
            .execute(store.pool())
            .await
            .unwrap();
        inbox.rescue(3, 25).await.unwrap();
    }
    let (state, error): (String, String) =
        sqlx::query_as("SELECT state, last_error FROM monite_webhook_inbox_events")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(state, "dead");
    assert!(error.contains("lapsed 3 times"), "{error}");
    assert!(
        inbox
            .claim(&ClaimRequest::new("next", 1, Duration::from_secs(60)))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_goes_dead_while_the_rest_flow() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let poison = fresh_id();
    let handled = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&handled);
    let bad = poison.clone();
    let dispatcher = Dispatcher::builder()
        .on_object(ObjectType::Payable, move |event: Event| {
            assert_ne!(
                event.id(),
                Some(bad.as_str()),
                "the poison event's handler panics"
            );
            counted.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .build();
    let receiver = receiver_of(&inbox);
    deliver(&receiver, &envelope(&poison, "e")).await;
    for _ in 0..200 {
        deliver(&receiver, &envelope(&fresh_id(), "e")).await;
    }
    let alerts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let alerted = Arc::clone(&alerts);
    let handler_failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let failed = Arc::clone(&handler_failures);
    let workers = Workers::builder(inbox.clone(), dispatcher)
        .on_report(move |report| {
            let (event, tries, dead) = match report {
                Report::AttemptFailed { event, tries, .. } => (event, *tries, false),
                Report::Dead { event, tries, .. } => (event, *tries, true),
                _ => return,
            };
            let id = event.as_ref().and_then(Event::id).map(str::to_owned);
            alerted.lock().unwrap().push((id, tries, dead));
        })
        .on_failure(move |event, error| {
            let id = event.id().map(str::to_owned);
            failed.lock().unwrap().push((id, error.kind()));
        })
        .concurrency(3)
        .batch(8)
        .poll_interval(Duration::from_millis(20))
        .retry(RetrySchedule::new([Duration::ZERO], 3).with_jitter(|d| d))
        .start()
        .unwrap();
    wait_for(
        store.pool(),
        "SELECT count(*) FROM monite_webhook_inbox_events WHERE state IN ('done', 'dead')",
        201,
    )
    .await;
    workers.shutdown().await;
    assert_eq!(
        handled.load(Ordering::SeqCst),
        200,
        "the others each ran once"
    );
    let (state, attempt, error): (String, i32, String) = sqlx::query_as(
        "SELECT state, attempt, last_error FROM monite_webhook_inbox_events WHERE event_id = $1",
    )
    .bind(&poison)
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!((state.as_str(), attempt), ("dead", 3));
    assert!(error.contains("panicked"), "{error}");
    let failures = scalar(
        store.pool(),
        "SELECT count(*) FROM monite_webhook_inbox_attempts WHERE outcome = 'failed'",
    )
    .await;
    assert_eq!(failures, 3, "a row per attempt");
    let poison = Some(poison);
    assert_eq!(
        *alerts.lock().unwrap(),
        [
            (poison.clone(), 1, false),
            (poison.clone(), 2, false),
            (poison.clone(), 3, true)
        ],
        "the hook hears the first failure and the burial"
    );
    assert_eq!(
        *handler_failures.lock().unwrap(),
        vec![(poison, ErrorKind::HandlerPanicked); 3],
        "on_failure hears each time the handler failed on the event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_follow_the_schedule_then_the_event_is_dead() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    deliver(&receiver_of(&inbox), &envelope(&fresh_id(), "e")).await;
    let dispatcher = Dispatcher::builder()
        .on_object(ObjectType::Payable, |_: Event| async {
            Err::<(), _>(std::io::Error::other("ledger unavailable"))
        })
        .build();
    let hour = Duration::from_secs(3600);
    let workers = Workers::builder(inbox.clone(), dispatcher)
        .concurrency(1)
        .poll_interval(Duration::from_millis(20))
        .retry(RetrySchedule::new([hour, 2 * hour], 3).with_jitter(|d| d))
        .start()
        .unwrap();
    let due = "SELECT extract(epoch FROM run_at - now())::bigint FROM monite_webhook_inbox_events";
    for (attempt, wait) in [(1, 3600), (2, 7200)] {
        let sql = if attempt == 1 {
            "SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'pending' AND attempt = 1"
        } else {
            "SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'pending' AND attempt = 2"
        };
        wait_for(store.pool(), sql, 1).await;
        let left = scalar(store.pool(), due).await;
        assert!(
            (wait - 60..=wait).contains(&left),
            "attempt {attempt}: due in {left} s"
        );
        // The delay passes: moved in SQL instead of waited for.
        sqlx::query("UPDATE monite_webhook_inbox_events SET run_at = now()")
            .execute(store.pool())
            .await
            .unwrap();
    }
    wait_for(
        store.pool(),
        "SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'dead' AND attempt = 3 \
         AND last_error LIKE '%ledger unavailable%'",
        1,
    )
    .await;
    workers.shutdown().await;
}

/// `run_once` claims one batch, runs it and settles it before it returns (done marks
/// written, the failure scheduled for a retry); the next call takes the rest, and an empty
/// inbox answers an empty summary. A backlog threshold nobody hears is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_claims_runs_and_settles_one_batch() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let receiver = receiver_of(&inbox);
    deliver(&receiver, &envelope(&format!("bad-{}", fresh_id()), "e")).await;
    for _ in 0..2 {
        deliver(&receiver, &envelope(&fresh_id(), "e")).await;
    }
    let dispatcher = || {
        Dispatcher::builder()
            .on_object(ObjectType::Payable, |event: Event| {
                let bad = event.id().unwrap_or_default().starts_with("bad-");
                async move {
                    if bad {
                        return Err(std::io::Error::other("ledger unavailable"));
                    }
                    Ok(())
                }
            })
            .build()
    };
    let unheard = Workers::builder(inbox.clone(), dispatcher())
        .backlog_alert_after(Duration::from_secs(60))
        .build()
        .unwrap_err();
    assert_eq!(unheard.kind(), ErrorKind::Misconfigured, "{unheard}");
    let workers = Workers::builder(inbox.clone(), dispatcher())
        .batch(2)
        .retry(RetrySchedule::new([Duration::from_secs(3600)], 3))
        .build()
        .unwrap();
    let first = workers.run_once().await.unwrap();
    let second = workers.run_once().await.unwrap();
    let third = workers.run_once().await.unwrap();
    assert_eq!((first.claimed, second.claimed, third.claimed), (2, 1, 0));
    assert_eq!(
        first.succeeded + second.succeeded,
        2,
        "{first:?} {second:?}"
    );
    assert_eq!(first.failed + second.failed, 1, "{first:?} {second:?}");
    assert_eq!(first.not_started + second.not_started, 0);
    let pool = store.pool();
    let done = "SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'done'";
    assert_eq!(scalar(pool, done).await, 2, "the done marks are written");
    let retrying = "SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'pending' \
                    AND attempt = 1 AND last_error LIKE '%ledger unavailable%'";
    assert_eq!(
        scalar(pool, retrying).await,
        1,
        "the failure waits for its retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_workers_claim_nothing_while_accepting_goes_on() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let handled = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&handled);
    let dispatcher = Dispatcher::builder()
        .on_object(ObjectType::Payable, move |_: Event| {
            counted.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .build();
    inbox.pause().await.unwrap();
    let workers = Workers::builder(inbox.clone(), dispatcher)
        .concurrency(2)
        .poll_interval(Duration::from_millis(20))
        .start()
        .unwrap();
    let receiver = receiver_of(&inbox);
    for _ in 0..20 {
        assert_eq!(
            deliver(&receiver, &envelope(&fresh_id(), "e")).await,
            StatusCode::ACCEPTED,
            "accepting goes on while paused"
        );
    }
    // Claims that ran after the pause took nothing: wait for a few polls' worth of them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(handled.load(Ordering::SeqCst), 0, "paused");
    assert_eq!(inbox.status().await.unwrap().pending, 20);
    inbox.resume().await.unwrap();
    wait_for(
        store.pool(),
        "SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'done'",
        20,
    )
    .await;
    workers.shutdown().await;
    assert_eq!(handled.load(Ordering::SeqCst), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_events_are_pruned_after_at_least_eight_days() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let receiver = receiver_of(&inbox);
    let old = envelope(&fresh_id(), "e");
    for body in [
        &old,
        &envelope(&fresh_id(), "e"),
        &envelope(&fresh_id(), "e"),
    ] {
        deliver(&receiver, body).await;
    }
    sqlx::query("UPDATE monite_webhook_inbox_events SET state = 'done'")
        .execute(store.pool())
        .await
        .unwrap();
    // Two received 9 and 7 days ago (set in SQL: no waiting), one now.
    sqlx::query(
        "UPDATE monite_webhook_inbox_events SET received_at = now() - interval '9 days' \
         WHERE id = (SELECT min(id) FROM monite_webhook_inbox_events)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query(
        "UPDATE monite_webhook_inbox_events SET received_at = now() - interval '7 days' \
         WHERE id = (SELECT max(id) FROM monite_webhook_inbox_events)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    // A retention under 8 days is raised to 8: the 7-day-old row keeps its dedup key.
    assert_eq!(inbox.prune_done(Duration::from_secs(60)).await.unwrap(), 1);
    assert_eq!(inbox.status().await.unwrap().done, Some(2));
    assert_eq!(
        deliver(&receiver, &old).await,
        StatusCode::ACCEPTED,
        "a pruned key is forgotten: only after Monite stopped retrying"
    );
    // The workers prune on their own, once at their start and every PRUNE_INTERVAL after,
    // and at once again while a turn (10,000) finds its fill.
    sqlx::query(
        "UPDATE monite_webhook_inbox_events SET state = 'done', received_at = now() - interval '10 days'",
    )
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO monite_webhook_inbox_events (dedup_key, namespace, object_type, event,            body, headers, state, received_at)          SELECT 'billing:evt:old-' || n, 'billing', 'payable', 'payable.created', '\\x7b7d',            '{}', 'done', now() - interval '10 days' FROM generate_series(1, 25000) AS n",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let workers = Workers::builder(inbox.clone(), Dispatcher::builder().build())
        .concurrency(1)
        .start()
        .unwrap();
    wait_for(
        store.pool(),
        "SELECT count(*) FROM monite_webhook_inbox_events",
        0,
    )
    .await;
    workers.shutdown().await;
}

/// A transactional handler run by a worker whose transaction did not commit (a swallowed
/// failed statement aborted it, or the handler ended it with a raw `ROLLBACK`) is never
/// marked done: the attempt fails, and the retry's writes commit with the done mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_never_marks_done_a_transaction_that_did_not_commit() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    store.ensure_schema().await.unwrap();
    swallowing::create_tables(&store).await;
    // By the id's last digit: a unique violation, a division by zero, a raw ROLLBACK, a
    // raw COMMIT.
    let handler = swallowing::handler(&store, |event| {
        match event.id().and_then(|id| id.rsplit('-').next()) {
            Some("0") => "INSERT INTO ledger VALUES ('p')",
            Some("1") => "SELECT 1 / 0",
            Some("2") => "ROLLBACK",
            _ => "COMMIT",
        }
    });
    let run = fresh_id();
    let accepting = receiver_of(&inbox);
    for n in 0..4 {
        deliver(&accepting, &envelope(&format!("{run}-{n}"), "e")).await;
    }
    let workers = Workers::builder(
        inbox.clone(),
        Dispatcher::builder()
            .on_object(ObjectType::Payable, handler)
            .build(),
    )
    .poll_interval(Duration::from_millis(20))
    .retry(RetrySchedule::new([Duration::ZERO], 3).with_jitter(|d| d))
    .start()
    .unwrap();
    wait_for(
        store.pool(),
        "SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'done'",
        4,
    )
    .await;
    workers.shutdown().await;
    for n in 0..3 {
        let id = format!("{run}-{n}");
        let committed: Vec<i32> =
            sqlx::query_scalar("SELECT attempt FROM effects WHERE event_id = $1")
                .bind(&id)
                .fetch_all(store.pool())
                .await
                .unwrap();
        let outcomes: Vec<String> = sqlx::query_scalar(
            "SELECT a.outcome FROM monite_webhook_inbox_attempts a \
             JOIN monite_webhook_inbox_events e ON e.id = a.event_row \
             WHERE e.event_id = $1 ORDER BY a.attempt",
        )
        .bind(&id)
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(outcomes, ["failed", "done"], "event {n}");
        assert_eq!(committed, [2], "event {n}: only the retry's writes");
    }
    // A raw COMMIT did commit the first attempt's writes: the failure is loud, and the
    // retry writes again, as a handler that ends its own transaction must expect.
    let error: Option<String> = sqlx::query_scalar(
        "SELECT a.error FROM monite_webhook_inbox_attempts a \
         JOIN monite_webhook_inbox_events e ON e.id = a.event_row \
         WHERE e.event_id = $1 AND a.outcome = 'failed'",
    )
    .bind(format!("{run}-3"))
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert!(error.unwrap().contains("ended its transaction"));
}

/// A log line sink for one test.
#[cfg(feature = "tracing")]
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(feature = "tracing")]
impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `Workers::start` warns when the store's pool (10 connections from
/// `PostgresStore::connect`) leaves ten workers no headroom, and says what size to give;
/// four workers fit without a word.
#[cfg(feature = "tracing")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_warn_when_the_pool_leaves_them_no_headroom() {
    let server = PgServer::start();
    let (_store, inbox) = inbox_on(&server, "billing").await;
    let captured = Captured::default();
    let started = |concurrency: usize| {
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        let _logging = tracing::subscriber::set_default(subscriber);
        Workers::builder(inbox.clone(), Dispatcher::builder().build())
            .concurrency(concurrency)
            .start()
            .unwrap()
    };
    let fitting = started(4);
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(!log.contains("inbox workers"), "4 workers fit 10: {log}");
    let crowded = started(10);
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("WARN") && log.contains("a pool of at least 13"),
        "10 workers on 10 connections: {log}"
    );
    fitting.shutdown().await;
    crowded.shutdown().await;
}
