//! A reconciler running in the background, and how it stops.

use std::fmt;

use tokio::task::JoinHandle;

use super::Reconciler;
use crate::observe;
use crate::stop::Stop;

/// A [`Reconciler`] running in a task of its own, from [`Reconciler::start`] or
/// [`ReconcilerBuilder::start`](super::ReconcilerBuilder::start).
#[must_use = "dropping the handle leaves the reconciler running with no way to stop it"]
pub struct ReconcilerHandle {
    service: Reconciler,
    stop: Stop,
    task: JoinHandle<()>,
}

impl ReconcilerHandle {
    pub(super) fn start(service: Reconciler) -> Self {
        let stop = Stop::new();
        let task = tokio::spawn(service.clone().run_until(stop.clone()));
        Self {
            service,
            stop,
            task,
        }
    }

    /// The reconciler, for what it offers while it runs:
    /// [`request_deep_sweep`](Reconciler::request_deep_sweep),
    /// [`status`](Reconciler::status).
    #[must_use]
    pub fn service(&self) -> &Reconciler {
        &self.service
    }

    /// Starts no more sweeps, lets the entity being swept finish, flushes the checkpoints
    /// reached (each only as far as its events were handled), and returns once the task
    /// has ended. Entities the interrupted cycle did not reach keep their checkpoints: the
    /// next start sweeps them from there.
    pub async fn shutdown(self) {
        self.stop.raise();
        if let Err(e) = self.task.await {
            observe::reconcile::task_ended(&e.to_string());
        }
    }
}

impl fmt::Debug for ReconcilerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconcilerHandle")
            .field("service", &self.service)
            .field("stopping", &self.stop.is_raised())
            .finish_non_exhaustive()
    }
}
