//! `PostgresInbox`: the inbox's tables in the service's own PostgreSQL.

mod admin;
mod complete_tx;
mod requeue;
mod sql;
mod wake;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row as _};

pub(crate) use self::complete_tx::{Marked, begin_attempt, current_attempt, mark_done_in};
pub use self::requeue::{REQUEUE_BATCH, RequeueCounts, RequeueFilter, RequeueProgress};
use self::sql::Statements;
use self::wake::Wake;
use super::counts::InboxCounts;
use super::store::{
    Accepted, AfterFailure, AttemptId, AttemptRecord, Buried, ClaimRequest, Claimed, Completed,
    Delivery, InboxStore, MIN_DONE_RETENTION,
};
use crate::error::{BoxError, ErrorKind, Result};
use crate::idempotency::PostgresStore;
use crate::postgres::{Database, INBOX, duration_millis, span_millis};

/// The inbox in PostgreSQL, on the pool, namespace and table prefix of a
/// [`PostgresStore`].
///
/// Two tables, made by [`ensure_schema`](Self::ensure_schema) with numbered migrations
/// that it records in `<prefix>_migrations` (or by your migrations, with
/// [`schema_sql`](Self::schema_sql)): `<prefix>_inbox_events`, one row per accepted
/// event (its raw body and kept headers, its state `pending`, `running`, `done` or `dead`,
/// its attempt count, lease and last error), and `<prefix>_inbox_attempts`, one row per
/// attempt (worker, outcome, error, duration). A claim and a completion are two updates
/// of the event's row, and neither is a HOT update: `state` is in the partial indexes'
/// predicates and `locked_until` among their keys, so each new version gets new index
/// entries, and each old one is a dead tuple until vacuum. The events table is created
/// with autovacuum starting after 1,000 dead tuples whatever the table's size
/// (`autovacuum_vacuum_scale_factor = 0`), since the done rows kept for deduplication would
/// otherwise delay it, and with the default fill factor; see the guide's "The table's
/// upkeep".
///
/// The dedup key is the row's `dedup_key`, `<namespace>:evt:<event id>`: it lives as long
/// as the row, which the workers delete after their
/// [`retention`](crate::inbox::WorkersBuilder::retention) (at least 8 days: Monite retries
/// for 7), or [`prune_done`](Self::prune_done) when you call it.
///
/// ```no_run
/// use monite_webhooks::PostgresStore;
/// use monite_webhooks::inbox::PostgresInbox;
///
/// # async fn build(pool: sqlx::PgPool) -> Result<(), monite_webhooks::Error> {
/// let store = PostgresStore::new(pool, "billing")?;
/// let inbox = PostgresInbox::new(&store);
/// inbox.ensure_schema().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresInbox {
    inner: Arc<Inner>,
}

struct Inner {
    store: Database,
    /// The accepting `INSERT`'s own connections: never waiting behind the workers.
    accept_pool: PgPool,
    sql: Statements,
    schema: String,
    wake: Wake,
}

/// The most connections of the pool [`PostgresInbox::new`] accepts on.
pub const ACCEPT_CONNECTIONS: u32 = 4;
/// How long an accept waits for a connection before it answers `503`.
const ACCEPT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an idle accepting connection is kept.
const ACCEPT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

impl PostgresInbox {
    /// The inbox on `store`'s pool, namespace and table prefix. Transactional handlers of
    /// the same store ([`PostgresStore::transactional`]) commit the done mark with their
    /// writes when a worker of this inbox runs them.
    ///
    /// Deliveries are accepted on a pool of their own, opened on first use with the
    /// store's connection settings (at most [`ACCEPT_CONNECTIONS`], closed after a minute
    /// idle): slow handlers holding every connection of the store's pool never make a
    /// delivery wait and be answered `503`. A process that runs only workers never opens
    /// it. [`with_accept_pool`](Self::with_accept_pool) gives another.
    #[must_use]
    pub fn new(store: &PostgresStore) -> Self {
        let accept_pool = PgPoolOptions::new()
            .max_connections(ACCEPT_CONNECTIONS)
            .min_connections(0)
            .acquire_timeout(ACCEPT_ACQUIRE_TIMEOUT)
            .idle_timeout(Some(ACCEPT_IDLE_TIMEOUT))
            .connect_lazy_with((*store.pool().connect_options()).clone());
        Self::with_pools(store.database(), accept_pool)
    }

    /// Accepts deliveries on `pool` instead of the pool [`new`](Self::new) opens: one of
    /// your own (its size, its `after_connect`), but never the pool the workers' handlers
    /// use, or slow handlers make deliveries wait and be answered `503`. Call it before
    /// cloning the inbox.
    #[must_use]
    pub fn with_accept_pool(self, pool: PgPool) -> Self {
        Self::with_pools(&self.inner.store, pool)
    }

    fn with_pools(store: &Database, accept_pool: PgPool) -> Self {
        let tables = store.tables();
        Self {
            inner: Arc::new(Inner {
                wake: Wake::new(
                    accept_pool.clone(),
                    store.pool().clone(),
                    &tables.events,
                    store.namespace(),
                ),
                accept_pool,
                sql: Statements::new(tables),
                schema: INBOX.sql(tables),
                store: store.clone(),
            }),
        }
    }

    /// The SQL of the migrations that make the tables and indexes, in order, for your
    /// migrations. Idempotent: each may run again.
    #[must_use]
    pub fn schema_sql(&self) -> &str {
        &self.inner.schema
    }

    /// Makes the tables and indexes, or brings them up to date: applies the migrations
    /// this database lacks and records them in `<prefix>_migrations`; safe from every
    /// replica at once (an advisory lock).
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] if PostgreSQL refuses or cannot be reached.
    pub async fn ensure_schema(&self) -> Result<()> {
        self.inner
            .store
            .migrate(&INBOX, ErrorKind::StoreUnavailable)
            .await
    }

    /// The PostgreSQL the inbox is stored in: pool, namespace, tables.
    pub(crate) fn store(&self) -> &Database {
        &self.inner.store
    }

    /// The events table's name.
    #[must_use]
    pub fn events_table(&self) -> &str {
        &self.inner.store.tables().events
    }
}

/// `value` as a `text` column can hold it: PostgreSQL refuses U+0000, which JSON allows
/// (`\u0000`), so each becomes U+FFFD. Refusing the delivery instead would answer `503`
/// to every retry for Monite's whole week (a `4xx` likewise loses the event), while the
/// row's body keeps the exact value for the handlers.
fn text(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains('\0') {
        value.replace('\0', "\u{FFFD}").into()
    } else {
        value.into()
    }
}

/// The row ids and the attempt numbers of `held`, as two arrays to bind.
fn unzip(held: &[AttemptId]) -> (Vec<i64>, Vec<i32>) {
    held.iter().map(|a| (a.row, a.attempt)).unzip()
}

impl PostgresInbox {
    /// Frees the lapsed leases: a row for each, with the body of those it buried.
    async fn rescued(
        &self,
        max_lapses: u32,
        max_attempts: u32,
    ) -> Result<Vec<sqlx::postgres::PgRow>, sqlx::Error> {
        sqlx::query(self.inner.sql.rescue.sql())
            .bind(&**self.inner.store.namespace())
            .bind(i32::try_from(max_lapses).unwrap_or(i32::MAX))
            .bind(i32::try_from(max_attempts).unwrap_or(i32::MAX))
            .fetch_all(self.inner.store.pool())
            .await
    }
}

impl InboxStore for PostgresInbox {
    async fn accept(&self, delivery: &Delivery<'_>) -> Result<Accepted, BoxError> {
        let event = delivery.event;
        let headers: serde_json::Map<String, serde_json::Value> = delivery
            .headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone().into()))
            .collect();
        // The envelope's fields as `text` columns hold them; the body keeps them exact.
        let row = sqlx::query(self.inner.sql.accept.sql())
            .bind(self.inner.store.stored_key(delivery.key))
            .bind(&**self.inner.store.namespace())
            .bind(event.id().map(text))
            .bind(event.webhook_subscription_id().map(text))
            .bind(event.entity_id().map(text))
            .bind(text(event.object_type().as_str()))
            .bind(text(event.action()))
            .bind(&event.body()[..])
            .bind(serde_json::Value::Object(headers).to_string())
            .bind(delivery.retry_unhandled)
            .fetch_optional(&self.inner.accept_pool)
            .await?;
        Ok(if row.is_some() {
            self.inner.wake.accepted();
            Accepted::New
        } else {
            Accepted::Duplicate
        })
    }

    async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Vec<Claimed>, BoxError> {
        let claim = if request.in_entity_order {
            &self.inner.sql.claim_in_entity_order
        } else {
            &self.inner.sql.claim
        };
        let rows = sqlx::query(claim.sql())
            .bind(&**self.inner.store.namespace())
            .bind(i64::try_from(request.batch).unwrap_or(i64::MAX))
            .bind(span_millis(request.lease))
            .bind(request.worker)
            .bind(request.skip_object_types)
            .fetch_all(self.inner.store.pool())
            .await?;
        rows.into_iter()
            .map(|row| {
                Ok(Claimed {
                    attempt: AttemptId::new(row.try_get(0)?, row.try_get(1)?),
                    tries: row.try_get(2)?,
                    body: Bytes::from(row.try_get::<Vec<u8>, _>(3)?),
                    retry_unhandled: row.try_get(4)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn heartbeat(&self, held: &[AttemptId], lease: Duration) -> Result<usize, BoxError> {
        let (ids, attempts) = unzip(held);
        let extended = sqlx::query(self.inner.sql.heartbeat.sql())
            .bind(ids)
            .bind(attempts)
            .bind(span_millis(lease))
            .execute(self.inner.store.pool())
            .await?
            .rows_affected();
        Ok(usize::try_from(extended).unwrap_or(usize::MAX))
    }

    async fn complete(
        &self,
        attempt: AttemptId,
        record: &AttemptRecord<'_>,
    ) -> Result<bool, BoxError> {
        let completed = Completed {
            attempt,
            duration: record.duration,
        };
        let marked = self.complete_batch(record.worker, &[completed]).await?;
        Ok(!marked.is_empty())
    }

    async fn complete_batch(&self, worker: &str, done: &[Completed]) -> Result<Vec<i64>, BoxError> {
        let ids: Vec<i64> = done.iter().map(|c| c.attempt.row).collect();
        let attempts: Vec<i32> = done.iter().map(|c| c.attempt.attempt).collect();
        let durations: Vec<i64> = done.iter().map(|c| duration_millis(c.duration)).collect();
        let marked = sqlx::query_scalar(self.inner.sql.complete_batch.sql())
            .bind(ids)
            .bind(attempts)
            .bind(durations)
            .bind(worker)
            .fetch_all(self.inner.store.pool())
            .await?;
        Ok(marked)
    }

    async fn fail(
        &self,
        attempt: AttemptId,
        record: &AttemptRecord<'_>,
        next: AfterFailure,
    ) -> Result<bool, BoxError> {
        let (state, delay) = match next {
            AfterFailure::RetryIn(delay) => ("pending", delay),
            AfterFailure::Dead => ("dead", Duration::ZERO),
        };
        let failed = sqlx::query(self.inner.sql.fail.sql())
            .bind(attempt.row)
            .bind(attempt.attempt)
            .bind(record.worker)
            .bind(duration_millis(record.duration))
            .bind(state)
            .bind(span_millis(delay))
            .bind(record.error.map(text))
            .fetch_optional(self.inner.store.pool())
            .await?;
        Ok(failed.is_some())
    }

    async fn release(&self, worker: &str, held: &[AttemptId]) -> Result<u64, BoxError> {
        let (ids, attempts) = unzip(held);
        let released = sqlx::query(self.inner.sql.release.sql())
            .bind(ids)
            .bind(attempts)
            .bind(worker)
            .execute(self.inner.store.pool())
            .await?
            .rows_affected();
        Ok(released)
    }

    async fn rescue(&self, max_lapses: u32, max_attempts: u32) -> Result<u64, BoxError> {
        let freed = self.rescued(max_lapses, max_attempts).await?.len();
        Ok(u64::try_from(freed).unwrap_or(u64::MAX))
    }

    async fn rescue_listing_dead(
        &self,
        max_lapses: u32,
        max_attempts: u32,
    ) -> Result<Vec<Buried>, BoxError> {
        let mut buried = Vec::new();
        for row in self.rescued(max_lapses, max_attempts).await? {
            // Only a buried row comes with its body.
            if let Some(body) = row.try_get::<Option<Vec<u8>>, _>(4)? {
                buried.push(Buried::new(
                    AttemptId::new(row.try_get(0)?, row.try_get(1)?),
                    row.try_get(2)?,
                    row.try_get(3)?,
                    Bytes::from(body),
                ));
            }
        }
        Ok(buried)
    }

    async fn prune(&self, retention: Duration, limit: u64) -> Result<u64, BoxError> {
        let retention = retention.max(MIN_DONE_RETENTION);
        Ok(self.delete_old_at_most("done", retention, limit).await?)
    }

    async fn sample(&self) -> Result<Option<InboxCounts>, BoxError> {
        let row = sqlx::query(self.inner.sql.sample.sql())
            .bind(&**self.inner.store.namespace())
            .fetch_one(self.inner.store.pool())
            .await?;
        let count = |i| row.try_get::<i64, _>(i).map(i64::unsigned_abs);
        let oldest: Option<i64> = row.try_get(4)?;
        Ok(Some(
            InboxCounts::new(count(0)?, count(1)?, count(2)?, count(3)?).with_oldest_pending(
                oldest.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
            ),
        ))
    }

    fn transactional_table(&self) -> Option<&str> {
        Some(self.events_table())
    }

    fn worker_connections(&self) -> Option<u32> {
        Some(self.inner.store.pool().options().get_max_connections())
    }

    async fn watch(&self, wake: Arc<dyn Fn() + Send + Sync>, remote: bool) {
        self.inner.wake.watch(wake, remote).await;
    }
}

impl fmt::Debug for PostgresInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresInbox")
            .field("events", &self.events_table())
            .field("namespace", self.inner.store.namespace())
            .field(
                "accept_connections",
                &self.inner.accept_pool.options().get_max_connections(),
            )
            .finish()
    }
}
