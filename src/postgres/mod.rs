//! The service's own PostgreSQL as this crate's stores use it: one pool, one namespace, one
//! table prefix. [`PostgresStore`](crate::PostgresStore), the inbox's `PostgresInbox` and
//! the reconciler's `PostgresCheckpoints` all stand on a [`Database`], and take from here
//! the tables' names (tables), their numbered migrations under an advisory lock
//! (migrate), keys as stored, milliseconds, and a once-per-interval gate (pace).

mod migrate;
mod pace;
mod tables;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{AssertSqlSafe, PgPool};

#[cfg(feature = "client")]
pub(crate) use self::migrate::{CHECKPOINTS, FLEET};
pub(crate) use self::migrate::{IDEMPOTENCY, INBOX};
pub(crate) use self::pace::Pace;
pub(crate) use self::tables::Tables;
use crate::error::Result;

/// A pool, the namespace keys are stored in, and the tables of one prefix; cloning shares
/// them.
#[derive(Clone)]
pub(crate) struct Database {
    pool: PgPool,
    // Every key is stored as `<namespace>:<key>`.
    namespace: Arc<str>,
    tables: Arc<Tables>,
}

impl Database {
    /// `pool`, with keys in `namespace` (checked by the caller) and the tables of `prefix`.
    ///
    /// # Errors
    /// [`ErrorKind::Misconfigured`](crate::ErrorKind::Misconfigured) for a prefix
    /// [`Tables::new`] refuses.
    pub(crate) fn new(pool: PgPool, namespace: Arc<str>, prefix: &str) -> Result<Self> {
        Ok(Self {
            pool,
            namespace,
            tables: Arc::new(Tables::new(prefix)?),
        })
    }

    /// The same pool and namespace, with the tables of `prefix`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub(crate) fn with_prefix(&self, prefix: &str) -> Result<Self> {
        Self::new(self.pool.clone(), self.namespace.clone(), prefix)
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The namespace keys are stored in.
    pub(crate) fn namespace(&self) -> &Arc<str> {
        &self.namespace
    }

    pub(crate) fn tables(&self) -> &Tables {
        &self.tables
    }

    /// `key` as stored: in this namespace. PostgreSQL's `text` refuses U+0000, which a
    /// JSON event id may hold (`\u0000`): such a key is stored as `nul:` and the hex
    /// SHA-256 of the key, a form no other key takes (they begin `evt:`, `sub:` or
    /// `body:`), so the event is still deduplicated, and by its exact id.
    pub(crate) fn stored_key(&self, key: &str) -> String {
        if key.contains('\0') {
            use sha2::Digest as _;
            let mut stored = [&*self.namespace, ":nul:"].concat();
            crate::signature::hex::encode_into(&sha2::Sha256::digest(key), &mut stored);
            return stored;
        }
        [&self.namespace, ":", key].concat()
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("prefix", &self.tables.prefix)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// One statement, built once from the checked table names and constant text (never from
/// input), so safe to run as it is; cloning it shares the text.
#[derive(Clone, Debug)]
pub(crate) struct Statement(Arc<str>);

impl Statement {
    /// The statement, for `sqlx::query`.
    pub(crate) fn sql(&self) -> AssertSqlSafe<Arc<str>> {
        AssertSqlSafe(Arc::clone(&self.0))
    }
}

impl From<String> for Statement {
    fn from(sql: String) -> Self {
        Self(sql.into())
    }
}

/// A span added to `now()` (a lease, a retention, a delay) as the statements take it,
/// `$n * interval '1 millisecond'`: at least 1 and at most
/// [`MAX_STORE_DURATION`](crate::idempotency::MAX_STORE_DURATION), the rule of every store
/// that talks to a server.
pub(crate) fn span_millis(span: Duration) -> i64 {
    crate::idempotency::store_millis(span)
}

/// A measured duration as a `duration_ms` column keeps it: exact, saturating.
pub(crate) fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
