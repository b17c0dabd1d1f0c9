//! The inbox tests' shared set-up: a `payable.created` envelope, an inbox on a fresh
//! PostgreSQL, a receiver writing to it, and polling a count.

#![allow(dead_code, reason = "no test binary uses all of it")]
#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use std::sync::Arc;
use std::time::Duration;

use monite_webhooks::inbox::{
    Accepted, AfterFailure, AttemptId, AttemptRecord, Buried, ClaimRequest, Claimed, Completed,
    Delivery, InboxCounts, InboxStore, PostgresInbox,
};
use monite_webhooks::{BoxError, PostgresStore, Receiver, Verifier};
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

pub(crate) fn receiver(inbox: &PostgresInbox) -> Receiver {
    Receiver::inbox_builder(
        Verifier::new(fixture::secret(fixture::CURRENT)),
        inbox.clone(),
    )
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

/// A store call, as [`Faulty`] names it to its fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    Accept,
    Claim,
    Heartbeat,
    Complete,
    CompleteBatch,
    Fail,
    Release,
    Rescue,
    Prune,
    Sample,
}

type Fault = dyn Fn(Call) -> Result<(), BoxError> + Send + Sync;

/// A `PostgresInbox` that asks `fault` before each call: an `Err` is the call's answer
/// (PostgreSQL is not asked), a panic is the call's panic, `Ok` lets the call through.
#[derive(Clone)]
pub(crate) struct Faulty {
    inbox: PostgresInbox,
    fault: Arc<Fault>,
}

impl Faulty {
    pub(crate) fn new(
        inbox: &PostgresInbox,
        fault: impl Fn(Call) -> Result<(), BoxError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            inbox: inbox.clone(),
            fault: Arc::new(fault),
        }
    }
}

impl InboxStore for Faulty {
    async fn accept(&self, delivery: &Delivery<'_>) -> Result<Accepted, BoxError> {
        (self.fault)(Call::Accept)?;
        self.inbox.accept(delivery).await
    }
    async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Vec<Claimed>, BoxError> {
        (self.fault)(Call::Claim)?;
        self.inbox.claim(request).await
    }
    async fn heartbeat(&self, held: &[AttemptId], lease: Duration) -> Result<usize, BoxError> {
        (self.fault)(Call::Heartbeat)?;
        self.inbox.heartbeat(held, lease).await
    }
    async fn complete(
        &self,
        attempt: AttemptId,
        record: &AttemptRecord<'_>,
    ) -> Result<bool, BoxError> {
        (self.fault)(Call::Complete)?;
        self.inbox.complete(attempt, record).await
    }
    async fn complete_batch(&self, worker: &str, done: &[Completed]) -> Result<Vec<i64>, BoxError> {
        (self.fault)(Call::CompleteBatch)?;
        self.inbox.complete_batch(worker, done).await
    }
    async fn fail(
        &self,
        attempt: AttemptId,
        record: &AttemptRecord<'_>,
        next: AfterFailure,
    ) -> Result<bool, BoxError> {
        (self.fault)(Call::Fail)?;
        self.inbox.fail(attempt, record, next).await
    }
    async fn release(&self, worker: &str, held: &[AttemptId]) -> Result<u64, BoxError> {
        (self.fault)(Call::Release)?;
        self.inbox.release(worker, held).await
    }
    async fn rescue(&self, max_lapses: u32, max_attempts: u32) -> Result<u64, BoxError> {
        (self.fault)(Call::Rescue)?;
        self.inbox.rescue(max_lapses, max_attempts).await
    }
    async fn rescue_listing_dead(
        &self,
        max_lapses: u32,
        max_attempts: u32,
    ) -> Result<Vec<Buried>, BoxError> {
        (self.fault)(Call::Rescue)?;
        self.inbox
            .rescue_listing_dead(max_lapses, max_attempts)
            .await
    }
    async fn prune(&self, retention: Duration, limit: u64) -> Result<u64, BoxError> {
        (self.fault)(Call::Prune)?;
        self.inbox.prune(retention, limit).await
    }
    async fn sample(&self) -> Result<Option<InboxCounts>, BoxError> {
        (self.fault)(Call::Sample)?;
        self.inbox.sample().await
    }
}
