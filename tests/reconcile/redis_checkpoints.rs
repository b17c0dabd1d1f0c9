//! Checkpoints in a real `redis-server` of the test's own: they survive a new connection,
//! never move back, and stay apart by namespace.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use monite_webhooks::jiff::{SignedDuration, Timestamp};
use monite_webhooks::reconcile::{CheckpointStore, RedisCheckpoints};
use support::redis::RedisServer;

async fn connection(server: &RedisServer) -> redis::aio::ConnectionManager {
    let client = redis::Client::open(server.url()).unwrap();
    redis::aio::ConnectionManager::new(client).await.unwrap()
}

#[tokio::test]
async fn checkpoints_persist_in_redis_and_never_move_back() {
    let server = RedisServer::start();
    let store = RedisCheckpoints::new(connection(&server).await, "billing");
    let at: Timestamp = "2026-12-01T12:34:56.789012Z".parse().unwrap();
    assert_eq!(store.load("a").await.unwrap(), None);
    store.save("a", at).await.unwrap();
    store
        .save("a", at - SignedDuration::from_secs(60))
        .await
        .unwrap();
    store
        .save("b", at + SignedDuration::from_secs(1))
        .await
        .unwrap();
    let again = RedisCheckpoints::new(connection(&server).await, "billing");
    assert_eq!(again.load("a").await.unwrap(), Some(at));
    let all = again.all().await.unwrap();
    assert_eq!(
        all,
        [
            ("a".to_owned(), at),
            ("b".to_owned(), at + SignedDuration::from_secs(1))
        ]
    );
    let other = RedisCheckpoints::new(connection(&server).await, "shipping");
    assert!(other.all().await.unwrap().is_empty());
}
