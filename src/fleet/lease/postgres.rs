//! The lease as a row of `<prefix>_fleet_leases`, every comparison on the database's
//! clock.

use std::time::Duration;

use sqlx::AssertSqlSafe;

use super::{Term, term, unavailable};
use crate::error::Result;
use crate::postgres::{Database, span_millis};

pub(super) async fn acquire(
    db: &Database,
    name: &str,
    me: &str,
    ttl: Duration,
) -> Result<Option<Term>> {
    let table = &db.tables().leases;
    // The holder replaced, read in the statement's snapshot: only for the report. The
    // row lock of ON CONFLICT makes two acquisitions take turns, and the second finds the
    // first's live lease.
    let sql = format!(
        "WITH before AS (SELECT holder, expires_at <= now() AS ran_out FROM {table} \
           WHERE namespace = $1 AND name = $2) \
         INSERT INTO {table} AS l (namespace, name, holder, expires_at, generation) \
         VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond', 1) \
         ON CONFLICT (namespace, name) DO UPDATE SET holder = EXCLUDED.holder, \
           expires_at = EXCLUDED.expires_at, generation = l.generation + 1 \
         WHERE l.holder = EXCLUDED.holder OR l.expires_at <= now() \
         RETURNING generation, state, \
           (SELECT holder FROM before WHERE ran_out)"
    );
    let row: Option<(i64, Option<String>, Option<String>)> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(&**db.namespace())
        .bind(name)
        .bind(me)
        .bind(span_millis(ttl))
        .fetch_optional(db.pool())
        .await
        .map_err(|e| unavailable("acquired", e))?;
    Ok(row.map(|(generation, state, previous)| term(generation, state, previous, me)))
}

pub(super) async fn write(
    db: &Database,
    name: &str,
    me: &str,
    generation: i64,
    ttl: Duration,
    state: Option<&str>,
) -> Result<bool> {
    let table = &db.tables().leases;
    let sql = format!(
        "UPDATE {table} SET expires_at = now() + $5 * interval '1 millisecond', \
           state = CASE WHEN $6 THEN $7 ELSE state END \
         WHERE namespace = $1 AND name = $2 AND holder = $3 AND generation = $4"
    );
    let done = sqlx::query(AssertSqlSafe(sql))
        .bind(&**db.namespace())
        .bind(name)
        .bind(me)
        .bind(generation)
        .bind(span_millis(ttl))
        .bind(state.is_some())
        .bind(state)
        .execute(db.pool())
        .await
        .map_err(|e| unavailable("renewed", e))?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn release(db: &Database, name: &str, me: &str, generation: i64) -> Result<()> {
    let table = &db.tables().leases;
    let sql = format!(
        "UPDATE {table} SET expires_at = now(), holder = '' \
         WHERE namespace = $1 AND name = $2 AND holder = $3 AND generation = $4"
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(&**db.namespace())
        .bind(name)
        .bind(me)
        .bind(generation)
        .execute(db.pool())
        .await
        .map_err(|e| unavailable("released", e))?;
    Ok(())
}

pub(super) async fn holder(db: &Database, name: &str) -> Result<Option<String>> {
    let table = &db.tables().leases;
    let sql = format!(
        "SELECT holder FROM {table} WHERE namespace = $1 AND name = $2 AND expires_at > now()"
    );
    sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(&**db.namespace())
        .bind(name)
        .fetch_optional(db.pool())
        .await
        .map_err(|e| unavailable("read", e))
}
