//! A lease one replica of the fleet holds at a time: the leader of some work only one
//! should do (the reconciler's sweep, the watchdog's checks), until it stops renewing.
//!
//! The lease lives in the shared store, and its expiry is measured on the store's clock
//! (PostgreSQL's `now()`, Redis's `TIME`): no replica's clock is trusted, or compared with
//! another's. Every acquisition raises the lease's generation, a fencing token: a renewal or
//! a write of the state names the generation it holds, and does nothing once another
//! replica has acquired the lease since. The state, a text the holder writes, survives the
//! holder: the next one reads it on acquiring, and takes the work over where it stood.

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{Backend, Fleet};
use crate::error::Result;

/// A named lease in the fleet's store; cloning shares it. Made by [`Fleet::lease`].
///
/// ```no_run
/// use monite_webhooks::RedisStore;
/// use monite_webhooks::fleet::Fleet;
/// # async fn run() -> Result<(), monite_webhooks::Error> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379/", "billing").await?;
/// let lease = Fleet::redis(&store).lease("nightly-export");
/// if let Some(term) = lease.acquire().await? {
///     // Resume from what the last holder wrote, if it wrote anything.
///     let from = term.state().unwrap_or("start");
///     # let _ = from;
///     // ... a step of the work, then say where it stands (and renew the lease):
///     if !lease.save_state(&term, "step 2").await? {
///         return Ok(()); // another replica holds it now: stop.
///     }
///     lease.release(&term).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Lease {
    fleet: Fleet,
    name: Arc<str>,
}

/// One holding of a [`Lease`], from [`Lease::acquire`] to the lease's loss or release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    generation: i64,
    state: Option<String>,
    taken_over_from: Option<String>,
}

impl Term {
    /// The lease's generation for this term: raised by every acquisition.
    #[must_use]
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// The state the last holder wrote ([`Lease::save_state`]), if any.
    #[must_use]
    pub fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// The replica whose lease ran out (it stopped renewing: killed, hung, cut off) when
    /// this term began; `None` when the lease was free or released.
    #[must_use]
    pub fn taken_over_from(&self) -> Option<&str> {
        self.taken_over_from.as_deref()
    }
}

impl Fleet {
    /// The lease `name` (1 to 64 ASCII letters, digits, `_`, `-`, `.` or `:`) of this fleet,
    /// lasting [`lease_ttl`](Self::lease_ttl) from each acquisition or renewal.
    #[must_use]
    pub fn lease(&self, name: &str) -> Lease {
        Lease {
            fleet: self.clone(),
            name: name.into(),
        }
    }
}

impl Lease {
    /// The lease's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long the lease lasts from each acquisition or renewal: the fleet's
    /// [`lease_ttl`](Fleet::lease_ttl).
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.fleet.lease_ttl()
    }

    /// The fleet the lease belongs to.
    #[must_use]
    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    /// Acquires the lease for this replica if nobody holds it, its holder's time ran out,
    /// or this replica holds it already; a new term each time, with a new generation.
    /// `None` while another replica holds it.
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`](crate::ErrorKind::StoreUnavailable) if the store
    /// refuses or cannot be reached.
    pub async fn acquire(&self) -> Result<Option<Term>> {
        let me = self.fleet.replica();
        let ttl = self.ttl();
        match &self.fleet.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => postgres::acquire(db, &self.name, me, ttl).await,
            #[cfg(feature = "redis")]
            Backend::Redis(keys) => redis::acquire(keys, &self.name, me, ttl).await,
        }
    }

    /// Extends `term` by the lease's time to live, from the store's now. `false` when
    /// another replica acquired the lease since: stop the work at once.
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire); the term may still hold until it runs out.
    pub async fn renew(&self, term: &Term) -> Result<bool> {
        self.write(term, None).await
    }

    /// Writes the state the next holder reads, and renews `term`; `false` (nothing
    /// written) when another replica acquired the lease since.
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    pub async fn save_state(&self, term: &Term, state: &str) -> Result<bool> {
        self.write(term, Some(state)).await
    }

    async fn write(&self, term: &Term, state: Option<&str>) -> Result<bool> {
        let me = self.fleet.replica();
        let ttl = self.ttl();
        let generation = term.generation;
        match &self.fleet.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => {
                postgres::write(db, &self.name, me, generation, ttl, state).await
            }
            #[cfg(feature = "redis")]
            Backend::Redis(keys) => {
                redis::write(keys, &self.name, me, generation, ttl, state).await
            }
        }
    }

    /// Gives the lease up at once, keeping its state for the next holder: what a replica
    /// that stops does, so that another takes over without waiting for it to run out.
    /// Nothing happens if another replica acquired it since.
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire); the lease then runs out by itself.
    pub async fn release(&self, term: &Term) -> Result<()> {
        let me = self.fleet.replica();
        match &self.fleet.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => postgres::release(db, &self.name, me, term.generation).await,
            #[cfg(feature = "redis")]
            Backend::Redis(keys) => redis::release(keys, &self.name, me, term.generation).await,
        }
    }

    /// The replica holding the lease now, if its time has not run out.
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    pub async fn holder(&self) -> Result<Option<String>> {
        match &self.fleet.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => postgres::holder(db, &self.name).await,
            #[cfg(feature = "redis")]
            Backend::Redis(keys) => redis::holder(keys, &self.name).await,
        }
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("name", &self.name)
            .field("replica", &self.fleet.replica())
            .field("ttl", &self.ttl())
            .finish()
    }
}

/// A term as the stores answer it: the holder it replaced is named only if that one's
/// time ran out (a released lease has no holder).
fn term(generation: i64, state: Option<String>, previous: Option<String>, me: &str) -> Term {
    Term {
        generation,
        state,
        taken_over_from: previous.filter(|p| !p.is_empty() && p != me),
    }
}

/// What an unreachable or refusing store turns into.
fn unavailable(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> crate::Error {
    super::store_failed(&format!("lease cannot be {what}"), e)
}
