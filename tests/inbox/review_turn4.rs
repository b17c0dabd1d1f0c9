//! Reproductions for review turn 4 (inbox, transactional handlers, example wiring). Each
//! test asserts what the crate promises; on the reviewed tree (418bf88) each one FAILS.
//!
//! cargo test --features postgres --test inbox inbox::review_turn4:: -- --nocapture --test-threads 1

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use monite_webhooks::inbox::{
    InboxStore, PostgresInbox, Report, RetrySchedule, WhenUnhandled, Workers,
};
use monite_webhooks::{BoxError, Dispatcher, Event, Receiver, Verifier};
use support::fixture::{self, deliver, fresh_id};
use support::inbox::{Call, Faulty, envelope, inbox_on, receiver, scalar, wait_for};
use support::pg::PgServer;

type Runs = Arc<Mutex<HashMap<String, usize>>>;

fn count(runs: &Runs, id: &str) -> usize {
    let mut runs = runs.lock().unwrap();
    let n = runs.entry(id.to_owned()).or_default();
    *n += 1;
    *n
}

fn runs_of(runs: &Runs, id: &str) -> usize {
    runs.lock().unwrap().get(id).copied().unwrap_or(0)
}

/// An envelope with no `entity_id` (a partner-level event).
fn entityless(id: &str) -> String {
    format!(
        r#"{{"id":"{id}","created_at":"2024-03-04T20:06:48.593225+00:00","action":"payable.created","api_version":"2024-01-31","description":"d","object":{{"id":"587fd280"}},"object_type":"payable","webhook_subscription_id":"f3c64af7"}}"#
    )
}

// ---------------------------------------------------------------------------------------
// R1: a panic in the worker outside the dispatcher's catch_unwind (here a user `Jitter`)
// kills the worker task and orphans its heartbeat task, which renews the batch's leases
// forever: the events stay `running`, are never rescued, never retried, never dead; even
// `WorkersHandle::shutdown` does not stop it.
// ---------------------------------------------------------------------------------------
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r1_a_panicking_jitter_leaves_the_batch_running_forever() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let plain = receiver(&inbox);
    let (bad, good) = (
        format!("bad-{}", fresh_id()),
        format!("good-{}", fresh_id()),
    );
    assert_eq!(
        deliver(&plain, &envelope(&bad, "e1")).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        deliver(&plain, &envelope(&good, "e2")).await,
        StatusCode::ACCEPTED
    );
    let runs = Runs::default();
    let counted = Arc::clone(&runs);
    let dispatcher = Dispatcher::builder()
        .fallback(move |event: Event, _| {
            let id = event.id().unwrap_or_default().to_owned();
            let n = count(&counted, &id);
            async move {
                let _ = n;
                if id.starts_with("bad-") {
                    Err::<(), BoxError>("ledger unavailable".into())
                } else {
                    Ok(())
                }
            }
        })
        .build();
    // A jitter with a bug: `delay - 10 s` underflows for the first 1 s delay.
    let schedule = RetrySchedule::new([Duration::from_secs(1)], 5)
        .with_jitter(|delay: Duration| delay - Duration::from_secs(10));
    let workers = Workers::builder(inbox.clone(), dispatcher)
        .concurrency(1)
        .lease(Duration::from_secs(1))
        .retry(schedule)
        .start()
        .unwrap();
    // Six leases later, then shut down, then three more seconds.
    tokio::time::sleep(Duration::from_secs(6)).await;
    workers.shutdown().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rows: Vec<(String, String, i32, i32, bool)> = sqlx::query_as(
        "SELECT event_id, state, attempt, lapses, coalesce(locked_until > now(), false) \
         FROM monite_webhook_inbox_events ORDER BY id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    eprintln!("R1 rows after 9 s (lease 1 s): {rows:?}");
    eprintln!(
        "R1 runs: bad {} good {}",
        runs_of(&runs, &bad),
        runs_of(&runs, &good)
    );
    let held_forever = rows
        .iter()
        .filter(|(_, state, _, _, live)| state == "running" && *live)
        .count();
    assert_eq!(
        held_forever, 0,
        "events still `running` under a lease renewed by an orphaned heartbeat: {rows:?}"
    );
}

// ---------------------------------------------------------------------------------------
// R2: a quick success waits for its done mark until the NEXT handler of the batch returns
// (not 10 ms): killed meanwhile, the process leaves it `running`, and it runs again.
// ---------------------------------------------------------------------------------------
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r2_a_quick_success_is_not_marked_done_while_the_next_handler_runs() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let plain = receiver(&inbox);
    let (quick, slow) = (
        format!("quick-{}", fresh_id()),
        format!("slow-{}", fresh_id()),
    );
    assert_eq!(
        deliver(&plain, &envelope(&quick, "e1")).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        deliver(&plain, &envelope(&slow, "e2")).await,
        StatusCode::ACCEPTED
    );
    let runs = Runs::default();
    let dispatcher = {
        let runs = Arc::clone(&runs);
        move || {
            let runs = Arc::clone(&runs);
            Dispatcher::builder()
                .fallback(move |event: Event, _| {
                    let id = event.id().unwrap_or_default().to_owned();
                    count(&runs, &id);
                    async move {
                        if id.starts_with("slow-") {
                            tokio::time::sleep(Duration::from_secs(3)).await;
                        }
                    }
                })
                .build()
        }
    };
    // "Process" 1: its own runtime and pool, killed (runtime dropped) mid-way.
    let url = server.url();
    let first = dispatcher();
    let (crash_tx, crash_rx) = std::sync::mpsc::channel::<()>();
    let process = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = monite_webhooks::PostgresStore::connect(&url, "billing")
                .await
                .unwrap();
            let handle = Workers::builder(PostgresInbox::new(&store), first)
                .concurrency(1)
                .lease(Duration::from_secs(1))
                .start()
                .unwrap();
            std::mem::forget(handle); // killed, not shut down
        });
        crash_rx.recv().unwrap();
        runtime.shutdown_background(); // SIGKILL, as far as the database can tell
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let quick_state: String = sqlx::query_scalar(
        "SELECT state FROM monite_webhook_inbox_events WHERE event_id LIKE 'quick-%'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    eprintln!(
        "R2 after 1.5 s: quick handler ran {} time(s), its row is {quick_state:?}",
        runs_of(&runs, &quick)
    );
    crash_tx.send(()).unwrap();
    process.join().unwrap();
    // "Process" 2 takes over after the leases lapse.
    let workers = Workers::builder(inbox.clone(), dispatcher())
        .concurrency(1)
        .lease(Duration::from_secs(1))
        .start()
        .unwrap();
    wait_for(
        store.pool(),
        "SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'done'",
        2,
    )
    .await;
    workers.shutdown().await;
    eprintln!(
        "R2 runs: quick {} slow {}",
        runs_of(&runs, &quick),
        runs_of(&runs, &slow)
    );
    assert_eq!(
        quick_state, "done",
        "a success waited 1.5 s (not 10 ms) for its done mark"
    );
    assert_eq!(runs_of(&runs, &quick), 1, "the quick handler ran twice");
}

// ---------------------------------------------------------------------------------------
// R3: in entity order, the entity-less candidates are the first `batch` entity-less rows
// pending OR running (retries waiting included): a batch of retrying events blocks every
// other entity-less event until their retries are due.
// ---------------------------------------------------------------------------------------
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_entityless_events_wait_behind_a_batch_of_retrying_ones() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let plain = receiver(&inbox);
    let batch = 4;
    for _ in 0..batch {
        let id = format!("bad-{}", fresh_id());
        assert_eq!(
            deliver(&plain, &entityless(&id)).await,
            StatusCode::ACCEPTED
        );
    }
    let good = format!("good-{}", fresh_id());
    assert_eq!(
        deliver(&plain, &entityless(&good)).await,
        StatusCode::ACCEPTED
    );
    let runs = Runs::default();
    let counted = Arc::clone(&runs);
    let dispatcher = Dispatcher::builder()
        .fallback(move |event: Event, _| {
            let id = event.id().unwrap_or_default().to_owned();
            count(&counted, &id);
            async move {
                if id.starts_with("bad-") {
                    Err::<(), BoxError>("ledger unavailable".into())
                } else {
                    Ok(())
                }
            }
        })
        .build();
    let workers = Workers::builder(inbox.clone(), dispatcher)
        .concurrency(2)
        .batch(batch)
        .in_entity_order(true)
        .retry(RetrySchedule::new([Duration::from_secs(3600)], 5).with_jitter(|d| d))
        .start()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    workers.shutdown().await;
    let good_state: (String, i32) = sqlx::query_as(
        "SELECT state, attempt FROM monite_webhook_inbox_events WHERE event_id LIKE 'good-%'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    eprintln!(
        "R3 after 5 s: the entity-less good event is {good_state:?}, ran {} time(s); \
         retrying bad ones: {}",
        runs_of(&runs, &good),
        scalar(
            store.pool(),
            "SELECT count(*) FROM monite_webhook_inbox_events \
             WHERE state = 'pending' AND attempt = 1"
        )
        .await
    );
    assert_eq!(
        good_state.0, "done",
        "events without an entity keep no order, yet this one waits behind retries"
    );
}

// ---------------------------------------------------------------------------------------
// R4: in inbox mode `unhandled_status` is ignored: the delivery is acknowledged (202) and
// a worker without a handler for it marks it done. Without the inbox the same receiver
// answers 503 and Monite retries until a replica with the handler takes it.
// ---------------------------------------------------------------------------------------
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_inbox_mode_marks_unhandled_events_done_whatever_unhandled_status_says() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let direct = Receiver::builder(
        Verifier::new(fixture::secret(fixture::CURRENT)),
        Dispatcher::builder().build(),
    )
    .unhandled_status(StatusCode::SERVICE_UNAVAILABLE)
    .build();
    let queued = Receiver::inbox_builder(
        Verifier::new(fixture::secret(fixture::CURRENT)),
        inbox.clone(),
    )
    .unhandled_status(StatusCode::SERVICE_UNAVAILABLE)
    .build();
    let body = envelope(&fresh_id(), "e1");
    let direct_status = deliver(&direct, &body).await;
    let queued_status = deliver(&queued, &body).await;
    // Workers of an older release, without the handler (a rolling deploy).
    let workers = Workers::builder(inbox.clone(), Dispatcher::builder().build())
        .concurrency(1)
        .start()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    workers.shutdown().await;
    let state: String = sqlx::query_scalar("SELECT state FROM monite_webhook_inbox_events")
        .fetch_one(store.pool())
        .await
        .unwrap();
    eprintln!("R4 direct {direct_status}, inbox {queued_status}, inbox row now {state:?}");
    assert_eq!(direct_status, StatusCode::SERVICE_UNAVAILABLE);
    assert_ne!(
        state, "done",
        "an event no handler took was acknowledged and marked done"
    );
}

// ---------------------------------------------------------------------------------------
// R5: `on_failure` never hears an inbox write that failed (503): the example servers'
// watchdog wiring ("a delivery the inbox could not write (503) reaches the watchdog") is
// never called.
// ---------------------------------------------------------------------------------------
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r5_an_inbox_503_never_reaches_on_failure() {
    let mut server = PgServer::start();
    let (_store, inbox) = inbox_on(&server, "billing").await;
    let heard = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&heard);
    let receiver = Receiver::inbox_builder(
        Verifier::new(fixture::secret(fixture::CURRENT)),
        inbox.clone(),
    )
    .on_failure(move |_, _| {
        counted.fetch_add(1, Ordering::SeqCst);
    })
    .build();
    server.stop();
    let status = deliver(&receiver, &envelope(&fresh_id(), "e1")).await;
    eprintln!(
        "R5 answer {status}, on_failure called {} time(s)",
        heard.load(Ordering::SeqCst)
    );
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        heard.load(Ordering::SeqCst),
        1,
        "the 503 never reached on_failure"
    );
}

// ---------------------------------------------------------------------------------------
// R6: an envelope field holding U+0000 (valid JSON, signed) cannot be stored in a `text`
// column: every delivery of it is answered 503, for Monite's whole week.
// ---------------------------------------------------------------------------------------
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r6_a_nul_in_an_envelope_field_is_refused_by_the_inbox_forever() {
    let server = PgServer::start();
    let (_store, inbox) = inbox_on(&server, "billing").await;
    let receiver = receiver(&inbox);
    let body = envelope(&fresh_id(), r"entity\u0000one");
    let statuses = [
        deliver(&receiver, &body).await,
        deliver(&receiver, &body).await,
    ];
    eprintln!("R6 answers: {statuses:?}");
    assert_eq!(
        statuses[0],
        StatusCode::ACCEPTED,
        "a poison delivery, refused forever"
    );
    assert_eq!(statuses[1], StatusCode::OK, "its retry is a duplicate");
}

// ---------------------------------------------------------------------------------------
// R7: a worker whose heartbeats fail goes on to START the events of its batch it no longer
// holds: another process rescued and ran them, and they run a second time.
// ---------------------------------------------------------------------------------------
/// Every heartbeat fails, as on a connection lost.
fn heartbeat_lost(inbox: &PostgresInbox) -> Faulty {
    Faulty::new(inbox, |call| match call {
        Call::Heartbeat => Err("the connection to PostgreSQL was lost".into()),
        _ => Ok(()),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r7_a_worker_that_lost_its_leases_still_starts_the_rest_of_its_batch() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let plain = receiver(&inbox);
    let (slow, next) = (
        format!("slow-{}", fresh_id()),
        format!("next-{}", fresh_id()),
    );
    assert_eq!(
        deliver(&plain, &envelope(&slow, "e1")).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        deliver(&plain, &envelope(&next, "e2")).await,
        StatusCode::ACCEPTED
    );
    let runs = Runs::default();
    let dispatcher = |runs: &Runs| {
        let runs = Arc::clone(runs);
        Dispatcher::builder()
            .fallback(move |event: Event, _| {
                let id = event.id().unwrap_or_default().to_owned();
                count(&runs, &id);
                async move {
                    if id.starts_with("slow-") {
                        tokio::time::sleep(Duration::from_secs(4)).await;
                    }
                }
            })
            .build()
    };
    let cut_off = Workers::builder(heartbeat_lost(&inbox), dispatcher(&runs))
        .name("cut-off")
        .concurrency(1)
        .lease(Duration::from_secs(1))
        .start()
        .unwrap();
    wait_for(
        store.pool(),
        "SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'running'",
        2,
    )
    .await;
    let healthy = Workers::builder(inbox.clone(), dispatcher(&runs))
        .name("healthy")
        .concurrency(1)
        .lease(Duration::from_secs(1))
        .start()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    cut_off.shutdown().await;
    healthy.shutdown().await;
    eprintln!(
        "R7 runs: slow {} next {}",
        runs_of(&runs, &slow),
        runs_of(&runs, &next)
    );
    assert_eq!(
        runs_of(&runs, &next),
        1,
        "the cut-off worker started an event another process had rescued and run"
    );
}

// ---------------------------------------------------------------------------------------
// R8: `redact_url` only redacts `scheme://user:password@` and a `?password=` query: a
// libpq key/value connection string (what `psql`, psycopg and many `DATABASE_URL`s use)
// is printed whole, password included, in the connect error (and so by the CLI's
// `inbox` commands, which read DATABASE_URL).
// ---------------------------------------------------------------------------------------
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r8_a_key_value_connection_string_is_printed_with_its_password() {
    let error = monite_webhooks::PostgresStore::connect(
        "host=127.0.0.1 port=1 user=app password=hunter2-secret dbname=app",
        "billing",
    )
    .await
    .unwrap_err()
    .to_string();
    eprintln!("R8 error: {error}");
    assert!(
        !error.contains("hunter2-secret"),
        "the password is printed: {error}"
    );
}

// ---------------------------------------------------------------------------------------
// R9: the receiver's accepting INSERT and the workers share one pool (as the example
// servers wire them, `PostgresStore::connect`: 10 connections, 2 s acquire timeout). Slow
// transactional handlers (the inbox's reason to exist) hold a connection each, the
// listener holds one: with `concurrency(10)` every new delivery waits 2 s and gets 503.
// ---------------------------------------------------------------------------------------
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r9_slow_transactional_handlers_starve_the_accepting_insert() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let plain = receiver(&inbox);
    // A backlog of ten default batches (32 each), so that all ten workers are busy.
    for _ in 0..330 {
        assert_eq!(
            deliver(&plain, &envelope(&fresh_id(), &fresh_id())).await,
            StatusCode::ACCEPTED
        );
    }
    let slow = store.transactional(|_event: Event, tx| {
        Box::pin(async move {
            sqlx::query("SELECT pg_sleep(6)").execute(&mut *tx).await?;
            Ok(())
        })
    });
    let dispatcher = Dispatcher::builder()
        .on_object(monite_webhooks::ObjectType::Payable, slow)
        .build();
    let workers = Workers::builder(inbox.clone(), dispatcher)
        .concurrency(10)
        .start()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(deliver(&plain, &envelope(&fresh_id(), "e-new")).await);
    }
    eprintln!("R9 answers to new deliveries while 10 slow handlers run: {answers:?}");
    workers.shutdown().await;
    assert!(
        answers.iter().all(|s| *s == StatusCode::ACCEPTED),
        "deliveries refused while the workers hold the pool: {answers:?}"
    );
}

// ---------------------------------------------------------------------------------------
// R10: `purge_dead(older_than)` (and `inbox purge --dead --older-than`) clamps the age to
// MAX_STORE_DURATION (365 days) through `store_millis`: `--older-than 100w` deletes dead
// events only 400 days old, which the operator asked to keep.
// ---------------------------------------------------------------------------------------
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_purging_dead_events_older_than_100_weeks_deletes_younger_ones() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let plain = receiver(&inbox);
    assert_eq!(
        deliver(&plain, &envelope(&fresh_id(), "e1")).await,
        StatusCode::ACCEPTED
    );
    sqlx::query(
        "UPDATE monite_webhook_inbox_events \
         SET state = 'dead', received_at = now() - interval '400 days'",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let purged = inbox
        .purge_dead(Duration::from_secs(100 * 7 * 24 * 3600))
        .await
        .unwrap();
    eprintln!("R10 purge --older-than 100w deleted {purged} dead event(s) received 400 days ago");
    assert_eq!(
        purged, 0,
        "a 400-day-old event is not older than 100 weeks (700 days)"
    );
}

// ---------------------------------------------------------------------------------------
// R12: `shutdown()` hands back a batch's unstarted events only after the handler running
// now returns. Killed during that wait (a grace period ending in SIGKILL while a slow
// handler runs), the process leaves them all `running`: each lapses, and each lapse counts
// toward `max_lapses` (then `dead`) although those events never started.
// ---------------------------------------------------------------------------------------
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_shutdown_keeps_unstarted_events_until_the_running_handler_ends() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let plain = receiver(&inbox);
    assert_eq!(
        deliver(&plain, &envelope(&format!("slow-{}", fresh_id()), "e1")).await,
        StatusCode::ACCEPTED
    );
    for _ in 0..5 {
        assert_eq!(
            deliver(&plain, &envelope(&fresh_id(), "e2")).await,
            StatusCode::ACCEPTED
        );
    }
    let url = server.url();
    let (kill_tx, kill_rx) = std::sync::mpsc::channel::<()>();
    let process = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = monite_webhooks::PostgresStore::connect(&url, "billing")
                .await
                .unwrap();
            let dispatcher = Dispatcher::builder()
                .fallback(|event: Event, _| async move {
                    if event.id().unwrap_or_default().starts_with("slow-") {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                })
                .build();
            let handle = Workers::builder(PostgresInbox::new(&store), dispatcher)
                .concurrency(1)
                .lease(Duration::from_secs(1))
                .start()
                .unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
            // SIGTERM: the graceful shutdown starts...
            tokio::spawn(handle.shutdown());
        });
        kill_rx.recv().unwrap();
        runtime.shutdown_background(); // ...and the grace period ends in SIGKILL.
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let running = scalar(
        store.pool(),
        "SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'running'",
    )
    .await;
    eprintln!("R12 2.5 s into the shutdown: {running} events still `running` (1 of them started)");
    kill_tx.send(()).unwrap();
    process.join().unwrap();
    // Another process rescues them.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let freed = inbox.rescue(3, 25).await.unwrap();
    let lapsed_unstarted = scalar(
        store.pool(),
        "SELECT count(*) FROM monite_webhook_inbox_events \
         WHERE lapses = 1 AND event_id NOT LIKE 'slow-%'",
    )
    .await;
    eprintln!(
        "R12 after the kill: rescue freed {freed}; unstarted events charged a lapse: {lapsed_unstarted}"
    );
    assert_eq!(
        lapsed_unstarted, 0,
        "events that never started were charged a lapse"
    );
}

// ---------------------------------------------------------------------------------------
// R1b: the class of R1: a panic anywhere in a worker outside the dispatcher ends that
// batch only. Here the store's first `rescue` panics (before any claim: the worker starts
// again) and so does its first `fail` (mid-batch: the batch's heartbeat stops, the event it
// settled lapses and is rescued, the one not started is handed back). With one worker,
// the rest of the batch can only run if the worker survived both.
// ---------------------------------------------------------------------------------------
/// The first `fail` and the first rescue panic: a store bug.
fn fail_panics_once(inbox: &PostgresInbox) -> Faulty {
    let (fails, rescues) = (AtomicUsize::new(0), AtomicUsize::new(0));
    Faulty::new(inbox, move |call| {
        match call {
            Call::Fail => assert!(
                fails.fetch_add(1, Ordering::SeqCst) > 0,
                "a store bug on the first failure"
            ),
            Call::Rescue => assert!(
                rescues.fetch_add(1, Ordering::SeqCst) > 0,
                "a store bug on the first rescue"
            ),
            _ => {}
        }
        Ok(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r1b_a_panic_in_a_batch_ends_the_batch_not_the_worker() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let plain = receiver(&inbox);
    let (bad, good) = (
        format!("bad-{}", fresh_id()),
        format!("good-{}", fresh_id()),
    );
    for id in [&bad, &good] {
        assert_eq!(
            deliver(&plain, &envelope(id, "e1")).await,
            StatusCode::ACCEPTED
        );
    }
    let runs = Runs::default();
    let counted = Arc::clone(&runs);
    let dispatcher = Dispatcher::builder()
        .fallback(move |event: Event, _| {
            let id = event.id().unwrap_or_default().to_owned();
            count(&counted, &id);
            async move {
                if id.starts_with("bad-") {
                    Err::<(), BoxError>("ledger unavailable".into())
                } else {
                    Ok(())
                }
            }
        })
        .build();
    let workers = Workers::builder(fail_panics_once(&inbox), dispatcher)
        .concurrency(1)
        .lease(Duration::from_secs(1))
        .retry(RetrySchedule::new([Duration::from_secs(3600)], 5).with_jitter(|d| d))
        .start()
        .unwrap();
    // The bad event lapses once and is retried later; the good one runs after the rescue.
    wait_for(
        store.pool(),
        "SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'done'",
        1,
    )
    .await;
    wait_for(
        store.pool(),
        "SELECT count(*) FROM monite_webhook_inbox_events \
         WHERE state = 'pending' AND lapses = 1 AND event_id LIKE 'bad-%'",
        1,
    )
    .await;
    workers.shutdown().await;
    eprintln!(
        "R1b runs: bad {} good {}",
        runs_of(&runs, &bad),
        runs_of(&runs, &good)
    );
    assert_eq!(runs_of(&runs, &good), 1);
    // The good event had not started when the batch panicked: handed back, not lapsed.
    assert_eq!(
        scalar(
            store.pool(),
            "SELECT lapses::bigint FROM monite_webhook_inbox_events WHERE event_id LIKE 'good-%'"
        )
        .await,
        0
    );
}

// ---------------------------------------------------------------------------------------
// R4b (T4-2): the rolling deploy end to end. A worker without the handler retries what a
// `503` receiver accepted, and a worker with it then runs it; what a default (`200`)
// receiver accepted is done, as without the inbox; `WhenUnhandled::Retry` retries it all
// the same.
// ---------------------------------------------------------------------------------------
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4b_an_unhandled_event_waits_for_a_worker_with_its_handler() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let retrying = Receiver::inbox_builder(
        Verifier::new(fixture::secret(fixture::CURRENT)),
        inbox.clone(),
    )
    .unhandled_status(StatusCode::SERVICE_UNAVAILABLE)
    .build();
    let wanted = format!("wanted-{}", fresh_id());
    assert_eq!(
        deliver(&retrying, &envelope(&wanted, "e1")).await,
        StatusCode::ACCEPTED
    );
    let quick_retry = || RetrySchedule::new([Duration::from_millis(500)], 25).with_jitter(|d| d);
    let old = Workers::builder(inbox.clone(), Dispatcher::builder().build())
        .concurrency(1)
        .retry(quick_retry())
        .start()
        .unwrap();
    wait_for(
        store.pool(),
        "SELECT count(*) FROM monite_webhook_inbox_events WHERE attempt >= 2 AND state <> 'done'",
        1,
    )
    .await;
    old.shutdown().await;
    let runs = Runs::default();
    let counted = Arc::clone(&runs);
    let new = Workers::builder(
        inbox.clone(),
        Dispatcher::builder()
            .fallback(move |event: Event, _| {
                count(&counted, event.id().unwrap_or_default());
                async {}
            })
            .build(),
    )
    .concurrency(1)
    .retry(quick_retry())
    .start()
    .unwrap();
    wait_for(
        store.pool(),
        "SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'done'",
        1,
    )
    .await;
    new.shutdown().await;
    assert_eq!(runs_of(&runs, &wanted), 1);

    // A default receiver acknowledges unhandled events: done, as without the inbox...
    let plain = receiver(&inbox);
    let ignored = format!("ignored-{}", fresh_id());
    assert_eq!(
        deliver(&plain, &envelope(&ignored, "e2")).await,
        StatusCode::ACCEPTED
    );
    let old = Workers::builder(inbox.clone(), Dispatcher::builder().build())
        .concurrency(1)
        .start()
        .unwrap();
    wait_for(
        store.pool(),
        "SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'done'",
        2,
    )
    .await;
    old.shutdown().await;
    // ...unless the workers are told to retry every unhandled event.
    let another = format!("another-{}", fresh_id());
    assert_eq!(
        deliver(&plain, &envelope(&another, "e3")).await,
        StatusCode::ACCEPTED
    );
    let strict = Workers::builder(inbox.clone(), Dispatcher::builder().build())
        .concurrency(1)
        .unhandled(WhenUnhandled::Retry)
        .retry(quick_retry())
        .start()
        .unwrap();
    wait_for(
        store.pool(),
        "SELECT count(*) FROM monite_webhook_inbox_events \
         WHERE event_id LIKE 'another-%' AND attempt >= 1 AND state = 'pending'",
        1,
    )
    .await;
    strict.shutdown().await;
    let last_error: Option<String> = sqlx::query_scalar(
        "SELECT last_error FROM monite_webhook_inbox_events WHERE event_id LIKE 'another-%'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    eprintln!("R4b the retried unhandled event's error: {last_error:?}");
    assert!(last_error.is_some_and(|e| e.contains("no handler takes")));
}

// A table made before the `retry_unhandled` column gets it from `ensure_schema`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4c_ensure_schema_adds_the_column_to_an_older_table() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    // The table as a version before numbered migrations left it: no column, no record.
    sqlx::raw_sql(
        "ALTER TABLE monite_webhook_inbox_events DROP COLUMN retry_unhandled; \
         DELETE FROM monite_webhook_migrations WHERE component = 'inbox'",
    )
    .execute(store.pool())
    .await
    .unwrap();
    inbox.ensure_schema().await.unwrap();
    let plain = receiver(&inbox);
    assert_eq!(
        deliver(&plain, &envelope(&fresh_id(), "e1")).await,
        StatusCode::ACCEPTED
    );
    let retried: bool =
        sqlx::query_scalar("SELECT retry_unhandled FROM monite_webhook_inbox_events")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(
        !retried,
        "a default receiver's event is not retried when unhandled"
    );
}

// ---------------------------------------------------------------------------------------
// R13 (T4-24, second bullet): an event the rescue buries after `max_lapses` lapses reaches
// the alert hook as dead (`on_report`, `Report::Dead`; `on_failure` until issue 28).
// ---------------------------------------------------------------------------------------
/// What the hook heard: (event id, dead, attempt) per call.
type Heard = Arc<Mutex<Vec<(Option<String>, bool, i32)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r13_an_event_buried_by_the_rescue_is_reported_dead() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let plain = receiver(&inbox);
    let poison = format!("poison-{}", fresh_id());
    assert_eq!(
        deliver(&plain, &envelope(&poison, "e1")).await,
        StatusCode::ACCEPTED
    );
    // Its worker died on it: claimed, then the lease ran out.
    sqlx::query(
        "UPDATE monite_webhook_inbox_events SET state = 'running', attempt = 1, \
         locked_by = 'gone-0', locked_until = now() - interval '1 second'",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let heard = Heard::default();
    let hook = Arc::clone(&heard);
    let workers = Workers::builder(inbox.clone(), Dispatcher::builder().build())
        .concurrency(1)
        .max_lapses(1)
        .on_report(move |report| {
            let heard = match report {
                Report::AttemptFailed { event, attempt, .. } => (event, false, *attempt),
                Report::Dead { event, attempt, .. } => (event, true, *attempt),
                _ => return,
            };
            hook.lock().unwrap().push((
                heard.0.as_ref().and_then(|e| e.id()).map(str::to_owned),
                heard.1,
                heard.2,
            ));
        })
        .start()
        .unwrap();
    wait_for(
        store.pool(),
        "SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'dead'",
        1,
    )
    .await;
    // The hook runs after the burial's statement returns: give it a moment.
    for _ in 0..50 {
        if !heard.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    workers.shutdown().await;
    let heard = heard.lock().unwrap().clone();
    eprintln!("R13 on_report heard: {heard:?}");
    assert_eq!(heard, vec![(Some(poison), true, 1)]);
}

// ---------------------------------------------------------------------------------------
// R2b (T4-5, second half): a done mark that fails is written again while the worker still
// holds the lease, instead of being dropped to let the lease lapse and the handler run
// again.
// ---------------------------------------------------------------------------------------
/// The first two batched done marks fail, as on a connection reset.
fn mark_fails_twice(inbox: &PostgresInbox) -> Faulty {
    let marks = AtomicUsize::new(0);
    Faulty::new(inbox, move |call| {
        if call == Call::CompleteBatch && marks.fetch_add(1, Ordering::SeqCst) < 2 {
            return Err("the connection to PostgreSQL was reset".into());
        }
        Ok(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r2b_a_failed_done_mark_is_written_again_while_the_lease_is_held() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let plain = receiver(&inbox);
    let id = format!("once-{}", fresh_id());
    assert_eq!(
        deliver(&plain, &envelope(&id, "e1")).await,
        StatusCode::ACCEPTED
    );
    let runs = Runs::default();
    let counted = Arc::clone(&runs);
    let dispatcher = Dispatcher::builder()
        .fallback(move |event: Event, _| {
            count(&counted, event.id().unwrap_or_default());
            async {}
        })
        .build();
    let workers = Workers::builder(mark_fails_twice(&inbox), dispatcher)
        .concurrency(1)
        .lease(Duration::from_secs(1))
        .start()
        .unwrap();
    wait_for(
        store.pool(),
        "SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'done'",
        1,
    )
    .await;
    workers.shutdown().await;
    let lapses = scalar(
        store.pool(),
        "SELECT lapses::bigint FROM monite_webhook_inbox_events",
    )
    .await;
    eprintln!("R2b runs: {}, lapses: {lapses}", runs_of(&runs, &id));
    assert_eq!(
        runs_of(&runs, &id),
        1,
        "a success ran again after its mark failed"
    );
}
