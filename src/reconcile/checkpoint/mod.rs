//! Where each entity's sweep got to: the end of the last window whose every event was
//! handled. Kept as a Unix time in microseconds, so an entity costs its id and 8 bytes
//! (under 64 bytes in the file form).

mod file;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;

use std::future::Future;
use std::pin::Pin;

use crate::error::{Error, ErrorKind, Result};

pub use self::file::FileCheckpoints;
pub use self::memory::MemoryCheckpoints;
#[cfg(feature = "postgres")]
pub use self::postgres::PostgresCheckpoints;
#[cfg(feature = "redis")]
pub use self::redis::RedisCheckpoints;

/// A boxed future, as the store's methods return.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Keeps each entity's checkpoint across restarts.
///
/// `save` is called only after every event up to `at` was handled (or counted as one the
/// parser refused), so a checkpoint is never ahead of what was handled; a store that
/// loses a save only makes the next sweep look further back.
///
/// A store may keep saves pending and write them in [`flush`](Self::flush), which the
/// reconciler calls at the end of each cycle and every
/// [`CHECKPOINT_FLUSH_EVERY`](super::CHECKPOINT_FLUSH_EVERY) within one: a pending save
/// is lost with the process, and since checkpoints only move forward, losing one only
/// sweeps its window again.
pub trait CheckpointStore: Send + Sync + 'static {
    /// The entity's checkpoint, if one was saved.
    fn load<'a>(&'a self, entity_id: &'a str) -> StoreFuture<'a, Option<jiff::Timestamp>>;
    /// Saves the entity's checkpoint; later times only matter, an earlier one may be kept.
    fn save<'a>(&'a self, entity_id: &'a str, at: jiff::Timestamp) -> StoreFuture<'a, ()>;
    /// Every checkpoint, for status reports.
    fn all(&self) -> StoreFuture<'_, Vec<(String, jiff::Timestamp)>>;
    /// Writes the saves kept pending, if the store keeps any; once it returns `Ok`, they
    /// survive the process. The default does nothing: a store that writes in `save`.
    fn flush(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }
    /// The fleet of replicas that share this store, if it is shared: the reconciler then
    /// leads by turns with the others ([`ReconcilerBuilder::fleet`](super::ReconcilerBuilder::fleet)).
    /// [`PostgresCheckpoints`] and [`RedisCheckpoints`] answer theirs; the default, `None`,
    /// is a store of one process.
    #[cfg(any(feature = "postgres", feature = "redis"))]
    fn fleet(&self) -> Option<crate::fleet::Fleet> {
        None
    }
}

/// A stored checkpoint (Unix microseconds) as a time, whichever store kept it.
fn timestamp(micros: i64) -> Result<jiff::Timestamp> {
    jiff::Timestamp::from_microsecond(micros).map_err(|e| {
        Error::new(
            ErrorKind::Checkpoints,
            format!("checkpoint {micros} is out of range: {e}"),
        )
        .with_source(e)
    })
}
