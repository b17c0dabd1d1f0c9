//! The budget in `<prefix>_fleet_budget`: each reservation one `INSERT ... ON CONFLICT DO
//! UPDATE ... RETURNING`, on `clock_timestamp()` read once per statement.

use sqlx::AssertSqlSafe;

use super::{Answer, micros, unavailable};
use crate::error::Result;
use crate::postgres::Database;

/// The two statements for one table, and the row they work on.
pub(super) struct Statements {
    db: Database,
    name: &'static str,
    reserve: String,
    hold: String,
}

impl Statements {
    pub(super) fn new(db: &Database, name: &'static str) -> Self {
        let table = &db.tables().budget;
        // `$3` the interval, `$4` the headroom (NULL: none), both in microseconds. In
        // `SET`, `b` is the row before; in `RETURNING`, the row written, whose `last_slot`
        // carries the decision out. The row lock orders concurrent reservations.
        let at = "GREATEST(b.next_at, b.hold_until, (SELECT now FROM clock))";
        let within = format!(
            "($4::bigint IS NULL OR {at} <= (SELECT now FROM clock) + $4::bigint * interval '1 microsecond')"
        );
        let us = |x: &str| format!("(extract(epoch FROM {x}) * 1000000)::bigint");
        let reserve = format!(
            "WITH clock AS (SELECT clock_timestamp() AS now) \
             INSERT INTO {table} AS b (namespace, name, next_at, hold_until, last_slot) \
             SELECT $1, $2, now + $3::bigint * interval '1 microsecond', '-infinity', now FROM clock \
             ON CONFLICT (namespace, name) DO UPDATE SET \
             last_slot = CASE WHEN {within} THEN {at} END, \
             next_at = CASE WHEN {within} THEN {at} + $3::bigint * interval '1 microsecond' ELSE b.next_at END \
             RETURNING {slot}, {booked}, {slot_at}",
            slot = us("(b.last_slot - (SELECT now FROM clock))"),
            booked = us(
                "(GREATEST(b.next_at, b.hold_until, (SELECT now FROM clock)) - (SELECT now FROM clock))"
            ),
            slot_at = us("b.last_slot"),
        );
        let hold = format!(
            "WITH clock AS (SELECT clock_timestamp() AS now) \
             INSERT INTO {table} AS b (namespace, name, next_at, hold_until) \
             SELECT $1, $2, '-infinity', now + $3::bigint * interval '1 microsecond' FROM clock \
             ON CONFLICT (namespace, name) DO UPDATE SET \
             hold_until = GREATEST(b.hold_until, EXCLUDED.hold_until)"
        );
        Self {
            db: db.clone(),
            name,
            reserve,
            hold,
        }
    }

    /// One reservation; `headroom_us` bounds how far ahead the schedule may be booked.
    pub(super) async fn reserve(
        &self,
        interval_us: i64,
        headroom_us: Option<i64>,
    ) -> Result<Answer> {
        let (wait, booked, slot_at): (Option<i64>, i64, Option<i64>) =
            sqlx::query_as(AssertSqlSafe(&*self.reserve))
                .bind(&**self.db.namespace())
                .bind(self.name)
                .bind(interval_us)
                .bind(headroom_us)
                .fetch_one(self.db.pool())
                .await
                .map_err(|e| unavailable("reserve a slot of", e))?;
        Ok(match (wait, slot_at) {
            (Some(wait), Some(slot_us)) => Answer::Slot {
                wait: micros(wait),
                slot_us,
            },
            // Told to come back once the schedule is within the headroom again.
            _ => Answer::Later(micros(booked - headroom_us.unwrap_or(0))),
        })
    }

    /// Raises `hold_until` to `wait_us` from now.
    pub(super) async fn hold(&self, wait_us: i64) -> Result<()> {
        sqlx::query(AssertSqlSafe(&*self.hold))
            .bind(&**self.db.namespace())
            .bind(self.name)
            .bind(wait_us)
            .execute(self.db.pool())
            .await
            .map_err(|e| unavailable("hold back", e))?;
        Ok(())
    }
}
