//! The fleet's leases (features `metrics`, `client` and `postgres` or `redis`): which
//! replica leads, and how often leadership moved because a leader stopped renewing.

use ::metrics::{Unit, counter, describe_counter, describe_gauge, gauge};

/// Gauge, 0 or 1, by `lease`: whether this replica holds the lease (the reconciler's
/// `reconciler`, the watchdog's `watchdog`). Summed over the fleet, 1 at most.
pub const LEASE_HELD: &str = "monite_webhooks_fleet_lease_held";
/// Counter, by `lease` and `how` (`free`: the lease was free or released; `taken_over`:
/// its holder's time ran out): the terms this replica began.
pub const LEASE_ACQUIRED: &str = "monite_webhooks_fleet_lease_acquired_total";

/// Gives the lease series their help text and unit.
pub(super) fn describe() {
    describe_gauge!(
        LEASE_HELD,
        "1 while this replica holds the fleet's lease, 0 otherwise"
    );
    describe_counter!(
        LEASE_ACQUIRED,
        Unit::Count,
        "Terms of a fleet lease this replica began, by how (free or taken over)"
    );
}

pub(crate) fn acquired(name: &str, taken_over: bool) {
    let how = if taken_over { "taken_over" } else { "free" };
    counter!(LEASE_ACQUIRED, "lease" => name.to_owned(), "how" => how).increment(1);
    gauge!(LEASE_HELD, "lease" => name.to_owned()).set(1.0);
}

pub(crate) fn lost(name: &str) {
    gauge!(LEASE_HELD, "lease" => name.to_owned()).set(0.0);
}
