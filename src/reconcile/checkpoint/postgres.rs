//! Checkpoints in PostgreSQL (features `client` and `postgres`): one row per entity in the
//! database the idempotency store already uses, under the store's namespace and table
//! prefix, so replicas of a service share them and two services on one database keep
//! their own.

use std::sync::Arc;

use sqlx::AssertSqlSafe;

use super::timestamp;
use super::{CheckpointStore, StoreFuture};
use crate::error::{Error, ErrorKind, Result};
use crate::idempotency::PostgresStore;
use crate::postgres::{CHECKPOINTS, Database, FLEET};

/// The statements, for one table prefix. `GREATEST` on save: a checkpoint never moves
/// back, whichever replica saves last.
#[derive(Debug)]
struct Statements {
    load: String,
    save: String,
    all: String,
    schema: String,
}

/// Checkpoints in `<prefix>_checkpoints` (a namespace, an id and 8 bytes per entity), on
/// the pool, namespace and table prefix of a [`PostgresStore`]. Versions before numbered
/// migrations kept them in `monite_webhooks_checkpoints`, whatever the prefix:
/// [`ensure_schema`](Self::ensure_schema) copies that table's rows, and leaves it as it is
/// for the other prefixes that may share it.
///
/// ```no_run
/// use monite_webhooks::PostgresStore;
/// use monite_webhooks::reconcile::{CheckpointStore, PostgresCheckpoints};
/// # async fn run(pool: sqlx::PgPool) -> Result<(), monite_webhooks::Error> {
/// let checkpoints = PostgresCheckpoints::new(&PostgresStore::new(pool, "billing")?);
/// checkpoints.ensure_schema().await?;
/// let all = checkpoints.all().await?;
/// # let _ = all; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresCheckpoints {
    db: Database,
    sql: Arc<Statements>,
}

impl PostgresCheckpoints {
    /// Checkpoints on `store`'s pool, in its namespace, in `<prefix>_checkpoints`.
    #[must_use]
    pub fn new(store: &PostgresStore) -> Self {
        let db = store.database().clone();
        let table = &db.tables().checkpoints;
        let sql = Statements {
            load: format!(
                "SELECT checkpoint_us FROM {table} WHERE namespace = $1 AND entity_id = $2"
            ),
            save: format!(
                "INSERT INTO {table} AS c (namespace, entity_id, checkpoint_us) VALUES ($1, $2, $3) \
                 ON CONFLICT (namespace, entity_id) DO UPDATE SET checkpoint_us = GREATEST(c.checkpoint_us, EXCLUDED.checkpoint_us)"
            ),
            all: format!(
                "SELECT entity_id, checkpoint_us FROM {table} WHERE namespace = $1 ORDER BY entity_id"
            ),
            schema: [CHECKPOINTS.sql(db.tables()), FLEET.sql(db.tables())].join("\n"),
        };
        Self {
            db,
            sql: Arc::new(sql),
        }
    }

    /// Makes the table and the fleet's (the leases replicas sharing these checkpoints
    /// lead by, see [`fleet`](crate::fleet)), or brings them up to date: applies the
    /// migrations this database lacks and records them in `<prefix>_migrations`, under the
    /// advisory lock every schema of this crate is made under; safe from every replica at
    /// once.
    ///
    /// # Errors
    /// [`ErrorKind::Checkpoints`] if PostgreSQL refuses or cannot be reached.
    pub async fn ensure_schema(&self) -> Result<()> {
        self.db
            .migrate(&CHECKPOINTS, ErrorKind::Checkpoints)
            .await?;
        self.db.migrate(&FLEET, ErrorKind::Checkpoints).await
    }

    /// The SQL of the migrations that make the table and the fleet's, in order, for your
    /// migrations.
    /// Idempotent: each may run again.
    #[must_use]
    pub fn schema_sql(&self) -> &str {
        &self.sql.schema
    }
}

impl CheckpointStore for PostgresCheckpoints {
    fn load<'a>(&'a self, entity_id: &'a str) -> StoreFuture<'a, Option<jiff::Timestamp>> {
        Box::pin(async move {
            let micros: Option<i64> = sqlx::query_scalar(AssertSqlSafe(&*self.sql.load))
                .bind(&**self.db.namespace())
                .bind(entity_id)
                .fetch_optional(self.db.pool())
                .await
                .map_err(failed)?;
            micros.map(timestamp).transpose()
        })
    }

    /// The fleet on the same pool, namespace and table prefix.
    fn fleet(&self) -> Option<crate::fleet::Fleet> {
        Some(crate::fleet::Fleet::on_database(self.db.clone()))
    }

    fn save<'a>(&'a self, entity_id: &'a str, at: jiff::Timestamp) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(AssertSqlSafe(&*self.sql.save))
                .bind(&**self.db.namespace())
                .bind(entity_id)
                .bind(at.as_microsecond())
                .execute(self.db.pool())
                .await
                .map_err(failed)?;
            Ok(())
        })
    }

    fn all(&self) -> StoreFuture<'_, Vec<(String, jiff::Timestamp)>> {
        Box::pin(async move {
            let rows: Vec<(String, i64)> = sqlx::query_as(AssertSqlSafe(&*self.sql.all))
                .bind(&**self.db.namespace())
                .fetch_all(self.db.pool())
                .await
                .map_err(failed)?;
            rows.into_iter()
                .map(|(id, micros)| Ok((id, timestamp(micros)?)))
                .collect()
        })
    }
}

fn failed(e: sqlx::Error) -> Error {
    Error::new(
        ErrorKind::Checkpoints,
        format!("the checkpoints in PostgreSQL cannot be reached: {e}"),
    )
    .with_source(e)
}
