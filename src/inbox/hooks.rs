//! The workers' alert hooks, set on their builder: a failed attempt, and a backlog older
//! than a threshold.

use std::sync::Arc;
use std::time::Duration;

use super::alert::AttemptFailure;
use super::backlog::Backlog;
use super::store::InboxStore;
use super::worker::WorkersBuilder;

impl<S: InboxStore> WorkersBuilder<S> {
    /// Calls `report` for every failed attempt, before the retry or the burial is written:
    /// the alert hook for a first failure (`tries == 1`) and for a dead event (`dead`). An
    /// event whose lease lapsed once too often (its worker died or hung on it) is reported
    /// `dead` too, after the rescue buried it, by the process whose workers rescued it. A
    /// panic in `report` is caught and ignored.
    pub fn on_failure(
        mut self,
        report: impl Fn(&AttemptFailure<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.on_failure = Some(Arc::new(report));
        self
    }

    /// Calls `report` when the oldest pending event was received more than `threshold`
    /// ago: the alert hook for a backlog the workers do not drain. The workers read the
    /// backlog at most once per [`SAMPLE_INTERVAL`](super::SAMPLE_INTERVAL) in a process,
    /// so `report` is called at most that often, on a worker's task (keep it quick: hand
    /// the alert to a channel); a panic in it is caught and ignored.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use monite_webhooks::{Dispatcher, PostgresStore};
    /// use monite_webhooks::inbox::{PostgresInbox, Workers};
    ///
    /// # fn run(store: PostgresStore, dispatcher: Dispatcher) {
    /// let workers = Workers::builder(PostgresInbox::new(&store), dispatcher)
    ///     .on_backlog(Duration::from_secs(300), |backlog| {
    ///         eprintln!("{} events wait, the oldest for {:?}", backlog.pending, backlog.oldest);
    ///     })
    ///     .start();
    /// # }
    /// ```
    pub fn on_backlog(
        mut self,
        threshold: Duration,
        report: impl Fn(&Backlog) + Send + Sync + 'static,
    ) -> Self {
        self.on_backlog = Some((threshold, Arc::new(report)));
        self
    }
}
