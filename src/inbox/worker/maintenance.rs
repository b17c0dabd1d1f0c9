//! What the workers do between claims, each at most once per interval in a process:
//! rescue lapsed leases, prune done events, and sample the backlog.

use std::time::Duration;

use super::Shared;
use crate::error::{Error, ErrorKind};
use crate::event::Event;
use crate::inbox::alert::AttemptFailure;
use crate::inbox::backlog::{Backlog, OnBacklog, SAMPLE_INTERVAL};
use crate::inbox::counts::InboxCounts;
use crate::inbox::pace::Pace;
use crate::inbox::store::{Buried, InboxStore};
use crate::observe;

/// The most done events one prune deletes, so that a first prune of a large table does
/// not keep a worker from events for long.
const PRUNE_AT_MOST: u64 = 10_000;

impl<S: InboxStore> Shared<S> {
    /// Frees lapsed leases at most once per poll interval in this process.
    pub(super) async fn rescue_if_due(&self) {
        if !self.rescue.due() {
            return;
        }
        let max_attempts = self.retry.max_attempts();
        match self
            .store
            .rescue_listing_dead(self.max_lapses, max_attempts)
            .await
        {
            Ok(buried) => buried.into_iter().for_each(|dead| self.report_buried(dead)),
            Err(e) => observe::store_trouble("(inbox rescue)", &e.to_string()),
        }
    }

    /// Tells the failure hook of an event the rescue made `dead`.
    fn report_buried(&self, buried: Buried) {
        let Some(report) = &self.on_failure else {
            return;
        };
        let event = Event::parse(buried.body).ok();
        let error = Error::new(
            ErrorKind::Handler,
            format!(
                "the lease lapsed without a completion ({} lapses in all): the worker running \
                 it died or hung",
                buried.lapses
            ),
        );
        let failure = AttemptFailure {
            event: event.as_ref(),
            error: &error,
            attempt: buried.attempt.attempt,
            tries: buried.tries,
            dead: true,
        };
        let hook = std::panic::AssertUnwindSafe(|| report(&failure));
        if std::panic::catch_unwind(hook).is_err() {
            observe::store_trouble("(inbox on_failure)", "the hook panicked");
        }
    }

    /// Deletes done events past the retention, at most once per [`PRUNE_INTERVAL`](super::PRUNE_INTERVAL) in
    /// this process.
    pub(super) async fn prune_if_due(&self) {
        let Some(retention) = self.retention else {
            return;
        };
        if !self.prune.due() {
            return;
        }
        match self.store.prune(retention, PRUNE_AT_MOST).await {
            // More are due: the next turn comes at once, between claims.
            Ok(deleted) if deleted >= PRUNE_AT_MOST => self.prune.again(),
            Ok(_) => {}
            Err(e) => observe::store_trouble("(inbox prune)", &e.to_string()),
        }
    }
}

/// Reads the backlog at most once per [`SAMPLE_INTERVAL`] across a process's workers.
pub(super) struct Sampler {
    hook: Option<(Duration, OnBacklog)>,
    pace: Pace,
}

impl Sampler {
    pub(super) fn new(hook: Option<(Duration, OnBacklog)>) -> Self {
        Self {
            hook,
            pace: Pace::every(SAMPLE_INTERVAL),
        }
    }

    /// Nothing to sample for: no gauges (feature `metrics` off) and no hook.
    fn idle(&self) -> bool {
        !cfg!(feature = "metrics") && self.hook.is_none()
    }

    pub(super) async fn sample_if_due<S: InboxStore>(&self, store: &S) {
        if self.idle() || !self.pace.due() {
            return;
        }
        match store.sample().await {
            Ok(Some(sample)) => self.report(&sample),
            Ok(None) => {}
            Err(e) => observe::store_trouble("(inbox sample)", &e.to_string()),
        }
    }

    fn report(&self, sample: &InboxCounts) {
        #[cfg(feature = "metrics")]
        crate::inbox::metrics::sampled(sample);
        let Some((threshold, hook)) = &self.hook else {
            return;
        };
        let Some(oldest) = sample.oldest_pending.filter(|age| age > threshold) else {
            return;
        };
        let backlog = Backlog {
            pending: i64::try_from(sample.pending).unwrap_or(i64::MAX),
            oldest,
        };
        let call = std::panic::AssertUnwindSafe(|| hook(&backlog));
        if std::panic::catch_unwind(call).is_err() {
            observe::store_trouble("(inbox on_backlog)", "the hook panicked");
        }
    }
}
