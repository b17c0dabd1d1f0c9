//! Counts any replica adds and one takes: how what happens on every replica (the
//! receiver's failed deliveries, a deep sweep asked for) reaches the one that leads.
//! Adding is an increment; taking reads and clears in one step, so that a count added
//! meanwhile is taken next time, never lost or taken twice.

use super::{Backend, Fleet};
use crate::error::{Error, Result};

/// The counts named `name` in the fleet's store.
#[derive(Clone)]
pub(crate) struct Tally {
    fleet: Fleet,
    name: &'static str,
}

impl Fleet {
    pub(crate) fn tally(&self, name: &'static str) -> Tally {
        Tally {
            fleet: self.clone(),
            name,
        }
    }
}

/// Reads and deletes the hash in one step.
#[cfg(feature = "redis")]
const TAKE: &str = "
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return all
";

impl Tally {
    /// Adds each `(key, count)`.
    pub(crate) async fn add(&self, counts: &[(String, u64)]) -> Result<()> {
        if counts.is_empty() {
            return Ok(());
        }
        match &self.fleet.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => {
                let table = &db.tables().tallies;
                let sql = format!(
                    "INSERT INTO {table} AS t (namespace, name, key, count) \
                     SELECT $1, $2, k, c FROM unnest($3::text[], $4::bigint[]) AS u(k, c) \
                     ON CONFLICT (namespace, name, key) DO UPDATE SET count = t.count + EXCLUDED.count"
                );
                let (keys, values): (Vec<&str>, Vec<i64>) = counts
                    .iter()
                    .map(|(k, c)| (k.as_str(), i64::try_from(*c).unwrap_or(i64::MAX)))
                    .unzip();
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&**db.namespace())
                    .bind(self.name)
                    .bind(keys)
                    .bind(values)
                    .execute(db.pool())
                    .await
                    .map_err(|e| failed("written", e))?;
                Ok(())
            }
            #[cfg(feature = "redis")]
            Backend::Redis(keys) => {
                let mut pipe = redis::pipe();
                let key = keys.key(&format!("tally:{}", self.name));
                for (field, count) in counts {
                    pipe.hincr(&key, field, *count).ignore();
                }
                pipe.query_async::<()>(&mut keys.connection.clone())
                    .await
                    .map_err(|e| failed("written", e))
            }
        }
    }

    /// Every count added since the last take, cleared.
    pub(crate) async fn take(&self) -> Result<Vec<(String, u64)>> {
        match &self.fleet.backend {
            #[cfg(feature = "postgres")]
            Backend::Postgres(db) => {
                let table = &db.tables().tallies;
                let sql = format!(
                    "DELETE FROM {table} WHERE namespace = $1 AND name = $2 RETURNING key, count"
                );
                let rows: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(&**db.namespace())
                    .bind(self.name)
                    .fetch_all(db.pool())
                    .await
                    .map_err(|e| failed("read", e))?;
                Ok(rows
                    .into_iter()
                    .map(|(k, c)| (k, u64::try_from(c).unwrap_or(0)))
                    .collect())
            }
            #[cfg(feature = "redis")]
            Backend::Redis(keys) => {
                let rows: Vec<(String, u64)> = redis::Script::new(TAKE)
                    .key(keys.key(&format!("tally:{}", self.name)))
                    .invoke_async(&mut keys.connection.clone())
                    .await
                    .map_err(|e| failed("read", e))?;
                Ok(rows)
            }
        }
    }
}

fn failed(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    super::store_failed(&format!("counts cannot be {what}"), e)
}
