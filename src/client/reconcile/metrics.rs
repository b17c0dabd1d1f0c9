//! The reconciler's and the watchdog's metrics, through the `metrics` facade (feature
//! `metrics`). No metric has an entity id as a label (thousands of series); per-entity
//! detail is in [`Reconciler::status`](super::Reconciler::status) and the reports.
//!
//! | metric | kind | labels | what it says |
//! |---|---|---|---|
//! | [`SWEEPS`] | counter | `result` (`ok`, `error`) | entity sweeps |
//! | [`LAST_SUCCESS`] | gauge, Unix seconds | | the end of the last cycle in which every entity's sweep succeeded |
//! | [`CYCLE_DURATION`] | histogram, seconds | | each cycle |
//! | [`EVENTS_SEEN`] | counter | | events a sweep dispatched |
//! | [`EVENTS_RECOVERED`] | counter | | events a sweep handled that no delivery had: missed webhooks |
//! | [`GAPS_BEYOND_RETENTION`] | counter | | windows reaching past the store's retention |
//! | [`SUBSCRIPTION_ENABLED`] | gauge, 0 or 1 | `object_type` (at most 42) | 0 while any subscription of that object type is disabled after the last check, else 1 |
//! | [`SUBSCRIPTIONS_REENABLED`] | counter | | re-enables by the watchdog |
//! | [`DELIVERIES_UNSUCCESSFUL`] | gauge | | the receiver's failed deliveries between the last two checks |
//! | [`DELIVERY_LOG_FAILURES`] | counter | | failed deliveries in Monite's log, each counted once |
//! | [`RATE_LIMITED`] | counter | | `429` answers from Monite |

use ::metrics::{counter, gauge, histogram};

use super::Report;

/// Counter: entity sweeps, by `result`.
pub const SWEEPS: &str = "monite_webhooks_reconcile_sweeps_total";
/// Gauge, Unix seconds: when the last fully successful cycle ended.
pub const LAST_SUCCESS: &str = "monite_webhooks_reconcile_last_success_timestamp_seconds";
/// Histogram, seconds: each cycle.
pub const CYCLE_DURATION: &str = "monite_webhooks_reconcile_sweep_duration_seconds";
/// Counter: events a sweep dispatched.
pub const EVENTS_SEEN: &str = "monite_webhooks_reconcile_events_seen_total";
/// Counter: events a sweep handled that no delivery had.
pub const EVENTS_RECOVERED: &str = "monite_webhooks_reconcile_events_recovered_total";
/// Counter: windows reaching past the idempotency store's retention.
pub const GAPS_BEYOND_RETENTION: &str = "monite_webhooks_reconcile_gaps_beyond_retention_total";
/// Gauge, 0 or 1, by `object_type`: 0 while any subscription of that type is disabled
/// after the last check (the lowest over its subscriptions, set once per check).
pub const SUBSCRIPTION_ENABLED: &str = "monite_webhooks_subscription_enabled";
/// Counter: re-enables by the watchdog.
pub const SUBSCRIPTIONS_REENABLED: &str = "monite_webhooks_subscription_reenabled_total";
/// Gauge: the receiver's failed deliveries between the last two checks.
pub const DELIVERIES_UNSUCCESSFUL: &str = "monite_webhooks_deliveries_unsuccessful";
/// Counter: failed deliveries found in Monite's delivery log, each once.
pub const DELIVERY_LOG_FAILURES: &str = "monite_webhooks_delivery_log_failures_total";
/// Counter: `429` answers from Monite.
pub const RATE_LIMITED: &str = "monite_webhooks_api_rate_limited_total";

/// Counts what a report says.
pub(super) fn report(report: &Report) {
    match report {
        Report::EventsRecovered { count, .. } => {
            counter!(EVENTS_RECOVERED).increment(*count as u64);
        }
        Report::SweepStale { .. } => {}
        Report::RateLimited { count } => counter!(RATE_LIMITED).increment(*count),
        Report::GapBeyondRetention { .. } => counter!(GAPS_BEYOND_RETENTION).increment(1),
        // The gauge is set once per check from every subscription, not per report.
        Report::SubscriptionDisabled { .. } => {}
        Report::SubscriptionReenabled { .. } => {
            counter!(SUBSCRIPTIONS_REENABLED).increment(1);
        }
        Report::DeliveriesFailing { .. } => {}
        Report::DeliveryLogFailures { count, .. } => {
            counter!(DELIVERY_LOG_FAILURES).increment(*count as u64);
        }
    }
}

/// One entity's sweep.
pub(super) fn sweep(ok: bool, events: usize) {
    let result = if ok { "ok" } else { "error" };
    counter!(SWEEPS, "result" => result).increment(1);
    counter!(EVENTS_SEEN).increment(events as u64);
}

/// One cycle, and whether every entity's sweep succeeded.
pub(super) fn cycle(seconds: f64, all_ok: bool) {
    histogram!(CYCLE_DURATION).record(seconds);
    if all_ok {
        let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
        gauge!(LAST_SUCCESS).set(now);
    }
}

/// What a check found, per object type: whether every subscription of it is enabled.
pub(super) fn subscriptions_enabled(by_object_type: &std::collections::HashMap<String, bool>) {
    for (object_type, all_enabled) in by_object_type {
        let value = if *all_enabled { 1.0 } else { 0.0 };
        gauge!(SUBSCRIPTION_ENABLED, "object_type" => object_type.clone()).set(value);
    }
}

/// The receiver's failures between the last two checks.
pub(super) fn unsuccessful(count: usize) {
    gauge!(DELIVERIES_UNSUCCESSFUL).set(count as f64);
}
