//! Requeuing events by hand: one by id (`retry`), or many by filter (`requeue`), in
//! batches that each commit on their own. (Replaying, in this crate, is the command line's
//! re-POST of events from Monite's `GET /events`: another thing.)

use jiff::Timestamp;
use serde::Serialize;
use sqlx::AssertSqlSafe;

use super::PostgresInbox;
use super::admin::unavailable;
use crate::error::Result;
use crate::event::{EventType, ObjectType};
use crate::inbox::state::InboxState;

/// Which events a bulk requeue takes; every field left `None` matches all.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RequeueFilter {
    /// Received at or after this time.
    pub since: Option<Timestamp>,
    /// Received before this time.
    pub until: Option<Timestamp>,
    /// Of this object type.
    pub object_type: Option<ObjectType>,
    /// Of this event type (`created` takes `payable.created` and every other object
    /// type's; with [`object_type`](Self::object_type), that type's only).
    pub event: Option<EventType>,
    /// In this state ([`Done`](InboxState::Done), [`Dead`](InboxState::Dead),
    /// [`Pending`](InboxState::Pending)); running events are never requeued. `None` takes
    /// every state but running, done events included: their handlers run again. Check
    /// [`requeue_counts`](PostgresInbox::requeue_counts) first.
    pub state: Option<InboxState>,
}

/// How many events a [`RequeueFilter`] matches in each state a requeue takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RequeueCounts {
    /// Waiting for a worker (or a retry).
    pub pending: u64,
    /// Handled: requeuing runs their handlers again.
    pub done: u64,
    /// Out of attempts.
    pub dead: u64,
}

/// Events a bulk requeue takes per statement. Each batch commits on its own: a requeue of
/// millions holds no long transaction (which would keep vacuum from every dead tuple of
/// the table meanwhile) and locks at most this many rows at once.
pub const REQUEUE_BATCH: usize = 1000;

/// How far a bulk requeue has come, reported after each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RequeueProgress {
    /// Events this batch requeued.
    pub batch: u64,
    /// Events requeued so far, this batch included.
    pub requeued: u64,
    /// The highest row id the requeue has reached; it goes on above it, up to the last row
    /// there was when it started.
    pub through_id: i64,
}

/// Binds `$1` to `$6` of [`MATCHING`]: the inbox's namespace, then the filter's fields.
macro_rules! bind_filter {
    ($query:expr, $inbox:expr, $filter:expr) => {
        $query
            .bind(&**$inbox.store().namespace())
            .bind($filter.since.map(|t| t.to_string()))
            .bind($filter.until.map(|t| t.to_string()))
            .bind($filter.object_type.as_ref().map(ObjectType::as_str))
            .bind($filter.event.as_ref().map(EventType::as_str))
            .bind($filter.state.as_ref().map(InboxState::as_str))
    };
}

/// Priority of requeued events: below live ones (0), so a bulk requeue does not starve them.
const REQUEUE_PRIORITY: i16 = -1;

/// What a requeue sets: pending now, at `priority`. Attempt numbers only grow (they fence
/// late workers), so the retry schedule counts from `attempt_base` instead.
fn requeue_set(priority: i16) -> String {
    format!(
        "state = 'pending', run_at = now(), priority = {priority}, attempt_base = attempt, \
         lapses = 0, done_at = NULL"
    )
}

/// The rows a filter takes, on `$1` (namespace) to `$6`: never a running one.
const MATCHING: &str = "namespace = $1 AND state <> 'running' \
     AND ($2::timestamptz IS NULL OR received_at >= $2::timestamptz) \
     AND ($3::timestamptz IS NULL OR received_at < $3::timestamptz) \
     AND ($4::text IS NULL OR object_type = $4) \
     AND ($5::text IS NULL OR event = object_type || '.' || $5 OR event = $5) \
     AND ($6::text IS NULL OR state = $6)";

impl PostgresInbox {
    /// Makes one event (done or dead) pending again now, with a fresh set of attempts;
    /// answers whether there was such an event.
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`](crate::ErrorKind::StoreUnavailable) if PostgreSQL
    /// refuses or cannot be reached.
    pub async fn retry(&self, id: i64) -> Result<bool> {
        let sql = format!(
            "UPDATE {} SET {} WHERE {MATCHING} AND id = $7",
            self.events_table(),
            requeue_set(0)
        );
        let unfiltered = RequeueFilter::default();
        let retried = bind_filter!(sqlx::query(AssertSqlSafe(sql)), self, unfiltered)
            .bind(id)
            .execute(self.store().pool())
            .await
            .map_err(unavailable("retry the event"))?
            .rows_affected();
        Ok(retried == 1)
    }

    /// Makes every event matching `filter` pending again, below live events, in batches of
    /// [`REQUEUE_BATCH`]; with `dry_run`, only counts them. Answers how many.
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`](crate::ErrorKind::StoreUnavailable) if PostgreSQL
    /// refuses or cannot be reached.
    pub async fn requeue(&self, filter: &RequeueFilter, dry_run: bool) -> Result<u64> {
        if dry_run {
            let sql = format!(
                "SELECT count(*) FROM {} WHERE {MATCHING}",
                self.events_table()
            );
            let count: i64 = bind_filter!(sqlx::query_scalar(AssertSqlSafe(sql)), self, filter)
                .fetch_one(self.store().pool())
                .await
                .map_err(unavailable("count the events to requeue"))?;
            return Ok(count.unsigned_abs());
        }
        self.requeue_with_progress(filter, |_| {}).await
    }

    /// How many events `filter` matches, by state: what an operator reads before a
    /// requeue, since done ones run their handlers again.
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`](crate::ErrorKind::StoreUnavailable) if PostgreSQL
    /// refuses or cannot be reached.
    pub async fn requeue_counts(&self, filter: &RequeueFilter) -> Result<RequeueCounts> {
        let sql = format!(
            "SELECT count(*) FILTER (WHERE state = 'pending'), \
               count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE state = 'dead') \
             FROM {} WHERE {MATCHING}",
            self.events_table()
        );
        let (pending, done, dead): (i64, i64, i64) =
            bind_filter!(sqlx::query_as(AssertSqlSafe(sql)), self, filter)
                .fetch_one(self.store().pool())
                .await
                .map_err(unavailable("count the events to requeue"))?;
        Ok(RequeueCounts {
            pending: pending.unsigned_abs(),
            done: done.unsigned_abs(),
            dead: dead.unsigned_abs(),
        })
    }

    /// As [`requeue`](Self::requeue) (not a dry run), calling `progress` after each batch of
    /// at most [`REQUEUE_BATCH`] events, taken in the order of their row ids up to the last
    /// row there was when the requeue started (events accepted meanwhile are live ones).
    /// Each batch commits on its own: dropping the future stops the requeue, and the batches
    /// done stay requeued. Answers how many events were requeued.
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`](crate::ErrorKind::StoreUnavailable) if PostgreSQL
    /// refuses or cannot be reached; the batches done before stay requeued.
    pub async fn requeue_with_progress<F>(
        &self,
        filter: &RequeueFilter,
        mut progress: F,
    ) -> Result<u64>
    where
        F: FnMut(&RequeueProgress) + Send,
    {
        let events = self.events_table();
        let last: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT coalesce(max(id), 0) FROM {events}"
        )))
        .fetch_one(self.store().pool())
        .await
        .map_err(unavailable("requeue events"))?;
        // The filter again in the UPDATE: a row changed since the batch was read (claimed,
        // say) is checked anew once its lock is ours.
        let sql = format!(
            "WITH batch AS (SELECT id FROM {events} WHERE {MATCHING} AND id > $7 AND id <= $8 \
               ORDER BY id LIMIT {REQUEUE_BATCH}), \
             requeued AS (UPDATE {events} SET {set} FROM batch \
               WHERE {events}.id = batch.id AND {MATCHING} RETURNING 1) \
             SELECT (SELECT count(*) FROM requeued), (SELECT count(*) FROM batch), \
               (SELECT max(id) FROM batch)",
            set = requeue_set(REQUEUE_PRIORITY)
        );
        let mut done = RequeueProgress {
            batch: 0,
            requeued: 0,
            through_id: 0,
        };
        loop {
            let query = sqlx::query_as(AssertSqlSafe(sql.clone()));
            let (requeued, read, through): (i64, i64, Option<i64>) =
                bind_filter!(query, self, filter)
                    .bind(done.through_id)
                    .bind(last)
                    .fetch_one(self.store().pool())
                    .await
                    .map_err(unavailable("requeue events"))?;
            let Some(through) = through else {
                return Ok(done.requeued);
            };
            done.batch = requeued.unsigned_abs();
            done.requeued += done.batch;
            done.through_id = through;
            progress(&done);
            if read.unsigned_abs() < REQUEUE_BATCH as u64 {
                return Ok(done.requeued);
            }
        }
    }
}
