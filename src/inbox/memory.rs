//! `MemoryInbox`: the inbox's store in this process's memory, for tests.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use tokio::sync::Notify;

use super::counts::InboxCounts;
use super::row::InboxEvent;
use super::state::InboxState;
use super::store::{
    Accepted, AfterFailure, AttemptId, AttemptRecord, Buried, ClaimRequest, Claimed, Completed,
    Delivery, InboxStore, MIN_DONE_RETENTION,
};
use crate::error::BoxError;

/// The most lapsed leases one rescue frees, as the PostgreSQL store's.
const RESCUE_AT_MOST: usize = 1000;

/// An inbox in this process's memory: the [`InboxStore`] contract as
/// [`PostgresInbox`](super::PostgresInbox) keeps it, for tests of handlers and workers that
/// need no database. Lost when the process ends, and shared only by its clones: never the
/// store of a service.
///
/// It keeps what the PostgreSQL store keeps: claims under leases, fenced by the attempt;
/// retries not before their time; the `dead` state; the rescue of lapsed leases; pausing;
/// first in, first out per entity; done events kept as dedup keys until pruned after their
/// retention. Its clock is the system's, moved forward by [`advance`](Self::advance), so a
/// test can let leases lapse, retries come due and done events age without waiting.
///
/// ```
/// use std::time::Duration;
/// use monite_webhooks::inbox::{MemoryInbox, Workers};
/// use monite_webhooks::{Dispatcher, Event, ObjectType, Receiver, Secret, Verifier};
///
/// # async fn run() -> Result<(), monite_webhooks::Error> {
/// let inbox = MemoryInbox::new();
/// let body = r#"{"id":"e1","object_type":"payable","action":"payable.created","object":{"id":"p"}}"#;
/// let verifier = Verifier::new(Secret::new("whsec_from_your_environment")?);
/// let receiver = Receiver::inbox_builder(verifier, inbox.clone()).build();
/// receiver.receive_event(Event::parse(body)?).await?;
/// let dispatcher = Dispatcher::builder().on_object(ObjectType::Payable, |_: Event| async {});
/// let workers = Workers::builder(inbox.clone(), dispatcher).start()?;
/// while inbox.status().done != Some(1) {
///     tokio::time::sleep(Duration::from_millis(10)).await;
/// }
/// workers.shutdown().await;
/// # Ok(()) }
/// # let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
/// # runtime.block_on(run()).unwrap();
/// ```
#[derive(Clone, Default)]
pub struct MemoryInbox {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    rows: Mutex<Rows>,
    // How far `advance` moved this inbox's clock, in microseconds.
    advanced_micros: AtomicU64,
    accepted: Notify,
}

#[derive(Default)]
struct Rows {
    by_id: BTreeMap<i64, Row>,
    keys: HashMap<String, i64>,
    last_id: i64,
    paused: bool,
}

/// One event, with the columns of the PostgreSQL store's row that the contract reads.
struct Row {
    key: String,
    event_id: Option<String>,
    entity_id: Option<String>,
    object_type: String,
    action: String,
    body: Bytes,
    retry_unhandled: bool,
    received_at: Timestamp,
    state: InboxState,
    priority: i16,
    attempt: i32,
    // Attempts before the last retry or requeue by hand: the schedule counts from here.
    attempt_base: i32,
    lapses: i32,
    run_at: Timestamp,
    locked_until: Option<Timestamp>,
    locked_by: Option<String>,
    last_error: Option<String>,
}

impl Row {
    fn held_by(&self, attempt: AttemptId) -> bool {
        self.attempt == attempt.attempt && self.state == InboxState::Running
    }

    fn tries(&self) -> i32 {
        self.attempt - self.attempt_base
    }

    fn event(&self, id: i64) -> InboxEvent {
        let mut event = InboxEvent::new(
            id,
            &self.object_type,
            &self.action,
            self.state.clone(),
            self.received_at,
        );
        event.event_id.clone_from(&self.event_id);
        event.attempt = self.attempt;
        event.last_error.clone_from(&self.last_error);
        event
    }
}

fn plus(at: Timestamp, duration: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(duration)
        .ok()
        .and_then(|d| at.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

fn since(earlier: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(earlier)).unwrap_or(Duration::ZERO)
}

impl MemoryInbox {
    /// An empty inbox.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves this inbox's clock (and its clones') forward by `by`: leases lapse, retries
    /// come due and done events age as if `by` had passed.
    pub fn advance(&self, by: Duration) {
        let micros = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        self.inner
            .advanced_micros
            .fetch_add(micros, Ordering::Relaxed);
    }

    /// Counts by state, done events included, and the age of the oldest pending event.
    #[must_use]
    pub fn status(&self) -> InboxCounts {
        let now = self.now();
        let rows = self.rows();
        let mut counts = InboxCounts::default().with_done(0);
        let mut oldest: Option<Timestamp> = None;
        for row in rows.by_id.values() {
            match row.state {
                InboxState::Pending => {
                    counts.pending += 1;
                    counts.retrying += u64::from(row.attempt > row.attempt_base);
                    oldest = Some(oldest.map_or(row.received_at, |o| o.min(row.received_at)));
                }
                InboxState::Running => counts.running += 1,
                InboxState::Done => counts.done = counts.done.map(|done| done + 1),
                InboxState::Dead => counts.dead += 1,
                InboxState::Unknown(_) => {}
            }
        }
        counts.with_oldest_pending(oldest.map(|at| since(at, now)))
    }

    /// Up to `limit` events, newest first, in `state` if given.
    #[must_use]
    pub fn list(&self, state: Option<&InboxState>, limit: usize) -> Vec<InboxEvent> {
        self.rows()
            .by_id
            .iter()
            .rev()
            .filter(|(_, row)| state.is_none_or(|state| row.state == *state))
            .take(limit)
            .map(|(id, row)| row.event(*id))
            .collect()
    }

    /// Makes one event (any but a running one) pending again now, with a fresh set of
    /// attempts; answers whether there was such an event.
    #[must_use = "false: no such event, or it is running"]
    pub fn retry(&self, id: i64) -> bool {
        let now = self.now();
        let mut rows = self.rows();
        let Some(row) = rows.by_id.get_mut(&id) else {
            return false;
        };
        if row.state == InboxState::Running {
            return false;
        }
        row.state = InboxState::Pending;
        row.run_at = now;
        row.priority = 0;
        row.attempt_base = row.attempt;
        row.lapses = 0;
        true
    }

    /// Stops every worker of this inbox from claiming; accepting goes on, and running
    /// attempts finish. Undone by [`resume`](Self::resume).
    pub fn pause(&self) {
        self.rows().paused = true;
    }

    /// Lets workers claim again after [`pause`](Self::pause).
    pub fn resume(&self) {
        self.rows().paused = false;
    }

    fn now(&self) -> Timestamp {
        let micros = self.inner.advanced_micros.load(Ordering::Relaxed);
        plus(Timestamp::now(), Duration::from_micros(micros))
    }

    fn rows(&self) -> MutexGuard<'_, Rows> {
        self.inner
            .rows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `settle` on each row `attempt` still holds; answers the rows it ran on.
    fn settle(
        &self,
        attempts: impl IntoIterator<Item = AttemptId>,
        mut settle: impl FnMut(&mut Row, Timestamp),
    ) -> Vec<i64> {
        let now = self.now();
        let mut rows = self.rows();
        attempts
            .into_iter()
            .filter(|attempt| {
                let Some(row) = rows.by_id.get_mut(&attempt.row) else {
                    return false;
                };
                if !row.held_by(*attempt) {
                    return false;
                }
                settle(row, now);
                true
            })
            .map(|attempt| attempt.row)
            .collect()
    }
}

impl Rows {
    /// Whether a claim may take `row` now.
    fn claimable(&self, row: &Row, now: Timestamp, skip: &[&str]) -> bool {
        row.state == InboxState::Pending
            && row.run_at <= now
            && !skip.contains(&row.object_type.as_str())
            && !self.paused
    }

    /// The rows a claim picks, in its order: each entity's head only, with `in_entity_order`.
    fn picked(&self, request: &ClaimRequest<'_>, now: Timestamp) -> Vec<i64> {
        let skip = request.skip_object_types;
        let mut candidates: Vec<(&i64, &Row)> = if request.in_entity_order {
            // An entity's head is its oldest event not yet done or dead.
            let mut heads: HashMap<&str, i64> = HashMap::new();
            for (id, row) in &self.by_id {
                if let Some(entity) = row.entity_id.as_deref()
                    && matches!(row.state, InboxState::Pending | InboxState::Running)
                {
                    heads.entry(entity).or_insert(*id);
                }
            }
            self.by_id
                .iter()
                .filter(|(id, row)| {
                    row.entity_id
                        .as_deref()
                        .is_none_or(|entity| heads.get(entity) == Some(id))
                })
                .filter(|(_, row)| self.claimable(row, now, skip))
                .collect()
        } else {
            self.by_id
                .iter()
                .filter(|(_, row)| self.claimable(row, now, skip))
                .collect()
        };
        if request.in_entity_order {
            candidates.sort_by_key(|(id, row)| (std::cmp::Reverse(row.priority), **id));
        } else {
            candidates.sort_by_key(|(id, row)| (std::cmp::Reverse(row.priority), row.run_at, **id));
        }
        candidates
            .into_iter()
            .take(request.batch)
            .map(|(id, _)| *id)
            .collect()
    }
}

impl InboxStore for MemoryInbox {
    async fn accept(&self, delivery: &Delivery<'_>) -> Result<Accepted, BoxError> {
        let now = self.now();
        let event = delivery.event;
        {
            let mut rows = self.rows();
            if rows.keys.contains_key(delivery.key) {
                return Ok(Accepted::Duplicate);
            }
            rows.last_id += 1;
            let id = rows.last_id;
            rows.keys.insert(delivery.key.to_owned(), id);
            rows.by_id.insert(
                id,
                Row {
                    key: delivery.key.to_owned(),
                    event_id: event.id().map(str::to_owned),
                    entity_id: event.entity_id().map(str::to_owned),
                    object_type: event.object_type().as_str().to_owned(),
                    action: event.action().to_owned(),
                    body: event.body().clone(),
                    retry_unhandled: delivery.retry_unhandled,
                    received_at: now,
                    state: InboxState::Pending,
                    priority: 0,
                    attempt: 0,
                    attempt_base: 0,
                    lapses: 0,
                    run_at: now,
                    locked_until: None,
                    locked_by: None,
                    last_error: None,
                },
            );
        }
        self.inner.accepted.notify_waiters();
        Ok(Accepted::New)
    }

    async fn claim(&self, request: &ClaimRequest<'_>) -> Result<Vec<Claimed>, BoxError> {
        let now = self.now();
        let mut rows = self.rows();
        let picked = rows.picked(request, now);
        let claimed = picked
            .into_iter()
            .filter_map(|id| {
                let row = rows.by_id.get_mut(&id)?;
                row.state = InboxState::Running;
                row.attempt += 1;
                row.locked_until = Some(plus(now, request.lease));
                row.locked_by = Some(request.worker.to_owned());
                Some(Claimed {
                    attempt: AttemptId::new(id, row.attempt),
                    tries: row.tries(),
                    body: row.body.clone(),
                    retry_unhandled: row.retry_unhandled,
                })
            })
            .collect();
        Ok(claimed)
    }

    async fn heartbeat(&self, held: &[AttemptId], lease: Duration) -> Result<usize, BoxError> {
        let extended = self.settle(held.iter().copied(), |row, now| {
            row.locked_until = Some(plus(now, lease));
        });
        Ok(extended.len())
    }

    async fn complete(
        &self,
        attempt: AttemptId,
        record: &AttemptRecord<'_>,
    ) -> Result<bool, BoxError> {
        let completed = Completed {
            attempt,
            duration: record.duration,
        };
        Ok(!self
            .complete_batch(record.worker, &[completed])
            .await?
            .is_empty())
    }

    async fn complete_batch(
        &self,
        _worker: &str,
        done: &[Completed],
    ) -> Result<Vec<i64>, BoxError> {
        Ok(self.settle(done.iter().map(|c| c.attempt), |row, _| {
            row.state = InboxState::Done;
            row.locked_until = None;
            row.locked_by = None;
            row.last_error = None;
        }))
    }

    async fn fail(
        &self,
        attempt: AttemptId,
        record: &AttemptRecord<'_>,
        next: AfterFailure,
    ) -> Result<bool, BoxError> {
        let (state, delay) = match next {
            AfterFailure::RetryIn(delay) => (InboxState::Pending, delay),
            AfterFailure::Dead => (InboxState::Dead, Duration::ZERO),
        };
        let failed = self.settle([attempt], |row, now| {
            row.state = state.clone();
            row.run_at = plus(now, delay);
            row.locked_until = None;
            row.locked_by = None;
            row.last_error = record.error.map(str::to_owned);
        });
        Ok(!failed.is_empty())
    }

    async fn release(&self, _worker: &str, held: &[AttemptId]) -> Result<u64, BoxError> {
        let released = self.settle(held.iter().copied(), |row, _| {
            row.state = InboxState::Pending;
            row.locked_until = None;
            row.locked_by = None;
            // Not counted against the retry schedule: the attempt never started.
            row.attempt_base += 1;
        });
        Ok(released.len() as u64)
    }

    async fn rescue(&self, max_lapses: u32, max_attempts: u32) -> Result<u64, BoxError> {
        let (freed, _) = self.rescued(max_lapses, max_attempts);
        Ok(freed)
    }

    async fn rescue_listing_dead(
        &self,
        max_lapses: u32,
        max_attempts: u32,
    ) -> Result<Vec<Buried>, BoxError> {
        let (_, buried) = self.rescued(max_lapses, max_attempts);
        Ok(buried)
    }

    async fn prune(&self, retention: Duration, limit: u64) -> Result<u64, BoxError> {
        let retention = retention.max(MIN_DONE_RETENTION);
        let now = self.now();
        let mut rows = self.rows();
        let old: Vec<i64> = rows
            .by_id
            .iter()
            .filter(|(_, row)| {
                row.state == InboxState::Done && since(row.received_at, now) > retention
            })
            .map(|(id, _)| *id)
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect();
        for id in &old {
            if let Some(row) = rows.by_id.remove(id) {
                rows.keys.remove(&row.key);
            }
        }
        Ok(old.len() as u64)
    }

    async fn sample(&self) -> Result<Option<InboxCounts>, BoxError> {
        Ok(Some(self.status()))
    }

    async fn watch(&self, wake: Arc<dyn Fn() + Send + Sync>, _remote: bool) {
        loop {
            self.inner.accepted.notified().await;
            wake();
        }
    }
}

impl MemoryInbox {
    /// Frees lapsed leases, as [`InboxStore::rescue`]: how many, and those it buried.
    fn rescued(&self, max_lapses: u32, max_attempts: u32) -> (u64, Vec<Buried>) {
        let max_lapses = i32::try_from(max_lapses).unwrap_or(i32::MAX);
        let max_attempts = i32::try_from(max_attempts).unwrap_or(i32::MAX);
        let now = self.now();
        let mut rows = self.rows();
        let mut freed = 0;
        let mut buried = Vec::new();
        let lapsed = rows.by_id.iter_mut().filter(|(_, row)| {
            row.state == InboxState::Running && row.locked_until.is_some_and(|until| until <= now)
        });
        for (id, row) in lapsed.take(RESCUE_AT_MOST) {
            freed += 1;
            row.lapses += 1;
            row.locked_until = None;
            row.run_at = now;
            if row.lapses >= max_lapses || row.tries() >= max_attempts {
                row.state = InboxState::Dead;
                row.last_error = Some(format!(
                    "the lease lapsed {} times without a completion",
                    row.lapses
                ));
                buried.push(Buried::new(
                    AttemptId::new(*id, row.attempt),
                    row.tries(),
                    row.lapses,
                    row.body.clone(),
                ));
            } else {
                row.state = InboxState::Pending;
            }
        }
        (freed, buried)
    }
}

impl fmt::Debug for MemoryInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryInbox")
            .field("events", &self.rows().by_id.len())
            .finish_non_exhaustive()
    }
}
