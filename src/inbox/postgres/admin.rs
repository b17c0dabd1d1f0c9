//! What an operator does with the inbox: its status, its events, retrying one, replaying
//! many by filter, purging the dead. The command line's `inbox` runs these.

use std::time::Duration;

use serde::Serialize;
use sqlx::{AssertSqlSafe, Row as _};

use super::PostgresInbox;
use crate::error::{Error, ErrorKind, Result};
use crate::idempotency::store_millis;
use crate::inbox::store::MIN_DONE_RETENTION;

/// How many events are in each state, and how long the oldest pending one has waited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct InboxStatus {
    /// Waiting for a worker, first attempt.
    pub pending: i64,
    /// Waiting for a retry after a failed attempt.
    pub retrying: i64,
    /// Held by a worker now.
    pub running: i64,
    /// Handled.
    pub done: i64,
    /// Out of attempts, or poison: see `last_error`.
    pub dead: i64,
    /// Seconds since the oldest pending (or retrying) event was received.
    pub oldest_pending_seconds: Option<i64>,
}

/// One event of the inbox, as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct InboxEvent {
    /// The row's id: what `retry` and `show` take.
    pub id: i64,
    /// Monite's event id.
    pub event_id: Option<String>,
    /// The object type, such as `payable`.
    pub object_type: String,
    /// The event, such as `payable.created`.
    pub event: String,
    /// `pending`, `running`, `done` or `dead`.
    pub state: String,
    /// Attempts so far.
    pub attempt: i32,
    /// When it was accepted, RFC 3339.
    pub received_at: String,
    /// The last attempt's error.
    pub last_error: Option<String>,
}

/// Which events a bulk replay takes; every field left `None` matches all.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ReplayFilter {
    /// Received at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Received before this time (RFC 3339).
    pub until: Option<String>,
    /// Of this object type.
    pub object_type: Option<String>,
    /// Of this event (`payable.created`).
    pub event: Option<String>,
    /// In this state (`done`, `dead`, `pending`); running events are never replayed.
    pub state: Option<String>,
}

/// Priority of replayed events: below live ones (0), so a bulk replay does not starve them.
const REPLAY_PRIORITY: i16 = -1;

const EVENT_COLUMNS: &str = "id, event_id, object_type, event, state, attempt, \
     to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), last_error";

fn unavailable(what: &str) -> impl FnOnce(sqlx::Error) -> Error + '_ {
    move |e| Error::new(ErrorKind::StoreUnavailable, format!("cannot {what}: {e}")).with_source(e)
}

fn event_of(row: &sqlx::postgres::PgRow) -> std::result::Result<InboxEvent, sqlx::Error> {
    Ok(InboxEvent {
        id: row.try_get(0)?,
        event_id: row.try_get(1)?,
        object_type: row.try_get(2)?,
        event: row.try_get(3)?,
        state: row.try_get(4)?,
        attempt: row.try_get(5)?,
        received_at: row.try_get(6)?,
        last_error: row.try_get(7)?,
    })
}

impl PostgresInbox {
    /// Counts by state, and the age of the oldest pending event.
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] if PostgreSQL refuses or cannot be reached.
    pub async fn status(&self) -> Result<InboxStatus> {
        let sql = format!(
            "SELECT count(*) FILTER (WHERE state = 'pending' AND attempt = attempt_base), \
               count(*) FILTER (WHERE state = 'pending' AND attempt > attempt_base), \
               count(*) FILTER (WHERE state = 'running'), \
               count(*) FILTER (WHERE state = 'done'), \
               count(*) FILTER (WHERE state = 'dead'), \
               extract(epoch FROM now() - min(received_at) FILTER (WHERE state = 'pending'))::bigint \
             FROM {} WHERE namespace = $1",
            self.events_table()
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(&**self.store().namespace())
            .fetch_one(self.store().pool())
            .await
            .map_err(unavailable("read the inbox's status"))?;
        let get = |i| row.try_get::<i64, _>(i).unwrap_or(0);
        Ok(InboxStatus {
            pending: get(0),
            retrying: get(1),
            running: get(2),
            done: get(3),
            dead: get(4),
            oldest_pending_seconds: row.try_get(5).unwrap_or(None),
        })
    }

    /// Up to `limit` events, newest first, in `state` if given.
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] if PostgreSQL refuses or cannot be reached.
    pub async fn list(&self, state: Option<&str>, limit: i64) -> Result<Vec<InboxEvent>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM {} WHERE namespace = $1 \
             AND ($2::text IS NULL OR state = $2) ORDER BY id DESC LIMIT $3",
            self.events_table()
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(&**self.store().namespace())
            .bind(state)
            .bind(limit)
            .fetch_all(self.store().pool())
            .await
            .map_err(unavailable("list the inbox"))?;
        rows.iter()
            .map(event_of)
            .collect::<std::result::Result<_, _>>()
            .map_err(unavailable("read the inbox's rows"))
    }

    /// One event, with its raw body.
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] if PostgreSQL refuses or cannot be reached.
    pub async fn show(&self, id: i64) -> Result<Option<(InboxEvent, String)>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS}, convert_from(body, 'UTF8') FROM {} \
             WHERE namespace = $1 AND id = $2",
            self.events_table()
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(&**self.store().namespace())
            .bind(id)
            .fetch_optional(self.store().pool())
            .await
            .map_err(unavailable("read the event"))?;
        row.map(|row| Ok((event_of(&row)?, row.try_get(8)?)))
            .transpose()
            .map_err(unavailable("read the event"))
    }

    /// Makes one event (done or dead) pending again now, with a fresh set of attempts;
    /// answers whether there was such an event.
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] if PostgreSQL refuses or cannot be reached.
    pub async fn retry(&self, id: i64) -> Result<bool> {
        let filter = format!("id = {id}");
        Ok(self
            .requeue(&filter, 0, false, &ReplayFilter::default())
            .await?
            == 1)
    }

    /// Makes every event matching `filter` pending again, below live events; with
    /// `dry_run`, only counts them. Answers how many.
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] if PostgreSQL refuses or cannot be reached.
    pub async fn replay(&self, filter: &ReplayFilter, dry_run: bool) -> Result<u64> {
        self.requeue("true", REPLAY_PRIORITY, dry_run, filter).await
    }

    async fn requeue(
        &self,
        extra: &str,
        priority: i16,
        dry_run: bool,
        filter: &ReplayFilter,
    ) -> Result<u64> {
        // Attempt numbers only grow (they fence late workers): the schedule counts from
        // `attempt_base` instead.
        let matching = format!(
            "namespace = $1 AND state <> 'running' AND {extra} \
             AND ($2::timestamptz IS NULL OR received_at >= $2::timestamptz) \
             AND ($3::timestamptz IS NULL OR received_at < $3::timestamptz) \
             AND ($4::text IS NULL OR object_type = $4) AND ($5::text IS NULL OR event = $5) \
             AND ($6::text IS NULL OR state = $6)"
        );
        let events = self.events_table();
        let sql = if dry_run {
            format!("SELECT count(*) FROM {events} WHERE {matching}")
        } else {
            format!(
                "WITH requeued AS (UPDATE {events} SET state = 'pending', run_at = now(), \
                   priority = {priority}, attempt_base = attempt, lapses = 0, done_at = NULL \
                 WHERE {matching} RETURNING 1) SELECT count(*) FROM requeued"
            )
        };
        let count: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(&**self.store().namespace())
            .bind(filter.since.as_deref())
            .bind(filter.until.as_deref())
            .bind(filter.object_type.as_deref())
            .bind(filter.event.as_deref())
            .bind(filter.state.as_deref())
            .fetch_one(self.store().pool())
            .await
            .map_err(unavailable("replay events"))?;
        Ok(count.unsigned_abs())
    }

    /// Stops every worker of this namespace, in every process, from claiming; accepting
    /// goes on, and running attempts finish. Undone by [`resume`](Self::resume).
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] if PostgreSQL refuses or cannot be reached.
    pub async fn pause(&self) -> Result<()> {
        let sql = format!(
            "INSERT INTO {}_paused (namespace) VALUES ($1) ON CONFLICT DO NOTHING",
            self.events_table()
        );
        self.paused_statement(sql).await
    }

    /// Lets workers claim again after [`pause`](Self::pause).
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] if PostgreSQL refuses or cannot be reached.
    pub async fn resume(&self) -> Result<()> {
        let sql = format!(
            "DELETE FROM {}_paused WHERE namespace = $1",
            self.events_table()
        );
        self.paused_statement(sql).await
    }

    async fn paused_statement(&self, sql: String) -> Result<()> {
        sqlx::query(AssertSqlSafe(sql))
            .bind(&**self.store().namespace())
            .execute(self.store().pool())
            .await
            .map_err(unavailable("pause or resume the inbox"))?;
        Ok(())
    }

    /// Deletes done events received more than `retention` ago (never less than
    /// [`MIN_DONE_RETENTION`]: their rows are the dedup keys), a thousand at a time, with
    /// their attempts; answers how many. Run it from a timer of yours, such as hourly.
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] if PostgreSQL refuses or cannot be reached.
    pub async fn prune_done(&self, retention: Duration) -> Result<u64> {
        self.delete_old("done", retention.max(MIN_DONE_RETENTION))
            .await
    }

    /// Deletes dead events received more than `older_than` ago, a thousand at a time, with
    /// their attempts; answers how many.
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] if PostgreSQL refuses or cannot be reached.
    pub async fn purge_dead(&self, older_than: Duration) -> Result<u64> {
        self.delete_old("dead", older_than).await
    }

    async fn delete_old(&self, state: &'static str, older_than: Duration) -> Result<u64> {
        self.delete_old_at_most(state, older_than, u64::MAX)
            .await
            .map_err(unavailable("delete old events"))
    }

    /// Deletes old events of `state` a thousand at a time, at most `limit` in all.
    pub(super) async fn delete_old_at_most(
        &self,
        state: &'static str,
        older_than: Duration,
        limit: u64,
    ) -> std::result::Result<u64, sqlx::Error> {
        let sql = format!(
            "DELETE FROM {events} WHERE id IN (SELECT id FROM {events} WHERE namespace = $1 \
               AND state = '{state}' AND received_at < now() - $2 * interval '1 millisecond' \
               LIMIT 1000 FOR UPDATE SKIP LOCKED)",
            events = self.events_table()
        );
        let mut deleted = 0;
        while deleted < limit {
            let batch = sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(&**self.store().namespace())
                .bind(store_millis(older_than))
                .execute(self.store().pool())
                .await?
                .rows_affected();
            deleted += batch;
            if batch < 1000 {
                break;
            }
        }
        Ok(deleted)
    }
}
