//! The rate budget's series (features `metrics` and `client`): its use and its waits, by
//! lane, whether the budget is the process's own or the fleet's.

use std::time::Duration;

use ::metrics::{Unit, counter, describe_counter, describe_histogram, histogram};

/// Counter: requests that drew a slot from the rate budget, by `lane` and `result`.
pub const BUDGET_DRAWS: &str = "monite_webhooks_budget_draws_total";
/// Histogram, seconds: how long each request waited for its slot, by `lane`.
pub const BUDGET_WAIT: &str = "monite_webhooks_budget_wait_seconds";
/// Counter: holds on every request (and with a fleet, every replica), by `reason`.
pub const BUDGET_HOLDS: &str = "monite_webhooks_budget_holds_total";
/// Histogram, seconds: round trips to the fleet's store, by `op` and `result`.
pub const BUDGET_STORE_DURATION: &str = "monite_webhooks_budget_store_duration_seconds";

/// Gives the budget's series their help text and unit.
pub(super) fn describe() {
    describe_counter!(
        BUDGET_DRAWS,
        Unit::Count,
        "Requests to Monite's API that drew a slot of the rate budget, by lane and result"
    );
    describe_histogram!(
        BUDGET_WAIT,
        Unit::Seconds,
        "Time a request to Monite's API waited for its slot of the rate budget, by lane"
    );
    describe_counter!(
        BUDGET_HOLDS,
        Unit::Count,
        "Holds on every request to Monite's API (a 429's Retry-After, a spent quota), by reason"
    );
    describe_histogram!(
        BUDGET_STORE_DURATION,
        Unit::Seconds,
        "Round trips to the store of the fleet's rate budget, by operation and result"
    );
}

pub(crate) fn drawn(lane: &'static str, waited: Duration, ok: bool) {
    let result = if ok { "ok" } else { "error" };
    counter!(BUDGET_DRAWS, "lane" => lane, "result" => result).increment(1);
    if ok {
        histogram!(BUDGET_WAIT, "lane" => lane).record(waited);
    }
}

pub(crate) fn held(rate_limited: bool) {
    let reason = if rate_limited {
        "rate_limited"
    } else {
        "quota_spent"
    };
    counter!(BUDGET_HOLDS, "reason" => reason).increment(1);
}

#[cfg(any(feature = "postgres", feature = "redis"))]
pub(crate) fn store_call(op: &'static str, took: Duration, ok: bool) {
    let result = if ok { "ok" } else { "error" };
    histogram!(BUDGET_STORE_DURATION, "op" => op, "result" => result).record(took);
}
