//! Tracing and metrics as one set of observation points: each stage reports here, and each
//! point logs through `tracing` (feature `tracing`) and counts through `metrics` (feature
//! `metrics`). Without those features every point is a no-op, and a wrapped future is
//! returned as it is.

#[cfg(feature = "client")]
pub(crate) mod budget;
#[cfg(feature = "postgres")]
pub(crate) mod inbox;
#[cfg(feature = "tracing")]
mod log;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "client")]
pub(crate) mod reconcile;
#[cfg(feature = "client")]
pub(crate) mod watchdog;

use std::future::Future;

use http::StatusCode;

use crate::error::{BoxError, Error, Result};
use crate::event::Event;
use crate::outcome::Outcome;
use crate::signature::Verified;

/// The span one delivery's handling runs in; made before the event moves into its handler.
#[cfg(feature = "tracing")]
pub(crate) use self::log::DeliverySpan;
/// The span one delivery's handling runs in: nothing, without `tracing`.
#[cfg(not(feature = "tracing"))]
pub(crate) struct DeliverySpan;

// Every rejection passes through `rejected` or `rejected_explained`, so it is counted
// here too.

/// A request refused before dispatch: counted by reason, and logged.
#[inline]
pub(crate) fn rejected(error: &Error) {
    #[cfg(feature = "metrics")]
    metrics::rejected(error);
    #[cfg(feature = "tracing")]
    log::warn_rejected(error);
    #[cfg(not(any(feature = "metrics", feature = "tracing")))]
    let _ = error;
}

/// As [`rejected`]; a signature mismatch is explained in full by `explain` (which costs
/// HMACs, see `Verifier::diagnose_at`) at most once a second, so forged requests cannot
/// make logging expensive. `now` is the receiver's clock, in Unix seconds.
#[inline]
pub(crate) fn rejected_explained(error: &Error, now: u64, explain: impl FnOnce() -> Option<Error>) {
    #[cfg(feature = "metrics")]
    metrics::rejected(error);
    #[cfg(feature = "tracing")]
    log::rejected_explained(error, now, explain);
    #[cfg(not(feature = "tracing"))]
    let _ = (error, now, explain);
}

/// A signature verified: which secret matched, logged at debug level.
#[inline]
pub(crate) fn verified(verified: &Verified<'_>) {
    #[cfg(feature = "tracing")]
    log::verified(verified);
    #[cfg(not(feature = "tracing"))]
    let _ = verified;
}

/// The span a delivery of `event` is handled in.
#[inline]
pub(crate) fn delivery_span(event: &Event) -> DeliverySpan {
    #[cfg(feature = "tracing")]
    let span = log::delivery_span(event);
    #[cfg(not(feature = "tracing"))]
    let span = {
        let _ = event;
        DeliverySpan
    };
    span
}

/// Runs a delivery's dispatch in its span, and logs how it ended.
#[cfg(feature = "tracing")]
#[inline]
pub(crate) fn in_delivery<F>(
    span: DeliverySpan,
    dispatch: F,
) -> impl Future<Output = Result<Outcome>>
where
    F: Future<Output = Result<Outcome>>,
{
    log::in_delivery(span, dispatch)
}

// Without tracing the dispatch is returned as it is: no wrapper state machine to build.
#[cfg(not(feature = "tracing"))]
#[inline]
pub(crate) fn in_delivery<F>(_: DeliverySpan, dispatch: F) -> F
where
    F: Future<Output = Result<Outcome>>,
{
    dispatch
}

/// `task` in the span it is spawned from: handlers spawned by
/// [`spawn_handlers`](crate::ReceiverBuilder::spawn_handlers) log within their
/// delivery.
#[cfg(feature = "tracing")]
#[inline]
pub(crate) fn in_current_span<F: Future>(task: F) -> impl Future<Output = F::Output> {
    log::in_current_span(task)
}

/// `task` as it is, without `tracing`.
#[cfg(not(feature = "tracing"))]
#[inline]
pub(crate) fn in_current_span<F>(task: F) -> F {
    task
}

/// A handler run: timed, unless it ran no handler (an unhandled event).
#[cfg(feature = "metrics")]
#[inline]
pub(crate) fn handler_run<T>(
    run: impl Future<Output = Result<T>>,
    ran_a_handler: impl FnOnce(&T) -> bool,
) -> impl Future<Output = Result<T>> {
    metrics::handler_run(run, ran_a_handler)
}

// Without metrics the future is returned as it is: no wrapper state machine to build.
#[cfg(not(feature = "metrics"))]
#[inline]
pub(crate) fn handler_run<T, F>(run: F, _: impl FnOnce(&T) -> bool) -> F
where
    F: Future<Output = Result<T>>,
{
    run
}

/// One idempotency store call: timed, and counted if it failed.
#[cfg(feature = "metrics")]
#[inline]
pub(crate) fn store_call<T>(
    op: &'static str,
    call: impl Future<Output = std::result::Result<T, BoxError>>,
) -> impl Future<Output = std::result::Result<T, BoxError>> {
    metrics::store_call(op, call)
}

/// `call` as it is, without `metrics`.
#[cfg(not(feature = "metrics"))]
#[inline]
pub(crate) fn store_call<T, F>(_: &'static str, call: F) -> F
where
    F: Future<Output = std::result::Result<T, BoxError>>,
{
    call
}

/// The idempotency store failed to settle `key` (or to sweep): logged as an error.
#[inline]
pub(crate) fn store_trouble(key: &str, what: &str) {
    #[cfg(feature = "tracing")]
    log::store_trouble(key, what);
    #[cfg(not(feature = "tracing"))]
    let _ = (key, what);
}

/// One answered delivery: counted by outcome and status.
#[inline]
pub(crate) fn delivered(result: &Result<Outcome>, status: StatusCode) {
    #[cfg(feature = "metrics")]
    metrics::delivered(result, status);
    #[cfg(not(feature = "metrics"))]
    let _ = (result, status);
}
