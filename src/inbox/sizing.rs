//! How many connections the workers need: the rule the guide states, and the warning
//! `Workers::start` gives when a pool breaks it.

/// Connections a workers' pool needs beyond its concurrency (one per transactional handler
/// running): one held for good by the listener that wakes idle workers, and two for
/// what takes one briefly (heartbeats, claims, done marks, rescue, prune, the backlog
/// sample). A pool of `concurrency + WORKER_POOL_HEADROOM` connections or more keeps
/// connections free for heartbeats however slow the handlers; accepting has a pool of
/// its own ([`PostgresInbox::with_accept_pool`](crate::inbox::PostgresInbox::with_accept_pool)).
pub const WORKER_POOL_HEADROOM: u32 = 3;

/// Warns (feature `tracing`) when `connections` leaves `concurrency` workers less than
/// [`WORKER_POOL_HEADROOM`] (one less when they do not listen).
pub(super) fn warn_if_pool_small(concurrency: usize, listening: bool, connections: Option<u32>) {
    let Some(connections) = connections else {
        return;
    };
    let needed = u32::try_from(concurrency)
        .unwrap_or(u32::MAX)
        .saturating_add(WORKER_POOL_HEADROOM - u32::from(!listening));
    if concurrency > 0 && connections < needed {
        crate::observe::inbox::pool_small(concurrency, connections, needed);
    }
}
