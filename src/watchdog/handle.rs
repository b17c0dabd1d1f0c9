//! A watchdog running in the background, and how it stops.

use std::fmt;

use tokio::task::JoinHandle;

use super::Watchdog;
use crate::observe;
use crate::stop::Stop;

/// A [`Watchdog`] running in a task of its own, from [`Watchdog::start`] or
/// [`WatchdogBuilder::start`](super::WatchdogBuilder::start).
#[must_use = "dropping the handle leaves the watchdog running with no way to stop it"]
pub struct WatchdogHandle {
    service: Watchdog,
    stop: Stop,
    task: JoinHandle<()>,
}

impl WatchdogHandle {
    pub(super) fn start(service: Watchdog) -> Self {
        let stop = Stop::new();
        let task = tokio::spawn(service.clone().run_until(stop.clone()));
        Self {
            service,
            stop,
            task,
        }
    }

    /// The watchdog, for what it offers while it runs:
    /// [`record_failure`](Watchdog::record_failure).
    #[must_use]
    pub fn service(&self) -> &Watchdog {
        &self.service
    }

    /// Starts no more checks, lets the one in progress finish (a re-enable is never cut
    /// in half), and returns once the task has ended.
    pub async fn shutdown(self) {
        self.stop.raise();
        if let Err(e) = self.task.await {
            observe::watchdog::task_ended(&e.to_string());
        }
    }
}

impl fmt::Debug for WatchdogHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchdogHandle")
            .field("service", &self.service)
            .field("stopping", &self.stop.is_raised())
            .finish_non_exhaustive()
    }
}
