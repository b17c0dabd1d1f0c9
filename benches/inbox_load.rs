//! Load figures for the inbox on a PostgreSQL of its own on loopback (fsync, full-page
//! writes and `synchronous_commit` on): acknowledgement latency and rate next to the
//! plain receiver with `PostgresStore`, events drained per second by worker count and
//! batch size, WAL bytes per event, and acceptance-to-done latency. Prints; asserts
//! nothing about speed.
//!
//! ```sh
//! cargo bench --bench inbox_load --features postgres
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a load script: it fails loudly and prints its figures"
)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use monite_webhooks::inbox::{PostgresInbox, Workers};
use monite_webhooks::testing::signed_request;
use monite_webhooks::{PostgresStore, Receiver, Secret, Verifier};
use monite_webhooks_testkit::pg::PgServer;
use sqlx::PgPool;
use support::{SECRET, envelope, noop_dispatcher, percentile, wait_done};

async fn wal_lsn(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// `count` signed deliveries through `receiver`, `lanes` at a time: latencies and rate.
async fn deliver(
    receiver: &Receiver,
    run: &str,
    count: usize,
    lanes: usize,
) -> (Vec<Duration>, f64) {
    let secret = Secret::new(SECRET).unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (0..lanes)
        .map(|lane| {
            let receiver = receiver.clone();
            let secret = secret.clone();
            let run = run.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                for n in (lane..count).step_by(lanes) {
                    let request = signed_request(&secret, envelope(&run, n));
                    let sent = Instant::now();
                    let status = receiver.handle(request).await.status();
                    latencies.push(sent.elapsed());
                    assert!(status.is_success(), "{status}");
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    all.sort();
    (all, rate)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = PgServer::start_durable();
    let url = server.url();
    let count: usize = std::env::var("INBOX_LOAD_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let verifier = || Verifier::new(Secret::new(SECRET).unwrap());

    // Acknowledgement: the plain receiver (handler runs, then PostgresStore marks done)
    // next to the inbox (one INSERT), 16 deliveries in flight.
    let plain_store = PostgresStore::connect(&url, "plain").await.unwrap();
    plain_store.ensure_schema().await.unwrap();
    let plain = Receiver::builder(verifier(), noop_dispatcher())
        .store(plain_store.clone())
        .build();
    let (latencies, rate) = deliver(&plain, "plain", count, 16).await;
    println!(
        "ack plain PostgresStore: p50 {:?} p99 {:?} {rate:.0} deliveries/s",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    let pool = plain_store.pool().clone();
    for (namespace, workers, batch) in [
        ("w1b1", 1, 1),
        ("w1b32", 1, 32),
        ("w1b256", 1, 256),
        ("w4b1", 4, 1),
        ("w4b32", 4, 32),
        ("w4b256", 4, 256),
    ] {
        let store = PostgresStore::connect(&url, namespace).await.unwrap();
        let inbox = PostgresInbox::new(&store);
        inbox.ensure_schema().await.unwrap();
        let receiver = Receiver::inbox_builder(verifier(), inbox.clone()).build();
        let wal_before = wal_lsn(&pool).await;
        let (latencies, rate) = deliver(&receiver, namespace, count, 16).await;
        let wal_accepted = wal_lsn(&pool).await;
        if namespace == "w1b1" {
            println!(
                "ack inbox: p50 {:?} p99 {:?} {rate:.0} deliveries/s",
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99)
            );
        }
        let started = Instant::now();
        let handle = Workers::builder(inbox.clone(), noop_dispatcher())
            .concurrency(workers)
            .batch(batch)
            .poll_interval(Duration::from_millis(10))
            .start()
            .unwrap();
        wait_done(&pool, namespace, count as i64).await;
        let drained = count as f64 / started.elapsed().as_secs_f64();
        handle.shutdown().await;
        let wal_done = wal_lsn(&pool).await;
        println!(
            "drain {workers} workers batch {batch}: {drained:.0} events/s; WAL {:.0} B/event \
             accept, {:.0} B/event handle",
            (wal_accepted - wal_before) as f64 / count as f64,
            (wal_done - wal_accepted) as f64 / count as f64,
        );
    }

    // Acceptance to done while accepting at the same time: 4 workers, batch 32.
    let store = PostgresStore::connect(&url, "live").await.unwrap();
    let inbox = PostgresInbox::new(&store);
    let receiver = Arc::new(Receiver::inbox_builder(verifier(), inbox.clone()).build());
    let handle = Workers::builder(inbox, noop_dispatcher())
        .concurrency(4)
        .batch(32)
        .poll_interval(Duration::from_millis(10))
        .start()
        .unwrap();
    let (latencies, rate) = deliver(&receiver, "live", count, 16).await;
    wait_done(&pool, "live", count as i64).await;
    handle.shutdown().await;
    let (p50, p99): (f64, f64) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM done_at - received_at)), \
                percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM done_at - received_at)) \
         FROM monite_webhook_inbox_events WHERE namespace = 'live'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    println!(
        "live (accepting while 4 workers drain): ack p50 {:?} p99 {:?} {rate:.0} deliveries/s; \
         accepted->done p50 {:.1} ms p99 {:.1} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        p50 * 1000.0,
        p99 * 1000.0
    );
}
