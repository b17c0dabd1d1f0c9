//! Configuring a [`Watchdog`].

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Inner, OnReport, Report, State, WATCH_EVERY, Watchdog, WatchdogHandle};
use crate::client::Client;
use crate::error::{Error, ErrorKind, Result};
use crate::reconcile::Reconciler;

/// Configures a [`Watchdog`].
#[must_use]
pub struct WatchdogBuilder {
    client: Client,
    reenable: bool,
    on_report: Option<OnReport>,
    reconciler: Option<Reconciler>,
    every: Duration,
    log_entities: Vec<String>,
    log_per_check: usize,
    #[cfg(any(feature = "postgres", feature = "redis"))]
    fleet: Option<crate::fleet::Fleet>,
}

impl WatchdogBuilder {
    pub(super) fn new(client: Client) -> Self {
        Self {
            client,
            reenable: false,
            on_report: None,
            reconciler: None,
            every: WATCH_EVERY,
            log_entities: Vec::new(),
            log_per_check: 0,
            #[cfg(any(feature = "postgres", feature = "redis"))]
            fleet: None,
        }
    }

    /// Re-enables each disabled subscription as soon as it is seen; defaults to `false`.
    pub fn reenable(mut self, reenable: bool) -> Self {
        self.reenable = reenable;
        self
    }

    /// Calls `report` for each [`Report`].
    pub fn on_report(mut self, report: impl Fn(&Report) + Send + Sync + 'static) -> Self {
        self.on_report = Some(Arc::new(report));
        self
    }

    /// Asks `reconciler` for a deep sweep after a re-enable or once the receiver's
    /// failures clear: the events Monite did record during the outage are swept at once.
    pub fn deep_sweep_with(mut self, reconciler: Reconciler) -> Self {
        self.reconciler = Some(reconciler);
        self
    }

    /// Also scans the delivery log (`GET /webhook_deliveries`) of these entities,
    /// `per_check` of them per check in turn, for deliveries Monite marks unsuccessful
    /// ([`Report::DeliveryLogFailures`], each delivery once). This costs one listing per
    /// entity scanned, of the deliveries created from 8 days (Monite's week of retries and
    /// a day) before that entity's last scan; the receiver's own failures
    /// ([`Watchdog::record_failure`]) cost nothing and come first. A scan that fails is in
    /// [`WatchCheck::delivery_log_failed`](super::WatchCheck::delivery_log_failed) and does not stop the check.
    pub fn delivery_log(
        mut self,
        entities: impl IntoIterator<Item = impl Into<String>>,
        per_check: usize,
    ) -> Self {
        self.log_entities = entities.into_iter().map(Into::into).collect();
        self.log_per_check = per_check.max(1);
        self
    }

    /// Checks by turns with the other replicas of `fleet`: one of them at a time lists the
    /// subscriptions, re-enables and reports, so each incident is acted on and reported
    /// once whatever the number of replicas; the receiver's failures recorded on any of
    /// them ([`Watchdog::record_failure`]) reach it through the shared store. Without it,
    /// every watchdog checks on its own.
    #[cfg(any(feature = "postgres", feature = "redis"))]
    pub fn fleet(mut self, fleet: crate::fleet::Fleet) -> Self {
        self.fleet = Some(fleet);
        self
    }

    /// How often [`Watchdog::start`] checks; defaults to [`WATCH_EVERY`], a minute.
    pub fn every(mut self, every: Duration) -> Self {
        self.every = every;
        self
    }

    /// Builds the watchdog.
    ///
    /// # Errors
    /// [`ErrorKind::Misconfigured`] when [`every`](Self::every) is zero.
    pub fn build(self) -> Result<Watchdog> {
        if self.every.is_zero() {
            return Err(Error::new(
                ErrorKind::Misconfigured,
                "the watchdog's pace (every) is zero: checks would follow each other at once",
            ));
        }
        Ok(Watchdog {
            inner: Arc::new(Inner {
                client: self.client,
                reenable: self.reenable,
                on_report: self.on_report,
                reconciler: self.reconciler,
                every: self.every,
                state: Mutex::new(State {
                    log_entities: self.log_entities,
                    log_per_check: self.log_per_check,
                    ..State::default()
                }),
                #[cfg(any(feature = "postgres", feature = "redis"))]
                fleet: self.fleet.map(super::fleet::Shared::new),
            }),
        })
    }

    /// Builds the watchdog and [starts](Watchdog::start) it: short for `build()?.start()`.
    ///
    /// # Errors
    /// As [`build`](Self::build).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(self) -> Result<WatchdogHandle> {
        Ok(self.build()?.start())
    }
}

impl fmt::Debug for WatchdogBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchdogBuilder")
            .field("reenable", &self.reenable)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}
