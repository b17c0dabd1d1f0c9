//! The inbox's metrics through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`): gauges the workers sample every [`SAMPLE_INTERVAL`](super::SAMPLE_INTERVAL),
//! counters and histograms where things happen. No label carries an event or entity id;
//! `object_type` and `event` are bounded by Monite's catalog.
//!
//! | metric | kind | labels | what it measures |
//! |---|---|---|---|
//! | [`PENDING`] | gauge | | events waiting for a worker, first attempts and retries |
//! | [`RETRYING`] | gauge | | of those, waiting for a retry |
//! | [`RUNNING`] | gauge | | events a worker holds |
//! | [`DEAD`] | gauge | | events out of attempts, or poison |
//! | [`OLDEST_PENDING_AGE`] | gauge, seconds | | since the oldest pending event was received (0 with none) |
//! | [`ACCEPTED`] | counter | | deliveries written |
//! | [`DUPLICATES`] | counter | | deliveries already there |
//! | [`ACCEPT_DURATION`] | histogram, seconds | `result` | each write (`ok`, `error`) |
//! | [`ATTEMPTS`] | counter | `object_type`, `event` | each attempt a worker ran |
//! | [`FAILURES`] | counter | `object_type`, `event`, `after` | each failed attempt, `after` = `retry` or `dead` |
//! | [`HANDLER_DURATION`] | histogram, seconds | `outcome` | each attempt's handlers (`ok`, `error`) |
//!
//! The gauges are the workers' view: with no worker running, they are not updated.

use std::time::Duration;

use ::metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

use super::counts::InboxCounts;
use crate::event::Event;

/// Gauge: events pending, first attempts and retries.
pub const PENDING: &str = "monite_webhooks_inbox_pending";
/// Gauge: events pending after a failed attempt.
pub const RETRYING: &str = "monite_webhooks_inbox_retrying";
/// Gauge: events held by a worker.
pub const RUNNING: &str = "monite_webhooks_inbox_running";
/// Gauge: dead events.
pub const DEAD: &str = "monite_webhooks_inbox_dead";
/// Gauge, seconds: age of the oldest pending event.
pub const OLDEST_PENDING_AGE: &str = "monite_webhooks_inbox_oldest_pending_age_seconds";
/// Counter: deliveries written to the inbox.
pub const ACCEPTED: &str = "monite_webhooks_inbox_accepted_total";
/// Counter: deliveries the inbox had already.
pub const DUPLICATES: &str = "monite_webhooks_inbox_duplicates_total";
/// Histogram, seconds: the accepting write, by `result`.
pub const ACCEPT_DURATION: &str = "monite_webhooks_inbox_accept_duration_seconds";
/// Counter: attempts, by `object_type` and `event`.
pub const ATTEMPTS: &str = "monite_webhooks_inbox_attempts_total";
/// Counter: failed attempts, by `object_type`, `event` and `after`.
pub const FAILURES: &str = "monite_webhooks_inbox_failures_total";
/// Histogram, seconds: an attempt's handlers, by `outcome`.
pub const HANDLER_DURATION: &str = "monite_webhooks_inbox_handler_duration_seconds";

/// Gives each inbox metric its help text and unit, in the recorder installed now.
pub fn describe() {
    describe_gauge!(
        PENDING,
        Unit::Count,
        "Inbox events pending, first attempts and retries"
    );
    describe_gauge!(
        RETRYING,
        Unit::Count,
        "Inbox events pending after a failed attempt"
    );
    describe_gauge!(RUNNING, Unit::Count, "Inbox events held by a worker");
    describe_gauge!(DEAD, Unit::Count, "Inbox events out of attempts, or poison");
    describe_gauge!(
        OLDEST_PENDING_AGE,
        Unit::Seconds,
        "Age of the oldest pending inbox event"
    );
    describe_counter!(ACCEPTED, Unit::Count, "Deliveries written to the inbox");
    describe_counter!(DUPLICATES, Unit::Count, "Deliveries the inbox had already");
    describe_histogram!(
        ACCEPT_DURATION,
        Unit::Seconds,
        "Latency of the inbox's accepting write, by result"
    );
    describe_counter!(ATTEMPTS, Unit::Count, "Inbox attempts, by event type");
    describe_counter!(
        FAILURES,
        Unit::Count,
        "Failed inbox attempts, by event type and what follows"
    );
    describe_histogram!(
        HANDLER_DURATION,
        Unit::Seconds,
        "Time an inbox attempt's handlers ran, by outcome"
    );
}

#[allow(
    clippy::cast_precision_loss,
    reason = "a gauge is a float; counts stay far below 2^52"
)]
pub(super) fn sampled(sample: &InboxCounts) {
    gauge!(PENDING).set(sample.pending as f64);
    gauge!(RETRYING).set(sample.retrying as f64);
    gauge!(RUNNING).set(sample.running as f64);
    gauge!(DEAD).set(sample.dead as f64);
    gauge!(OLDEST_PENDING_AGE).set(sample.oldest_pending.unwrap_or_default().as_secs_f64());
}

pub(super) fn accepted(duplicate: Option<bool>, took: Duration) {
    let result = if duplicate.is_some() { "ok" } else { "error" };
    histogram!(ACCEPT_DURATION, "result" => result).record(took);
    match duplicate {
        Some(false) => counter!(ACCEPTED).increment(1),
        Some(true) => counter!(DUPLICATES).increment(1),
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

pub(super) fn attempted(event: Option<&Event>, failed: Option<bool>, took: Duration) {
    let (object_type, action) = event_type(event);
    let outcome = if failed.is_some() { "error" } else { "ok" };
    histogram!(HANDLER_DURATION, "outcome" => outcome).record(took);
    counter!(ATTEMPTS, "object_type" => object_type.clone(), "event" => action.clone())
        .increment(1);
    if let Some(dead) = failed {
        let after = if dead { "dead" } else { "retry" };
        counter!(FAILURES, "object_type" => object_type, "event" => action, "after" => after)
            .increment(1);
    }
}
