//! Checkpoints in a file: one line per entity, `<entity id> <Unix microseconds>`, written
//! whole to a temporary file and renamed over the old one, so a process killed mid-write
//! leaves the previous file.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{CheckpointStore, StoreFuture, timestamp};
use crate::error::{Error, ErrorKind, Result};

/// The first line of the file: its format, so a later version can tell.
const HEADER: &str = "# monite-webhooks checkpoints v1";

/// Checkpoints in a file of about 55 bytes per entity (a 36-character id, a space, 16
/// digits, a newline).
///
/// ```
/// use monite_webhooks::client::reconcile::{CheckpointStore, FileCheckpoints};
///
/// # async fn run() -> Result<(), monite_webhooks::Error> {
/// let path = std::env::temp_dir().join(format!("doc-checkpoints-{}", std::process::id()));
/// let store = FileCheckpoints::open(&path)?;
/// let at: monite_webhooks::jiff::Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
/// store.save("c381e88f-7019-4f06-9fbb-3bab8d88348a", at).await?;
/// let again = FileCheckpoints::open(&path)?;
/// assert_eq!(again.load("c381e88f-7019-4f06-9fbb-3bab8d88348a").await?, Some(at));
/// # std::fs::remove_file(&path).unwrap(); Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
/// ```
#[derive(Debug)]
pub struct FileCheckpoints {
    path: PathBuf,
    map: Mutex<BTreeMap<String, i64>>,
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
        let mut map = BTreeMap::new();
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
            map.insert(id.to_owned(), micros);
        }
        Ok(Self {
            path,
            map: Mutex::new(map),
        })
    }

    fn write(&self, map: &BTreeMap<String, i64>) -> Result<()> {
        let mut text = String::with_capacity(HEADER.len() + 1 + map.len() * 56);
        text.push_str(HEADER);
        text.push('\n');
        for (id, micros) in map {
            text.push_str(id);
            text.push(' ');
            text.push_str(&micros.to_string());
            text.push('\n');
        }
        let temporary = self.path.with_extension("tmp");
        let written = std::fs::File::create(&temporary).and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        });
        written
            .and_then(|()| std::fs::rename(&temporary, &self.path))
            .map_err(|e| failed(&self.path, "cannot be written", e))
    }
}

impl CheckpointStore for FileCheckpoints {
    fn load<'a>(&'a self, entity_id: &'a str) -> StoreFuture<'a, Option<jiff::Timestamp>> {
        let micros = self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(entity_id)
            .copied();
        Box::pin(std::future::ready(micros.map(timestamp).transpose()))
    }

    fn save<'a>(&'a self, entity_id: &'a str, at: jiff::Timestamp) -> StoreFuture<'a, ()> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let micros = at.as_microsecond();
        let kept = map.entry(entity_id.to_owned()).or_insert(micros);
        *kept = (*kept).max(micros);
        let result = self.write(&map);
        Box::pin(std::future::ready(result))
    }

    fn all(&self) -> StoreFuture<'_, Vec<(String, jiff::Timestamp)>> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let all = map
            .iter()
            .map(|(id, micros)| Ok((id.clone(), timestamp(*micros)?)))
            .collect::<Result<Vec<_>>>();
        Box::pin(std::future::ready(all))
    }
}

fn failed(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Checkpoints,
        format!("{} {what}: {e}", path.display()),
    )
    .with_source(e)
}
