//! A reconciler running in the background, and how it stops.

use std::fmt;

use super::Reconciler;
use crate::observe;
use crate::stop::Running;

/// A [`Reconciler`] running in a task of its own, from [`Reconciler::start`] or
/// [`ReconcilerBuilder::start`](super::ReconcilerBuilder::start).
#[must_use = "dropping the handle leaves the reconciler running with no way to stop it"]
pub struct ReconcilerHandle {
    running: Running<Reconciler>,
}

impl ReconcilerHandle {
    pub(super) fn start(service: Reconciler) -> Self {
        Self {
            running: Running::spawn(service, Reconciler::run_until),
        }
    }

    /// The reconciler, for what it offers while it runs:
    /// [`request_deep_sweep`](Reconciler::request_deep_sweep),
    /// [`status`](Reconciler::status).
    #[must_use]
    pub fn service(&self) -> &Reconciler {
        &self.running.service
    }

    /// Starts no more sweeps, lets the entity being swept finish, flushes the checkpoints
    /// reached (each only as far as its events were handled), and returns once the task
    /// has ended. Entities the interrupted cycle did not reach keep their checkpoints: the
    /// next start sweeps them from there.
    pub async fn shutdown(self) {
        if let Err(e) = self.running.stop().await {
            observe::reconcile::task_ended(&e.to_string());
        }
    }
}

impl fmt::Debug for ReconcilerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconcilerHandle")
            .field("service", &self.running.service)
            .field("stopping", &self.running.is_stopping())
            .finish_non_exhaustive()
    }
}
