//! Checkpoints in a real PostgreSQL (a fresh cluster of the test's own): they survive a new
//! pool, never move back whichever writer saves last, and a reconciler sweeping with them
//! (and deduplicating in `PostgresStore`) resumes where it stopped, running nothing again
//! after a restart.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use monite_webhooks::jiff::{SignedDuration, Timestamp};
use monite_webhooks::reconcile::{CheckpointStore, PostgresCheckpoints, Reconciler};
use monite_webhooks::{Idempotency, PostgresStore};
use support::client::{client, counting_receiver_over};
use support::fake_monite;
use support::pg::PgServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_persist_in_postgres_and_never_move_back() {
    let server = PgServer::start();
    let pool = sqlx::PgPool::connect(&server.url()).await.unwrap();
    let store = PostgresCheckpoints::new(&PostgresStore::new(pool, "test").unwrap());
    store.ensure_schema().await.unwrap();
    store.ensure_schema().await.unwrap();
    let at: Timestamp = "2026-12-01T12:34:56.789012Z".parse().unwrap();
    store.save("a", at).await.unwrap();
    store
        .save("a", at - SignedDuration::from_secs(60))
        .await
        .unwrap();
    store.save("b", at).await.unwrap();
    let again =
        PostgresCheckpoints::new(&PostgresStore::connect(&server.url(), "test").await.unwrap());
    assert_eq!(again.load("a").await.unwrap(), Some(at));
    assert_eq!(again.load("missing").await.unwrap(), None);
    assert_eq!(again.all().await.unwrap().len(), 2);
    // Another service on the same database keeps checkpoints of its own.
    let other = PostgresStore::connect(&server.url(), "other")
        .await
        .unwrap();
    let other = PostgresCheckpoints::new(&other);
    assert_eq!(other.load("a").await.unwrap(), None);
    assert!(other.all().await.unwrap().is_empty());

    // A reconciler over them: a second process (a new store) sees the first's progress.
    let (addr, fake) = fake_monite::start().await;
    let entity = fake.add_entities(1).remove(0);
    let created = (Timestamp::now() - SignedDuration::from_secs(300)).to_string();
    fake.commit_event(&entity, Some(&created));
    let runs = Default::default();
    let store = PostgresStore::connect(&server.url(), "test").await.unwrap();
    store.ensure_schema().await.unwrap();
    let receiver = counting_receiver_over(&runs, Idempotency::new(store));
    let reconciler = Reconciler::builder(client(addr), receiver, again)
        .build()
        .unwrap();
    assert_eq!(reconciler.run_once().await.unwrap().handled, 1);
    let third =
        PostgresCheckpoints::new(&PostgresStore::connect(&server.url(), "test").await.unwrap());
    let checkpoint = third.load(&entity).await.unwrap().unwrap();
    assert!(checkpoint >= Timestamp::now() - SignedDuration::from_secs(60));
    assert!(checkpoint <= Timestamp::now() - SignedDuration::from_secs(29));

    // A restart: a new store, receiver and reconciler on the same database. The window, a
    // lookback before the checkpoint, holds the event again: the store remembers it.
    let store = PostgresStore::connect(&server.url(), "test").await.unwrap();
    let receiver = counting_receiver_over(&runs, Idempotency::new(store));
    let restarted = Reconciler::builder(client(addr), receiver, third)
        .build()
        .unwrap();
    let cycle = restarted.run_once().await.unwrap();
    assert_eq!((cycle.handled, cycle.duplicates), (0, 1));
    let ran: Vec<usize> = runs.lock().unwrap().values().copied().collect();
    assert_eq!(ran, [1], "an event ran again after the restart");
}
