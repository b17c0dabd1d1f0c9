//! Many replicas, one budget (features `client` and `postgres` or `redis`): what talks to
//! Monite scales out the way the inbox's workers do, through the store the replicas
//! already share.
//!
//! A [`Fleet`] is that store, seen as the place replicas agree: on one rate budget for every
//! request they send to Monite, and on which of them does the work only one should do (the
//! reconciler's sweep, the watchdog's checks), through a [`Lease`]. Without a fleet a
//! process behaves as alone.
//!
//! # The rate budget
//!
//! A client given a fleet ([`ClientBuilder::fleet`](crate::client::ClientBuilder::fleet))
//! draws every request it sends (sweeps, the watchdog's checks, fetches, tokens, retries)
//! from one budget shared by every replica on the store: its
//! [`max_rate`](crate::client::ClientBuilder::max_rate) is the rate of the whole fleet.
//!
//! - **One schedule, one round trip.** The budget is a cell-rate schedule (GCRA): the
//!   instant the next request may go, and an instant before which none goes. Each request
//!   reserves the next slot and learns how long to wait for it in one round trip: on
//!   PostgreSQL one `INSERT ... ON CONFLICT DO UPDATE ... RETURNING` on a row of
//!   `<prefix>_fleet_budget`, on Redis one Lua script on the hash
//!   `<prefix><namespace>:fleet:budget:monite-api`. Slots are `1 / max_rate` apart
//!   whichever replica takes them: in any second, at most `max_rate` requests, plus the one
//!   on its boundary.
//! - **The store's clock.** The time is `clock_timestamp()` on PostgreSQL and `TIME` on
//!   Redis; a replica only ever sleeps a duration the store computed, so replicas whose
//!   clocks disagree share one schedule.
//! - **`Retry-After` holds every replica.** A `429` seen by any replica (or a
//!   `RateLimit-Remaining` of 0) raises the shared hold (`GREATEST`: a longer one stays),
//!   and every reservation after it waits for its end.
//! - **No share to lose.** The schedule keeps no per-replica state: a replica that dies,
//!   even by `SIGKILL`, leaves behind only the few slots it had booked, which pass within
//!   the headroom below. Nothing to release, nothing to expire.
//! - **Live fetches first.** A fetch of the object a live event is about always reserves
//!   its slot. A background request (a sweep's listing, the watchdog's check, a token)
//!   takes one only while the schedule is booked at most two slots ahead; otherwise the
//!   store says when it will be back at that bound, and the request asks again then. So a
//!   fetch waits behind at most two background slots of any replica, and in each process
//!   the client's own lanes still come first (a fetch ahead of the process's queue; one
//!   background request at a time asking the store).
//! - **If the store fails.** A request whose slot the store cannot give (it refuses, or
//!   does not answer within 5 s) is not sent: it fails with
//!   [`StoreUnavailable`](crate::ErrorKind::StoreUnavailable). Falling back to
//!   a budget of each replica's own would let the fleet send `max_rate` per replica just
//!   when nothing can coordinate them; every caller already retries later (a sweep next
//!   cycle, a handler's fetch with Monite's redelivery, the watchdog at its next check). A
//!   hold the store cannot be told of still holds the replica that saw it.
//!
//! One budget per namespace: replicas of one service share it; give every replica the same
//! `max_rate`. Two services of one partner on one store each have their own, so give each
//! its share of Monite's limit. The waits are real time on the store's clock,
//! slept on the client's [`Timer`](crate::client::Timer): a timer that does not really
//! sleep (a simulation's) has no business with a fleet.
//!
//! # The leases
//!
//! Why a leader with a lease, and not a lease per entity: the sweep is bound by the rate
//! budget the fleet shares, not by any replica's CPU, so splitting it across replicas buys
//! no speed, and one leader lists the entities once per cycle instead of once per replica.
//! The leader renews its lease every third of its time to live, on the store's clock; one
//! that cannot stops leading before the lease runs out; the lease's generation fences a
//! stale leader; and the state it writes (the reconciler's cycle, the watchdog's memory)
//! lets the next leader take the work over where it stood. The guide's
//! [Many replicas](crate::guide::missed_events#many-replicas) says how it behaves.

mod budget;
mod leader;
mod lease;
mod tally;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use self::leader::{Leading, hold, lead_until};
pub use self::lease::{Lease, Term};
pub(crate) use self::tally::Tally;

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
    lease_ttl: Duration,
}

/// How long a lease lasts from each renewal unless told otherwise
/// ([`Fleet::with_lease_ttl`]): a replica killed while it leads is replaced within this
/// long. The holder renews every third of it.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

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

    /// The fleet on a database a store of this crate already uses.
    #[cfg(feature = "postgres")]
    pub(crate) fn on_database(db: Database) -> Self {
        Self::new(Backend::Postgres(db))
    }

    /// The fleet under keys a store of this crate already uses.
    #[cfg(feature = "redis")]
    pub(crate) fn on_redis(keys: crate::idempotency::RedisKeys) -> Self {
        Self::new(Backend::Redis(keys))
    }

    fn new(backend: Backend) -> Self {
        Self {
            backend,
            replica: this_process().clone(),
            lease_ttl: DEFAULT_LEASE_TTL,
        }
    }

    /// How long each lease lasts from its acquisition or last renewal; defaults to
    /// [`DEFAULT_LEASE_TTL`], and at least a second. A leader renews every third of it and
    /// stops leading before it runs out if it cannot: a shorter one replaces a killed
    /// leader sooner, for a write to the store every third of it.
    #[must_use]
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// How long each lease lasts; see [`with_lease_ttl`](Self::with_lease_ttl).
    #[must_use]
    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl
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
            .field("lease_ttl", &self.lease_ttl)
            .finish()
    }
}

/// This process's name, the same for every fleet it makes.
fn this_process() -> &'static Arc<str> {
    static NAME: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    NAME.get_or_init(|| default_replica().into())
}

/// A call to the shared store that failed or was refused: `what` says what the fleet could
/// not do ("lease cannot be renewed"), the error kind is the one every store outage takes.
pub(crate) fn store_failed(
    what: &str,
    source: impl Into<crate::error::BoxError> + fmt::Display,
) -> crate::Error {
    crate::Error::new(
        crate::ErrorKind::StoreUnavailable,
        format!("the fleet's {what}: {source}"),
    )
    .with_source(source)
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
