//! The fleet's rate budget: one cell-rate schedule (GCRA) in the store the replicas share,
//! read and written in one round trip, on the store's clock.
//!
//! The shared state is two instants: `next_at`, when the next request may go, and
//! `hold_until`, before which none goes (a `429`'s `Retry-After` seen by any replica). A
//! reservation takes `at = max(now, next_at, hold_until)`, moves `next_at` to
//! `at + 1 / rate`, and answers `at - now`: how long the caller waits before it sends, with
//! its slot already its own (reserve ahead: no polling for a live request). `now` is the
//! store's clock (`clock_timestamp()` on PostgreSQL, `TIME` on Redis), so replicas whose
//! clocks disagree still share one schedule: each only ever sleeps a duration.
//!
//! Slots are `1 / rate` apart whichever replica takes them, so together the replicas send
//! at most `rate` requests in any second, plus the one on its boundary.
//!
//! A replica holds no share: the schedule keeps no per-replica state, so a replica that
//! dies leaves nothing behind but the few slots it had reserved, which pass within the
//! [headroom](HEADROOM_SLOTS) like any slot. Nothing is to be released or expired.
//!
//! # Lanes
//!
//! A live request (a fetch of the object a live event is about) always reserves. A
//! background request (a sweep's listing, the watchdog's checks, a token) takes a slot only
//! while the schedule is booked at most [`HEADROOM_SLOTS`] slots ahead; otherwise the store
//! tells it when the schedule will be back at that bound, and it asks again then. So the
//! background lane never books more than that headroom, and a live request waits behind at
//! most that many background slots, whichever replica booked them. In each process, the
//! client's own lanes come first (a live request ahead of the process's queued ones), and
//! one background request at a time asks the store (the others queue behind it, in order),
//! so a backed-up schedule costs each replica one round trip per slot, not one per task.

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::{Backend, Fleet};
use crate::error::{Error, ErrorKind, Result};

/// The background lane takes a slot only while at most this many slots are booked ahead.
pub(crate) const HEADROOM_SLOTS: u32 = 2;

/// One round trip to the store longer than this fails the request: a store that hangs
/// would otherwise hold every request of the fleet.
const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// The row (PostgreSQL) or key (Redis) of the budget, in the fleet's namespace.
const NAME: &str = "monite-api";

/// Which lane a request waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// A fetch for a live event: always reserves.
    Live,
    /// Sweeps, the watchdog, tokens: reserves only within the headroom.
    Background,
}

impl Lane {
    /// The lane as a metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Background => "background",
        }
    }
}

/// What the store answered one reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The slot is this caller's: send after `wait`. `slot_us` is the slot on the store's
    /// clock, in Unix microseconds.
    Slot { wait: Duration, slot_us: i64 },
    /// The schedule is booked beyond the headroom: ask again after this.
    Later(Duration),
}

/// How to sleep: the client's [`Timer`](crate::client::Timer), passed in so that this
/// module does not depend on the client's.
pub(crate) type Sleep<'a> =
    &'a (dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync);

/// The fleet's budget as one client uses it: the store, the rate, and the gate that lets
/// one background request of this process at a time ask the store.
pub(crate) struct SharedBudget {
    store: Store,
    interval_us: i64,
    gate: tokio::sync::Mutex<()>,
}

enum Store {
    #[cfg(feature = "postgres")]
    Postgres(postgres::Statements),
    #[cfg(feature = "redis")]
    Redis(redis::Scripts),
}

impl SharedBudget {
    /// `fleet`'s budget at `max_rate` requests per second (the caller's rule for a rate
    /// that is not a positive number applies before).
    pub(crate) fn new(fleet: &Fleet, max_rate: f64) -> Self {
        let interval_us = (1e6 / max_rate).clamp(1.0, 3.6e9) as i64;
        let store = match &fleet.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => Store::Postgres(postgres::Statements::new(db, NAME)),
            #[cfg(feature = "redis")]
            Backend::Redis(keys) => Store::Redis(redis::Scripts::new(keys, NAME)),
        };
        Self {
            store,
            interval_us,
            gate: tokio::sync::Mutex::new(()),
        }
    }

    /// Takes a slot in `lane`, sleeping with `sleep` until it comes; returns how long that
    /// was (beyond the round trips).
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] if the store fails or does not answer in time: the
    /// request is not sent, since a budget that cannot be read cannot be kept.
    pub(crate) async fn take(&self, lane: Lane, sleep: Sleep<'_>) -> Result<Duration> {
        // One background request of this process asks at a time, the others queue here in
        // order; dropped while waiting (the request given up), the guard frees the gate.
        let turn = match lane {
            Lane::Background => Some(self.gate.lock().await),
            Lane::Live => None,
        };
        let mut waited = Duration::ZERO;
        loop {
            match self.ask(lane).await? {
                Answer::Slot { wait, .. } => {
                    // The slot is ours: the next request of this process may book its own.
                    drop(turn);
                    if !wait.is_zero() {
                        sleep(wait).await;
                    }
                    return Ok(waited + wait);
                }
                // Never zero, so that a store's rounding cannot make a busy loop.
                Answer::Later(wait) => {
                    let wait = wait.max(Duration::from_millis(1));
                    waited += wait;
                    sleep(wait).await;
                }
            }
        }
    }

    /// One reservation in `lane`: one round trip.
    pub(crate) async fn ask(&self, lane: Lane) -> Result<Answer> {
        let headroom_us = match lane {
            Lane::Live => None,
            Lane::Background => Some(self.interval_us * i64::from(HEADROOM_SLOTS)),
        };
        let call = async {
            match &self.store {
                #[cfg(feature = "postgres")]
                Store::Postgres(sql) => sql.reserve(self.interval_us, headroom_us).await,
                #[cfg(feature = "redis")]
                Store::Redis(scripts) => scripts.reserve(self.interval_us, headroom_us).await,
            }
        };
        within_timeout("reserve", call).await
    }

    /// Holds every replica back for `wait` from now on the store's clock (a `429`'s
    /// `Retry-After`, a quota spent until its reset); an earlier hold that lasts longer
    /// stays.
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] if the store fails or does not answer in time.
    pub(crate) async fn hold(&self, wait: Duration) -> Result<()> {
        let wait_us = i64::try_from(wait.as_micros()).unwrap_or(i64::MAX).max(0);
        let call = async {
            match &self.store {
                #[cfg(feature = "postgres")]
                Store::Postgres(sql) => sql.hold(wait_us).await,
                #[cfg(feature = "redis")]
                Store::Redis(scripts) => scripts.hold(wait_us).await,
            }
        };
        within_timeout("hold", call).await
    }

    /// The store's name, for errors and `Debug`.
    fn store_name(&self) -> &'static str {
        match &self.store {
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => "postgres",
            #[cfg(feature = "redis")]
            Store::Redis(_) => "redis",
        }
    }
}

impl fmt::Debug for SharedBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBudget")
            .field("store", &self.store_name())
            .field("interval_us", &self.interval_us)
            .finish_non_exhaustive()
    }
}

/// `call` (`op`: `reserve` or `hold`), timed, and failed with
/// [`ErrorKind::StoreUnavailable`] after [`STORE_TIMEOUT`].
async fn within_timeout<T>(op: &'static str, call: impl Future<Output = Result<T>>) -> Result<T> {
    // Real time, whatever the client's timer: this is the store's round trip.
    let started = std::time::Instant::now();
    let result = match tokio::time::timeout(STORE_TIMEOUT, call).await {
        Ok(result) => result,
        Err(_) => Err(Error::new(
            ErrorKind::StoreUnavailable,
            format!(
                "the fleet's rate budget did not answer within {} s ({op})",
                STORE_TIMEOUT.as_secs()
            ),
        )),
    };
    crate::observe::budget::store_call(op, started.elapsed(), result.is_ok());
    result
}

/// The error of a store call that failed, `hint` saying what to do if there is a fix.
fn unavailable(
    hint: Option<&str>,
    source: impl Into<crate::error::BoxError> + fmt::Display,
) -> Error {
    let hint = hint.map(|h| format!(" ({h})")).unwrap_or_default();
    super::store_failed(&format!("rate budget cannot be read{hint}"), source)
}

/// Microseconds as a wait; none below zero.
fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

#[cfg(test)]
mod tests;
