//! The inbox's workers against a real PostgreSQL: first in, first out per entity across
//! two sets of workers (as two processes would be), a concurrency limit per object type,
//! wake-ups that beat the poll, and a stopping worker handing back what it did not start.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use monite_webhooks::inbox::{PostgresInbox, RetrySchedule, Workers};
use monite_webhooks::{Dispatcher, Event, ObjectType};
use support::fixture::{deliver, fresh_id};
use support::inbox::{envelope, inbox_on, receiver, scalar, wait_for};
use support::pg::PgServer;

fn envelope_of(object_type: &str, id: &str) -> String {
    envelope(id, "e")
        .replace(
            r#""action":"payable.created""#,
            &format!(r#""action":"{object_type}.created""#),
        )
        .replace(
            r#""object_type":"payable""#,
            &format!(r#""object_type":"{object_type}""#),
        )
}

/// What ran, per entity, in the order it ran, and whether two of one entity overlapped.
#[derive(Default)]
struct Runs {
    order: Mutex<HashMap<String, Vec<usize>>>,
    running: Mutex<HashMap<String, usize>>,
    overlaps: AtomicUsize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_entity_order_1000_events_of_10_entities_run_first_in_first_out() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let accepting = receiver(&inbox);
    let run = fresh_id();
    for n in 0..1000 {
        let body = envelope(&format!("{run}-{n}"), &format!("entity-{}", n % 10));
        assert_eq!(deliver(&accepting, &body).await, StatusCode::ACCEPTED);
    }
    // And some of no entity, which keep no order but must flow.
    for n in 1000..1020 {
        let body = envelope(&format!("{run}-{n}"), "none").replace(r#""entity_id":"none","#, "");
        assert_eq!(deliver(&accepting, &body).await, StatusCode::ACCEPTED);
    }
    let runs = Arc::new(Runs::default());
    let dispatcher = |runs: Arc<Runs>| {
        Dispatcher::builder()
            .on_object(ObjectType::Payable, move |event: Event| {
                let runs = Arc::clone(&runs);
                async move {
                    let Some(entity) = event.entity_id().map(str::to_owned) else {
                        return Ok(());
                    };
                    let n: usize = event
                        .id()
                        .unwrap()
                        .rsplit('-')
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap();
                    {
                        let mut running = runs.running.lock().unwrap();
                        let now = running.entry(entity.clone()).or_default();
                        *now += 1;
                        if *now > 1 {
                            runs.overlaps.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    // Uneven handler times, so that an unordered inbox would reorder.
                    tokio::time::sleep(Duration::from_micros((n % 7) as u64 * 300)).await;
                    *runs.running.lock().unwrap().get_mut(&entity).unwrap() -= 1;
                    // Every 50th event fails its first attempt: its entity waits for it.
                    let first_try = {
                        let mut order = runs.order.lock().unwrap();
                        let seen = order.entry(entity).or_default();
                        let first = !seen.contains(&n);
                        seen.push(n);
                        first
                    };
                    if n % 50 == 7 && first_try {
                        return Err(std::io::Error::other("try again"));
                    }
                    Ok(())
                }
            })
            .build()
    };
    // Two sets of workers on two inboxes of their own: as two processes.
    let (_, other) = inbox_on(&server, "billing").await;
    let start = |inbox: PostgresInbox, name: &str| {
        Workers::builder(inbox, dispatcher(Arc::clone(&runs)))
            .in_entity_order(true)
            .concurrency(4)
            .batch(16)
            .name(name)
            .poll_interval(Duration::from_millis(20))
            .retry(RetrySchedule::new([Duration::from_millis(50)], 5).with_jitter(|d| d))
            .start()
            .unwrap()
    };
    let first = start(inbox.clone(), "a");
    let second = start(other, "b");
    wait_for(
        store.pool(),
        "SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'done'",
        1020,
    )
    .await;
    first.shutdown().await;
    second.shutdown().await;
    assert_eq!(
        runs.overlaps.load(Ordering::SeqCst),
        0,
        "no entity had two events running at once"
    );
    let order = runs.order.lock().unwrap().clone();
    assert_eq!(order.len(), 10);
    for (entity, ran) in order.iter() {
        let mut expected: Vec<usize> = Vec::new();
        let k: usize = entity.trim_start_matches("entity-").parse().unwrap();
        for n in (k..1000).step_by(10) {
            expected.push(n);
            if n % 50 == 7 {
                expected.push(n); // its retry, before the next of its entity
            }
        }
        assert_eq!(ran, &expected, "{entity} ran in acceptance order");
    }
    let workers: i64 = scalar(
        store.pool(),
        "SELECT count(DISTINCT split_part(worker, '-', 1)) FROM monite_webhook_inbox_attempts",
    )
    .await;
    assert_eq!(workers, 2, "both sets of workers took part");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_object_type_runs_one_at_a_time_while_others_flow() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let accepting = receiver(&inbox);
    for _ in 0..6 {
        deliver(&accepting, &envelope_of("payable", &fresh_id())).await;
    }
    for _ in 0..60 {
        deliver(&accepting, &envelope_of("receivable", &fresh_id())).await;
    }
    let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let receivables = Arc::new(AtomicUsize::new(0));
    let receivables_done_while_payables_ran = Arc::new(AtomicUsize::new(0));
    let (now, peak) = (Arc::clone(&running), Arc::clone(&most));
    let seen = Arc::clone(&receivables);
    let payables_running = Arc::clone(&running);
    let overlapping = Arc::clone(&receivables_done_while_payables_ran);
    let dispatcher = Dispatcher::builder()
        .on_object(ObjectType::Payable, move |_: Event| {
            let (now, peak) = (Arc::clone(&now), Arc::clone(&peak));
            async move {
                let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(running, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(150)).await;
                now.fetch_sub(1, Ordering::SeqCst);
            }
        })
        .on_object(ObjectType::Receivable, move |_: Event| {
            seen.fetch_add(1, Ordering::SeqCst);
            if payables_running.load(Ordering::SeqCst) > 0 {
                overlapping.fetch_add(1, Ordering::SeqCst);
            }
            async {}
        })
        .build();
    let workers = Workers::builder(inbox, dispatcher)
        .limit(ObjectType::Payable, 1)
        .concurrency(4)
        .batch(4)
        .poll_interval(Duration::from_millis(20))
        .start()
        .unwrap();
    wait_for(
        store.pool(),
        "SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'done'",
        66,
    )
    .await;
    workers.shutdown().await;
    assert_eq!(most.load(Ordering::SeqCst), 1, "one payable at a time");
    assert_eq!(receivables.load(Ordering::SeqCst), 60);
    assert!(
        receivables_done_while_payables_ran.load(Ordering::SeqCst) > 0,
        "receivables were handled while a payable ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_s_acceptance_wakes_idle_workers_before_their_poll() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let handled: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let record = Arc::clone(&handled);
    let dispatcher = Dispatcher::builder()
        .on_object(ObjectType::Payable, move |event: Event| {
            let at = Instant::now();
            record
                .lock()
                .unwrap()
                .insert(event.id().unwrap().to_owned(), at);
            async {}
        })
        .build();
    let workers = Workers::builder(inbox, dispatcher)
        .concurrency(2)
        .poll_interval(Duration::from_secs(1))
        .start()
        .unwrap();
    // Accepted through another pool, as by another process: only NOTIFY can tell them.
    let (_, elsewhere) = inbox_on(&server, "billing").await;
    let accepting = receiver(&elsewhere);
    tokio::time::sleep(Duration::from_millis(1500)).await; // listening, and idle
    let mut latencies = Vec::new();
    for _ in 0..10 {
        let id = fresh_id();
        let sent = Instant::now();
        assert_eq!(
            deliver(&accepting, &envelope(&id, "e")).await,
            StatusCode::ACCEPTED
        );
        let mut waited = 0;
        while !handled.lock().unwrap().contains_key(&id) && waited < 300 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
        }
        let at = handled.lock().unwrap()[&id];
        latencies.push(at.duration_since(sent));
        // Past the cooldown between two notifications, and idle again.
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    workers.shutdown().await;
    let quick = latencies
        .iter()
        .filter(|l| **l < Duration::from_millis(250))
        .count();
    // Polling alone (every second) would handle each within 250 ms one time in four.
    assert!(
        quick >= 8,
        "{quick} of 10 within 250 ms of acceptance: {latencies:?}"
    );
    assert_eq!(
        scalar(
            store.pool(),
            "SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'done'"
        )
        .await,
        10
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_only_workers_still_find_another_process_s_events() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let workers = Workers::builder(inbox, Dispatcher::builder().build())
        .poll_only(true)
        .poll_interval(Duration::from_millis(100))
        .start()
        .unwrap();
    let (_, elsewhere) = inbox_on(&server, "billing").await;
    let accepting = receiver(&elsewhere);
    for _ in 0..5 {
        deliver(&accepting, &envelope(&fresh_id(), "e")).await;
    }
    wait_for(
        store.pool(),
        "SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'done'",
        5,
    )
    .await;
    workers.shutdown().await;
    let listeners = scalar(
        store.pool(),
        "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%'",
    )
    .await;
    assert_eq!(listeners, 0, "no connection listens");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_hands_back_the_events_it_did_not_start() {
    let server = PgServer::start();
    let (store, inbox) = inbox_on(&server, "billing").await;
    let accepting = receiver(&inbox);
    for _ in 0..10 {
        deliver(&accepting, &envelope(&fresh_id(), "e")).await;
    }
    let started = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&started);
    let dispatcher = Dispatcher::builder()
        .on_object(ObjectType::Payable, move |_: Event| {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300))
        })
        .build();
    let workers = Workers::builder(inbox.clone(), dispatcher)
        .concurrency(1)
        .batch(10)
        .start()
        .unwrap();
    while started.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    workers.shutdown().await;
    assert_eq!(
        started.load(Ordering::SeqCst),
        1,
        "the running one finished"
    );
    let counts: (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE state = 'done'), \
           count(*) FILTER (WHERE state = 'pending' AND attempt = 1 AND attempt_base = 1) \
         FROM monite_webhook_inbox_events",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(
        counts,
        (1, 9),
        "nine handed back, their attempts not counted"
    );
    let released = scalar(
        store.pool(),
        "SELECT count(*) FROM monite_webhook_inbox_attempts WHERE outcome = 'released'",
    )
    .await;
    assert_eq!(released, 9);
    // The next worker takes them at once, as first tries.
    let tries: Vec<i32> = sqlx::query_scalar(
        "SELECT attempt - attempt_base + 1 FROM monite_webhook_inbox_events WHERE state = 'pending'",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert!(tries.iter().all(|t| *t == 1), "{tries:?}");
}
