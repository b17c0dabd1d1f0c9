//! The inbox tests' shared set-up: a `payable.created` envelope, an inbox on a fresh
//! PostgreSQL, a receiver writing to it, and polling a count.

#![allow(dead_code, reason = "no test binary uses all of it")]
#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use std::time::Duration;

use monite_webhooks::inbox::{Inbox, PostgresInbox};
use monite_webhooks::{Dispatcher, PostgresStore, Receiver, Verifier};
use sqlx::PgPool;

use super::fixture;
use super::pg::PgServer;

pub(crate) fn envelope(id: &str, entity: &str) -> String {
    format!(
        r#"{{"id":"{id}","created_at":"2024-03-04T20:06:48.593225+00:00","action":"payable.created","api_version":"2024-01-31","entity_id":"{entity}","description":"d","object":{{"id":"587fd280"}},"object_type":"payable","webhook_subscription_id":"f3c64af7"}}"#
    )
}

pub(crate) async fn inbox_on(server: &PgServer, namespace: &str) -> (PostgresStore, PostgresInbox) {
    let store = PostgresStore::connect(&server.url(), namespace)
        .await
        .unwrap();
    let inbox = PostgresInbox::new(&store);
    inbox.ensure_schema().await.unwrap();
    (store, inbox)
}

pub(crate) fn receiver(inbox: &PostgresInbox, dispatcher: Dispatcher) -> Receiver {
    Receiver::builder(Verifier::new(fixture::secret(fixture::CURRENT)), dispatcher)
        .inbox(Inbox::new(inbox.clone()))
        .build()
}

pub(crate) async fn scalar(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Polls until `sql` (a count) reaches `want`, for at most a minute.
pub(crate) async fn wait_for(pool: &PgPool, sql: &'static str, want: i64) {
    for _ in 0..600 {
        if scalar(pool, sql).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{sql} never reached {want}: {}", scalar(pool, sql).await);
}
