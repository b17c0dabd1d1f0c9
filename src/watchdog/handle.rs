//! A watchdog running in the background, and how it stops.

use std::fmt;

use super::Watchdog;
use crate::observe;
use crate::stop::Running;

/// A [`Watchdog`] running in a task of its own, from [`Watchdog::start`] or
/// [`WatchdogBuilder::start`](super::WatchdogBuilder::start).
#[must_use = "dropping the handle leaves the watchdog running with no way to stop it"]
pub struct WatchdogHandle {
    running: Running<Watchdog>,
}

impl WatchdogHandle {
    pub(super) fn start(service: Watchdog) -> Self {
        Self {
            running: Running::spawn(service, Watchdog::run_until),
        }
    }

    /// The watchdog, for what it offers while it runs:
    /// [`record_failure`](Watchdog::record_failure).
    #[must_use]
    pub fn service(&self) -> &Watchdog {
        &self.running.service
    }

    /// Starts no more checks, lets the one in progress finish (a re-enable is never cut
    /// in half), and returns once the task has ended.
    pub async fn shutdown(self) {
        if let Err(e) = self.running.stop().await {
            observe::watchdog::task_ended(&e.to_string());
        }
    }
}

impl fmt::Debug for WatchdogHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchdogHandle")
            .field("service", &self.running.service)
            .field("stopping", &self.running.is_stopping())
            .finish_non_exhaustive()
    }
}
