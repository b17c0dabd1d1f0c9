//! The inbox's series (features `metrics` and `postgres`): gauges the workers sample every
//! [`SAMPLE_INTERVAL`](crate::inbox::SAMPLE_INTERVAL), counters and histograms where
//! things happen. No label carries an event or entity id; `object_type` and `event` are
//! bounded by Monite's catalog.

use std::time::Duration;

use ::metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

use crate::event::Event;
use crate::inbox::InboxCounts;

/// Gauge: inbox events pending, first attempts and retries.
pub const INBOX_PENDING: &str = "monite_webhooks_inbox_pending";
/// Gauge: inbox events pending after a failed attempt.
pub const INBOX_RETRYING: &str = "monite_webhooks_inbox_retrying";
/// Gauge: inbox events held by a worker.
pub const INBOX_RUNNING: &str = "monite_webhooks_inbox_running";
/// Gauge: dead inbox events.
pub const INBOX_DEAD: &str = "monite_webhooks_inbox_dead";
/// Gauge, seconds: age of the oldest pending inbox event.
pub const INBOX_OLDEST_PENDING_AGE: &str = "monite_webhooks_inbox_oldest_pending_age_seconds";
/// Counter: deliveries written to the inbox.
pub const INBOX_ACCEPTED: &str = "monite_webhooks_inbox_accepted_total";
/// Counter: deliveries the inbox had already.
pub const INBOX_DUPLICATES: &str = "monite_webhooks_inbox_duplicates_total";
/// Histogram, seconds: the inbox's accepting write, by `result`.
pub const INBOX_ACCEPT_DURATION: &str = "monite_webhooks_inbox_accept_duration_seconds";
/// Counter: inbox attempts, by `object_type` and `event`.
pub const INBOX_ATTEMPTS: &str = "monite_webhooks_inbox_attempts_total";
/// Counter: failed inbox attempts, by `object_type`, `event` and `after`.
pub const INBOX_FAILURES: &str = "monite_webhooks_inbox_failures_total";
/// Histogram, seconds: an inbox attempt's handlers, by `outcome`.
pub const INBOX_HANDLER_DURATION: &str = "monite_webhooks_inbox_handler_duration_seconds";

/// Gives the inbox's series their help text and unit.
pub(super) fn describe() {
    describe_gauge!(
        INBOX_PENDING,
        Unit::Count,
        "Inbox events pending, first attempts and retries"
    );
    describe_gauge!(
        INBOX_RETRYING,
        Unit::Count,
        "Inbox events pending after a failed attempt"
    );
    describe_gauge!(INBOX_RUNNING, Unit::Count, "Inbox events held by a worker");
    describe_gauge!(
        INBOX_DEAD,
        Unit::Count,
        "Inbox events out of attempts, or poison"
    );
    describe_gauge!(
        INBOX_OLDEST_PENDING_AGE,
        Unit::Seconds,
        "Age of the oldest pending inbox event"
    );
    describe_counter!(
        INBOX_ACCEPTED,
        Unit::Count,
        "Deliveries written to the inbox"
    );
    describe_counter!(
        INBOX_DUPLICATES,
        Unit::Count,
        "Deliveries the inbox had already"
    );
    describe_histogram!(
        INBOX_ACCEPT_DURATION,
        Unit::Seconds,
        "Latency of the inbox's accepting write, by result"
    );
    describe_counter!(INBOX_ATTEMPTS, Unit::Count, "Inbox attempts, by event type");
    describe_counter!(
        INBOX_FAILURES,
        Unit::Count,
        "Failed inbox attempts, by event type and what follows"
    );
    describe_histogram!(
        INBOX_HANDLER_DURATION,
        Unit::Seconds,
        "Time an inbox attempt's handlers ran, by outcome"
    );
}

#[allow(
    clippy::cast_precision_loss,
    reason = "a gauge is a float; counts stay far below 2^52"
)]
pub(crate) fn sampled(sample: &InboxCounts) {
    gauge!(INBOX_PENDING).set(sample.pending as f64);
    gauge!(INBOX_RETRYING).set(sample.retrying as f64);
    gauge!(INBOX_RUNNING).set(sample.running as f64);
    gauge!(INBOX_DEAD).set(sample.dead as f64);
    gauge!(INBOX_OLDEST_PENDING_AGE).set(sample.oldest_pending.unwrap_or_default().as_secs_f64());
}

pub(crate) fn accepted(duplicate: Option<bool>, took: Duration) {
    let result = if duplicate.is_some() { "ok" } else { "error" };
    histogram!(INBOX_ACCEPT_DURATION, "result" => result).record(took);
    match duplicate {
        Some(false) => counter!(INBOX_ACCEPTED).increment(1),
        Some(true) => counter!(INBOX_DUPLICATES).increment(1),
        None => {}
    }
}

/// The labels of an event's type; `unknown` for a body that is not an envelope.
fn event_type(event: Option<&Event>) -> (String, String) {
    event.map_or_else(
        || ("unknown".to_owned(), "unknown".to_owned()),
        |e| (e.object_type().as_str().to_owned(), e.action().to_owned()),
    )
}

pub(crate) fn attempted(event: Option<&Event>, failed: Option<bool>, took: Duration) {
    let (object_type, action) = event_type(event);
    let outcome = if failed.is_some() { "error" } else { "ok" };
    histogram!(INBOX_HANDLER_DURATION, "outcome" => outcome).record(took);
    counter!(INBOX_ATTEMPTS, "object_type" => object_type.clone(), "event" => action.clone())
        .increment(1);
    if let Some(dead) = failed {
        let after = if dead { "dead" } else { "retry" };
        counter!(INBOX_FAILURES, "object_type" => object_type, "event" => action, "after" => after)
            .increment(1);
    }
}
