//! Handle each event once, across Monite's retries and across replicas: the
//! [`Idempotency`] settings a receiver runs with, the [`IdempotencyStore`] contract, and the
//! stores this crate ships.

mod key;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod remote;
mod store;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use self::store::ErasedStore;
use crate::error::BoxError;
use crate::event::Event;
use crate::observe;

pub use self::key::KeyScope;
pub use self::memory::{DEFAULT_MEMORY_CAPACITY, MemoryStore};
#[cfg(feature = "postgres")]
pub use self::postgres::transactional::{Transactional, TxFuture};
#[cfg(feature = "postgres")]
pub use self::postgres::{DEFAULT_PRUNE_INTERVAL, DEFAULT_TABLE_PREFIX, PostgresStore};
#[cfg(all(feature = "redis", feature = "client"))]
pub(crate) use self::redis::RedisKeys;
#[cfg(feature = "redis")]
pub use self::redis::RedisStore;
#[cfg(any(feature = "postgres", all(feature = "redis", feature = "client")))]
pub(crate) use self::remote::store_millis;
pub use self::store::{Claim, ClaimToken, IdempotencyStore};

/// How long a delivery may hold its claim on an event before another may take the event
/// over: five minutes. Longer than any handler should run; shorter than Monite's first
/// retry gap would make a crashed instance's event wait for a retry, never lose it.
pub const DEFAULT_CLAIM_LEASE: Duration = Duration::from_secs(5 * 60);

/// How long a handled event is remembered: eight days, Monite's week of retries plus margin.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(8 * 24 * 60 * 60);

/// The longest lease or retention a store is asked for, one year: longer values are
/// clamped to it (Redis, for one, refuses expiry times past `i64::MAX` milliseconds).
pub const MAX_STORE_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Why a done mark did not land although the handlers succeeded.
pub(crate) const TAKEN_OVER: &str = "another delivery took the event over after this one's \
     lease ran out; raise the lease above your slowest handler";

/// The idempotency settings a receiver runs with: a store, the lease, the retention.
///
/// ```
/// use std::time::Duration;
/// use monite_webhooks::{Idempotency, MemoryStore};
///
/// let idempotency = Idempotency::new(MemoryStore::new())
///     .with_lease(Duration::from_secs(60))
///     .with_retention(Duration::from_secs(10 * 24 * 60 * 60));
/// # let _ = idempotency;
/// ```
#[derive(Clone)]
pub struct Idempotency {
    store: Arc<dyn ErasedStore>,
    lease: Duration,
    retention: Duration,
    scope: KeyScope,
    legacy_window: Option<Duration>,
}

impl Idempotency {
    /// `store` with the default lease, retention and key scope.
    #[must_use]
    pub fn new(store: impl IdempotencyStore) -> Self {
        Self {
            store: Arc::new(store),
            lease: DEFAULT_CLAIM_LEASE,
            retention: DEFAULT_RETENTION,
            scope: KeyScope::default(),
            legacy_window: None,
        }
    }

    /// How long a delivery holds its claim. Defaults to [`DEFAULT_CLAIM_LEASE`] (5 minutes); make
    /// it longer than your slowest handler, or a retry may run the event a second time.
    /// At most [`MAX_STORE_DURATION`].
    #[must_use]
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease.min(MAX_STORE_DURATION);
        self
    }

    /// How long a handled event is remembered. Defaults to [`DEFAULT_RETENTION`] (8 days).
    /// At most [`MAX_STORE_DURATION`].
    #[must_use]
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention.min(MAX_STORE_DURATION);
        self
    }

    /// Deduplicates id-less 2022 (`webhook_settings`) envelopes by their body for
    /// `window` (at most [`MAX_STORE_DURATION`]).
    ///
    /// Off by default: such an envelope (`{object_id, object_type, action, name}`) names no
    /// event, so two real updates of one object are byte-identical, and deduplicating them
    /// for the 8-day retention would answer the second `200` without running it. Without
    /// a window every delivery of them runs (at least once); a short window (minutes) only
    /// merges a retry of a delivery whose answer was lost.
    #[must_use]
    pub fn with_legacy_dedup_window(mut self, window: Duration) -> Self {
        self.legacy_window = Some(window.min(MAX_STORE_DURATION));
        self
    }

    /// Which deliveries count as the same event. Defaults to [`KeyScope::PerEvent`].
    #[must_use]
    pub fn with_scope(mut self, scope: KeyScope) -> Self {
        self.scope = scope;
        self
    }

    /// The key a delivery of `event` is recorded under, or `None` when it is not
    /// deduplicated.
    ///
    /// - With an event id: `evt:<id>` (or `sub:<webhook_subscription_id>:evt:<id>` for
    ///   [`KeyScope::PerSubscription`], when the envelope names a subscription).
    /// - 2022 `webhook_settings` envelopes have no id: `None`, unless
    ///   [`with_legacy_dedup_window`](Self::with_legacy_dedup_window) is set; then
    ///   `body:<hex SHA-256 of the body>`.
    #[must_use]
    pub fn key(&self, event: &Event) -> Option<String> {
        self.scope.key(event, self.legacy_window.is_some())
    }

    pub(crate) async fn claim(&self, key: &str, token: &ClaimToken) -> Result<Claim, BoxError> {
        let call = self.store.claim(key, token, self.lease);
        observe::store_call("claim", call).await
    }

    pub(crate) async fn complete(&self, key: &str, token: &ClaimToken) -> Result<bool, BoxError> {
        let call = self.store.complete(key, token, self.retention_of(key));
        observe::store_call("complete", call).await
    }

    pub(crate) fn complete_detached(&self, key: &str, token: &ClaimToken) {
        self.store
            .complete_detached(key, token, self.retention_of(key));
    }

    /// Whether the store outlives the process ([`IdempotencyStore::survives_restart`]).
    #[cfg(feature = "client")]
    pub(crate) fn survives_restart(&self) -> bool {
        self.store.survives_restart()
    }

    /// How long a handled event is remembered.
    #[cfg(feature = "client")]
    pub(crate) fn retention(&self) -> Duration {
        self.retention
    }

    fn retention_of(&self, key: &str) -> Duration {
        match self.legacy_window {
            Some(window) if key.starts_with("body:") => window,
            _ => self.retention,
        }
    }

    pub(crate) async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), BoxError> {
        observe::store_call("release", self.store.release(key, token)).await
    }

    pub(crate) fn release_detached(&self, key: &str, token: &ClaimToken) {
        self.store.release_detached(key, token);
    }
}

impl fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("lease", &self.lease)
            .field("retention", &self.retention)
            .field("scope", &self.scope)
            .field("legacy_window", &self.legacy_window)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_scheme() {
        let idempotency = Idempotency::new(MemoryStore::new());
        let current = Event::parse(
            r#"{"id":"e1","object_type":"tag","action":"tag.created","webhook_subscription_id":"s1"}"#,
        )
        .unwrap();
        assert_eq!(idempotency.key(&current).unwrap(), "evt:e1");
        let per_subscription = idempotency.clone().with_scope(KeyScope::PerSubscription);
        assert_eq!(per_subscription.key(&current).unwrap(), "sub:s1:evt:e1");

        let legacy =
            Event::parse(r#"{"object_id":"o","object_type":"tag","action":"update"}"#).unwrap();
        assert_eq!(
            idempotency.key(&legacy),
            None,
            "not deduplicated by default"
        );
        let windowed = idempotency.with_legacy_dedup_window(Duration::from_secs(120));
        let key = windowed.key(&legacy).unwrap();
        assert!(key.starts_with("body:") && key.len() == 69, "{key}");
        assert_eq!(Some(key), windowed.key(&legacy.clone()));
    }

    #[test]
    fn absurd_durations_are_clamped() {
        let idempotency = Idempotency::new(MemoryStore::new())
            .with_lease(Duration::MAX)
            .with_retention(Duration::MAX)
            .with_legacy_dedup_window(Duration::MAX);
        assert_eq!(idempotency.lease, MAX_STORE_DURATION);
        assert_eq!(idempotency.retention, MAX_STORE_DURATION);
        assert_eq!(idempotency.legacy_window, Some(MAX_STORE_DURATION));
    }
}
