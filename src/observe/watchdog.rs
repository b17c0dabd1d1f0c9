//! The watchdog's observation points: each report logged (target
//! `monite_webhooks::watchdog`) and counted, and what each check found.

use std::collections::HashMap;

use crate::watchdog::Report;

/// What the watchdog tells the operator: a warning, and its counters.
pub(crate) fn report(report: &Report) {
    // Which replica leads is news, not trouble.
    #[cfg(feature = "tracing")]
    match report {
        Report::LeadershipGained { .. } | Report::LeadershipLost { .. } => {
            tracing::info!(target: "monite_webhooks::watchdog", "{report}");
        }
        _ => tracing::warn!(target: "monite_webhooks::watchdog", "{report}"),
    }
    #[cfg(feature = "metrics")]
    super::metrics::reconcile::watchdog_report(report);
    #[cfg(not(any(feature = "tracing", feature = "metrics")))]
    let _ = report;
}

/// What a check found: per object type, whether every subscription of it is enabled after
/// the check; and the receiver's failed deliveries since the last one.
pub(crate) fn checked(enabled_by_object_type: &HashMap<String, bool>, failed_deliveries: usize) {
    #[cfg(feature = "metrics")]
    {
        super::metrics::reconcile::subscriptions_enabled(enabled_by_object_type);
        super::metrics::reconcile::unsuccessful(failed_deliveries);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (enabled_by_object_type, failed_deliveries);
}

/// The watchdog's task ended other than by `shutdown` (it panicked): logged as an error.
pub(crate) fn task_ended(error: &str) {
    #[cfg(feature = "tracing")]
    tracing::error!(target: "monite_webhooks::watchdog", "the watchdog's task ended: {error}");
    #[cfg(not(feature = "tracing"))]
    let _ = error;
}
