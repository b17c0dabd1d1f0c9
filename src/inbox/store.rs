//! The storage an inbox needs, small enough for a second engine to implement.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::counts::InboxCounts;
use crate::error::BoxError;
use crate::event::Event;

/// The least time done events are kept: Monite retries for 7 days, and a done row is the
/// key that answers those retries as duplicates.
pub const MIN_DONE_RETENTION: Duration = Duration::from_secs(8 * 24 * 3600);

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
    /// The accepting receiver answers events no handler takes with a non-`2xx`
    /// [`unhandled_status`](crate::ReceiverBuilder::unhandled_status): kept with the event
    /// and given back in [`Claimed::retry_unhandled`].
    pub retry_unhandled: bool,
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

/// One attempt at one event: the row's id in the store, and the attempt's number, from 1.
///
/// What fences every call after a claim: only the attempt that holds the row can extend,
/// complete, fail or release it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttemptId {
    /// The event's row id in the store.
    pub row: i64,
    /// The attempt's number, from 1.
    pub attempt: i32,
}

impl AttemptId {
    /// Attempt `attempt` at row `row`.
    #[must_use]
    pub fn new(row: i64, attempt: i32) -> Self {
        Self { row, attempt }
    }
}

impl std::fmt::Display for AttemptId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "event row {} attempt {}", self.row, self.attempt)
    }
}

/// One attempt at one event, claimed by a worker under a lease.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Claimed {
    /// The row and this attempt: only this attempt can complete or fail the event.
    pub attempt: AttemptId,
    /// Attempts since the event was last retried or replayed by hand, this one included:
    /// what the retry schedule counts.
    pub tries: i32,
    /// The raw body, as received.
    pub body: Bytes,
    /// As [`Delivery::retry_unhandled`]: the event's receiver would have had Monite retry
    /// it if no handler took it, so the workers retry it by default
    /// ([`WhenUnhandled::AsReceiver`](crate::inbox::WhenUnhandled::AsReceiver)).
    pub retry_unhandled: bool,
}

/// An event [`InboxStore::rescue_listing_dead`] made `dead`: its lease lapsed once too
/// often, or on its last attempt.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Buried {
    /// The row, and the attempt whose lease lapsed.
    pub attempt: AttemptId,
    /// Attempts since the event was last retried or replayed by hand, that one included.
    pub tries: i32,
    /// Lapsed leases in all, that one included.
    pub lapses: i32,
    /// The raw body, as received.
    pub body: Bytes,
}

impl Buried {
    /// A buried event, for another store's [`InboxStore::rescue_listing_dead`].
    #[must_use]
    pub fn new(attempt: AttemptId, tries: i32, lapses: i32, body: Bytes) -> Self {
        Self {
            attempt,
            tries,
            lapses,
            body,
        }
    }
}

/// What a worker asks [`InboxStore::claim`] for.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClaimRequest<'a> {
    /// The worker's name, kept in `locked_by` and the attempts log.
    pub worker: &'a str,
    /// The most events to take.
    pub batch: usize,
    /// How long each stays the worker's without a heartbeat.
    pub lease: Duration,
    /// Object types not to take now: those at their concurrency limit in this process.
    pub skip_object_types: &'a [&'a str],
    /// First in, first out per entity: take an event only when every event accepted
    /// before it for the same `entity_id` is done or dead.
    pub in_entity_order: bool,
}

impl<'a> ClaimRequest<'a> {
    /// Up to `batch` events for `worker` under `lease`, any object type, in no order.
    #[must_use]
    pub fn new(worker: &'a str, batch: usize, lease: Duration) -> Self {
        Self {
            worker,
            batch,
            lease,
            skip_object_types: &[],
            in_entity_order: false,
        }
    }
}

/// An attempt that succeeded and awaits its done mark, for
/// [`InboxStore::complete_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completed {
    /// The row, and the attempt that ran.
    pub attempt: AttemptId,
    /// How long the handler ran.
    pub duration: Duration,
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

impl<'a> AttemptRecord<'a> {
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
pub struct AttemptRecord<'a> {
    /// The worker that ran it.
    pub worker: &'a str,
    /// How long the handler ran.
    pub duration: Duration,
    /// The handler's error, for a failed attempt.
    pub error: Option<&'a str>,
}

/// Where an inbox keeps events: implemented by
/// [`PostgresInbox`](crate::inbox::PostgresInbox) and, for tests,
/// [`MemoryInbox`](crate::inbox::MemoryInbox); another engine implements these calls with
/// the same fencing (the behaviour table of `tests/inbox_store.rs` holds both stores to
/// it).
///
/// Every call after [`claim`](Self::claim) names an [`AttemptId`], and acts only while
/// that attempt still holds the row (state [`Running`](crate::inbox::InboxState::Running),
/// same attempt): a worker whose lease lapsed and whose event another worker took over
/// changes nothing.
pub trait InboxStore: Send + Sync + 'static {
    /// Writes a delivery durably, or finds its key there already.
    fn accept(
        &self,
        delivery: &Delivery<'_>,
    ) -> impl Future<Output = Result<Accepted, BoxError>> + Send;

    /// Takes up to `request.batch` events due now for `request.worker`, each under a lease
    /// of `request.lease`, with its attempt count raised by one; events other workers hold
    /// are skipped, and so are those the request rules out.
    fn claim(
        &self,
        request: &ClaimRequest<'_>,
    ) -> impl Future<Output = Result<Vec<Claimed>, BoxError>> + Send;

    /// Extends the leases of the attempts still held; answers how many were.
    fn heartbeat(
        &self,
        held: &[AttemptId],
        lease: Duration,
    ) -> impl Future<Output = Result<usize, BoxError>> + Send;

    /// Marks the event done, if `attempt` still holds it; answers whether it did.
    fn complete(
        &self,
        attempt: AttemptId,
        record: &AttemptRecord<'_>,
    ) -> impl Future<Output = Result<bool, BoxError>> + Send;

    /// Marks done, in one write, each event whose attempt still holds it, all run by
    /// `worker`; answers the row ids it marked. The default marks them one by one.
    fn complete_batch(
        &self,
        worker: &str,
        done: &[Completed],
    ) -> impl Future<Output = Result<Vec<i64>, BoxError>> + Send {
        async move {
            let mut marked = Vec::with_capacity(done.len());
            for completed in done {
                let record = AttemptRecord::new(worker, completed.duration);
                if self.complete(completed.attempt, &record).await? {
                    marked.push(completed.attempt.row);
                }
            }
            Ok(marked)
        }
    }

    /// Records a failed attempt and schedules a retry or buries the event, if `attempt`
    /// still holds it; answers whether it did.
    fn fail(
        &self,
        attempt: AttemptId,
        record: &AttemptRecord<'_>,
        next: AfterFailure,
    ) -> impl Future<Output = Result<bool, BoxError>> + Send;

    /// Hands back claimed events whose attempts never started (their worker is stopping),
    /// without counting those attempts against the retry schedule; answers how many.
    fn release(
        &self,
        worker: &str,
        held: &[AttemptId],
    ) -> impl Future<Output = Result<u64, BoxError>> + Send;

    /// Frees events whose lease lapsed (their worker died or hung), counting the lapse;
    /// an event that lapsed `max_lapses` times, or used `max_attempts`, goes `dead`.
    /// Answers how many it freed or buried.
    fn rescue(
        &self,
        max_lapses: u32,
        max_attempts: u32,
    ) -> impl Future<Output = Result<u64, BoxError>> + Send;

    /// As [`rescue`](Self::rescue), and answers the events it made `dead`, so that the
    /// workers' [`on_failure`](crate::inbox::WorkersBuilder::on_failure) hook hears of
    /// them. The default calls `rescue` and answers none.
    fn rescue_listing_dead(
        &self,
        max_lapses: u32,
        max_attempts: u32,
    ) -> impl Future<Output = Result<Vec<Buried>, BoxError>> + Send {
        async move {
            self.rescue(max_lapses, max_attempts).await?;
            Ok(Vec::new())
        }
    }

    /// Deletes at most `limit` done events received more than `retention` ago (the
    /// caller keeps it at least [`MIN_DONE_RETENTION`](crate::inbox::MIN_DONE_RETENTION)),
    /// with their attempts; answers how many. The default deletes none.
    fn prune(
        &self,
        retention: Duration,
        limit: u64,
    ) -> impl Future<Output = Result<u64, BoxError>> + Send {
        let _ = (retention, limit);
        async { Ok(0) }
    }

    /// The backlog now, in one cheap read, for the workers' gauges and backlog hook (done
    /// events may be left uncounted); `None` (the default) if the store cannot tell.
    fn sample(&self) -> impl Future<Output = Result<Option<InboxCounts>, BoxError>> + Send {
        async { Ok(None) }
    }

    /// The table name a transactional handler's done mark fences on, if the store
    /// supports one; `None` lets the worker mark every event done itself.
    fn transactional_table(&self) -> Option<&str> {
        None
    }

    /// How many connections the workers' handlers, heartbeats, claims and listener share,
    /// if the store draws them from a bounded pool: [`Workers`](crate::inbox::Workers)
    /// warns at start when its concurrency leaves less than
    /// [`WORKER_POOL_HEADROOM`](crate::inbox::WORKER_POOL_HEADROOM) beyond it. `None` (the
    /// default) when the store cannot tell.
    fn worker_connections(&self) -> Option<u32> {
        None
    }

    /// Runs for as long as the workers do, calling `wake` whenever new events may be due,
    /// so that idle workers need not wait for their next poll: events accepted through a
    /// clone of this store in this process and, with `remote`, in other processes too.
    /// The default returns at once, and the workers only poll.
    fn watch(
        &self,
        wake: Arc<dyn Fn() + Send + Sync>,
        remote: bool,
    ) -> impl Future<Output = ()> + Send {
        let _ = (wake, remote);
        async {}
    }
}
