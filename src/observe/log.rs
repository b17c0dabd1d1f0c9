//! Diagnostics through `tracing`: one span per delivery with its event id, object type and
//! event, and why a delivery was refused or failed.
//!
//! Never logged: secrets, signatures, bodies. Logged: why a delivery was refused, which
//! secret label matched, and one span per delivery with its event id, object type and event.

use std::future::Future;

use crate::error::{Error, Result};
use crate::event::Event;
use crate::outcome::Outcome;
use crate::signature::Verified;

pub(super) fn warn_rejected(error: &Error) {
    tracing::warn!(
        target: "monite_webhooks",
        kind = ?error.kind(),
        status = error.status().as_u16(),
        "delivery rejected: {error}"
    );
}

/// Logs a refused delivery; a signature mismatch is explained in full by `explain` (which
/// costs HMACs, see `Verifier::diagnose_at`) at most once a second, so forged requests
/// cannot make logging expensive. `now` is the receiver's clock, in Unix seconds.
pub(super) fn rejected_explained(error: &Error, now: u64, explain: impl FnOnce() -> Option<Error>) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_EXPLAINED: AtomicU64 = AtomicU64::new(0);

    let worth_explaining = matches!(
        error.kind(),
        crate::ErrorKind::SignatureMismatch | crate::ErrorKind::UnknownSubscription
    ) && tracing::enabled!(target: "monite_webhooks", tracing::Level::WARN);
    if worth_explaining {
        let last = LAST_EXPLAINED.load(Ordering::Relaxed);
        let due = now > last
            && LAST_EXPLAINED
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if let Some(explained) = due.then(explain).flatten() {
            return warn_rejected(&explained);
        }
    }
    warn_rejected(error);
}

pub(super) fn verified(verified: &Verified<'_>) {
    tracing::debug!(
        target: "monite_webhooks",
        signed_at = verified.timestamp(),
        subscription = verified.subscription_id().unwrap_or("(unkeyed)"),
        secret = verified.secret().label().unwrap_or("(unlabeled)"),
        secret_index = verified.secret_index(),
        "signature verified"
    );
}

/// The span one delivery's handling runs in; made before the event moves into its handler.
pub(crate) struct DeliverySpan(tracing::Span);

pub(super) fn delivery_span(event: &Event) -> DeliverySpan {
    DeliverySpan(tracing::info_span!(
        target: "monite_webhooks",
        "monite_delivery",
        event_id = event.id().unwrap_or("(none)"),
        object_type = %event.object_type(),
        event = %event.event_type(),
    ))
}

pub(super) fn in_delivery<F>(
    span: DeliverySpan,
    dispatch: F,
) -> impl Future<Output = Result<Outcome>>
where
    F: Future<Output = Result<Outcome>>,
{
    use tracing::Instrument as _;

    async {
        let result = dispatch.await;
        match &result {
            Ok(Outcome::Handled) => tracing::info!(target: "monite_webhooks", "handled"),
            Ok(outcome) => tracing::info!(target: "monite_webhooks", ?outcome, "not handled"),
            Err(error) => tracing::error!(
                target: "monite_webhooks",
                kind = ?error.kind(),
                "handling failed, Monite will retry: {error}"
            ),
        }
        result
    }
    .instrument(span.0)
}

/// `task` in the span it is spawned from: handlers spawned by
/// [`spawn_handlers`](crate::ReceiverBuilder::spawn_handlers) log within their delivery.
pub(super) fn in_current_span<F: Future>(task: F) -> impl Future<Output = F::Output> {
    tracing::Instrument::in_current_span(task)
}

pub(super) fn store_trouble(key: &str, what: &str) {
    tracing::error!(target: "monite_webhooks", key, "idempotency store: {what}");
}
