//! Counters and histograms through the [`metrics`](https://docs.rs/metrics) facade, when the
//! `metrics` feature is on; nothing otherwise.
//!
//! The crate records into whatever recorder your program installs (Prometheus, StatsD,
//! OpenTelemetry, ...: every exporter of the facade); with none installed, recording costs
//! a relaxed atomic load. Call [`describe`] once the recorder is installed to give each
//! metric its help text and unit.
//!
//! | metric | kind | labels | what it counts |
//! |---|---|---|---|
//! | [`DELIVERIES`] | counter | `outcome`, `status` | every answer of the receiver's entry points ([`Receiver::handle`](crate::Receiver::handle), the tower service, the axum and actix-web routes) |
//! | [`REJECTIONS`] | counter | `reason` | every request refused before dispatch, by [`ErrorKind::reason`](crate::ErrorKind::reason) |
//! | [`HANDLER_DURATION`] | histogram, seconds | `outcome` | each handler run, `ok` or `error` (a panic counts as an error) |
//! | [`STORE_DURATION`] | histogram, seconds | `op`, `result` | each idempotency store call: `claim`, `complete`, `release` |
//! | [`STORE_FAILURES`] | counter | `op` | each idempotency store call that failed |
//!
//! `outcome` of a delivery is `handled`, `duplicate` (already handled, no handler ran),
//! `unhandled` (no handler took it), `rejected` (a `4xx` for the request itself),
//! `in_flight` (`409`, another delivery holds the event) or `failed` (`5xx`, Monite
//! retries). A `reason` is what an operator alerts on: after a key rotation,
//! `bad_signature` climbs while `stale_timestamp` stays flat; a server clock drifting away
//! shows the other way round.
//!
//! Rejections are counted at every entry point, the extractors and
//! `tower::VerifyLayer` included; those three leave the answer to
//! your code, so their deliveries are not in [`DELIVERIES`].
//!
//! With `client` too, the reconciler's and the watchdog's series; none has an entity id
//! as a label (thousands of series): per-entity detail is in
//! [`Reconciler::status`](crate::reconcile::Reconciler::status) and the reports.
#![cfg_attr(feature = "client", doc = "")]
#![cfg_attr(
    feature = "client",
    doc = "| metric | kind | labels | what it says |
|---|---|---|---|
| [`SWEEPS`] | counter | `result` (`ok`, `error`) | entity sweeps |
| [`LAST_SUCCESS`] | gauge, Unix seconds | | the end of the last cycle in which every entity's sweep succeeded |
| [`CYCLE_DURATION`] | histogram, seconds | | each cycle |
| [`EVENTS_SEEN`] | counter | | events a sweep dispatched |
| [`EVENTS_RECOVERED`] | counter | | events a sweep handled that no delivery had: missed webhooks |
| [`GAPS_BEYOND_RETENTION`] | counter | | windows reaching past the store's retention |
| [`SUBSCRIPTION_ENABLED`] | gauge, 0 or 1 | `object_type` (at most 42) | 0 while any subscription of that object type is disabled after the last check, else 1 |
| [`SUBSCRIPTIONS_REENABLED`] | counter | | re-enables by the watchdog |
| [`DELIVERIES_UNSUCCESSFUL`] | gauge | | the receiver's failed deliveries between the last two checks |
| [`DELIVERY_LOG_FAILURES`] | counter | | failed deliveries in Monite's log, each counted once |
| [`RATE_LIMITED`] | counter | | `429` answers from Monite |
| [`BUDGET_DRAWS`] | counter | `lane` (`live`, `background`), `result` (`ok`, `error`) | requests that drew a slot of the rate budget (`error`: the fleet's store failed) |
| [`BUDGET_WAIT`] | histogram, seconds | `lane` | how long each request waited for its slot |
| [`BUDGET_HOLDS`] | counter | `reason` (`rate_limited`, `quota_spent`) | holds on every request, shared with the fleet if there is one |
| [`BUDGET_STORE_DURATION`] | histogram, seconds | `op` (`reserve`, `hold`), `result` | round trips to the fleet's store |"
)]
//!
//! With `postgres` too, the inbox's series: gauges its workers sample every
//! [`SAMPLE_INTERVAL`](crate::inbox::SAMPLE_INTERVAL) (with no worker running, they are
//! not updated), counters and histograms where things happen. No label carries an event
//! or entity id; `object_type` and `event` are bounded by Monite's catalog.
#![cfg_attr(feature = "postgres", doc = "")]
#![cfg_attr(
    feature = "postgres",
    doc = "| metric | kind | labels | what it measures |
|---|---|---|---|
| [`INBOX_PENDING`] | gauge | | events waiting for a worker, first attempts and retries |
| [`INBOX_RETRYING`] | gauge | | of those, waiting for a retry |
| [`INBOX_RUNNING`] | gauge | | events a worker holds |
| [`INBOX_DEAD`] | gauge | | events out of attempts, or poison |
| [`INBOX_OLDEST_PENDING_AGE`] | gauge, seconds | | since the oldest pending event was received (0 with none) |
| [`INBOX_ACCEPTED`] | counter | | deliveries written |
| [`INBOX_DUPLICATES`] | counter | | deliveries already there |
| [`INBOX_ACCEPT_DURATION`] | histogram, seconds | `result` | each write (`ok`, `error`) |
| [`INBOX_ATTEMPTS`] | counter | `object_type`, `event` | each attempt a worker ran |
| [`INBOX_FAILURES`] | counter | `object_type`, `event`, `after` | each failed attempt, `after` = `retry` or `dead` |
| [`INBOX_HANDLER_DURATION`] | histogram, seconds | `outcome` | each attempt's handlers (`ok`, `error`) |"
)]
//!
//! Durations are read from [`std::time::Instant`], which `wasm32-unknown-unknown` does not
//! have: leave this feature off there.

use std::future::Future;

use http::StatusCode;

use crate::error::{BoxError, Error, Result};
use crate::outcome::Outcome;

#[cfg(feature = "client")]
pub(super) mod budget;
#[cfg(feature = "client")]
pub use self::budget::{BUDGET_DRAWS, BUDGET_HOLDS, BUDGET_STORE_DURATION, BUDGET_WAIT};
#[cfg(feature = "client")]
pub(super) mod reconcile;
#[cfg(feature = "client")]
pub use self::reconcile::{
    CYCLE_DURATION, DELIVERIES_UNSUCCESSFUL, DELIVERY_LOG_FAILURES, EVENTS_RECOVERED, EVENTS_SEEN,
    GAPS_BEYOND_RETENTION, LAST_SUCCESS, RATE_LIMITED, SUBSCRIPTION_ENABLED,
    SUBSCRIPTIONS_REENABLED, SWEEPS,
};
#[cfg(feature = "postgres")]
pub(super) mod inbox;
#[cfg(feature = "postgres")]
pub use self::inbox::{
    INBOX_ACCEPT_DURATION, INBOX_ACCEPTED, INBOX_ATTEMPTS, INBOX_DEAD, INBOX_DUPLICATES,
    INBOX_FAILURES, INBOX_HANDLER_DURATION, INBOX_OLDEST_PENDING_AGE, INBOX_PENDING,
    INBOX_RETRYING, INBOX_RUNNING,
};

/// Counter: answers to deliveries, by `outcome` and `status`.
pub const DELIVERIES: &str = "monite_webhooks_deliveries_total";
/// Counter: requests refused before dispatch, by `reason`.
pub const REJECTIONS: &str = "monite_webhooks_rejections_total";
/// Histogram, seconds: handler runs, by `outcome` (`ok`, `error`).
pub const HANDLER_DURATION: &str = "monite_webhooks_handler_duration_seconds";
/// Histogram, seconds: idempotency store calls, by `op` and `result` (`ok`, `error`).
pub const STORE_DURATION: &str = "monite_webhooks_store_duration_seconds";
/// Counter: idempotency store calls that failed, by `op`.
pub const STORE_FAILURES: &str = "monite_webhooks_store_failures_total";

/// Gives each metric its help text and unit, in the recorder installed now: call it once,
/// after installing your exporter.
pub fn describe() {
    use ::metrics::{Unit, describe_counter, describe_histogram};

    describe_counter!(
        DELIVERIES,
        Unit::Count,
        "Monite webhook deliveries answered, by outcome and HTTP status"
    );
    describe_counter!(
        REJECTIONS,
        Unit::Count,
        "Monite webhook requests refused before dispatch, by reason"
    );
    describe_histogram!(
        HANDLER_DURATION,
        Unit::Seconds,
        "Time a webhook handler ran, by outcome"
    );
    describe_histogram!(
        STORE_DURATION,
        Unit::Seconds,
        "Idempotency store call latency, by operation and result"
    );
    describe_counter!(
        STORE_FAILURES,
        Unit::Count,
        "Idempotency store calls that failed, by operation"
    );
    #[cfg(feature = "client")]
    reconcile::describe();
    #[cfg(feature = "client")]
    budget::describe();
    #[cfg(feature = "postgres")]
    inbox::describe();
}

/// The `outcome` label of a delivery's answer.
fn outcome(result: &Result<Outcome>) -> &'static str {
    match result {
        Ok(Outcome::Handled) => "handled",
        Ok(Outcome::Duplicate) => "duplicate",
        Ok(Outcome::Accepted) => "accepted",
        Ok(Outcome::Unhandled(_)) => "unhandled",
        Err(error) if error.status() == StatusCode::CONFLICT => "in_flight",
        Err(error) if error.status().is_client_error() => "rejected",
        Err(_) => "failed",
    }
}

/// Counts one answered delivery.
pub(crate) fn delivered(result: &Result<Outcome>, status: StatusCode) {
    ::metrics::counter!(
        DELIVERIES,
        "outcome" => outcome(result),
        "status" => status.as_u16().to_string(),
    )
    .increment(1);
}

/// Counts one refused request.
pub(crate) fn rejected(error: &Error) {
    ::metrics::counter!(REJECTIONS, "reason" => error.kind().reason()).increment(1);
}

/// Times a handler run; an unhandled event ran no handler and is not timed.
pub(crate) async fn handler_run<T>(
    run: impl Future<Output = Result<T>>,
    ran_a_handler: impl FnOnce(&T) -> bool,
) -> Result<T> {
    let started = std::time::Instant::now();
    let result = run.await;
    let label = match &result {
        Ok(value) if ran_a_handler(value) => "ok",
        Ok(_) => return result,
        Err(_) => "error",
    };
    ::metrics::histogram!(HANDLER_DURATION, "outcome" => label).record(started.elapsed());
    result
}

/// Times one idempotency store call, and counts it if it failed.
pub(crate) async fn store_call<T>(
    op: &'static str,
    call: impl Future<Output = std::result::Result<T, BoxError>>,
) -> std::result::Result<T, BoxError> {
    let started = std::time::Instant::now();
    let result = call.await;
    let label = if result.is_ok() { "ok" } else { "error" };
    ::metrics::histogram!(STORE_DURATION, "op" => op, "result" => label).record(started.elapsed());
    if result.is_err() {
        ::metrics::counter!(STORE_FAILURES, "op" => op).increment(1);
    }
    result
}
