//! The reconciler's and the watchdog's series (features `metrics` and `client`). No series
//! has an entity id as a label (thousands of series); per-entity detail is in
//! [`Reconciler::status`](crate::reconcile::Reconciler::status) and the reports.

use std::collections::HashMap;

use ::metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

use crate::reconcile::Report;
use crate::watchdog::Report as WatchdogReport;

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

/// Gives the reconciler's and the watchdog's series their help text and unit.
pub(super) fn describe() {
    describe_counter!(
        SWEEPS,
        Unit::Count,
        "Entity sweeps of the reconciler, by result"
    );
    describe_gauge!(
        LAST_SUCCESS,
        Unit::Seconds,
        "Unix time the last reconciler cycle in which every sweep succeeded ended"
    );
    describe_histogram!(
        CYCLE_DURATION,
        Unit::Seconds,
        "Time a reconciler cycle took"
    );
    describe_counter!(EVENTS_SEEN, Unit::Count, "Events a sweep dispatched");
    describe_counter!(
        EVENTS_RECOVERED,
        Unit::Count,
        "Events a sweep handled that no webhook delivery had"
    );
    describe_counter!(
        GAPS_BEYOND_RETENTION,
        Unit::Count,
        "Sweep windows reaching past the idempotency store's retention"
    );
    describe_gauge!(
        SUBSCRIPTION_ENABLED,
        "1 while every webhook subscription of the object type is enabled, 0 otherwise"
    );
    describe_counter!(
        SUBSCRIPTIONS_REENABLED,
        Unit::Count,
        "Webhook subscriptions the watchdog re-enabled"
    );
    describe_gauge!(
        DELIVERIES_UNSUCCESSFUL,
        Unit::Count,
        "Deliveries the receiver failed between the watchdog's last two checks"
    );
    describe_counter!(
        DELIVERY_LOG_FAILURES,
        Unit::Count,
        "Failed deliveries found in Monite's delivery log, each counted once"
    );
    describe_counter!(RATE_LIMITED, Unit::Count, "429 answers from Monite's API");
}

/// Counts what a reconciler's report says.
pub(crate) fn reconcile_report(report: &Report) {
    match report {
        Report::EventsRecovered { count, .. } => {
            counter!(EVENTS_RECOVERED).increment(*count as u64);
        }
        Report::RateLimited { count } => counter!(RATE_LIMITED).increment(*count),
        Report::GapBeyondRetention { .. } => counter!(GAPS_BEYOND_RETENTION).increment(1),
        Report::SweepStale { .. }
        | Report::LeadershipGained { .. }
        | Report::LeadershipLost { .. } => {}
    }
}

/// Counts what a watchdog's report says.
pub(crate) fn watchdog_report(report: &WatchdogReport) {
    match report {
        WatchdogReport::SubscriptionReenabled { .. } => {
            counter!(SUBSCRIPTIONS_REENABLED).increment(1);
        }
        WatchdogReport::DeliveryLogFailures { count, .. } => {
            counter!(DELIVERY_LOG_FAILURES).increment(*count as u64);
        }
        // The gauge is set once per check from every subscription, not per report.
        WatchdogReport::SubscriptionDisabled { .. }
        | WatchdogReport::DeliveriesFailing { .. }
        | WatchdogReport::DeliveryLogUnreadable { .. }
        | WatchdogReport::CheckFailed { .. }
        | WatchdogReport::LeadershipGained { .. }
        | WatchdogReport::LeadershipLost { .. } => {}
    }
}

/// One entity's sweep.
pub(crate) fn sweep(ok: bool, events: usize) {
    let result = if ok { "ok" } else { "error" };
    counter!(SWEEPS, "result" => result).increment(1);
    counter!(EVENTS_SEEN).increment(events as u64);
}

/// One cycle, and whether every entity's sweep succeeded.
pub(crate) fn cycle(seconds: f64, all_ok: bool) {
    histogram!(CYCLE_DURATION).record(seconds);
    if all_ok {
        let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
        gauge!(LAST_SUCCESS).set(now);
    }
}

/// What a check found, per object type: whether every subscription of it is enabled.
pub(crate) fn subscriptions_enabled(by_object_type: &HashMap<String, bool>) {
    for (object_type, all_enabled) in by_object_type {
        let value = if *all_enabled { 1.0 } else { 0.0 };
        gauge!(SUBSCRIPTION_ENABLED, "object_type" => object_type.clone()).set(value);
    }
}

/// The receiver's failures between the last two checks.
pub(crate) fn unsuccessful(count: usize) {
    gauge!(DELIVERIES_UNSUCCESSFUL).set(count as f64);
}
