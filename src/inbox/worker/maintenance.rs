//! What the workers do between claims, each at most once per interval in a process:
//! rescue lapsed leases, prune done events, and sample the backlog.

use std::time::Duration;

use super::Shared;
use crate::error::{Error, ErrorKind};
use crate::event::Event;
use crate::inbox::counts::InboxCounts;
use crate::inbox::report::Report;
use crate::inbox::store::{Buried, InboxStore};
use crate::observe;
use crate::postgres::Pace;

/// How often the workers of one process read the backlog, at most.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// The most done events one prune deletes, so that a first prune of a large table does
/// not keep a worker from events for long.
const PRUNE_AT_MOST: u64 = 10_000;

impl<S: InboxStore> Shared<S> {
    /// The rescue, prune and backlog sample that are due.
    pub(super) async fn maintain(&self) {
        self.rescue_if_due().await;
        self.prune_if_due().await;
        self.sample_if_due().await;
    }

    /// Frees lapsed leases at most once per poll interval in this process.
    async fn rescue_if_due(&self) {
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
            Err(e) => observe::inbox::trouble("rescue", &e.to_string()),
        }
    }

    /// Reports an event the rescue made `dead`.
    fn report_buried(&self, buried: Buried) {
        self.hooks.report(|| Report::Dead {
            event: Event::parse(buried.body).ok(),
            error: Error::new(
                ErrorKind::Handler,
                format!(
                    "the lease lapsed without a completion ({} lapses in all): the worker \
                     running it died or hung",
                    buried.lapses
                ),
            ),
            attempt: buried.attempt.attempt,
            tries: buried.tries,
        });
    }

    /// Deletes done events past the retention, at most once per
    /// [`PRUNE_INTERVAL`](super::PRUNE_INTERVAL) in this process.
    async fn prune_if_due(&self) {
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
            Err(e) => observe::inbox::trouble("prune", &e.to_string()),
        }
    }

    /// Reads the backlog, at most once per [`SAMPLE_INTERVAL`] in this process, for the
    /// gauges and the backlog alert.
    async fn sample_if_due(&self) {
        if self.sampler.idle() || !self.sampler.pace.due() {
            return;
        }
        match self.store.sample().await {
            Ok(Some(sample)) => self.sampled(&sample),
            Ok(None) => {}
            Err(e) => observe::inbox::trouble("sample", &e.to_string()),
        }
    }

    fn sampled(&self, sample: &InboxCounts) {
        observe::inbox::sampled(sample);
        let Some(threshold) = self.sampler.alert_after else {
            return;
        };
        let Some(oldest) = sample.oldest_pending.filter(|age| *age > threshold) else {
            return;
        };
        self.hooks.report(|| Report::BacklogOld {
            counts: *sample,
            oldest,
        });
    }
}

/// The backlog's pace across a process's workers, and the age it is reported at.
pub(super) struct Sampler {
    alert_after: Option<Duration>,
    pace: Pace,
}

impl Sampler {
    /// A sampler reporting a backlog older than `alert_after`, if set.
    pub(super) fn new(alert_after: Option<Duration>) -> Self {
        Self {
            alert_after,
            pace: Pace::every(SAMPLE_INTERVAL),
        }
    }

    /// Nothing to sample for: no gauges (feature `metrics` off) and no alert.
    fn idle(&self) -> bool {
        !observe::inbox::RECORDS_METRICS && self.alert_after.is_none()
    }
}
