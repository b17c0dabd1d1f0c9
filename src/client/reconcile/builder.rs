//! Configuring a [`Reconciler`], and the start-up checks: a receiver without an
//! idempotency store, or a lookback longer than its retention, is refused.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{
    CheckpointStore, DEFAULT_FIRST_WINDOW, DEFAULT_LOOKBACK, DEFAULT_SETTLE, First, Inner,
    Reconciler, Report, Settings, State,
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
}

impl ReconcilerBuilder {
    pub(super) fn new(
        client: Client,
        receiver: Receiver,
        checkpoints: Box<dyn CheckpointStore>,
    ) -> Self {
        Self {
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
                on_report: None,
            },
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

    /// Calls `report` for everything an operator should know (see [`Report`]).
    pub fn on_report(mut self, report: impl Fn(&Report) + Send + Sync + 'static) -> Self {
        self.settings.on_report = Some(Arc::new(report));
        self
    }

    /// Builds the reconciler.
    ///
    /// # Errors
    /// [`ErrorKind::Misconfigured`] when the receiver has no idempotency store (a swept
    /// event also delivered would run twice) or the lookback is longer than the store's
    /// retention (events older than it would run again).
    pub fn build(self) -> Result<Reconciler> {
        let retention = self.receiver.idempotency_retention().ok_or_else(|| {
            Error::new(
                ErrorKind::Misconfigured,
                "the reconciler needs a receiver with an idempotency store",
            )
        })?;
        if self.settings.lookback > retention {
            return Err(Error::new(
                ErrorKind::Misconfigured,
                format!(
                    "a lookback of {:?} is longer than the idempotency store's retention of {retention:?}",
                    self.settings.lookback
                ),
            ));
        }
        Ok(Reconciler {
            inner: Arc::new(Inner {
                client: self.client,
                receiver: self.receiver,
                checkpoints: self.checkpoints,
                settings: self.settings,
                retention,
                state: Mutex::new(State::default()),
            }),
        })
    }
}

impl fmt::Debug for ReconcilerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconcilerBuilder")
            .field("lookback", &self.settings.lookback)
            .field("settle", &self.settings.settle)
            .finish_non_exhaustive()
    }
}
