//! `PostgresStore`: idempotency in the service's own PostgreSQL, and the table transactional
//! handlers record handled events in.

pub(crate) mod sql;
pub(super) mod transactional;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use self::sql::Statements;
use super::remote::{checked_namespace, connect_error};
use super::{Claim, ClaimToken, IdempotencyStore, MAX_STORE_DURATION};
use crate::error::{BoxError, ErrorKind, Result};
use crate::postgres::{Database, IDEMPOTENCY, Pace, span_millis};

/// The table names' default prefix: `monite_webhook_claims` and `monite_webhook_handled`.
pub const DEFAULT_TABLE_PREFIX: &str = "monite_webhook";

/// How often, at most, a store deletes expired rows: once a minute.
pub const DEFAULT_PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// How long a pooled connection may take to come before a delivery is answered `503`: short,
/// because Monite is waiting, and it will retry. Only for pools [`PostgresStore::connect`]
/// builds; yours keeps its own settings.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// Rows one prune statement deletes; a prune repeats it until less than this is left.
const PRUNE_BATCH: i64 = 1000;

/// An idempotency store in PostgreSQL, and the table that [transactional
/// handlers](Self::transactional) record handled events in.
///
/// Two tables, `<prefix>_claims` and `<prefix>_handled`, made by
/// [`ensure_schema`](Self::ensure_schema) with numbered migrations that it records in
/// `<prefix>_migrations` (or by your migrations, with [`schema_sql`](Self::schema_sql));
/// with the default prefix, the migrations are:
///
/// ```sql
/// -- The claims and the transactional handlers' done marks, as versions before numbered
/// -- migrations created them: a database they made already holds both, and this changes
/// -- nothing there. Run again after migration 2, it finds the renamed table and leaves the
/// -- old name, a view by then, alone.
/// CREATE TABLE IF NOT EXISTS monite_webhook_claims (
///     key text PRIMARY KEY,
///     token text,
///     expires_at timestamptz NOT NULL
/// );
/// CREATE INDEX IF NOT EXISTS monite_webhook_claims_expires_at ON monite_webhook_claims (expires_at);
/// DO $$
/// BEGIN
///     IF to_regclass('monite_webhook_handled') IS NULL THEN
///         CREATE TABLE IF NOT EXISTS monite_webhook_inbox (
///             key text PRIMARY KEY,
///             expires_at timestamptz NOT NULL
///         );
///         CREATE INDEX IF NOT EXISTS monite_webhook_inbox_expires_at ON monite_webhook_inbox (expires_at);
///     END IF;
/// END
/// $$;
///
/// -- The done marks of transactional handlers were `<prefix>_inbox`; "inbox" now names only
/// -- the inbox (`<prefix>_inbox_events`), so the table becomes `<prefix>_handled`.
/// --
/// -- Replicas of an older version may still be running: the old name stays as a view of the
/// -- new table, through which their INSERT ... ON CONFLICT, SELECT and DELETE reach the same
/// -- rows and the same unique key, so a duplicate still waits on the other's uncommitted row.
/// -- A later version drops the view; the index keeps its name until then.
/// DO $$
/// BEGIN
///     IF to_regclass('monite_webhook_handled') IS NULL THEN
///         ALTER TABLE monite_webhook_inbox RENAME TO monite_webhook_handled;
///     END IF;
/// END
/// $$;
/// CREATE OR REPLACE VIEW monite_webhook_inbox AS SELECT key, expires_at FROM monite_webhook_handled;
/// ```
///
/// `monite_webhook_claims` is the [`IdempotencyStore`]: a claim is a row holding this
/// delivery's token until its lease ends; done is the same row with no token, until the
/// retention ends. Claiming is one statement (`INSERT … ON CONFLICT DO UPDATE` that takes
/// the row only when it has expired); completing and releasing act only while the row holds
/// this delivery's token. Time is the database's clock, so replicas agree on it.
///
/// `monite_webhook_handled` holds one row per event a transactional handler committed.
/// Versions before numbered migrations named it `monite_webhook_inbox`; that name stays,
/// for now, as a view of it, so that replicas of an older version keep working during a
/// rolling upgrade (the guide's [exactly once](crate::guide::exactly_once) says what to
/// do).
///
/// Keys are stored as `<namespace>:<key>`. The namespace names your service, and is
/// required: two services that share one database (or one schema) and subscribe to the
/// same object type receive the same events, with the same ids, and without a namespace of
/// its own each would take the other's done marks and handled rows for its own and skip
/// its handlers. Replicas of one service share a namespace.
///
/// **Retention without a cron job**: at most once per [prune
/// interval](Self::with_prune_interval) (a minute by default), a claim or a transactional
/// handler spawns a task that deletes expired rows from both tables, a thousand at a time,
/// skipping rows another transaction holds. Expired rows are ignored before they are
/// deleted, so pruning only bounds the tables' size.
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
    database: Database,
    sql: Statements,
    schema: String,
    prune_interval: Duration,
    prune: Pace,
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
        let database = Database::new(pool, checked_namespace(namespace)?, DEFAULT_TABLE_PREFIX)?;
        Ok(Self::build(database, DEFAULT_PRUNE_INTERVAL))
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
        let database = Database::new(pool, namespace, DEFAULT_TABLE_PREFIX)?;
        Ok(Self::build(database, DEFAULT_PRUNE_INTERVAL))
    }

    fn build(database: Database, prune_interval: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                sql: Statements::new(database.tables()),
                schema: IDEMPOTENCY.sql(database.tables()),
                database,
                prune_interval,
                prune: Pace::every(prune_interval),
            }),
        }
    }

    /// `key` as stored, in this store's namespace.
    pub(crate) fn stored_key(&self, key: &str) -> String {
        self.inner.database.stored_key(key)
    }

    /// Names the tables `<prefix>_claims`, `<prefix>_handled` (and the inbox's and the
    /// checkpoints' on this store, `<prefix>_inbox_events`, `<prefix>_checkpoints` …)
    /// instead of `monite_webhook_…`; `prefix` may name a schema too (`billing.monite`).
    ///
    /// # Errors
    /// [`ErrorKind::Misconfigured`] unless `prefix` is one or two identifiers of ASCII
    /// letters, digits and `_` (not starting with a digit) joined by a dot.
    pub fn with_table_prefix(self, prefix: &str) -> Result<Self> {
        Ok(Self::build(
            self.inner.database.with_prefix(prefix)?,
            self.inner.prune_interval,
        ))
    }

    /// Deletes expired rows at most this often (default [`DEFAULT_PRUNE_INTERVAL`]). An
    /// interval over [`MAX_STORE_DURATION`] (such as `Duration::MAX`) never prunes by
    /// itself: the rows are left to your own calls of [`prune`](Self::prune).
    #[must_use]
    pub fn with_prune_interval(self, interval: Duration) -> Self {
        Self::build(self.inner.database.clone(), interval)
    }

    /// The pool this store runs on.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        self.inner.database.pool()
    }

    /// The SQL of the migrations that make the two tables and their indexes, in order, for
    /// your migrations. Idempotent: each may run again.
    #[must_use]
    pub fn schema_sql(&self) -> &str {
        &self.inner.schema
    }

    /// Makes the tables and indexes, or brings them up to date: applies the migrations
    /// this database lacks and records them in `<prefix>_migrations`. Safe to run from
    /// every replica at start-up: an advisory lock keeps two from migrating at once.
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] if PostgreSQL refuses or cannot be reached.
    pub async fn ensure_schema(&self) -> Result<()> {
        self.inner
            .database
            .migrate(&IDEMPOTENCY, ErrorKind::StoreUnavailable)
            .await
    }

    /// Runs `sql`, statements that make your own tables (`CREATE TABLE IF NOT EXISTS ...`),
    /// in one transaction under the advisory lock this crate's own migrations take:
    /// replicas started at the same instant make them once, and none fails with
    /// `duplicate key value violates unique constraint "pg_type_typname_nsp_index"`, as
    /// `IF NOT EXISTS` run by two at once does.
    ///
    /// ```no_run
    /// # async fn run(store: monite_webhooks::PostgresStore) -> Result<(), monite_webhooks::Error> {
    /// store.ensure_schema().await?;
    /// store
    ///     .ensure_own_schema("CREATE TABLE IF NOT EXISTS handled_events (event_id text NOT NULL)")
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] if PostgreSQL refuses `sql` or cannot be reached.
    pub async fn ensure_own_schema(&self, sql: &str) -> Result<()> {
        self.inner.database.run_under_schema_lock(sql).await
    }

    /// Deletes expired claims, done marks and handled rows now, and answers how many. The
    /// store also does this by itself; see the type's documentation.
    ///
    /// # Errors
    /// The database's error, if a statement fails.
    pub async fn prune(&self) -> Result<u64, BoxError> {
        let mut deleted = 0;
        for statement in [&self.inner.sql.prune_claims, &self.inner.sql.prune_handled] {
            loop {
                let batch = sqlx::query(statement.sql())
                    .bind(PRUNE_BATCH)
                    .execute(self.pool())
                    .await?
                    .rows_affected();
                deleted += batch;
                if batch < PRUNE_BATCH.unsigned_abs() {
                    break;
                }
            }
        }
        Ok(deleted)
    }

    /// Spawns a prune if none ran within the interval. Called on the delivery path, so it
    /// only reads a clock and, once per interval, spawns.
    pub(crate) fn prune_if_due(&self) {
        let inner = &self.inner;
        if inner.prune_interval > MAX_STORE_DURATION || !inner.prune.due() {
            return; // over the longest duration: left to the user's own `prune`
        }
        // No runtime (a store used from a blocking context): skip; the next claim retries.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            inner.prune.again();
            return;
        };
        let store = self.clone();
        runtime.spawn(async move {
            if let Err(e) = store.prune().await {
                crate::observe::store_trouble("(prune)", &format!("deleting expired rows: {e}"));
            }
        });
    }

    pub(crate) fn handled_claim_sql(&self) -> sqlx::AssertSqlSafe<Arc<str>> {
        self.inner.sql.handled_claim.sql()
    }

    pub(crate) fn handled_check_sql(&self) -> sqlx::AssertSqlSafe<Arc<str>> {
        self.inner.sql.handled_check.sql()
    }

    /// The pool, namespace and tables the inbox and the checkpoints on this store share.
    pub(crate) fn database(&self) -> &Database {
        &self.inner.database
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
        self.prune_if_due();
        let found: i32 = sqlx::query_scalar(self.inner.sql.claim.sql())
            .bind(self.stored_key(key))
            .bind(token.to_string())
            .bind(span_millis(lease))
            .fetch_one(self.pool())
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
            .bind(span_millis(retention))
            .fetch_optional(self.pool())
            .await?;
        Ok(done.is_some())
    }

    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), BoxError> {
        sqlx::query(self.inner.sql.release.sql())
            .bind(self.stored_key(key))
            .bind(token.to_string())
            .execute(self.pool())
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
                &format_args!("{}_{{claims,handled}}", self.inner.database.tables().prefix),
            )
            .field("namespace", self.inner.database.namespace())
            .field("prune_interval", &self.inner.prune_interval)
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
        let tables = crate::postgres::Tables::new(DEFAULT_TABLE_PREFIX).unwrap();
        assert_eq!(documented, IDEMPOTENCY.sql(&tables));
    }
}
