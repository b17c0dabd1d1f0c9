//! The inbox's observation points: its workers' trouble logged (target
//! `monite_webhooks::inbox`), its writes, attempts and backlog counted.

use std::time::Duration;

use crate::event::Event;
use crate::inbox::InboxCounts;

/// Whether the inbox's metrics are recorded (feature `metrics`): what the workers sample
/// the backlog for, and keep an event's labels for.
pub(crate) const RECORDS_METRICS: bool = cfg!(feature = "metrics");

/// Something the inbox's workers could not do, `during` which step: logged as an error.
/// Nothing is lost by it (a lease lapses and is rescued, a write is tried again), but an
/// operator should hear of it.
pub(crate) fn trouble(during: &'static str, what: &str) {
    #[cfg(feature = "tracing")]
    tracing::error!(target: "monite_webhooks::inbox", during, "inbox: {what}");
    #[cfg(not(feature = "tracing"))]
    let _ = (during, what);
}

/// A workers' hook panicked; the panic was caught.
pub(crate) fn hook_panicked(hook: &'static str) {
    trouble("hook", &format!("the {hook} hook panicked"));
}

/// The workers' pool leaves them less headroom than they need: logged as a warning.
pub(crate) fn pool_small(concurrency: usize, connections: u32, needed: u32) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        target: "monite_webhooks::inbox",
        concurrency,
        connections,
        needed,
        "inbox workers: the pool has {connections} connections for {concurrency} \
         workers; slow transactional handlers can starve heartbeats (leases lapse) \
         and claims: give the workers a pool of at least {needed} (see the inbox guide)"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (concurrency, connections, needed);
}

/// A backlog sample: the gauges.
pub(crate) fn sampled(sample: &InboxCounts) {
    #[cfg(feature = "metrics")]
    super::metrics::inbox::sampled(sample);
    #[cfg(not(feature = "metrics"))]
    let _ = sample;
}

/// One accepting write that took `took`: `duplicate` is whether the inbox had the delivery
/// already, `None` if the write failed.
pub(crate) fn accepted(duplicate: Option<bool>, took: Duration) {
    #[cfg(feature = "metrics")]
    super::metrics::inbox::accepted(duplicate, took);
    #[cfg(not(feature = "metrics"))]
    let _ = (duplicate, took);
}

/// One attempt whose handlers ran for `took`: `failed` is `None` for a success, else
/// whether the event is now dead.
pub(crate) fn attempted(event: Option<&Event>, failed: Option<bool>, took: Duration) {
    #[cfg(feature = "metrics")]
    super::metrics::inbox::attempted(event, failed, took);
    #[cfg(not(feature = "metrics"))]
    let _ = (event, failed, took);
}
