//! Sampling the backlog: the gauges, and the hook for a backlog older than a threshold.

use std::sync::Arc;
use std::time::Duration;

use super::store::{InboxSample, InboxStore};
use crate::observe;
use crate::postgres::Pace;

/// How often the workers of one process read the backlog, at most.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

pub(super) type OnBacklog = Arc<dyn Fn(&Backlog) + Send + Sync>;

/// A backlog older than the threshold, as the
/// [`on_backlog`](super::WorkersBuilder::on_backlog) hook sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Backlog {
    /// Events pending, first attempts and retries.
    pub pending: i64,
    /// How long ago the oldest of them was received.
    pub oldest: Duration,
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

    fn report(&self, sample: &InboxSample) {
        #[cfg(feature = "metrics")]
        super::metrics::sampled(sample);
        let Some((threshold, hook)) = &self.hook else {
            return;
        };
        let Some(oldest) = sample.oldest_pending.filter(|age| age > threshold) else {
            return;
        };
        let backlog = Backlog {
            pending: sample.pending,
            oldest,
        };
        let call = std::panic::AssertUnwindSafe(|| hook(&backlog));
        if std::panic::catch_unwind(call).is_err() {
            observe::store_trouble("(inbox on_backlog)", "the hook panicked");
        }
    }
}
