//! `RedisStore`: idempotency shared by every replica behind a load balancer.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::remote::{checked_namespace, connect_error, store_millis};
use super::{Claim, ClaimToken, IdempotencyStore};
use crate::error::{BoxError, Result};

// A done key holds `done`; a claimed key holds its token, which is hex and never `done`.

/// Claims with `SET NX PX`, and in the same atomic step tells done from in flight.
const CLAIM: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == 'done' then return 2 end
return 3
";

/// Marks done while this token still holds the key, while nobody does (the lease ran out
/// and no other delivery took the key over: the handlers did run, so say so), or when it is
/// done already (a retried mark whose first answer was lost).
const COMPLETE: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] or holder == false or holder == 'done' then
  redis.call('SET', KEYS[1], 'done', 'PX', ARGV[2])
  return 1
end
return 0
";

/// Frees the key only while this token still holds it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// How long one Redis command or connection attempt may take before the delivery is
/// answered `503`: short, because Monite is waiting, and it will retry.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// An idempotency store in Redis: replicas sharing one Redis never both run a handler for
/// the same event.
///
/// A claim is `SET key token NX PX lease`; marking done and releasing run as Lua scripts
/// that act only while the key still holds this delivery's token, so a delivery whose lease
/// ran out can neither free nor complete another's claim. Keys are
/// `<prefix><namespace>:<key>` (the prefix is `monite-webhooks:` by default) and expire on
/// their own.
///
/// The namespace names your service, and is required: two services that share one Redis
/// and subscribe to the same object type receive the same events, with the same ids, and
/// without a namespace of its own each would take the other's done marks for its own and
/// skip its handlers. Replicas of one service share a namespace.
///
/// Run the Redis that holds these keys with `maxmemory-policy noeviction`: an evicted claim
/// or done mark (under `allkeys-lru` or a `volatile-*` policy), like one lost in a failover
/// to an asynchronous replica, lets an event run twice.
///
/// When Redis cannot be reached, deliveries are answered `503` and no handler runs; the
/// connection is re-established by itself when Redis is back. Cloning shares the
/// connection.
///
/// ```no_run
/// use monite_webhooks::{Dispatcher, Idempotency, Receiver, RedisStore, Secret, Verifier};
///
/// # async fn build() -> Result<Receiver, monite_webhooks::Error> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379/", "billing").await?;
/// let receiver = Receiver::builder(
///     Verifier::new(Secret::new("whsec_from_your_environment")?),
///     Dispatcher::builder().build(),
/// )
/// .idempotency(Idempotency::new(store))
/// .build();
/// # Ok(receiver) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    prefix: Arc<str>,
    namespace: Arc<str>,
    scripts: Arc<Scripts>,
}

struct Scripts {
    claim: Script,
    complete: Script,
    release: Script,
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://host:port/db`), with short timeouts so an
    /// unreachable Redis turns into a quick `503` rather than a hung delivery.
    ///
    /// `namespace` names your service: see the type's documentation.
    ///
    /// # Errors
    /// [`ErrorKind::Misconfigured`] for a namespace that is empty or not 1 to 64 ASCII
    /// letters, digits, `_`, `-` or `.`; [`ErrorKind::StoreUnavailable`] if the URL is
    /// invalid or Redis cannot be reached now.
    ///
    /// [`ErrorKind::Misconfigured`]: crate::ErrorKind::Misconfigured
    /// [`ErrorKind::StoreUnavailable`]: crate::ErrorKind::StoreUnavailable
    pub async fn connect(url: &str, namespace: &str) -> Result<Self> {
        let namespace = checked_namespace(namespace)?;
        let unavailable = |e: redis::RedisError| connect_error("Redis", url, e);
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(unavailable)?;
        Ok(Self::with_namespace(connection, namespace))
    }

    /// A store over a connection you configured yourself; `namespace` names your service.
    ///
    /// # Errors
    /// [`ErrorKind::Misconfigured`] for a namespace that is empty or not 1 to 64 ASCII
    /// letters, digits, `_`, `-` or `.`.
    ///
    /// [`ErrorKind::Misconfigured`]: crate::ErrorKind::Misconfigured
    pub fn new(connection: ConnectionManager, namespace: &str) -> Result<Self> {
        Ok(Self::with_namespace(
            connection,
            checked_namespace(namespace)?,
        ))
    }

    fn with_namespace(connection: ConnectionManager, namespace: Arc<str>) -> Self {
        Self {
            connection,
            namespace,
            prefix: "monite-webhooks:".into(),
            scripts: Arc::new(Scripts {
                claim: Script::new(CLAIM),
                complete: Script::new(COMPLETE),
                release: Script::new(RELEASE),
            }),
        }
    }

    /// Prefixes every key with `prefix` instead of `monite-webhooks:` (before the
    /// namespace), to fit your own key naming or ACL patterns.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into();
        self
    }

    /// The connection and where this store's keys live, for the fleet's keys beside them.
    #[cfg(feature = "client")]
    pub(crate) fn keys(&self) -> RedisKeys {
        RedisKeys {
            connection: self.connection.clone(),
            prefix: self.prefix.clone(),
            namespace: self.namespace.clone(),
        }
    }

    /// Runs one of the scripts on `key` with this delivery's token (and a time to live).
    async fn run(
        &self,
        script: &Script,
        key: &str,
        token: &ClaimToken,
        ttl: Option<Duration>,
    ) -> Result<i64, BoxError> {
        let mut invocation = script.key(format!("{}{}:{key}", self.prefix, self.namespace));
        invocation.arg(token.to_string());
        if let Some(ttl) = ttl {
            invocation.arg(store_millis(ttl));
        }
        Ok(invocation
            .invoke_async(&mut self.connection.clone())
            .await?)
    }
}

/// A connection, and the prefix and namespace keys are made under: what the fleet's budget
/// and leases share with the store they were made from.
#[cfg(feature = "client")]
#[derive(Clone)]
pub(crate) struct RedisKeys {
    pub(crate) connection: ConnectionManager,
    prefix: Arc<str>,
    namespace: Arc<str>,
}

#[cfg(feature = "client")]
impl RedisKeys {
    /// `name` as stored: `<prefix><namespace>:<name>`.
    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}{}:{name}", self.prefix, self.namespace)
    }
}

impl IdempotencyStore for RedisStore {
    /// `true`: the keys live in Redis, which every replica shares.
    fn survives_restart(&self) -> bool {
        true
    }

    async fn claim(
        &self,
        key: &str,
        token: &ClaimToken,
        lease: Duration,
    ) -> Result<Claim, BoxError> {
        match self
            .run(&self.scripts.claim, key, token, Some(lease))
            .await?
        {
            1 => Ok(Claim::Acquired),
            2 => Ok(Claim::Done),
            _ => Ok(Claim::InFlight),
        }
    }

    async fn complete(
        &self,
        key: &str,
        token: &ClaimToken,
        retention: Duration,
    ) -> Result<bool, BoxError> {
        let completed = self
            .run(&self.scripts.complete, key, token, Some(retention))
            .await?;
        Ok(completed == 1)
    }

    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), BoxError> {
        self.run(&self.scripts.release, key, token, None)
            .await
            .map(drop)
    }

    /// Starts the release on the current Tokio runtime (the connection's own), so a retry finds
    /// the key free within a round trip; outside a runtime the lease lapses.
    fn release_detached(&self, key: &str, token: &ClaimToken) {
        super::remote::release_on_runtime(self, key, token);
    }

    /// Finishes the mark on the current Tokio runtime, retrying with back-off while Redis
    /// fails, so that a dropped or failed mark still lands.
    fn complete_detached(&self, key: &str, token: &ClaimToken, retention: Duration) {
        super::remote::complete_on_runtime(self, key, token, retention);
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_done_marker_can_never_be_a_token() {
        let token = ClaimToken::new().to_string();
        assert!(
            token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()),
            "{token}"
        );
        assert!(CLAIM.contains("'done'") && COMPLETE.contains("'done'"));
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        use crate::idempotency::remote::redact_url;
        assert_eq!(
            redact_url("redis://user:pw@host:6379/0"),
            "redis://host:6379/0"
        );
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
    }
}
