//! Running a delivery's handlers in a task of their own, so they outlive the request.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// A delivery's claim, handlers and done mark, as one task to run to completion.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Starts a [`Task`] on your executor, detached from the request that made it.
///
/// The core needs no runtime, so it cannot spawn by itself; any closure
/// `Fn(Task) + Send + Sync` is a `Spawn`, such as `|task| { tokio::spawn(task); }`.
/// See [`ReceiverBuilder::spawn_handlers`](crate::ReceiverBuilder::spawn_handlers).
pub trait Spawn: Send + Sync + 'static {
    /// Starts `task`; it must run to completion even if nobody waits for it.
    fn spawn(&self, task: Task);
}

impl<F: Fn(Task) + Send + Sync + 'static> Spawn for F {
    fn spawn(&self, task: Task) {
        self(task);
    }
}

pub(crate) struct Spawner(pub(crate) Box<dyn Spawn>);

impl fmt::Debug for Spawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Spawner")
    }
}
