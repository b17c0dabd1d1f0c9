//! The stop signal of a part that runs in the background (the reconciler, the watchdog):
//! its handle raises it, and the part's loop looks at it between units of work and while
//! it waits for the next.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Raised once, seen by every clone. The loop holds a clone of the sender too, so the
/// channel never closes under it: a handle dropped without `shutdown` leaves it running.
#[derive(Clone)]
pub(crate) struct Stop(Arc<watch::Sender<bool>>);

impl Stop {
    pub(crate) fn new() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }

    /// Asks the loop to stop.
    pub(crate) fn raise(&self) {
        self.0.send_replace(true);
    }

    pub(crate) fn is_raised(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits `pause`, or less if the stop is raised meanwhile; whether the loop goes on.
    pub(crate) async fn pause(&self, pause: Duration) -> bool {
        let mut raised = self.0.subscribe();
        tokio::time::timeout(pause, raised.wait_for(|raised| *raised))
            .await
            .is_err()
    }
}

/// What both handles hold: the service, its stop signal, and the task running its loop.
pub(crate) struct Running<S> {
    pub(crate) service: S,
    stop: Stop,
    task: tokio::task::JoinHandle<()>,
}

impl<S: Clone> Running<S> {
    /// Spawns `run(service, stop)` on the current tokio runtime.
    pub(crate) fn spawn<F>(service: S, run: impl FnOnce(S, Stop) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = Stop::new();
        let task = tokio::spawn(run(service.clone(), stop.clone()));
        Self {
            service,
            stop,
            task,
        }
    }
}

impl<S> Running<S> {
    /// Raises the stop and waits for the loop to end; the task's panic, if it had one.
    pub(crate) async fn stop(self) -> Result<(), tokio::task::JoinError> {
        self.stop.raise();
        self.task.await
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stop.is_raised()
    }
}
