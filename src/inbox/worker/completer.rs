//! A batch's done marks, written together by a task of their own, and the heartbeat that
//! extends the leases of its unfinished events.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::inbox::store::{AttemptId, Completed, InboxStore};
use crate::observe;

/// How long a successful attempt may wait for its done mark, so that the done marks of a
/// batch of quick handlers are written together.
const MARK_DONE_WITHIN: Duration = Duration::from_millis(10);
/// The first wait before a failed done mark is written again; it doubles each time.
const MARK_DONE_BACKOFF: Duration = Duration::from_millis(50);

pub(super) fn superseded(attempt: AttemptId) {
    observe::inbox::trouble(
        "settle",
        &format!(
            "{attempt}: the lease lapsed and another attempt holds it; \
             this attempt's result is ignored"
        ),
    );
}

/// A batch's leases still to renew, and since when all of them are known to be held.
pub(super) struct Leases {
    pub(super) held: Vec<AttemptId>,
    // When the last statement that extended every one of them was sent (the claim, or a
    // heartbeat that extended them all): each is held for at least a lease from then.
    pub(super) confirmed: Option<Instant>,
}

pub(super) fn lock(leases: &Mutex<Leases>) -> std::sync::MutexGuard<'_, Leases> {
    leases.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Stops the heartbeat extending these events' leases.
pub(super) fn forget(leases: &Mutex<Leases>, settled: impl IntoIterator<Item = i64>) {
    let settled: Vec<i64> = settled.into_iter().collect();
    lock(leases)
        .held
        .retain(|held| !settled.contains(&held.row));
}

/// Owns a batch's heartbeat task and aborts it when dropped, unwinding included: a
/// heartbeat outliving its batch would renew the leases forever.
pub(super) struct Heartbeat(pub(super) JoinHandle<()>);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Extends the leases of a batch's unfinished events every third of the lease.
pub(super) async fn heartbeat<S: InboxStore>(
    store: Arc<S>,
    leases: Arc<Mutex<Leases>>,
    lease: Duration,
) {
    loop {
        tokio::time::sleep(lease / 3).await;
        let now: Vec<AttemptId> = lock(&leases).held.clone();
        if now.is_empty() {
            return;
        }
        let sent = Instant::now();
        match store.heartbeat(&now, lease).await {
            // Fewer than held: which lapsed is unknown, so each start asks for its own.
            Ok(extended) => lock(&leases).confirmed = (extended >= now.len()).then_some(sent),
            Err(e) => observe::inbox::trouble("heartbeat", &e.to_string()),
        }
    }
}

/// The done marks of a batch's successes, written by a task of their own: a success waits
/// at most [`MARK_DONE_WITHIN`] for its mark whatever the next handler does, and a mark
/// that fails is written again while the heartbeat keeps its lease.
pub(super) struct DoneMarks {
    queue: mpsc::UnboundedSender<Completed>,
    task: JoinHandle<()>,
}

impl DoneMarks {
    pub(super) fn start<S: InboxStore>(
        store: Arc<S>,
        name: Arc<str>,
        leases: Arc<Mutex<Leases>>,
        lease: Duration,
    ) -> Self {
        let (queue, succeeded) = mpsc::unbounded_channel();
        let task = tokio::spawn(write_done_marks(store, name, leases, lease, succeeded));
        Self { queue, task }
    }

    pub(super) fn add(&self, completed: Completed) {
        if self.queue.send(completed).is_err() {
            // The task panicked: the lease lapses at the batch's end and the event runs again.
            observe::inbox::trouble(
                "done mark",
                &format!(
                    "event row {}: no done mark can be written, the lease will lapse",
                    completed.attempt.row
                ),
            );
        }
    }

    /// Waits for the marks still to write.
    pub(super) async fn finish(self) {
        drop(self.queue);
        if let Err(e) = self.task.await {
            observe::inbox::trouble(
                "done mark",
                &format!("the done marks ended early, their leases will lapse: {e}"),
            );
        }
    }
}

/// Writes the successes as they come, those within [`MARK_DONE_WITHIN`] of the first in
/// one statement, until the batch closes the queue.
async fn write_done_marks<S: InboxStore>(
    store: Arc<S>,
    name: Arc<str>,
    leases: Arc<Mutex<Leases>>,
    lease: Duration,
    mut succeeded: mpsc::UnboundedReceiver<Completed>,
) {
    while let Some(first) = succeeded.recv().await {
        let mut marks = vec![first];
        let deadline = tokio::time::Instant::now() + MARK_DONE_WITHIN;
        while let Ok(Some(next)) = tokio::time::timeout_at(deadline, succeeded.recv()).await {
            marks.push(next);
        }
        mark_done(&*store, &name, &leases, lease, &marks).await;
    }
}

/// Writes the done marks of `marks` in one statement, again with back-off while it fails,
/// for up to a lease: their ids stay held meanwhile, so the heartbeat keeps their leases.
async fn mark_done<S: InboxStore>(
    store: &S,
    name: &str,
    leases: &Mutex<Leases>,
    lease: Duration,
    marks: &[Completed],
) {
    let first_try = Instant::now();
    let mut backoff = MARK_DONE_BACKOFF;
    loop {
        match store.complete_batch(name, marks).await {
            Ok(marked) => {
                for lapsed in marks.iter().filter(|c| !marked.contains(&c.attempt.row)) {
                    superseded(lapsed.attempt);
                }
                break;
            }
            Err(e) if first_try.elapsed() + backoff < lease => {
                observe::inbox::trouble(
                    "done mark",
                    &format!(
                        "{} done marks failed, trying again in {backoff:?}: {e}",
                        marks.len()
                    ),
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(lease / 3);
            }
            Err(e) => {
                observe::inbox::trouble(
                    "done mark",
                    &format!(
                        "{} done marks failed for a lease, their leases will lapse and they \
                         will run again: {e}",
                        marks.len()
                    ),
                );
                break;
            }
        }
    }
    forget(leases, marks.iter().map(|c| c.attempt.row));
}
