//! Checkpoints in PostgreSQL (features `client` and `postgres`): one row per entity in the
//! database the idempotency store already uses, under the store's namespace, so replicas
//! of a service share them and two services on one database keep their own.

use std::sync::Arc;

use sqlx::PgPool;

use super::timestamp;
use super::{CheckpointStore, StoreFuture};
use crate::error::{Error, ErrorKind, Result};
use crate::idempotency::PostgresStore;

/// The table, created by [`PostgresCheckpoints::ensure_schema`]: a namespace, an id and
/// 8 bytes per entity. `GREATEST` on save: a checkpoint never moves back, whichever
/// replica saves last.
pub const CHECKPOINTS_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS monite_webhooks_checkpoints (\n    namespace text NOT NULL,\n    entity_id text NOT NULL,\n    checkpoint_us bigint NOT NULL,\n    PRIMARY KEY (namespace, entity_id)\n)";

const LOAD: &str =
    "SELECT checkpoint_us FROM monite_webhooks_checkpoints WHERE namespace = $1 AND entity_id = $2";
const SAVE: &str = "INSERT INTO monite_webhooks_checkpoints AS c (namespace, entity_id, checkpoint_us) VALUES ($1, $2, $3) \
     ON CONFLICT (namespace, entity_id) DO UPDATE SET checkpoint_us = GREATEST(c.checkpoint_us, EXCLUDED.checkpoint_us)";
const ALL: &str = "SELECT entity_id, checkpoint_us FROM monite_webhooks_checkpoints WHERE namespace = $1 ORDER BY entity_id";

/// Checkpoints in `monite_webhooks_checkpoints` ([`CHECKPOINTS_SCHEMA`]), on the pool and
/// namespace of a [`PostgresStore`].
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
    pool: PgPool,
    namespace: Arc<str>,
}

impl PostgresCheckpoints {
    /// Checkpoints on `store`'s pool, in its namespace.
    #[must_use]
    pub fn new(store: &PostgresStore) -> Self {
        Self {
            pool: store.pool().clone(),
            namespace: store.namespace().clone(),
        }
    }

    /// Creates the table if it is missing.
    ///
    /// # Errors
    /// [`ErrorKind::Checkpoints`] if the statement fails.
    pub async fn ensure_schema(&self) -> Result<()> {
        sqlx::query(CHECKPOINTS_SCHEMA)
            .execute(&self.pool)
            .await
            .map_err(failed)?;
        Ok(())
    }
}

impl CheckpointStore for PostgresCheckpoints {
    fn load<'a>(&'a self, entity_id: &'a str) -> StoreFuture<'a, Option<jiff::Timestamp>> {
        Box::pin(async move {
            let micros: Option<i64> = sqlx::query_scalar(LOAD)
                .bind(&*self.namespace)
                .bind(entity_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(failed)?;
            micros.map(timestamp).transpose()
        })
    }

    fn save<'a>(&'a self, entity_id: &'a str, at: jiff::Timestamp) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(SAVE)
                .bind(&*self.namespace)
                .bind(entity_id)
                .bind(at.as_microsecond())
                .execute(&self.pool)
                .await
                .map_err(failed)?;
            Ok(())
        })
    }

    fn all(&self) -> StoreFuture<'_, Vec<(String, jiff::Timestamp)>> {
        Box::pin(async move {
            let rows: Vec<(String, i64)> = sqlx::query_as(ALL)
                .bind(&*self.namespace)
                .fetch_all(&self.pool)
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
