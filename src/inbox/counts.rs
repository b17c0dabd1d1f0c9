//! `InboxCounts`: how many events are in each state, as one read of the store saw them.

use std::time::Duration;

/// How many events of the inbox are in each state, and how long the oldest pending one has
/// waited: what [`PostgresInbox::status`](crate::inbox::PostgresInbox::status) answers,
/// what [`InboxStore::sample`](crate::inbox::InboxStore::sample) reads for the workers'
/// gauges and backlog hook, and what the command line's `inbox status` prints.
///
/// **Pending** means one thing throughout: waiting for a worker, first attempts *and*
/// retries waiting for their not-before time, as the `monite_webhooks_inbox_pending` gauge
/// counts them. [`retrying`](Self::retrying) tells how many of them are retries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboxCounts {
    /// Waiting for a worker: first attempts and retries.
    pub pending: u64,
    /// Of those, waiting for a retry after a failed attempt.
    pub retrying: u64,
    /// Held by a worker now.
    pub running: u64,
    /// Handled; `None` where the read left them uncounted (a sample for the gauges: done
    /// rows are most of the table).
    pub done: Option<u64>,
    /// Out of attempts, or poison.
    pub dead: u64,
    /// How long ago the oldest pending event (first attempt or retry) was received; `None`
    /// with none pending.
    pub oldest_pending: Option<Duration>,
}

impl InboxCounts {
    /// These counts, with done events uncounted and none pending for long: for another
    /// store's [`InboxStore::sample`](crate::inbox::InboxStore::sample).
    #[must_use]
    pub fn new(pending: u64, retrying: u64, running: u64, dead: u64) -> Self {
        Self {
            pending,
            retrying,
            running,
            done: None,
            dead,
            oldest_pending: None,
        }
    }

    /// The same, with `done` events counted.
    #[must_use]
    pub fn with_done(mut self, done: u64) -> Self {
        self.done = Some(done);
        self
    }

    /// The same, the oldest pending event received `age` ago.
    #[must_use]
    pub fn with_oldest_pending(mut self, age: Option<Duration>) -> Self {
        self.oldest_pending = age;
        self
    }

    /// Pending events waiting for their first attempt: [`pending`](Self::pending) less
    /// [`retrying`](Self::retrying).
    #[must_use]
    pub fn first_attempts(&self) -> u64 {
        self.pending.saturating_sub(self.retrying)
    }
}
