//! Checkpoints in a file: one line per entity, `<entity id> <Unix microseconds>`.
//!
//! A save only changes the map in memory and marks it dirty. [`flush`](CheckpointStore::flush)
//! writes the whole map to a temporary file, syncs it and renames it over the old one, on
//! tokio's blocking pool: a cycle over N entities writes the file once (O(N) bytes, not one
//! file per entity), no async thread waits on the disk, and a process killed mid-write
//! leaves the previous file whole.
//!
//! What a crash loses: the saves since the last flush that succeeded. The file then holds
//! older checkpoints, so the next sweeps of those entities start further back: what they
//! find again is a duplicate for the idempotency store, and nothing is skipped.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{CheckpointStore, StoreFuture, timestamp};
use crate::error::{Error, ErrorKind, Result};

/// The first line of the file: its format, so a later version can tell.
const HEADER: &str = "# monite-webhooks checkpoints v1";

/// Checkpoints in a file of about 55 bytes per entity (a 36-character id, a space, 16
/// digits, a newline), for one process.
///
/// Saves are kept in memory until [`flush`](CheckpointStore::flush), which the reconciler
/// calls at the end of each cycle and every
/// [`CHECKPOINT_FLUSH_EVERY`](super::super::CHECKPOINT_FLUSH_EVERY) within one; only a
/// flushed checkpoint survives the process. Each flush rewrites the whole file: past about
/// 100,000 entities (5.5 MB a flush) use `PostgresCheckpoints` or `RedisCheckpoints`,
/// which write one entity per save, as do replicas that share checkpoints.
///
/// ```
/// use monite_webhooks::reconcile::{CheckpointStore, FileCheckpoints};
///
/// # async fn run() -> Result<(), monite_webhooks::Error> {
/// let path = std::env::temp_dir().join(format!("doc-checkpoints-{}", std::process::id()));
/// let store = FileCheckpoints::open(&path)?;
/// let at: monite_webhooks::jiff::Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
/// store.save("c381e88f-7019-4f06-9fbb-3bab8d88348a", at).await?;
/// // Not written yet: a process that ended here would start from the older file.
/// assert_eq!(FileCheckpoints::open(&path)?.load("c381e88f-7019-4f06-9fbb-3bab8d88348a").await?, None);
/// store.flush().await?;
/// let again = FileCheckpoints::open(&path)?;
/// assert_eq!(again.load("c381e88f-7019-4f06-9fbb-3bab8d88348a").await?, Some(at));
/// # std::fs::remove_file(&path).unwrap(); Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct FileCheckpoints {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    map: Mutex<Checkpoints>,
    /// The generation the file holds. Held for a whole flush, so that two flushes never
    /// share the temporary file and an older map never renames over a newer one.
    written: Mutex<u64>,
}

#[derive(Debug, Default)]
struct Checkpoints {
    entries: BTreeMap<String, i64>,
    /// Raised by each save that changed an entry; the map is dirty while it differs from
    /// [`Shared::written`].
    generation: u64,
}

impl FileCheckpoints {
    /// Reads `path`, or starts empty if it does not exist.
    ///
    /// # Errors
    /// [`ErrorKind::Checkpoints`] if it cannot be read or a line is not `<id> <micros>`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(failed(&path, "cannot be read", e)),
        };
        let mut entries = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parsed = line
                .split_once(' ')
                .and_then(|(id, micros)| Some((id, micros.parse::<i64>().ok()?)))
                .filter(|(id, _)| !id.is_empty());
            let Some((id, micros)) = parsed else {
                return Err(Error::new(
                    ErrorKind::Checkpoints,
                    format!(
                        "{}: line {} is not `<entity id> <microseconds>`",
                        path.display(),
                        n + 1
                    ),
                ));
            };
            entries.insert(id.to_owned(), micros);
        }
        Ok(Self {
            shared: Arc::new(Shared {
                path,
                map: Mutex::new(Checkpoints {
                    entries,
                    generation: 0,
                }),
                written: Mutex::new(0),
            }),
        })
    }

    fn map(&self) -> MutexGuard<'_, Checkpoints> {
        self.shared.map()
    }
}

impl Shared {
    fn map(&self) -> MutexGuard<'_, Checkpoints> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the map if it changed since the last write. Blocking: on the blocking pool.
    fn write_pending(&self) -> Result<()> {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let (text, generation) = {
            let map = self.map();
            if map.generation == *written {
                return Ok(());
            }
            (render(&map.entries), map.generation)
        };
        let temporary = self.path.with_extension("tmp");
        let result = std::fs::File::create(&temporary).and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        });
        result
            .and_then(|()| std::fs::rename(&temporary, &self.path))
            .map_err(|e| failed(&self.path, "cannot be written", e))?;
        *written = generation;
        Ok(())
    }
}

fn render(entries: &BTreeMap<String, i64>) -> String {
    let mut text = String::with_capacity(HEADER.len() + 1 + entries.len() * 56);
    text.push_str(HEADER);
    text.push('\n');
    for (id, micros) in entries {
        text.push_str(id);
        text.push(' ');
        text.push_str(&micros.to_string());
        text.push('\n');
    }
    text
}

impl CheckpointStore for FileCheckpoints {
    fn load<'a>(&'a self, entity_id: &'a str) -> StoreFuture<'a, Option<jiff::Timestamp>> {
        let micros = self.map().entries.get(entity_id).copied();
        Box::pin(std::future::ready(micros.map(timestamp).transpose()))
    }

    /// Keeps `at` in memory, pending until the next [`flush`](CheckpointStore::flush).
    fn save<'a>(&'a self, entity_id: &'a str, at: jiff::Timestamp) -> StoreFuture<'a, ()> {
        let mut map = self.map();
        let micros = at.as_microsecond();
        let kept = map.entries.entry(entity_id.to_owned()).or_insert(i64::MIN);
        if micros > *kept {
            *kept = micros;
            map.generation += 1;
        }
        Box::pin(std::future::ready(Ok(())))
    }

    /// Every checkpoint this process knows, flushed or not.
    fn all(&self) -> StoreFuture<'_, Vec<(String, jiff::Timestamp)>> {
        let all = self
            .map()
            .entries
            .iter()
            .map(|(id, micros)| Ok((id.clone(), timestamp(*micros)?)))
            .collect::<Result<Vec<_>>>();
        Box::pin(std::future::ready(all))
    }

    /// Rewrites the file, if a save changed anything since the last flush, on tokio's
    /// blocking pool. Dropping the future does not stop a write under way.
    fn flush(&self) -> StoreFuture<'_, ()> {
        let shared = self.shared.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || shared.write_pending())
                .await
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Checkpoints,
                        format!("the checkpoint file's write did not finish: {e}"),
                    )
                    .with_source(e)
                })?
        })
    }
}

fn failed(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Checkpoints,
        format!("{} {what}: {e}", path.display()),
    )
    .with_source(e)
}
