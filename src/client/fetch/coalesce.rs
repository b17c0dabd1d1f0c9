//! Overlapping fetches of one object share one request: the first runs it, the others wait
//! for its answer. Nothing is kept once it is answered: a later fetch asks again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::StatusCode;
use tokio::sync::OnceCell;

use crate::error::{Error, ErrorKind, Result};

/// An answer every waiter can have a copy of (the crate's `Error` is not `Clone`).
type Shared = std::result::Result<Bytes, Failed>;

#[derive(Clone)]
struct Failed {
    kind: ErrorKind,
    message: String,
    api: Option<(StatusCode, String)>,
}

impl Failed {
    fn of(error: &Error) -> Self {
        Self {
            kind: error.kind(),
            message: error.to_string(),
            api: error
                .api_status()
                .map(|status| (status, error.api_message().unwrap_or_default().to_owned())),
        }
    }

    fn error(&self) -> Error {
        let error = Error::new(self.kind, self.message.clone());
        match &self.api {
            Some((status, message)) => error.with_api(*status, message.clone()),
            None => error,
        }
    }
}

type Key = (Option<String>, String);

/// The fetches under way, by entity and path.
#[derive(Default)]
pub(in crate::client) struct InFlight {
    calls: Mutex<HashMap<Key, Arc<OnceCell<Shared>>>>,
}

impl InFlight {
    /// Runs `call` unless a fetch of the same entity and path is under way, whose answer is
    /// then this one's too. If the fetch running it is dropped, a waiter runs it instead.
    pub(in crate::client) async fn run<F, Fut>(
        &self,
        entity: Option<&str>,
        path: &str,
        call: F,
    ) -> Result<Bytes>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes>>,
    {
        let key = (entity.map(str::to_owned), path.to_owned());
        let cell = self
            .lock()
            .entry(key.clone())
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone();
        let shared = cell
            .get_or_init(|| async { call().await.map_err(|e| Failed::of(&e)) })
            .await
            .clone();
        {
            let mut calls = self.lock();
            if calls.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                calls.remove(&key);
            }
        }
        shared.map_err(|f| f.error())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<OnceCell<Shared>>>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight")
            .field("under_way", &self.lock().len())
            .finish()
    }
}
