//! The inbox attempt a dispatch runs as, when an inbox worker runs it: what a
//! transactional handler needs to commit the event's done mark with its own writes
//! (`postgres::complete_tx`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// One claimed attempt at one inbox row, as the worker running it knows it.
#[derive(Debug)]
pub(crate) struct InboxAttempt {
    /// The inbox table the row is in, so that a transactional handler of another store's
    /// tables leaves it to the worker.
    pub(crate) table: Arc<str>,
    pub(crate) id: i64,
    pub(crate) attempt: i32,
    pub(crate) worker: Arc<str>,
    pub(crate) started: Instant,
    // Set once a transactional handler committed the done mark itself.
    completed: AtomicBool,
}

tokio::task_local! {
    static CURRENT: Arc<InboxAttempt>;
}

impl InboxAttempt {
    pub(crate) fn new(table: Arc<str>, id: i64, attempt: i32, worker: Arc<str>) -> Self {
        Self {
            table,
            id,
            attempt,
            worker,
            started: Instant::now(),
            completed: AtomicBool::new(false),
        }
    }

    /// The handler's transaction committed the done mark: the worker must not mark it again.
    pub(crate) fn mark_completed(&self) {
        self.completed.store(true, Ordering::Release);
    }

    pub(crate) fn completed(&self) -> bool {
        self.completed.load(Ordering::Acquire)
    }

    /// Runs `dispatch` as this attempt.
    pub(crate) async fn scope<F: Future>(self: Arc<Self>, dispatch: F) -> F::Output {
        CURRENT.scope(self, dispatch).await
    }

    /// The attempt the current task runs as, if an inbox worker runs it.
    pub(crate) fn current() -> Option<Arc<Self>> {
        CURRENT.try_with(Arc::clone).ok()
    }
}
