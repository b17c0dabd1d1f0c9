//! The reconciler's observation points: each report logged (target
//! `monite_webhooks::reconcile`) and counted, each sweep and cycle counted.

use crate::reconcile::Report;

/// What the reconciler tells the operator: a warning, and its counters.
pub(crate) fn report(report: &Report) {
    // Which replica leads is news, not trouble.
    #[cfg(feature = "tracing")]
    match report {
        Report::LeadershipGained { .. } | Report::LeadershipLost { .. } => {
            tracing::info!(target: "monite_webhooks::reconcile", "{report}");
        }
        _ => tracing::warn!(target: "monite_webhooks::reconcile", "{report}"),
    }
    #[cfg(feature = "metrics")]
    super::metrics::reconcile::reconcile_report(report);
    #[cfg(not(any(feature = "tracing", feature = "metrics")))]
    let _ = report;
}

/// One entity's sweep: whether it succeeded, and the events it dispatched.
pub(crate) fn swept(ok: bool, events: usize) {
    #[cfg(feature = "metrics")]
    super::metrics::reconcile::sweep(ok, events);
    #[cfg(not(feature = "metrics"))]
    let _ = (ok, events);
}

/// When a cycle started, for its duration: nothing without `metrics`.
#[derive(Clone, Copy)]
pub(crate) struct CycleClock(#[cfg(feature = "metrics")] std::time::Instant);

/// A cycle starts.
pub(crate) fn cycle_started() -> CycleClock {
    CycleClock(
        #[cfg(feature = "metrics")]
        std::time::Instant::now(),
    )
}

/// A cycle ended; `all_ok`: every entity due was swept, and every checkpoint saved.
pub(crate) fn cycle_ended(clock: CycleClock, all_ok: bool) {
    #[cfg(feature = "metrics")]
    super::metrics::reconcile::cycle(clock.0.elapsed().as_secs_f64(), all_ok);
    #[cfg(not(feature = "metrics"))]
    let _ = (clock, all_ok);
}

/// The reconciler's task ended other than by `shutdown` (it panicked): logged as an error.
pub(crate) fn task_ended(error: &str) {
    #[cfg(feature = "tracing")]
    tracing::error!(target: "monite_webhooks::reconcile", "the reconciler's task ended: {error}");
    #[cfg(not(feature = "tracing"))]
    let _ = error;
}
