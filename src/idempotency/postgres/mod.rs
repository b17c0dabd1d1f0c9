//! `PostgresStore`: idempotency in the service's own PostgreSQL, and the table transactional
//! handlers record done events in.

pub(crate) mod sql;
pub(super) mod transactional;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use self::sql::Statements;
use super::remote::{checked_namespace, connect_error, store_millis};
use super::{Claim, ClaimToken, IdempotencyStore, MAX_STORE_DURATION};
use crate::error::{BoxError, Error, ErrorKind, Result};

/// The table names' default prefix: `monite_webhook_claims` and `monite_webhook_inbox`.
pub const DEFAULT_TABLE_PREFIX: &str = "monite_webhook";

/// How often, at most, a store deletes expired rows: once a minute.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// How long a pooled connection may take to come before a delivery is answered `503`: short,
/// because Monite is waiting, and it will retry. Only for pools [`PostgresStore::connect`]
/// builds; yours keeps its own settings.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// Rows one sweep statement deletes; a sweep repeats it until less than this is left.
const SWEEP_BATCH: i64 = 1000;

/// An idempotency store in PostgreSQL, and the inbox that [transactional
/// handlers](Self::transactional) record done events in.
///
/// Two tables, created by [`ensure_schema`](Self::ensure_schema) (or by your migrations,
/// with [`schema_sql`](Self::schema_sql)); with the default prefix:
///
/// ```sql
/// CREATE TABLE IF NOT EXISTS monite_webhook_claims (
///     key text PRIMARY KEY,
///     token text,
///     expires_at timestamptz NOT NULL
/// );
/// CREATE INDEX IF NOT EXISTS monite_webhook_claims_expires_at ON monite_webhook_claims (expires_at);
/// CREATE TABLE IF NOT EXISTS monite_webhook_inbox (
///     key text PRIMARY KEY,
///     expires_at timestamptz NOT NULL
/// );
/// CREATE INDEX IF NOT EXISTS monite_webhook_inbox_expires_at ON monite_webhook_inbox (expires_at);
/// ```
///
/// `monite_webhook_claims` is the [`IdempotencyStore`]: a claim is a row holding this
/// delivery's token until its lease ends; done is the same row with no token, until the
/// retention ends. Claiming is one statement (`INSERT … ON CONFLICT DO UPDATE` that takes
/// the row only when it has expired); completing and releasing act only while the row holds
/// this delivery's token. Time is the database's clock, so replicas agree on it.
///
/// `monite_webhook_inbox` holds one row per event a transactional handler committed.
///
/// Keys are stored as `<namespace>:<key>`. The namespace names your service, and is
/// required: two services that share one database (or one schema) and subscribe to the
/// same object type receive the same events, with the same ids, and without a namespace of
/// its own each would take the other's done marks and inbox rows for its own and skip its
/// handlers. Replicas of one service share a namespace.
///
/// **Retention without a cron job**: at most once per [sweep
/// interval](Self::with_sweep_interval) (a minute by default), a claim or a transactional
/// handler spawns a task that deletes expired rows from both tables, a thousand at a time,
/// skipping rows another transaction holds. Expired rows are ignored before they are
/// deleted, so the sweep only bounds the tables' size.
///
/// When PostgreSQL cannot be reached, deliveries are answered `503` and no handler runs.
/// Cloning shares the pool.
///
/// ```no_run
/// use monite_webhooks::{Dispatcher, Idempotency, PostgresStore, Receiver, Secret, Verifier};
///
/// # async fn build(pool: sqlx::PgPool) -> Result<Receiver, monite_webhooks::Error> {
/// let store = PostgresStore::new(pool, "billing")?;
/// store.ensure_schema().await?;
/// let receiver = Receiver::builder(
///     Verifier::new(Secret::new("whsec_from_your_environment")?),
///     Dispatcher::builder().build(),
/// )
/// .idempotency(Idempotency::new(store))
/// .build();
/// # Ok(receiver) }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    prefix: String,
    // Every key is stored as `<namespace>:<key>`.
    namespace: Arc<str>,
    sql: Statements,
    sweep_interval: Duration,
    // Milliseconds since `epoch` at the last sweep, plus one; 0 means never.
    last_sweep: AtomicU64,
    epoch: Instant,
}

impl PostgresStore {
    /// A store over your pool, with tables named from [`DEFAULT_TABLE_PREFIX`];
    /// `namespace` names your service (see the type's documentation).
    ///
    /// The pool's `acquire_timeout` bounds how long a delivery waits for a connection
    /// before it is answered `503`; keep it short (seconds), since Monite is waiting.
    ///
    /// # Errors
    /// [`ErrorKind::Misconfigured`] for a namespace that is empty or not 1 to 64 ASCII
    /// letters, digits, `_`, `-` or `.`.
    pub fn new(pool: PgPool, namespace: &str) -> Result<Self> {
        Ok(Self::build(
            pool,
            checked_namespace(namespace)?,
            DEFAULT_TABLE_PREFIX.to_owned(),
            DEFAULT_SWEEP_INTERVAL,
        ))
    }

    /// Connects a pool of up to 10 connections to the PostgreSQL at `url`
    /// (`postgres://user:password@host:port/database`), with a 2-second acquire timeout;
    /// `namespace` names your service.
    ///
    /// # Errors
    /// [`ErrorKind::Misconfigured`] for a namespace as [`new`](Self::new) refuses it;
    /// [`ErrorKind::StoreUnavailable`] if the URL is invalid or PostgreSQL cannot be reached
    /// now.
    pub async fn connect(url: &str, namespace: &str) -> Result<Self> {
        let namespace = checked_namespace(namespace)?;
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(|e| connect_error("PostgreSQL", url, e))?;
        Ok(Self::build(
            pool,
            namespace,
            DEFAULT_TABLE_PREFIX.to_owned(),
            DEFAULT_SWEEP_INTERVAL,
        ))
    }

    fn build(pool: PgPool, namespace: Arc<str>, prefix: String, sweep_interval: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                sql: Statements::new(&prefix),
                namespace,
                prefix,
                sweep_interval,
                last_sweep: AtomicU64::new(0),
                epoch: Instant::now(),
            }),
        }
    }

    /// `key` as stored: in this store's namespace. PostgreSQL's `text` refuses U+0000,
    /// which a JSON event id may hold (`\u0000`): such a key is stored as `nul:` and the
    /// hex SHA-256 of the key, a form no other key takes (they begin `evt:`, `sub:` or
    /// `body:`), so the event is still deduplicated, and by its exact id.
    pub(crate) fn stored_key(&self, key: &str) -> String {
        if key.contains('\0') {
            use sha2::Digest as _;
            let mut stored = [&*self.inner.namespace, ":nul:"].concat();
            crate::signature::hex::encode_into(&sha2::Sha256::digest(key), &mut stored);
            return stored;
        }
        [&self.inner.namespace, ":", key].concat()
    }

    /// Names the tables `<prefix>_claims` and `<prefix>_inbox` instead of
    /// `monite_webhook_…`; `prefix` may name a schema too (`billing.monite`).
    ///
    /// # Errors
    /// [`ErrorKind::Misconfigured`] unless `prefix` is one or two identifiers of ASCII
    /// letters, digits and `_` (not starting with a digit) joined by a dot.
    pub fn with_table_prefix(self, prefix: &str) -> Result<Self> {
        let valid = |part: &str| {
            part.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        let parts: Vec<&str> = prefix.split('.').collect();
        if parts.len() > 2 || !parts.iter().all(|part| valid(part)) || prefix.len() > 40 {
            return Err(Error::new(
                ErrorKind::Misconfigured,
                format!("{prefix:?} is not a table prefix"),
            ));
        }
        Ok(Self::build(
            self.inner.pool.clone(),
            self.inner.namespace.clone(),
            prefix.to_owned(),
            self.inner.sweep_interval,
        ))
    }

    /// Deletes expired rows at most this often (default [`DEFAULT_SWEEP_INTERVAL`]). An
    /// interval over [`MAX_STORE_DURATION`] (such as `Duration::MAX`) never sweeps by
    /// itself: the rows are left to your own calls of [`sweep`](Self::sweep).
    #[must_use]
    pub fn with_sweep_interval(self, interval: Duration) -> Self {
        Self::build(
            self.inner.pool.clone(),
            self.inner.namespace.clone(),
            self.inner.prefix.clone(),
            interval,
        )
    }

    /// The pool this store runs on.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The SQL that creates the two tables and their indexes, for your migrations.
    /// Idempotent (`IF NOT EXISTS`).
    #[must_use]
    pub fn schema_sql(&self) -> &str {
        &self.inner.sql.schema
    }

    /// Creates the tables and indexes if they do not exist. Safe to run from every replica
    /// at start-up: an advisory lock keeps two from creating them at once.
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] if PostgreSQL refuses or cannot be reached.
    pub async fn ensure_schema(&self) -> Result<()> {
        let tables = format!(
            "the tables {}_claims and {}_inbox",
            self.inner.prefix, self.inner.prefix
        );
        self.create_schema(&self.inner.prefix, &self.inner.sql.schema, &tables)
            .await
    }

    /// Runs `schema` (idempotent DDL) in one transaction under an advisory lock on
    /// `lock`: concurrent `CREATE … IF NOT EXISTS` from several replicas can still
    /// collide in the catalog. `tables` names what it creates, for the error.
    pub(crate) async fn create_schema(&self, lock: &str, schema: &str, tables: &str) -> Result<()> {
        let create = async {
            let mut tx = self.inner.pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(lock)
                .execute(&mut *tx)
                .await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(schema.to_owned()))
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        };
        create.await.map_err(|e: sqlx::Error| {
            Error::new(
                ErrorKind::StoreUnavailable,
                format!("cannot create {tables}: {e}"),
            )
            .with_source(e)
        })
    }

    /// Deletes expired claims, done marks and inbox rows now, and answers how many. The
    /// store also does this by itself; see the type's documentation.
    ///
    /// # Errors
    /// The database's error, if a statement fails.
    pub async fn sweep(&self) -> Result<u64, BoxError> {
        let mut deleted = 0;
        for statement in [&self.inner.sql.sweep_claims, &self.inner.sql.sweep_inbox] {
            loop {
                let batch = sqlx::query(statement.sql())
                    .bind(SWEEP_BATCH)
                    .execute(&self.inner.pool)
                    .await?
                    .rows_affected();
                deleted += batch;
                if batch < SWEEP_BATCH.unsigned_abs() {
                    break;
                }
            }
        }
        Ok(deleted)
    }

    /// Spawns a sweep if none ran within the interval. Called on the delivery path, so it
    /// only reads a clock and, once per interval, spawns.
    pub(crate) fn sweep_if_due(&self) {
        let inner = &self.inner;
        let now = u64::try_from(inner.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = inner.last_sweep.load(Ordering::Relaxed);
        if inner.sweep_interval > MAX_STORE_DURATION {
            return; // left to the user's own `sweep`
        }
        let interval = u64::try_from(inner.sweep_interval.as_millis()).unwrap_or(u64::MAX);
        let due = last == 0 || now.saturating_sub(last) >= interval;
        if !due
            || inner
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // No runtime (a store used from a blocking context): skip; the next claim retries.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            inner.last_sweep.store(last, Ordering::Relaxed);
            return;
        };
        let store = self.clone();
        runtime.spawn(async move {
            if let Err(e) = store.sweep().await {
                crate::observe::store_trouble("(sweep)", &format!("deleting expired rows: {e}"));
            }
        });
    }

    pub(crate) fn inbox_claim_sql(&self) -> sqlx::AssertSqlSafe<Arc<str>> {
        self.inner.sql.inbox_claim.sql()
    }

    /// The worker inbox's table and fenced done mark, for a transactional handler a worker
    /// runs.
    pub(crate) fn inbox_done_sql(&self) -> (&str, sqlx::AssertSqlSafe<Arc<str>>) {
        (
            &self.inner.sql.inbox_events,
            self.inner.sql.inbox_done.sql(),
        )
    }

    /// The namespace keys are stored in.
    pub(crate) fn namespace(&self) -> &Arc<str> {
        &self.inner.namespace
    }

    /// The table prefix.
    pub(crate) fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    pub(crate) fn inbox_check_sql(&self) -> sqlx::AssertSqlSafe<Arc<str>> {
        self.inner.sql.inbox_check.sql()
    }
}

impl IdempotencyStore for PostgresStore {
    /// `true`: the rows live in PostgreSQL, which every replica shares.
    fn survives_restart(&self) -> bool {
        true
    }

    async fn claim(
        &self,
        key: &str,
        token: &ClaimToken,
        lease: Duration,
    ) -> Result<Claim, BoxError> {
        self.sweep_if_due();
        let found: i32 = sqlx::query_scalar(self.inner.sql.claim.sql())
            .bind(self.stored_key(key))
            .bind(token.to_string())
            .bind(store_millis(lease))
            .fetch_one(&self.inner.pool)
            .await?;
        Ok(match found {
            1 => Claim::Acquired,
            2 => Claim::Done,
            _ => Claim::InFlight,
        })
    }

    async fn complete(
        &self,
        key: &str,
        token: &ClaimToken,
        retention: Duration,
    ) -> Result<bool, BoxError> {
        let done = sqlx::query(self.inner.sql.complete.sql())
            .bind(self.stored_key(key))
            .bind(token.to_string())
            .bind(store_millis(retention))
            .fetch_optional(&self.inner.pool)
            .await?;
        Ok(done.is_some())
    }

    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), BoxError> {
        sqlx::query(self.inner.sql.release.sql())
            .bind(self.stored_key(key))
            .bind(token.to_string())
            .execute(&self.inner.pool)
            .await?;
        Ok(())
    }

    /// Starts the release on the current Tokio runtime (the pool's own), so a retry finds
    /// the key free within a round trip; outside a runtime the lease lapses.
    fn release_detached(&self, key: &str, token: &ClaimToken) {
        super::remote::release_on_runtime(self, key, token);
    }

    /// Finishes the mark on the current Tokio runtime, retrying with back-off while
    /// PostgreSQL fails (or no pooled connection comes), so that a dropped or failed mark
    /// still lands.
    fn complete_detached(&self, key: &str, token: &ClaimToken, retention: Duration) {
        super::remote::complete_on_runtime(self, key, token, retention);
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field(
                "tables",
                &format_args!("{}_{{claims,inbox}}", self.inner.prefix),
            )
            .field("namespace", &self.inner.namespace)
            .field("sweep_interval", &self.inner.sweep_interval)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_schema_is_the_one_created() {
        let documented: String = include_str!("mod.rs")
            .lines()
            .skip_while(|line| !line.contains("```sql"))
            .skip(1)
            .take_while(|line| !line.contains("```"))
            .map(|line| {
                format!(
                    "{}\n",
                    line.trim_start_matches("///")
                        .strip_prefix(' ')
                        .unwrap_or("")
                )
            })
            .collect();
        assert_eq!(documented, Statements::new(DEFAULT_TABLE_PREFIX).schema);
    }
}
