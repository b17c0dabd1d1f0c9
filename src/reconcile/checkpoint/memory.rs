//! Checkpoints in memory: for tests, and for a process that looks back far enough on
//! start-up anyway.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{CheckpointStore, StoreFuture};

/// Checkpoints in a map; lost when the process ends.
///
/// ```
/// use monite_webhooks::reconcile::{CheckpointStore, MemoryCheckpoints};
///
/// # async fn run() -> Result<(), monite_webhooks::Error> {
/// let store = MemoryCheckpoints::default();
/// let at: monite_webhooks::jiff::Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
/// store.save("entity", at).await?;
/// assert_eq!(store.load("entity").await?, Some(at));
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct MemoryCheckpoints {
    map: Mutex<HashMap<String, jiff::Timestamp>>,
}

impl CheckpointStore for MemoryCheckpoints {
    fn load<'a>(&'a self, entity_id: &'a str) -> StoreFuture<'a, Option<jiff::Timestamp>> {
        let found = self.lock().get(entity_id).copied();
        Box::pin(std::future::ready(Ok(found)))
    }

    fn save<'a>(&'a self, entity_id: &'a str, at: jiff::Timestamp) -> StoreFuture<'a, ()> {
        let mut map = self.lock();
        let kept = map.entry(entity_id.to_owned()).or_insert(at);
        *kept = (*kept).max(at);
        Box::pin(std::future::ready(Ok(())))
    }

    fn all(&self) -> StoreFuture<'_, Vec<(String, jiff::Timestamp)>> {
        let mut all: Vec<_> = self.lock().iter().map(|(k, v)| (k.clone(), *v)).collect();
        all.sort();
        Box::pin(std::future::ready(Ok(all)))
    }
}

impl MemoryCheckpoints {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, jiff::Timestamp>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}
