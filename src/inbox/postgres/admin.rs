//! What an operator does with the inbox: its status, its events, pausing, pruning the
//! done and purging the dead (retrying and requeuing are in `requeue`). The command line's
//! `inbox` runs these.

use std::time::Duration;

use sqlx::{AssertSqlSafe, Row as _};

use super::PostgresInbox;
use crate::error::{Error, ErrorKind, Result};
use crate::inbox::counts::InboxCounts;
use crate::inbox::row::InboxEvent;
use crate::inbox::state::InboxState;
use crate::inbox::store::MIN_DONE_RETENTION;

/// Ages past this are older than any row: PostgreSQL's timestamps begin in 4713 BC, so
/// `now()` minus an older age is out of its range.
const OLDEST_AGE: Duration = Duration::from_secs(4_000 * 365 * 24 * 60 * 60);

/// An age in milliseconds for `$n * interval '1 millisecond'`, unclamped; `None` past
/// [`OLDEST_AGE`], where no event is older.
fn age_millis(age: Duration) -> Option<i64> {
    (age <= OLDEST_AGE).then(|| i64::try_from(age.as_millis()).unwrap_or(i64::MAX))
}

const EVENT_COLUMNS: &str = "id, event_id, object_type, event, state, attempt, \
     (extract(epoch FROM received_at) * 1000000)::bigint, last_error";

pub(super) fn unavailable(what: &str) -> impl FnOnce(sqlx::Error) -> Error + '_ {
    move |e| Error::new(ErrorKind::StoreUnavailable, format!("cannot {what}: {e}")).with_source(e)
}

fn event_of(row: &sqlx::postgres::PgRow) -> std::result::Result<InboxEvent, sqlx::Error> {
    let micros: i64 = row.try_get(6)?;
    let received_at =
        jiff::Timestamp::from_microsecond(micros).map_err(|e| sqlx::Error::Decode(e.into()))?;
    let mut event = InboxEvent::new(
        row.try_get(0)?,
        row.try_get(2)?,
        row.try_get(3)?,
        InboxState::from(row.try_get::<&str, _>(4)?),
        received_at,
    );
    event.event_id = row.try_get(1)?;
    event.attempt = row.try_get(5)?;
    event.last_error = row.try_get(7)?;
    Ok(event)
}

impl PostgresInbox {
    /// Counts by state, done events included, and the age of the oldest pending event.
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] if PostgreSQL refuses or cannot be reached.
    pub async fn status(&self) -> Result<InboxCounts> {
        let sql = format!(
            "SELECT count(*) FILTER (WHERE state = 'pending'), \
               count(*) FILTER (WHERE state = 'pending' AND attempt > attempt_base), \
               count(*) FILTER (WHERE state = 'running'), \
               count(*) FILTER (WHERE state = 'done'), \
               count(*) FILTER (WHERE state = 'dead'), \
               (extract(epoch FROM now() - min(received_at) FILTER (WHERE state = 'pending')) \
                 * 1000)::bigint \
             FROM {} WHERE namespace = $1",
            self.events_table()
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(&**self.store().namespace())
            .fetch_one(self.store().pool())
            .await
            .map_err(unavailable("read the inbox's status"))?;
        let get = |i| row.try_get::<i64, _>(i).unwrap_or(0).unsigned_abs();
        let oldest: Option<i64> = row.try_get(5).unwrap_or(None);
        Ok(InboxCounts::new(get(0), get(1), get(2), get(4))
            .with_done(get(3))
            .with_oldest_pending(oldest.map(|ms| Duration::from_millis(ms.unsigned_abs()))))
    }

    /// Up to `limit` events, newest first, in `state` if given.
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] if PostgreSQL refuses or cannot be reached.
    pub async fn list(&self, state: Option<&InboxState>, limit: i64) -> Result<Vec<InboxEvent>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM {} WHERE namespace = $1 \
             AND ($2::text IS NULL OR state = $2) ORDER BY id DESC LIMIT $3",
            self.events_table()
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(&**self.store().namespace())
            .bind(state.map(InboxState::as_str))
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

    /// Stops every worker of this namespace, in every process, from claiming; accepting
    /// goes on, and running attempts finish. Undone by [`resume`](Self::resume).
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] if PostgreSQL refuses or cannot be reached.
    pub async fn pause(&self) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} (namespace) VALUES ($1) ON CONFLICT DO NOTHING",
            self.store().tables().paused
        );
        self.paused_statement(sql).await
    }

    /// Lets workers claim again after [`pause`](Self::pause).
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] if PostgreSQL refuses or cannot be reached.
    pub async fn resume(&self) -> Result<()> {
        let sql = format!(
            "DELETE FROM {} WHERE namespace = $1",
            self.store().tables().paused
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
        // The age as given, never clamped to the idempotency stores' year: a purge of
        // events older than two years must keep the one-year-old ones.
        let Some(age) = age_millis(older_than) else {
            return Ok(0);
        };
        let sql = format!(
            "DELETE FROM {events} WHERE id IN (SELECT id FROM {events} WHERE namespace = $1 \
               AND state = '{state}' AND received_at < now() - $2 * interval '1 millisecond' \
               LIMIT $3 FOR UPDATE SKIP LOCKED)",
            events = self.events_table()
        );
        let mut deleted = 0;
        while deleted < limit {
            // The last batch only what is left of `limit`: never more than asked.
            let most = (limit - deleted).min(1000);
            let batch = sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(&**self.store().namespace())
                .bind(age)
                .bind(i64::try_from(most).unwrap_or(1000))
                .execute(self.store().pool())
                .await?
                .rows_affected();
            deleted += batch;
            if batch < most {
                break;
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_never_clamped() {
        let two_years = Duration::from_secs(2 * 365 * 24 * 60 * 60);
        assert_eq!(age_millis(two_years), Some(63_072_000_000));
        assert_eq!(age_millis(Duration::MAX), None, "older than any row");
    }
}
