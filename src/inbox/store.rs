//! The storage an inbox needs, small enough for a second engine to implement.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::error::BoxError;
use crate::event::Event;

/// A verified delivery to write: the event (its raw body among it) and the headers kept
/// to re-verify or audit it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Delivery<'a> {
    /// The dedup key, unscoped (`evt:<id>`, or `body:<sha256>` for an id-less envelope);
    /// the store puts it in its namespace.
    pub key: &'a str,
    /// The verified event.
    pub event: &'a Event,
    /// `(lower-case name, value)` of the headers kept: the signature among them.
    pub headers: &'a [(&'static str, String)],
}

/// What accepting a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Accepted {
    /// Written: a worker will handle it.
    New,
    /// The event was already in the inbox; nothing was written.
    Duplicate,
}

/// One attempt at one event, claimed by a worker under a lease.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Claimed {
    /// The row's id in the store.
    pub id: i64,
    /// This attempt's number, from 1: only this attempt can complete or fail the event.
    pub attempt: i32,
    /// Attempts since the event was last retried or replayed by hand, this one included:
    /// what the retry schedule counts.
    pub tries: i32,
    /// The raw body, as received.
    pub body: Bytes,
}

/// What happens to an event after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AfterFailure {
    /// Tried again once this delay has passed.
    RetryIn(Duration),
    /// No more attempts: the event is `dead`, with the last error and the attempt count.
    Dead,
}

impl<'a> AttemptReport<'a> {
    /// A successful attempt by `worker` that ran for `duration`.
    #[must_use]
    pub fn new(worker: &'a str, duration: Duration) -> Self {
        Self {
            worker,
            duration,
            error: None,
        }
    }

    /// The same, failed with `error`.
    #[must_use]
    pub fn failed(mut self, error: &'a str) -> Self {
        self.error = Some(error);
        self
    }
}

/// How one attempt ended, for the attempts log.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AttemptReport<'a> {
    /// The worker that ran it.
    pub worker: &'a str,
    /// How long the handler ran.
    pub duration: Duration,
    /// The handler's error, for a failed attempt.
    pub error: Option<&'a str>,
}

/// Where an inbox keeps events: implemented by
/// [`PostgresInbox`](crate::inbox::PostgresInbox); another engine implements these
/// calls with the same fencing.
///
/// Every call after [`claim`](Self::claim) names the row and the attempt it claimed, and
/// acts only while that attempt still holds the row (`state = 'running'`, same attempt):
/// a worker whose lease lapsed and whose event another worker took over changes nothing.
pub trait InboxStore: Send + Sync + 'static {
    /// Writes a delivery durably, or finds its key there already.
    fn accept(
        &self,
        delivery: &Delivery<'_>,
    ) -> impl Future<Output = Result<Accepted, BoxError>> + Send;

    /// Takes up to `batch` events due now for `worker`, each under a lease of `lease`,
    /// with its attempt count raised by one; events other workers hold are skipped.
    fn claim(
        &self,
        worker: &str,
        batch: usize,
        lease: Duration,
    ) -> impl Future<Output = Result<Vec<Claimed>, BoxError>> + Send;

    /// Extends the leases of the attempts still held; answers how many were.
    fn heartbeat(
        &self,
        held: &[(i64, i32)],
        lease: Duration,
    ) -> impl Future<Output = Result<usize, BoxError>> + Send;

    /// Marks the event done, if `attempt` still holds it; answers whether it did.
    fn complete(
        &self,
        id: i64,
        attempt: i32,
        report: &AttemptReport<'_>,
    ) -> impl Future<Output = Result<bool, BoxError>> + Send;

    /// Records a failed attempt and schedules a retry or buries the event, if `attempt`
    /// still holds it; answers whether it did.
    fn fail(
        &self,
        id: i64,
        attempt: i32,
        report: &AttemptReport<'_>,
        next: AfterFailure,
    ) -> impl Future<Output = Result<bool, BoxError>> + Send;

    /// Frees events whose lease lapsed (their worker died or hung), counting the lapse;
    /// an event that lapsed `max_lapses` times, or used `max_attempts`, goes `dead`.
    /// Answers how many it freed or buried.
    fn rescue(
        &self,
        max_lapses: u32,
        max_attempts: u32,
    ) -> impl Future<Output = Result<u64, BoxError>> + Send;

    /// The backlog now, in one cheap read, for the workers' gauges and backlog hook;
    /// `None` (the default) if the store cannot tell.
    fn sample(&self) -> impl Future<Output = Result<Option<InboxSample>, BoxError>> + Send {
        async { Ok(None) }
    }

    /// The table name a transactional handler's done mark fences on, if the store
    /// supports one; `None` lets the worker mark every event done itself.
    fn transactional_table(&self) -> Option<&str> {
        None
    }
}

/// The events not done yet, as [`InboxStore::sample`] reads them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboxSample {
    /// Waiting for a worker: first attempts and retries.
    pub pending: i64,
    /// Of those, waiting for a retry after a failed attempt.
    pub retrying: i64,
    /// Held by a worker now.
    pub running: i64,
    /// Out of attempts, or poison.
    pub dead: i64,
    /// How long ago the oldest pending event was received; `None` with none pending.
    pub oldest_pending: Option<Duration>,
}

impl InboxSample {
    /// A sample of these counts, for another store's [`InboxStore::sample`].
    #[must_use]
    pub fn new(
        pending: i64,
        retrying: i64,
        running: i64,
        dead: i64,
        oldest_pending: Option<Duration>,
    ) -> Self {
        Self {
            pending,
            retrying,
            running,
            dead,
            oldest_pending,
        }
    }
}
