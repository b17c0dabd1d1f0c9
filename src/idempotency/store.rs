//! The store contract: [`IdempotencyStore`], what a claim finds, the token that proves a
//! claim is a delivery's own, and the object-safe form the receiver holds.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::BoxError;

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
    /// use monite_webhooks::idempotency::ClaimToken;
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

    /// Whether what the store remembers outlives this process (a database or a server
    /// every replica shares), so that an event handled before a restart is a duplicate
    /// after it. `false` by default: a store must say so itself.
    ///
    /// The reconciler (`reconcile::Reconciler`) sweeps again, after every
    /// restart, the lookback before each saved checkpoint: over a store that forgets on
    /// restart those events would run a second time, so it refuses such a store unless
    /// told otherwise.
    fn survives_restart(&self) -> bool {
        false
    }
}

/// Polls `future` once and drops it: pending or failed alike, the lease is the fallback.
fn poll_once<T>(future: impl Future<Output = T>) {
    let future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    let _ = future.poll(&mut context);
}

pub(super) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send + 'a>>;

// Object-safe form of the trait, so the receiver can hold any store.
pub(super) trait ErasedStore: Send + Sync {
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
    // Asked only by the reconciler.
    #[cfg(feature = "client")]
    fn survives_restart(&self) -> bool;
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

    #[cfg(feature = "client")]
    fn survives_restart(&self) -> bool {
        IdempotencyStore::survives_restart(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique() {
        let tokens: std::collections::HashSet<_> = (0..1000).map(|_| ClaimToken::new()).collect();
        assert_eq!(tokens.len(), 1000);
    }
}
