//! The store's SQL, with the table names filled in once.

use crate::postgres::{Statement, Tables};

/// Every statement of the store and its transactional handlers.
pub(super) struct Statements {
    pub(super) claim: Statement,
    pub(super) complete: Statement,
    pub(super) release: Statement,
    pub(super) handled_claim: Statement,
    pub(super) handled_check: Statement,
    pub(super) prune_claims: Statement,
    pub(super) prune_handled: Statement,
}

impl Statements {
    pub(super) fn new(tables: &Tables) -> Self {
        let (claims, handled) = (&tables.claims, &tables.handled);
        Self {
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
            handled_claim: format!(
                "INSERT INTO {handled} AS h (key, expires_at) \
                 VALUES ($1, now() + $2 * interval '1 millisecond') \
                 ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at \
                 WHERE h.expires_at <= now() \
                 RETURNING 1"
            )
            .into(),
            handled_check: format!("SELECT 1 FROM {handled} WHERE key = $1").into(),
            prune_claims: prune(claims),
            prune_handled: prune(handled),
        }
    }
}

fn prune(table: &str) -> Statement {
    format!(
        "DELETE FROM {table} WHERE key IN (\
           SELECT key FROM {table} WHERE expires_at < now() LIMIT $1 FOR UPDATE SKIP LOCKED)"
    )
    .into()
}
