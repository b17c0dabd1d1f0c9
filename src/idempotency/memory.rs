//! `MemoryStore`: the embedded idempotency store, for one instance.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{Claim, ClaimToken, IdempotencyStore};
use crate::error::BoxError;

/// How many keys a [`MemoryStore`] keeps by default: 100 000, about 20 MB.
pub const DEFAULT_MEMORY_CAPACITY: usize = 100_000;

/// An idempotency store in this process's memory: exactly-once on one instance, with no
/// infrastructure. Behind a load balancer with several replicas, use a shared store
/// (`RedisStore`, or your database through [`IdempotencyStore`]).
///
/// Memory is bounded: at most `capacity` keys (about 200 bytes each with Monite's ids).
/// When full, the oldest key is evicted first, expired or not; an evicted event that Monite
/// delivers again would run again, so size the capacity above the events you receive in the
/// retention window (8 days by default). Entries also expire on their own.
///
/// Cloning shares the store.
#[derive(Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    capacity: usize,
}

#[derive(Default)]
struct State {
    entries: HashMap<Arc<str>, Entry>,
    // Keys in the order they were claimed, for eviction; a key claimed again after it
    // expired appears twice, and only the entry whose generation matches counts.
    order: VecDeque<(Arc<str>, u64)>,
    next_generation: u64,
}

struct Entry {
    holder: Holder,
    expires: Instant,
    generation: u64,
}

enum Holder {
    Claimed(ClaimToken),
    Done,
}

impl MemoryStore {
    /// A store holding at most [`DEFAULT_MEMORY_CAPACITY`] keys.
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_MEMORY_CAPACITY)
    }

    /// A store holding at most `capacity` keys (at least one).
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            state: Arc::default(),
            capacity: capacity.max(1),
        }
    }

    /// How many keys the store holds now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the store holds no keys.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // No code path panics while holding the lock; if one ever did, the map is still
        // consistent, so carry on rather than fail every later delivery.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn claim_now(&self, key: &str, token: &ClaimToken, lease: Duration) -> Claim {
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(entry) = state.entries.get(key).filter(|e| e.expires > now) {
            return match entry.holder {
                Holder::Done => Claim::Done,
                Holder::Claimed(_) => Claim::InFlight,
            };
        }
        state.put(key, Holder::Claimed(*token), now + lease, self.capacity);
        Claim::Acquired
    }

    /// Runs `change` on the entry for `key` if `token` holds it; answers whether it did.
    fn if_held(
        &self,
        key: &str,
        token: &ClaimToken,
        change: impl FnOnce(&mut State, &str),
    ) -> bool {
        let mut state = self.lock();
        let held = matches!(
            state.entries.get(key),
            Some(Entry { holder: Holder::Claimed(holder), .. }) if holder == token
        );
        if held {
            change(&mut state, key);
        }
        held
    }
}

impl State {
    /// Adds an entry for `key`, newest in the eviction order.
    fn put(&mut self, key: &str, holder: Holder, expires: Instant, capacity: usize) {
        let key: Arc<str> = key.into();
        let generation = self.next_generation;
        self.next_generation += 1;
        self.entries.insert(
            key.clone(),
            Entry {
                holder,
                expires,
                generation,
            },
        );
        self.order.push_back((key, generation));
        self.evict(capacity);
    }

    fn evict(&mut self, capacity: usize) {
        while self.entries.len() > capacity {
            let Some((key, generation)) = self.order.pop_front() else {
                break;
            };
            if self
                .entries
                .get(&key)
                .is_some_and(|e| e.generation == generation)
            {
                self.entries.remove(&key);
            }
        }
        // Released and re-claimed keys leave stale places behind; drop them before the
        // queue outgrows the map.
        if self.order.len() > 2 * capacity {
            let entries = &self.entries;
            self.order.retain(|(key, generation)| {
                entries
                    .get(key)
                    .is_some_and(|e| e.generation == *generation)
            });
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl IdempotencyStore for MemoryStore {
    /// `false`: the map is this process's own, empty after a restart.
    fn survives_restart(&self) -> bool {
        false
    }

    async fn claim(
        &self,
        key: &str,
        token: &ClaimToken,
        lease: Duration,
    ) -> Result<Claim, BoxError> {
        Ok(self.claim_now(key, token, lease))
    }

    async fn complete(
        &self,
        key: &str,
        token: &ClaimToken,
        retention: Duration,
    ) -> Result<bool, BoxError> {
        let now = Instant::now();
        let mut state = self.lock();
        let expires = now + retention;
        // As the trait says: while this token holds the key, while nobody does, or once
        // it is done already.
        match state.entries.get_mut(key) {
            Some(entry)
                if entry.expires <= now
                    || matches!(entry.holder, Holder::Done)
                    || matches!(entry.holder, Holder::Claimed(holder) if holder == *token) =>
            {
                entry.holder = Holder::Done;
                entry.expires = expires;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => {
                state.put(key, Holder::Done, expires, self.capacity);
                Ok(true)
            }
        }
    }

    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), BoxError> {
        self.if_held(key, token, |state, key| {
            state.entries.remove(key);
        });
        Ok(())
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(60);

    #[test]
    fn capacity_bounds_memory_and_evicts_the_oldest_first() {
        let store = MemoryStore::with_capacity(3);
        let token = ClaimToken::new();
        for key in ["a", "b", "c", "d"] {
            assert_eq!(store.claim_now(key, &token, LEASE), Claim::Acquired);
        }
        assert_eq!(store.len(), 3);
        // "a" was evicted, so it can be claimed again; "d" is still held.
        assert_eq!(
            store.claim_now("d", &ClaimToken::new(), LEASE),
            Claim::InFlight
        );
        assert_eq!(
            store.claim_now("a", &ClaimToken::new(), LEASE),
            Claim::Acquired
        );
    }

    #[test]
    fn repeated_release_and_claim_keeps_the_order_queue_bounded() {
        let store = MemoryStore::with_capacity(4);
        for _ in 0..1000 {
            let token = ClaimToken::new();
            assert_eq!(store.claim_now("retried", &token, LEASE), Claim::Acquired);
            assert!(store.if_held("retried", &token, |state, key| {
                state.entries.remove(key);
            }));
        }
        assert!(store.lock().order.len() <= 8);
    }

    #[test]
    fn only_the_holder_can_complete_or_release() {
        let store = MemoryStore::new();
        let holder = ClaimToken::new();
        assert_eq!(store.claim_now("k", &holder, LEASE), Claim::Acquired);
        assert!(!store.if_held("k", &ClaimToken::new(), |_, _| {}));
        assert!(store.if_held("k", &holder, |_, _| {}));
    }

    /// The completion rule the Redis and PostgreSQL stores follow too: the holder, or
    /// anyone once nobody holds the key or it is done, marks it done; never while another
    /// token holds it.
    #[tokio::test]
    async fn completes_while_held_by_the_token_or_by_nobody() {
        let (first, second) = (ClaimToken::new(), ClaimToken::new());
        let held = MemoryStore::new();
        assert_eq!(held.claim_now("b", &second, LEASE), Claim::Acquired);
        assert!(!held.complete("b", &first, LEASE).await.unwrap());
        assert!(held.complete("b", &second, LEASE).await.unwrap());
        // Done already: a retried mark (its first answer lost) succeeds, by anyone.
        assert!(held.complete("b", &second, LEASE).await.unwrap());
        assert!(held.complete("b", &first, LEASE).await.unwrap());

        // `a` is evicted to make room for `b`: nobody holds it, and its handlers ran.
        let evicting = MemoryStore::with_capacity(1);
        assert_eq!(evicting.claim_now("a", &first, LEASE), Claim::Acquired);
        assert_eq!(evicting.claim_now("b", &second, LEASE), Claim::Acquired);
        assert!(evicting.complete("a", &first, LEASE).await.unwrap());
        assert_eq!(evicting.claim_now("a", &second, LEASE), Claim::Done);

        let expired = MemoryStore::new();
        assert_eq!(
            expired.claim_now("c", &first, Duration::ZERO),
            Claim::Acquired
        );
        assert!(expired.complete("c", &second, LEASE).await.unwrap());
        assert_eq!(expired.claim_now("c", &first, LEASE), Claim::Done);
    }
}
