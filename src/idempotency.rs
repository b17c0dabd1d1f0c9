//! Handling each event once across Monite's retries and across replicas.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sha2::Digest as _;

use crate::error::BoxError;
use crate::event::Event;
use crate::metrics;
use crate::signature::hex;

/// How long a delivery may hold its claim before another may take the event over: five
/// minutes. Longer than any handler should run; shorter than Monite's first retry gap
/// would make a crashed instance's event wait for a retry, never lose it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(5 * 60);

/// How long a handled event is remembered: eight days, Monite's week of retries plus margin.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(8 * 24 * 60 * 60);

/// The longest lease or retention a store is asked for, one year: longer values are
/// clamped to it (Redis, for one, refuses expiry times past `i64::MAX` milliseconds).
pub const MAX_STORE_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Milliseconds for a store's expiry or interval: at least 1 (Redis refuses `PX 0`), at
/// most [`MAX_STORE_DURATION`], so that now plus it stays a valid time in every store.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn store_millis(duration: Duration) -> i64 {
    // A year in milliseconds fits in an `i64` many times over.
    i64::try_from(duration.min(MAX_STORE_DURATION).as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}

/// What a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Claim {
    /// The key was free (or its lease had run out): this delivery now holds it.
    Acquired,
    /// An earlier delivery handled the event: answer `200` without running handlers.
    Done,
    /// Another delivery holds the key right now: answer `409`, Monite retries later.
    InFlight,
}

/// A per-delivery token: the proof, in the store, that a claim is this delivery's own, so
/// a delivery whose lease ran out cannot release or complete another's claim.
///
/// Two integers, so making one costs no allocation; `Display` gives 32 hex digits for
/// stores that keep text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClaimToken {
    process: u64,
    sequence: u64,
}

impl ClaimToken {
    /// A fresh token, unique across processes with overwhelming probability.
    ///
    /// It reads `std::process::id`, which panics on `wasm32-unknown-unknown` and WASI:
    /// there, give the receiver tokens from [`from_parts`](Self::from_parts) with
    /// [`ReceiverBuilder::claim_tokens`](crate::ReceiverBuilder::claim_tokens).
    #[must_use]
    pub fn new() -> Self {
        static PROCESS: OnceLock<u64> = OnceLock::new();
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        // `RandomState` is seeded from the OS: random enough to tell replicas apart, with no
        // dependency for it; drawn once per process.
        let process = *PROCESS.get_or_init(|| RandomState::new().hash_one(std::process::id()));
        Self {
            process,
            sequence: SEQUENCE.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl ClaimToken {
    /// A token from an `instance` id, random per running instance (from the host's random
    /// source), and a `sequence` number that instance never repeats.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use monite_webhooks::ClaimToken;
    ///
    /// let instance = 0x5eed_1234_abcd_ef00; // from `getrandom`, `crypto.getRandomValues`...
    /// let sequence = AtomicU64::new(0);
    /// let next = move || ClaimToken::from_parts(instance, sequence.fetch_add(1, Ordering::Relaxed));
    /// assert_ne!(next(), next());
    /// ```
    #[must_use]
    pub const fn from_parts(instance: u64, sequence: u64) -> Self {
        Self {
            process: instance,
            sequence,
        }
    }
}

impl Default for ClaimToken {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ClaimToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}{:016x}", self.process, self.sequence)
    }
}

/// Where the receiver records which events are being handled and which are done.
///
/// Implement it over your own database to keep this state beside your data; the crate ships
/// [`MemoryStore`](crate::MemoryStore) and, with the `redis` feature, `RedisStore`. Each
/// operation must be atomic with respect to the others on the same key:
///
/// - `claim` takes a free key (absent, or whose lease ran out) for `lease` and answers
///   [`Claim::Acquired`]; a key marked done answers [`Claim::Done`]; a key held by another
///   token answers [`Claim::InFlight`].
/// - `complete` marks the key done for `retention` if `token` still holds it, if nobody
///   does (the key is absent, or its lease ran out and no one took it over: the handlers
///   did run, so the event must not run again), or if it is done already (so that a
///   retried `complete` whose first answer was lost succeeds); it answers whether the key
///   is now done, and `false` means another delivery holds the key.
/// - `release` frees the key, only if `token` still holds it, so a retry can run the
///   handlers again.
///
/// An `Err` means the store could not be reached: the receiver then answers `503` and runs
/// no handler, and Monite retries.
///
/// A delivery dropped before its handlers succeeded (the caller hung up while the claim or
/// a handler was pending) calls [`release_detached`](Self::release_detached) from `Drop`,
/// where nothing can be awaited; one dropped after they succeeded, while `complete` was
/// pending, calls [`complete_detached`](Self::complete_detached), and so does a `complete`
/// that failed: once the handlers succeeded, the event must end done, never free.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `key` for `lease`.
    fn claim(
        &self,
        key: &str,
        token: &ClaimToken,
        lease: Duration,
    ) -> impl Future<Output = Result<Claim, BoxError>> + Send;

    /// Marks `key` done for `retention`, if `token` still holds it.
    fn complete(
        &self,
        key: &str,
        token: &ClaimToken,
        retention: Duration,
    ) -> impl Future<Output = Result<bool, BoxError>> + Send;

    /// Frees `key`, if `token` still holds it.
    fn release(
        &self,
        key: &str,
        token: &ClaimToken,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// Frees `key`, if `token` still holds it, without waiting: called from `Drop` when a
    /// delivery is dropped mid-handler, so that Monite's retry finds the key free.
    ///
    /// The default polls [`release`](Self::release) once, which frees the key in a store
    /// that answers without waiting on I/O (such as [`MemoryStore`](crate::MemoryStore));
    /// otherwise the claim lapses when its lease runs out, and retries until then are
    /// answered `409`. A store that talks to a server should start the release on its
    /// runtime instead, as `RedisStore` does.
    fn release_detached(&self, key: &str, token: &ClaimToken) {
        poll_once(self.release(key, token));
    }

    /// Marks `key` done, as [`complete`](Self::complete) does, without waiting: called when
    /// a delivery whose handlers succeeded is dropped while its `complete` is pending, and
    /// after a `complete` that failed.
    ///
    /// The default polls `complete` once, which is enough for a store that answers without
    /// waiting on I/O (such as [`MemoryStore`](crate::MemoryStore)). A store that talks to a
    /// server must finish the mark in the background, retrying with back-off, as
    /// `RedisStore` and `PostgresStore` do: otherwise the claim lapses at the end of its
    /// lease and the next delivery of the event runs the handlers again.
    fn complete_detached(&self, key: &str, token: &ClaimToken, retention: Duration) {
        poll_once(self.complete(key, token, retention));
    }
}

/// Polls `future` once and drops it: pending or failed alike, the lease is the fallback.
fn poll_once<T>(future: impl Future<Output = T>) {
    let future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    let _ = future.poll(&mut context);
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send + 'a>>;

// Object-safe form of the trait, so the receiver can hold any store.
trait ErasedStore: Send + Sync {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        token: &'a ClaimToken,
        lease: Duration,
    ) -> BoxFuture<'a, Claim>;
    fn complete<'a>(
        &'a self,
        key: &'a str,
        token: &'a ClaimToken,
        retention: Duration,
    ) -> BoxFuture<'a, bool>;
    fn release<'a>(&'a self, key: &'a str, token: &'a ClaimToken) -> BoxFuture<'a, ()>;
    fn release_detached(&self, key: &str, token: &ClaimToken);
    fn complete_detached(&self, key: &str, token: &ClaimToken, retention: Duration);
}

impl<S: IdempotencyStore> ErasedStore for S {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        token: &'a ClaimToken,
        lease: Duration,
    ) -> BoxFuture<'a, Claim> {
        Box::pin(IdempotencyStore::claim(self, key, token, lease))
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        token: &'a ClaimToken,
        retention: Duration,
    ) -> BoxFuture<'a, bool> {
        Box::pin(IdempotencyStore::complete(self, key, token, retention))
    }

    fn release<'a>(&'a self, key: &'a str, token: &'a ClaimToken) -> BoxFuture<'a, ()> {
        Box::pin(IdempotencyStore::release(self, key, token))
    }

    fn release_detached(&self, key: &str, token: &ClaimToken) {
        IdempotencyStore::release_detached(self, key, token);
    }

    fn complete_detached(&self, key: &str, token: &ClaimToken, retention: Duration) {
        IdempotencyStore::complete_detached(self, key, token, retention);
    }
}

/// Starts `store.release` on the current Tokio runtime and returns at once: what a store
/// that talks to a server does from `Drop`. Outside a runtime the lease lapses instead.
///
/// It releases twice: now, and once more a second later. A claim dropped on its way may
/// still be waiting in the server (behind a lock, on another pooled connection) when the
/// first release arrives; the token is this delivery's alone, so the second can only free
/// a claim nobody will use.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn release_on_runtime<S: IdempotencyStore + Clone>(
    store: &S,
    key: &str,
    token: &ClaimToken,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let (store, key, token) = (store.clone(), key.to_owned(), *token);
    runtime.spawn(async move {
        for pause in [Duration::ZERO, LATE_CLAIM_WAIT] {
            tokio::time::sleep(pause).await;
            if let Err(e) = store.release(&key, &token).await {
                crate::trace::store_trouble(&key, &format!("releasing the claim failed: {e}"));
            }
        }
    });
}

/// How long after a dropped claim [`release_on_runtime`] releases it a second time.
#[cfg(any(feature = "redis", feature = "postgres"))]
const LATE_CLAIM_WAIT: Duration = Duration::from_secs(1);

/// The pauses between the attempts of a detached done mark: doubling from 100 ms to 30 s,
/// about two and a half minutes in all, within the default five-minute lease. Past the
/// lease the mark still lands unless another delivery took the key over.
#[cfg(any(feature = "redis", feature = "postgres"))]
const COMPLETE_BACKOFF: [Duration; 11] = {
    let mut pauses = [Duration::ZERO; 11];
    let mut i = 1;
    while i < pauses.len() {
        let millis = 100u64 << (i - 1);
        pauses[i] = Duration::from_millis(if millis > 30_000 { 30_000 } else { millis });
        i += 1;
    }
    pauses
};

/// Finishes `store.complete` on the current Tokio runtime, retrying with back-off while the
/// store fails: what a store that talks to a server does when a delivery whose handlers
/// succeeded was dropped, or its done mark failed. Outside a runtime the lease lapses.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn complete_on_runtime<S: IdempotencyStore + Clone>(
    store: &S,
    key: &str,
    token: &ClaimToken,
    retention: Duration,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        crate::trace::store_trouble(key, "no runtime to finish the done mark on");
        return;
    };
    let (store, key, token) = (store.clone(), key.to_owned(), *token);
    runtime.spawn(async move {
        let mut last = None;
        for pause in COMPLETE_BACKOFF {
            tokio::time::sleep(pause).await;
            match store.complete(&key, &token, retention).await {
                Ok(true) => return,
                Ok(false) => return crate::trace::store_trouble(&key, TAKEN_OVER),
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            crate::trace::store_trouble(
                &key,
                &format!(
                    "marking done failed {} times, giving up: {e}",
                    COMPLETE_BACKOFF.len()
                ),
            );
        }
    });
}

/// Why a done mark did not land although the handlers succeeded.
pub(crate) const TAKEN_OVER: &str = "another delivery took the event over after this one's \
     lease ran out; raise the lease above your slowest handler";

/// Checks the namespace a shared store is given: what keeps two services on one Redis or
/// one database from taking each other's events for their own (both receive event `E` on
/// subscriptions of their own; whichever handles it first would mark `evt:E` done for both).
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn checked_namespace(namespace: &str) -> crate::error::Result<std::sync::Arc<str>> {
    let valid = !namespace.is_empty()
        && namespace.len() <= 64
        && namespace
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(namespace.into())
    } else {
        Err(crate::error::Error::new(
            crate::error::ErrorKind::Misconfigured,
            format!(
                "{:?} is not a store namespace: name your service with 1 to 64 ASCII letters, \
                 digits, `_`, `-` or `.`",
                namespace.chars().take(64).collect::<String>()
            ),
        ))
    }
}

/// A store's URL without its password, for error messages.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn redact_url(url: &str) -> String {
    // PostgreSQL also takes `?password=…`; drop a query that names one.
    let url = match url.split_once('?') {
        Some((base, query)) if query.contains("password") => base,
        _ => url,
    };
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://[redacted]@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Which deliveries count as the same event.
///
/// Monite creates one subscription per object type, and an event has one object type, so
/// an event reaches one subscription: its `id` alone identifies it. Events fetched from
/// `GET /events` (recovery) name no subscription, so only the event id lets a recovered
/// event and its delivery share a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum KeyScope {
    /// The event `id` alone: an event is handled once however many subscriptions deliver
    /// it, and once whether it was delivered, recovered from `GET /events`, or both. The
    /// default.
    #[default]
    PerEvent,
    /// `(webhook_subscription_id, id)`: each subscription's delivery of an event is handled
    /// once. Only for two subscriptions of one object type whose deliveries must each run;
    /// a recovered event then needs `Recovery::as_subscription` to match its delivery.
    PerSubscription,
}

impl KeyScope {
    /// An event's key in this scope (see [`Idempotency::key`]); a legacy envelope's, only
    /// when `legacy_dedup` (then keyed by its body).
    pub(crate) fn key(self, event: &Event, legacy_dedup: bool) -> Option<String> {
        Some(match (event.id(), event.webhook_subscription_id(), self) {
            // `concat` sizes the key once; `format!` costs a third of a duplicate's dispatch.
            (Some(id), Some(subscription), Self::PerSubscription) => {
                ["sub:", subscription, ":evt:", id].concat()
            }
            (Some(id), _, _) => ["evt:", id].concat(),
            (None, _, _) => {
                if !legacy_dedup {
                    return None;
                }
                let mut key = String::with_capacity(69);
                key.push_str("body:");
                hex::encode_into(&sha2::Sha256::digest(event.body()), &mut key);
                key
            }
        })
    }
}

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
            lease: DEFAULT_LEASE,
            retention: DEFAULT_RETENTION,
            scope: KeyScope::default(),
            legacy_window: None,
        }
    }

    /// How long a delivery holds its claim. Defaults to [`DEFAULT_LEASE`] (5 minutes); make
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
        metrics::store_call("claim", call).await
    }

    pub(crate) async fn complete(&self, key: &str, token: &ClaimToken) -> Result<bool, BoxError> {
        let call = self.store.complete(key, token, self.retention_of(key));
        metrics::store_call("complete", call).await
    }

    pub(crate) fn complete_detached(&self, key: &str, token: &ClaimToken) {
        self.store
            .complete_detached(key, token, self.retention_of(key));
    }

    /// How long `key` is remembered once done.
    fn retention_of(&self, key: &str) -> Duration {
        match self.legacy_window {
            Some(window) if key.starts_with("body:") => window,
            _ => self.retention,
        }
    }

    pub(crate) async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), BoxError> {
        metrics::store_call("release", self.store.release(key, token)).await
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

    #[cfg(any(feature = "redis", feature = "postgres"))]
    #[test]
    fn store_intervals_stay_in_range() {
        assert_eq!(store_millis(Duration::ZERO), 1);
        assert_eq!(store_millis(Duration::from_secs(2)), 2000);
        assert_eq!(
            store_millis(Duration::MAX),
            i64::try_from(MAX_STORE_DURATION.as_millis()).unwrap()
        );
    }
    use crate::MemoryStore;

    #[test]
    fn tokens_are_unique() {
        let tokens: std::collections::HashSet<_> = (0..1000).map(|_| ClaimToken::new()).collect();
        assert_eq!(tokens.len(), 1000);
    }

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
