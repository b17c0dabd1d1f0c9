//! Many replicas, one budget (features `client` and `postgres` or `redis`): what talks to
//! Monite scales out the way the inbox's workers do, through the store the replicas
//! already share.
//!
//! A [`Fleet`] is that store, seen as the place replicas agree: on one rate budget for every
//! request they send to Monite, and on which of them does the work only one should do (the
//! reconciler's sweep, the watchdog's checks). Without a fleet a process behaves as alone.

mod budget;

use std::fmt;
use std::sync::Arc;

#[cfg(feature = "postgres")]
use crate::PostgresStore;
#[cfg(feature = "redis")]
use crate::RedisStore;
#[cfg(feature = "postgres")]
use crate::error::ErrorKind;
#[cfg(feature = "postgres")]
use crate::postgres::{Database, FLEET};

pub(crate) use self::budget::{Lane, SharedBudget};

/// The store replicas share, and this replica's name in it; cloning shares them.
///
/// ```no_run
/// use monite_webhooks::PostgresStore;
/// use monite_webhooks::fleet::Fleet;
/// # async fn run(pool: sqlx::PgPool) -> Result<(), monite_webhooks::Error> {
/// let store = PostgresStore::new(pool, "billing")?;
/// let fleet = Fleet::postgres(&store);
/// fleet.ensure_schema().await?;
/// eprintln!("this replica is {}", fleet.replica());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Fleet {
    pub(crate) backend: Backend,
    replica: Arc<str>,
}

/// Where the fleet's shared state lives.
#[derive(Clone)]
pub(crate) enum Backend {
    /// The tables of a [`PostgresStore`]'s prefix, rows in its namespace.
    #[cfg(feature = "postgres")]
    Postgres(Database),
    /// Keys under a [`RedisStore`]'s prefix and namespace.
    #[cfg(feature = "redis")]
    Redis(crate::idempotency::RedisKeys),
}

impl Fleet {
    /// The fleet on `store`'s pool, namespace and table prefix.
    #[cfg(feature = "postgres")]
    #[must_use]
    pub fn postgres(store: &PostgresStore) -> Self {
        Self::new(Backend::Postgres(store.database().clone()))
    }

    /// The fleet on `store`'s connection, key prefix and namespace.
    #[cfg(feature = "redis")]
    #[must_use]
    pub fn redis(store: &RedisStore) -> Self {
        Self::new(Backend::Redis(store.keys()))
    }

    fn new(backend: Backend) -> Self {
        Self {
            backend,
            replica: default_replica().into(),
        }
    }

    /// Names this replica in logs, reports and the shared store (by default the host name,
    /// the process id and a random suffix, so a restarted process is a new replica).
    #[must_use]
    pub fn with_replica(mut self, name: impl Into<String>) -> Self {
        self.replica = name.into().into();
        self
    }

    /// This replica's name.
    #[must_use]
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Makes the fleet's tables, or brings them up to date, under the advisory lock every
    /// schema of this crate is made under: safe from every replica at once. Nothing to do
    /// on Redis.
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] if PostgreSQL refuses or cannot be reached.
    pub async fn ensure_schema(&self) -> crate::Result<()> {
        match &self.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => db.migrate(&FLEET, ErrorKind::StoreUnavailable).await,
            #[cfg(feature = "redis")]
            Backend::Redis(_) => Ok(()),
        }
    }
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let store = match &self.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => "postgres",
            #[cfg(feature = "redis")]
            Backend::Redis(_) => "redis",
        };
        f.debug_struct("Fleet")
            .field("store", &store)
            .field("replica", &self.replica)
            .finish()
    }
}

/// `<host>-<pid>-<suffix>`: unique per process start, readable in logs.
fn default_replica() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "replica".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}-{}-{:04x}", std::process::id(), nanos & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_is_shared_across_tasks() {
        fn shared<T: Clone + Send + Sync + 'static>() {}
        shared::<Fleet>();
    }

    #[test]
    fn each_process_start_is_a_new_replica_name() {
        let name = default_replica();
        assert!(name.contains(&std::process::id().to_string()), "{name}");
    }
}
