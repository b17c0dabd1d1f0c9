//! Configuring a [`Reconciler`], and the start-up checks: a receiver without an
//! idempotency store, one whose store forgets on restart (unless allowed by name), or a
//! lookback or first window reaching past its retention, is refused.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{
    CheckpointStore, DEEP_EVERY, DEFAULT_FIRST_WINDOW, DEFAULT_LOOKBACK, DEFAULT_SETTLE, First,
    HOT_EVERY, Inner, Reconciler, ReconcilerHandle, Report, Settings, State,
};
use crate::client::Client;
use crate::error::{Error, ErrorKind, Result};
use crate::receive::Receiver;

/// Configures a [`Reconciler`].
#[must_use]
pub struct ReconcilerBuilder {
    client: Client,
    receiver: Receiver,
    checkpoints: Box<dyn CheckpointStore>,
    settings: Settings,
    allow_process_local_store: bool,
    #[cfg(any(feature = "postgres", feature = "redis"))]
    fleet: Option<crate::fleet::Fleet>,
}

impl ReconcilerBuilder {
    pub(super) fn new(
        client: Client,
        receiver: Receiver,
        checkpoints: Box<dyn CheckpointStore>,
    ) -> Self {
        Self {
            #[cfg(any(feature = "postgres", feature = "redis"))]
            fleet: checkpoints.fleet(),
            client,
            receiver,
            checkpoints,
            settings: Settings {
                lookback: DEFAULT_LOOKBACK,
                settle: DEFAULT_SETTLE,
                first: First::Ago(DEFAULT_FIRST_WINDOW),
                entities: None,
                cold_per_cycle: None,
                page_size: 100,
                deep_every: DEEP_EVERY,
                every: HOT_EVERY,
                on_report: None,
            },
            allow_process_local_store: false,
        }
    }
}

impl ReconcilerBuilder {
    /// The least lookback; defaults to [`DEFAULT_LOOKBACK`]. Each sweep looks back the
    /// larger of this and twice the entity's last sweep.
    pub fn lookback(mut self, lookback: Duration) -> Self {
        self.settings.lookback = lookback;
        self
    }

    /// How far before Monite's time windows end; defaults to [`DEFAULT_SETTLE`].
    pub fn settle(mut self, settle: Duration) -> Self {
        self.settings.settle = settle;
        self
    }

    /// An entity without a checkpoint starts this long before Monite's time; defaults to
    /// [`DEFAULT_FIRST_WINDOW`].
    pub fn since(mut self, ago: Duration) -> Self {
        self.settings.first = First::Ago(ago);
        self
    }

    /// An entity without a checkpoint starts at `at`.
    pub fn since_time(mut self, at: jiff::Timestamp) -> Self {
        self.settings.first = First::At(at);
        self
    }

    /// Sweeps these entities instead of listing them from `GET /entities`.
    pub fn entities(mut self, ids: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.settings.entities = Some(ids.into_iter().map(Into::into).collect());
        self
    }

    /// At most this many entities without recent activity per cycle, in turn
    /// (`usize::MAX`: all of them, as a run by hand or by cron wants). By default, what
    /// the client's rate budget sweeps in [`HOT_EVERY`](super::HOT_EVERY) once the hot
    /// entities are swept, so that cycles started every five minutes sweep the hot ones
    /// every five minutes and the rest in turn.
    pub fn cold_per_cycle(mut self, count: usize) -> Self {
        self.settings.cold_per_cycle = Some(count.max(1));
        self
    }

    /// Events per page, 1 to 100; defaults to 100.
    pub fn page_size(mut self, size: u8) -> Self {
        self.settings.page_size = size.clamp(1, 100);
        self
    }

    /// How often a deep sweep of every entity runs on its own; defaults to [`DEEP_EVERY`]
    /// (a day). The first one comes this long after the reconciler is built.
    pub fn deep_every(mut self, every: Duration) -> Self {
        self.settings.deep_every = every;
        self
    }

    /// How often [`Reconciler::start`] starts a cycle (at once when one took longer);
    /// defaults to [`HOT_EVERY`], five minutes, the pace the default
    /// [`cold_per_cycle`](Self::cold_per_cycle) is planned for.
    pub fn every(mut self, every: Duration) -> Self {
        self.settings.every = every;
        self
    }

    /// Accepts a receiver whose idempotency store forgets on restart (the default
    /// [`MemoryStore`](crate::MemoryStore)), for handlers that are idempotent by
    /// themselves or a target that deduplicates (the CLI's `reconcile` POSTs to a
    /// receiver with its own store).
    ///
    /// Without it, [`build`](Self::build) refuses such a receiver: the checkpoints outlive
    /// the process, so the first sweep after each restart runs again, into an empty store,
    /// every event of the lookback (15 minutes at least) before each checkpoint, and a whole
    /// first window for entities without one.
    pub fn allow_process_local_store(mut self) -> Self {
        self.allow_process_local_store = true;
        self
    }

    /// Leads by turns with the other replicas of `fleet`: one of them at a time sweeps,
    /// each entity once per cycle, and a replica taking over resumes the cycle where the
    /// last leader stopped (see [`fleet`](crate::fleet)). By default, the fleet of the
    /// checkpoint store when it is shared ([`PostgresCheckpoints`](super::PostgresCheckpoints),
    /// [`RedisCheckpoints`](super::RedisCheckpoints)); with another store, alone. Give it
    /// to name this replica or set the lease's time to live.
    #[cfg(any(feature = "postgres", feature = "redis"))]
    pub fn fleet(mut self, fleet: crate::fleet::Fleet) -> Self {
        self.fleet = Some(fleet);
        self
    }

    /// Calls `report` for everything an operator should know (see [`Report`]).
    pub fn on_report(mut self, report: impl Fn(&Report) + Send + Sync + 'static) -> Self {
        self.settings.on_report = Some(Arc::new(report));
        self
    }

    /// Builds the reconciler.
    ///
    /// # Errors
    /// [`ErrorKind::Misconfigured`] when the receiver has no idempotency store (a swept
    /// event also delivered would run twice); when its store forgets on restart
    /// ([`IdempotencyStore::survives_restart`](crate::IdempotencyStore::survives_restart))
    /// and [`allow_process_local_store`](Self::allow_process_local_store) was not called;
    /// or when the lookback, or the first window of an entity without a checkpoint
    /// ([`since`](Self::since), [`since_time`](Self::since_time)), reaches further back
    /// than the store's retention (events handled longer ago than it remembers would run
    /// again); or when [`every`](Self::every) is zero.
    pub fn build(self) -> Result<Reconciler> {
        if self.settings.every.is_zero() {
            return Err(Error::new(
                ErrorKind::Misconfigured,
                "the reconciler's pace (every) is zero: cycles would follow each other at once",
            ));
        }
        let retention = self.receiver.idempotency_retention().ok_or_else(|| {
            Error::new(
                ErrorKind::Misconfigured,
                "the reconciler needs a receiver with an idempotency store",
            )
        })?;
        if !self.allow_process_local_store && !self.receiver.idempotency_survives_restart() {
            return Err(Error::new(
                ErrorKind::Misconfigured,
                "the receiver's idempotency store forgets on restart (MemoryStore), so each \
                 restart would run the events of the lookback before every checkpoint again: \
                 use a store that outlives the process (PostgresStore, RedisStore, an inbox), \
                 or call ReconcilerBuilder::allow_process_local_store if the handlers are \
                 idempotent by themselves",
            ));
        }
        if self.settings.lookback > retention {
            return Err(Error::new(
                ErrorKind::Misconfigured,
                format!(
                    "a lookback of {:?} is longer than the idempotency store's retention of {retention:?}",
                    self.settings.lookback
                ),
            ));
        }
        match self.settings.first {
            First::Ago(ago) if ago > retention => {
                return Err(Error::new(
                    ErrorKind::Misconfigured,
                    format!(
                        "a first window of {ago:?} (since) is longer than the idempotency \
                         store's retention of {retention:?}"
                    ),
                ));
            }
            // Measured on the local clock: Monite's is not known before the first request,
            // and a check off by the clocks' skew still catches days past the retention.
            First::At(at) => {
                let horizon = jiff::Timestamp::now()
                    .checked_sub(super::window::signed(retention))
                    .unwrap_or(jiff::Timestamp::MIN);
                if at < horizon {
                    return Err(Error::new(
                        ErrorKind::Misconfigured,
                        format!(
                            "a first window from {at} (since_time) reaches before the \
                             idempotency store's retention of {retention:?} (from {horizon})"
                        ),
                    ));
                }
            }
            First::Ago(_) => {}
        }
        Ok(Reconciler {
            inner: Arc::new(Inner {
                client: self.client,
                receiver: self.receiver,
                checkpoints: self.checkpoints,
                settings: self.settings,
                retention,
                state: Mutex::new(State::default()),
                #[cfg(any(feature = "postgres", feature = "redis"))]
                fleet: self.fleet.map(super::fleet::Shared::new),
            }),
        })
    }
}

impl ReconcilerBuilder {
    /// Builds the reconciler and [starts](Reconciler::start) it: short for
    /// `build()?.start()`.
    ///
    /// # Errors
    /// As [`build`](Self::build).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(self) -> Result<ReconcilerHandle> {
        Ok(self.build()?.start())
    }
}

impl fmt::Debug for ReconcilerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconcilerBuilder")
            .field("lookback", &self.settings.lookback)
            .field("settle", &self.settings.settle)
            .field("every", &self.settings.every)
            .finish_non_exhaustive()
    }
}
