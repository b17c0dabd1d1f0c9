//! Checkpoints in Redis (features `client` and `redis`): one hash per namespace, a field
//! per entity holding its checkpoint in Unix microseconds (an id and a short number per
//! entity), raised by a script so that it never moves back, whichever replica saves last.

use redis::Script;
use redis::aio::ConnectionManager;

use super::timestamp;
use super::{CheckpointStore, StoreFuture};
use crate::error::{Error, ErrorKind};

/// Sets the field to the larger of its value and the argument.
const RAISE: &str = "local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1])) \
    if old == nil or old < tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end \
    return 1";

/// Checkpoints in the hash `monite-webhooks:checkpoints:<namespace>`.
///
/// ```no_run
/// use monite_webhooks::reconcile::{CheckpointStore, RedisCheckpoints};
/// # async fn run(connection: redis::aio::ConnectionManager) -> Result<(), monite_webhooks::Error> {
/// let checkpoints = RedisCheckpoints::new(connection, "billing");
/// let all = checkpoints.all().await?;
/// # let _ = all; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisCheckpoints {
    connection: ConnectionManager,
    key: String,
    namespace: String,
}

impl RedisCheckpoints {
    /// Checkpoints of the service `namespace`, over `connection`.
    #[must_use]
    pub fn new(connection: ConnectionManager, namespace: &str) -> Self {
        Self {
            key: format!("monite-webhooks:checkpoints:{namespace}"),
            namespace: namespace.to_owned(),
            connection,
        }
    }
}

impl std::fmt::Debug for RedisCheckpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCheckpoints")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl CheckpointStore for RedisCheckpoints {
    /// The fleet on the same connection, under the key prefix `monite-webhooks:` and this
    /// namespace.
    fn fleet(&self) -> Option<crate::fleet::Fleet> {
        Some(crate::fleet::Fleet::on_redis(
            crate::idempotency::RedisKeys::new(
                self.connection.clone(),
                "monite-webhooks:",
                &self.namespace,
            ),
        ))
    }

    fn load<'a>(&'a self, entity_id: &'a str) -> StoreFuture<'a, Option<jiff::Timestamp>> {
        Box::pin(async move {
            let micros: Option<i64> = redis::cmd("HGET")
                .arg(&self.key)
                .arg(entity_id)
                .query_async(&mut self.connection.clone())
                .await
                .map_err(failed)?;
            micros.map(timestamp).transpose()
        })
    }

    fn save<'a>(&'a self, entity_id: &'a str, at: jiff::Timestamp) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _: i64 = Script::new(RAISE)
                .key(&self.key)
                .arg(entity_id)
                .arg(at.as_microsecond())
                .invoke_async(&mut self.connection.clone())
                .await
                .map_err(failed)?;
            Ok(())
        })
    }

    fn all(&self) -> StoreFuture<'_, Vec<(String, jiff::Timestamp)>> {
        Box::pin(async move {
            let mut all: Vec<(String, i64)> = redis::cmd("HGETALL")
                .arg(&self.key)
                .query_async(&mut self.connection.clone())
                .await
                .map_err(failed)?;
            all.sort();
            all.into_iter()
                .map(|(id, micros)| Ok((id, timestamp(micros)?)))
                .collect()
        })
    }
}

fn failed(e: redis::RedisError) -> Error {
    Error::new(
        ErrorKind::Checkpoints,
        format!("the checkpoints in Redis cannot be reached: {e}"),
    )
    .with_source(e)
}
