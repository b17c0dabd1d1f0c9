//! Dead tuples on the inbox's events table stay bounded through a soak with the MVCC
//! horizon pinned: events accepted at a steady rate through the receiver, four workers
//! draining them, and two `REPEATABLE READ` readers whose transactions overlap so that one
//! snapshot is always open (the failure Brandur saw at Heroku and PlanetScale re-ran on
//! PostgreSQL 18: an old snapshot keeps every dead version, and the queue drowns in them).
//!
//! The table starts as a steady-state inbox does: full of done rows, since they are the
//! dedup keys and stay at least 8 days. With PostgreSQL's default
//! `autovacuum_vacuum_scale_factor` (0.2), autovacuum would wait for a fifth of them to be
//! dead; the table's own settings (`sql.rs`) make it vacuum after a fixed count instead.
//!
//! Run with `--nocapture` to see the samples and the summary.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::StatusCode;
use monite_webhooks::inbox::Workers;
use monite_webhooks::{Dispatcher, Event, ObjectType};
use sqlx::{Connection as _, PgConnection, PgPool};
use support::fixture::{deliver, fresh_id};
use support::inbox::{envelope, inbox_on, receiver};
use support::pg::PgServer;

/// Deliveries per second offered, by four producers.
const RATE: u64 = 500;
const PRODUCERS: u64 = 4;
const SOAK: Duration = Duration::from_secs(60);
/// How long each reader's transaction stays open, and how far apart the two start.
const READER_WINDOW: Duration = Duration::from_secs(10);
const READER_STAGGER: Duration = Duration::from_secs(5);
/// The server's `autovacuum_naptime`: production's default is a minute (see the guide).
const NAPTIME: Duration = Duration::from_secs(1);
/// The table's `autovacuum_vacuum_threshold` (`sql.rs`): dead tuples before a vacuum.
const VACUUM_THRESHOLD: f64 = 1000.0;
/// Done rows already in the table, as after days of traffic.
const SEEDED_DONE: i64 = 200_000;
const SAMPLE_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: f64,
    dead: i64,
    live: i64,
    updates: i64,
    hot: i64,
    autovacuums: i64,
    pending: i64,
    oldest_snapshot: f64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_tuples_stay_bounded_with_an_overlapping_repeatable_read_reader() {
    let naptime = format!("{}s", NAPTIME.as_secs());
    let server = PgServer::start_with_settings(&[
        ("autovacuum_naptime", &naptime),
        // Each autovacuum run in the server log, for a failure's post-mortem.
        ("log_autovacuum_min_duration", "0"),
    ]);
    let (store, inbox) = inbox_on(&server, "billing").await;
    let pool = store.pool().clone();
    seed_done_rows(&pool).await;

    let handled = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&handled);
    let dispatcher = Dispatcher::builder()
        .on_object(ObjectType::Payable, move |_: Event| {
            counted.fetch_add(1, Ordering::Relaxed);
            async {}
        })
        .build();
    let workers = Workers::builder(inbox.clone(), dispatcher)
        .concurrency(4)
        .poll_interval(Duration::from_millis(50))
        .start()
        .unwrap();

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = [Duration::ZERO, READER_STAGGER]
        .into_iter()
        .map(|delay| tokio::spawn(reader(server.url(), delay, Arc::clone(&stop))))
        .collect();
    let receiver = Arc::new(receiver(&inbox));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|_| tokio::spawn(produce(Arc::clone(&receiver), start)))
        .collect();

    let mut samples = Vec::new();
    while start.elapsed() < SOAK {
        samples.push(sample(&pool, start).await);
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    let mut accepted = 0;
    for producer in producers {
        let (ok, refused) = producer.await.unwrap();
        assert_eq!(refused, 0, "every delivery was accepted");
        accepted += ok;
    }
    let produced_for = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut windows = 0;
    for reader in readers {
        windows += reader.await.unwrap();
    }
    let all = i64::try_from(accepted).unwrap() + SEEDED_DONE;
    support::inbox::wait_for(
        &pool,
        "SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'done'",
        all,
    )
    .await;
    workers.shutdown().await;
    assert_eq!(
        handled.load(Ordering::Relaxed),
        accepted,
        "each handled once"
    );
    let last = settled_counts(&pool, accepted).await;
    let (heap_mib, index_mib): (f64, f64) = sqlx::query_as(
        "SELECT pg_relation_size(relid) / 1048576.0::float8, \
           pg_indexes_size(relid) / 1048576.0::float8 \
         FROM pg_stat_user_tables WHERE relname = 'monite_webhook_inbox_events'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();

    let rate = f64::from(u32::try_from(accepted).unwrap()) / produced_for;
    #[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    let updates_per_event = last.updates as f64 / accepted as f64;
    #[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    let hot_ratio = last.hot as f64 / last.updates.max(1) as f64;
    let oldest = samples
        .iter()
        .map(|s| s.oldest_snapshot)
        .fold(0.0, f64::max);
    // A dead version can go once no snapshot is older than it: the oldest open snapshot
    // is at most `oldest` seconds old, autovacuum looks every naptime, and its run and the
    // statistics' flush (about a second) add a little more; a vacuum starts only past its
    // threshold. A margin of a half on top.
    let slack = 2.0;
    let horizon = oldest + NAPTIME.as_secs_f64() + slack;
    let bound = (rate * updates_per_event * horizon + VACUUM_THRESHOLD) * 1.5;
    // Five seconds of arrivals: the machine is shared, but a queue drowning in dead
    // tuples falls behind for good (PlanetScale saw 155,000 pending).
    let backlog_bound = rate * 5.0;
    let last_third: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.at >= SOAK.as_secs_f64() * 2.0 / 3.0)
        .collect();
    let dead_max = last_third.iter().map(|s| s.dead).max().unwrap();
    let dead_median = median(samples.iter().map(|s| s.dead).collect());
    let pending_max = last_third.iter().map(|s| s.pending).max().unwrap();

    for s in &samples {
        eprintln!(
            "t={:5.1}s dead={:>7} live={:>7} upd={:>7} hot={:>5} autovacuums={:>3} \
             pending={:>5} oldest_snapshot={:4.1}s",
            s.at, s.dead, s.live, s.updates, s.hot, s.autovacuums, s.pending, s.oldest_snapshot
        );
    }
    eprintln!(
        "soak: {accepted} events in {produced_for:.1} s ({rate:.0}/s), 4 workers, \
         {SEEDED_DONE} done rows seeded; 2 REPEATABLE READ readers of {} s, {} s apart \
         ({windows} windows, oldest snapshot {oldest:.1} s); n_dead_tup max {} overall, \
         {dead_max} in the last third, median {dead_median}; bound {bound:.0}; \
         pending max {pending_max} in the last third; updates/event {updates_per_event:.2}, \
         HOT {}/{} ({:.1} %); autovacuums {}; heap {heap_mib:.0} MiB, indexes \
         {index_mib:.0} MiB",
        READER_WINDOW.as_secs(),
        READER_STAGGER.as_secs(),
        samples.iter().map(|s| s.dead).max().unwrap(),
        last.hot,
        last.updates,
        hot_ratio * 100.0,
        last.autovacuums,
    );

    // The soak did what it says: the load arrived and a snapshot was always held.
    assert!(
        rate >= 100.0,
        "only {rate:.0} deliveries/s: the soak proves little"
    );
    assert!(windows >= 2 * (SOAK.as_secs() / READER_WINDOW.as_secs()) - 2);
    for s in samples.iter().filter(|s| s.at >= 6.0) {
        assert!(
            s.oldest_snapshot >= 4.0,
            "at {:.1} s no reader held a snapshot: {s:?}",
            s.at
        );
    }
    assert!(
        last.autovacuums >= 3,
        "autovacuum ran {} times",
        last.autovacuums
    );
    // Bounded: dead versions are removed as fast as they appear, behind the pinned horizon.
    assert!(
        (dead_max as f64) <= bound,
        "{dead_max} dead tuples in the last third, above {bound:.0}"
    );
    assert!(
        (pending_max as f64) <= backlog_bound,
        "{pending_max} events pending in the last third: the workers fell behind"
    );
    // What the docs say: a state change is not a HOT update, since `state` is in the
    // partial indexes' predicates (and `locked_until`, `run_at` are their keys).
    assert!(
        hot_ratio < 0.05,
        "{:.1} % of updates were HOT: the docs on PostgresInbox and the guide say none are",
        hot_ratio * 100.0
    );
}

/// Old done events, straight in SQL (as days of traffic would have left them), then a
/// `VACUUM ANALYZE` so that the statistics know the table's size.
async fn seed_done_rows(pool: &PgPool) {
    sqlx::query(
        "INSERT INTO monite_webhook_inbox_events (dedup_key, namespace, event_id, object_type, \
           event, body, headers, received_at, state, attempt, done_at) \
         SELECT 'billing:evt:seed-' || g, 'billing', 'seed-' || g, 'payable', \
           'payable.created', convert_to(repeat('x', 330), 'UTF8'), '{}'::jsonb, \
           now() - interval '7 days' + g * interval '2 ms', 'done', 1, \
           now() - interval '7 days' + g * interval '2 ms' \
         FROM generate_series(1, $1) AS g",
    )
    .bind(SEEDED_DONE)
    .execute(pool)
    .await
    .unwrap();
    sqlx::raw_sql("VACUUM ANALYZE monite_webhook_inbox_events")
        .execute(pool)
        .await
        .unwrap();
}

/// One producer: its share of [`RATE`], paced on the time since `start`, until [`SOAK`]
/// has passed. Answers (accepted, refused).
async fn produce(receiver: Arc<monite_webhooks::Receiver>, start: Instant) -> (u64, u64) {
    let share = RATE / PRODUCERS;
    let (mut accepted, mut refused) = (0, 0);
    loop {
        let elapsed = start.elapsed();
        if elapsed >= SOAK {
            return (accepted, refused);
        }
        let due = u64::try_from(elapsed.as_millis()).unwrap() * share / 1000;
        while accepted + refused < due {
            match deliver(&receiver, &envelope(&fresh_id(), "entity-1")).await {
                StatusCode::ACCEPTED => accepted += 1,
                _ => refused += 1,
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One reader: after `delay`, `REPEATABLE READ` transactions of [`READER_WINDOW`] back to
/// back, each reading the events table first so that its snapshot is taken, until `stop`.
/// Answers how many it held.
async fn reader(url: String, delay: Duration, stop: Arc<AtomicBool>) -> u64 {
    let mut conn = PgConnection::connect(&url).await.unwrap();
    tokio::time::sleep(delay).await;
    let mut windows = 0;
    while !stop.load(Ordering::Relaxed) {
        sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut conn)
            .await
            .unwrap();
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM monite_webhook_inbox_events")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert!(seen >= SEEDED_DONE);
        let opened = Instant::now();
        while opened.elapsed() < READER_WINDOW && !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        sqlx::raw_sql("COMMIT").execute(&mut conn).await.unwrap();
        windows += 1;
    }
    windows
}

const SAMPLE: &str = "SELECT n_dead_tup, n_live_tup, n_tup_upd, n_tup_hot_upd, autovacuum_count, \
       (SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'pending'), \
       (SELECT coalesce(extract(epoch FROM now() - min(xact_start)), 0)::float8 \
        FROM pg_stat_activity WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid() \
          AND backend_type = 'client backend' AND datname = current_database()) \
     FROM pg_stat_user_tables WHERE relname = 'monite_webhook_inbox_events'";

/// The table's statistics now. They lag: each backend flushes its counts at most once a
/// second, when idle; the reading transaction's snapshot of them is cleared first.
async fn sample(pool: &PgPool, start: Instant) -> Sample {
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *conn)
        .await
        .unwrap();
    let row: (i64, i64, i64, i64, i64, i64, f64) =
        sqlx::query_as(SAMPLE).fetch_one(&mut *conn).await.unwrap();
    Sample {
        at: start.elapsed().as_secs_f64(),
        dead: row.0,
        live: row.1,
        updates: row.2,
        hot: row.3,
        autovacuums: row.4,
        pending: row.5,
        oldest_snapshot: row.6,
    }
}

/// The statistics once every worker backend has flushed its counts: every event was
/// claimed and completed, two updates each, so wait until they all show.
async fn settled_counts(pool: &PgPool, accepted: u64) -> Sample {
    let start = Instant::now();
    let want = i64::try_from(2 * accepted).unwrap();
    loop {
        let now = sample(pool, start).await;
        if now.updates >= want || start.elapsed() > Duration::from_secs(30) {
            return now;
        }
        // `pg_stat_force_next_flush()` would flush only this session's counts: the workers'
        // backends flush theirs within a second of going idle, so wait for them.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn median(mut values: Vec<i64>) -> i64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}
