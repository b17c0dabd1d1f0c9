//! The rate budget's observation points (feature `client`): each draw counted and its wait
//! timed, by lane; each hold counted, by reason; each round trip to the fleet's store timed.

use std::time::Duration;

/// A request took its slot (`ok`) or could not (the fleet's store failed), after waiting
/// `waited` in `lane` (`live`, `background`).
#[inline]
pub(crate) fn drawn(lane: &'static str, waited: Duration, ok: bool) {
    #[cfg(feature = "metrics")]
    super::metrics::budget::drawn(lane, waited, ok);
    #[cfg(not(feature = "metrics"))]
    let _ = (lane, waited, ok);
}

/// An answer held every request back: a `429` (`rate_limited`) or a quota spent until its
/// reset.
#[inline]
pub(crate) fn held(rate_limited: bool) {
    #[cfg(feature = "metrics")]
    super::metrics::budget::held(rate_limited);
    #[cfg(not(feature = "metrics"))]
    let _ = rate_limited;
}

/// One round trip to the fleet's store, `reserve` or `hold`, that took `took`.
#[cfg(any(feature = "postgres", feature = "redis"))]
#[inline]
pub(crate) fn store_call(op: &'static str, took: Duration, ok: bool) {
    #[cfg(feature = "metrics")]
    super::metrics::budget::store_call(op, took, ok);
    #[cfg(not(feature = "metrics"))]
    let _ = (op, took, ok);
}

/// The fleet's store could not be told of a hold: the other replicas learn of it from
/// their own `429`s. Logged as a warning.
#[cfg(any(feature = "postgres", feature = "redis"))]
#[inline]
pub(crate) fn hold_not_shared(error: &crate::Error) {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: "monite_webhooks::client", "the fleet was not told to hold back: {error}");
    #[cfg(not(feature = "tracing"))]
    let _ = error;
}
