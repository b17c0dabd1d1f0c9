//! The done mark a transactional handler commits with its own writes when an inbox worker
//! runs it: the transaction begins as the attempt, and the event's row is marked done in
//! it, fenced on the attempt, so that both commit or neither does. Here, with the inbox's
//! other statements; `PostgresStore::transactional` calls it.

use std::sync::Arc;

use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres, Transaction};

use crate::inbox::attempt::InboxAttempt;
use crate::postgres::{Tables, duration_millis};

/// A transaction-local setting naming the inbox attempt a transactional handler's
/// transaction runs: it ends with the transaction, however that ends.
const ATTEMPT_SETTING: &str = "monite_webhooks.inbox_attempt";

/// What [`mark_done_in`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marked {
    /// The event is done, uncommitted, with the handler's writes.
    Done,
    /// The attempt's lease lapsed and another attempt holds the event.
    LeaseLost,
    /// The handler ended its transaction itself (a raw `COMMIT` or `ROLLBACK`).
    Ended,
}

/// The attempt an inbox worker runs the current task as, if it runs it over these tables:
/// a transactional handler of another store's tables leaves the event to the worker.
pub(crate) fn current_attempt(tables: &Tables) -> Option<Arc<InboxAttempt>> {
    InboxAttempt::current().filter(|attempt| *attempt.table == *tables.events)
}

/// `BEGIN`, and the attempt's setting, in one round trip.
///
/// # Errors
/// The database's error.
pub(crate) async fn begin_attempt(
    pool: &PgPool,
    attempt: &InboxAttempt,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let begin = format!(
        "BEGIN; SELECT set_config('{ATTEMPT_SETTING}', '{}:{}', true)",
        attempt.id, attempt.attempt
    );
    pool.begin_with(AssertSqlSafe(begin)).await
}

/// Marks the attempt's event done inside `tx`, the transaction [`begin_attempt`] began,
/// with its attempt row. The mark requires the attempt still to hold the row, and the
/// attempt's setting, so that a handler that ended the transaction itself is not marked
/// done by an autocommit of its own.
///
/// # Errors
/// The database's error: a statement failed in `tx` (the transaction is aborted).
pub(crate) async fn mark_done_in(
    tx: &mut PgConnection,
    tables: &Tables,
    attempt: &InboxAttempt,
) -> Result<Marked, sqlx::Error> {
    // Built per call: a few hundred bytes beside a transaction's round trips.
    let (events, attempts) = (&tables.events, &tables.attempts);
    let done = format!(
        "WITH done AS (\
           UPDATE {events} SET state = 'done', done_at = now(), \
             locked_until = NULL, locked_by = NULL, last_error = NULL \
           WHERE id = $1 AND attempt = $2 AND state = 'running' \
             AND current_setting('{ATTEMPT_SETTING}', true) = concat($1::bigint, ':', $2::integer) \
           RETURNING id, attempt) \
         INSERT INTO {attempts} (event_row, attempt, worker, outcome, duration_ms) \
         SELECT id, attempt, $3, 'done', $4 FROM done RETURNING 1"
    );
    let marked = sqlx::query(AssertSqlSafe(done))
        .bind(attempt.id)
        .bind(attempt.attempt)
        .bind(&*attempt.worker)
        .bind(duration_millis(attempt.started.elapsed()))
        .fetch_optional(&mut *tx)
        .await?;
    if marked.is_some() {
        return Ok(Marked::Done);
    }
    // No row: the lease lapsed, or the statement ran outside the handler's transaction,
    // which the handler ended itself.
    let open: bool = sqlx::query_scalar("SELECT coalesce(current_setting($1, true), '') <> ''")
        .bind(ATTEMPT_SETTING)
        .fetch_one(&mut *tx)
        .await
        .unwrap_or(false);
    Ok(if open {
        Marked::LeaseLost
    } else {
        Marked::Ended
    })
}
