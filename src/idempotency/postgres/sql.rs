//! The store's SQL, with the table names filled in once.

use std::sync::Arc;

use sqlx::AssertSqlSafe;

/// One statement, built once from a checked table prefix and constant text (never from
/// input), so safe to run as it is; cloning it shares the text.
#[derive(Clone, Debug)]
pub(crate) struct Statement(Arc<str>);

impl Statement {
    /// The statement, for `sqlx::query`.
    pub(crate) fn sql(&self) -> AssertSqlSafe<Arc<str>> {
        AssertSqlSafe(Arc::clone(&self.0))
    }
}

impl From<String> for Statement {
    fn from(sql: String) -> Self {
        Self(sql.into())
    }
}

/// Every statement, with the table names filled in once.
pub(super) struct Statements {
    pub(super) schema: String,
    pub(super) claim: Statement,
    pub(super) complete: Statement,
    pub(super) release: Statement,
    pub(super) inbox_claim: Statement,
    pub(super) inbox_check: Statement,
    pub(super) sweep_claims: Statement,
    pub(super) sweep_inbox: Statement,
    /// The worker inbox's events table, and its fenced done mark.
    pub(super) inbox_events: String,
    pub(super) inbox_done: Statement,
}

impl Statements {
    pub(super) fn new(prefix: &str) -> Self {
        let claims = format!("{prefix}_claims");
        let inbox = format!("{prefix}_inbox");
        let inbox_events = format!("{prefix}_inbox_events");
        // An index lives in its table's schema and takes an unqualified name.
        let bare = prefix.rsplit('.').next().unwrap_or(prefix);
        Self {
            schema: format!(
                "CREATE TABLE IF NOT EXISTS {claims} (\n    key text PRIMARY KEY,\n    token text,\n    expires_at timestamptz NOT NULL\n);\n\
                 CREATE INDEX IF NOT EXISTS {bare}_claims_expires_at ON {claims} (expires_at);\n\
                 CREATE TABLE IF NOT EXISTS {inbox} (\n    key text PRIMARY KEY,\n    expires_at timestamptz NOT NULL\n);\n\
                 CREATE INDEX IF NOT EXISTS {bare}_inbox_expires_at ON {inbox} (expires_at);\n"
            ),
            // The outer SELECT reads the snapshot from before the INSERT: a row another
            // claim inserted meanwhile reads as in flight, which it is.
            claim: format!(
                "WITH claimed AS (\
                   INSERT INTO {claims} AS c (key, token, expires_at) \
                   VALUES ($1, $2, now() + $3 * interval '1 millisecond') \
                   ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at \
                   WHERE c.expires_at <= now() \
                   RETURNING 1) \
                 SELECT CASE \
                   WHEN EXISTS (SELECT 1 FROM claimed) THEN 1 \
                   WHEN EXISTS (SELECT 1 FROM {claims} WHERE key = $1 AND token IS NULL AND expires_at > now()) THEN 2 \
                   ELSE 3 END"
            )
            .into(),
            // Done while this token holds the row, while nobody does (absent, or its lease
            // ran out and no one took it over: the handlers did run), or when it is done
            // already (a retried mark whose first answer was lost).
            complete: format!(
                "INSERT INTO {claims} AS c (key, token, expires_at) \
                 VALUES ($1, NULL, now() + $3 * interval '1 millisecond') \
                 ON CONFLICT (key) DO UPDATE SET token = NULL, expires_at = excluded.expires_at \
                 WHERE c.token = $2 OR c.token IS NULL OR c.expires_at <= now() \
                 RETURNING 1"
            )
            .into(),
            release: format!("DELETE FROM {claims} WHERE key = $1 AND token = $2").into(),
            // Inserts the done mark, uncommitted: a concurrent duplicate's insert waits for
            // this transaction, then finds the row (commit) or takes it (rollback).
            inbox_claim: format!(
                "INSERT INTO {inbox} AS i (key, expires_at) \
                 VALUES ($1, now() + $2 * interval '1 millisecond') \
                 ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at \
                 WHERE i.expires_at <= now() \
                 RETURNING 1"
            )
            .into(),
            inbox_check: format!("SELECT 1 FROM {inbox} WHERE key = $1").into(),
            sweep_claims: sweep(&claims),
            sweep_inbox: sweep(&inbox),
            inbox_done: inbox_done(&inbox_events, &format!("{prefix}_inbox_attempts")),
            inbox_events,
        }
    }
}

fn sweep(table: &str) -> Statement {
    format!(
        "DELETE FROM {table} WHERE key IN (\
           SELECT key FROM {table} WHERE expires_at < now() LIMIT $1 FOR UPDATE SKIP LOCKED)"
    )
    .into()
}

/// The inbox's fenced done mark, with its attempt row, run by a transactional handler
/// inside its own transaction: `$1` the event row, `$2` the attempt, `$3` the worker, `$4`
/// the duration in milliseconds. It also requires [`ATTEMPT_SETTING`], set when that
/// transaction began, so that a handler that ended it (a raw `ROLLBACK` or `COMMIT`) is
/// not marked done by an autocommit of its own. Here, not in the inbox, because the
/// transactional handler runs it.
pub(crate) fn inbox_done(events: &str, attempts: &str) -> Statement {
    format!(
        "WITH done AS (\
           UPDATE {events} SET state = 'done', done_at = now(), \
             locked_until = NULL, locked_by = NULL, last_error = NULL \
           WHERE id = $1 AND attempt = $2 AND state = 'running' \
             AND current_setting('{ATTEMPT_SETTING}', true) = concat($1::bigint, ':', $2::integer) \
           RETURNING id, attempt) \
         INSERT INTO {attempts} (event_row, attempt, worker, outcome, duration_ms) \
         SELECT id, attempt, $3, 'done', $4 FROM done RETURNING 1"
    )
    .into()
}

/// A transaction-local setting naming the inbox attempt a transactional handler's
/// transaction runs: it ends with the transaction, however that ends.
pub(crate) const ATTEMPT_SETTING: &str = "monite_webhooks.inbox_attempt";

/// `BEGIN`, and the attempt's setting, in one round trip.
pub(crate) fn begin_attempt(id: i64, attempt: i32) -> String {
    format!("BEGIN; SELECT set_config('{ATTEMPT_SETTING}', '{id}:{attempt}', true)")
}
