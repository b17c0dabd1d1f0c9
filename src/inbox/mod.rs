//! The inbox: acknowledge a delivery once it is durably written, and handle it later, at
//! the workers' own pace, with retries, leases and a dead state.
//!
//! - accepting: what a receiver built with
//!   [`Receiver::inbox_builder`](crate::Receiver::inbox_builder) writes verified
//!   deliveries to (accept);
//! - [`Workers`] (worker): tasks in any number of processes running the dispatcher's
//!   handlers over the accepted events: the builder and the handle (worker), the claim
//!   loop (worker/run), done marks and heartbeats (worker/completer), and rescue, prune
//!   and the backlog sample (worker/maintenance), each at a pace; the attempt a worker
//!   runs a dispatch as (attempt);
//! - [`Report`] (report): what the workers' [`on_report`](WorkersBuilder::on_report)
//!   hook hears, beside [`on_failure`](WorkersBuilder::on_failure); their metrics are
//!   in [`crate::metrics`] (feature `metrics`);
//! - [`RetrySchedule`] (retry): when a failed event is tried again, and [`WhenUnhandled`]
//!   (unhandled): what happens to an event no handler takes;
//! - [`InboxState`], [`InboxEvent`] and [`InboxCounts`]: an event's state, an event as an
//!   operator sees it, and how many are in each state;
//! - [`InboxStore`] (store): the storage contract, [`PostgresInbox`] (postgres) its
//!   PostgreSQL tables, and [`MemoryInbox`] a store in memory, for tests.

mod accept;
// The attempt a worker runs a dispatch as, for transactional handlers.
pub(crate) mod attempt;
mod counts;
mod memory;
pub(crate) mod postgres;
mod report;
mod retry;
mod row;
mod sizing;
mod state;
mod store;
mod unhandled;
mod worker;

pub(crate) use self::accept::Inbox;
pub use self::counts::InboxCounts;
pub use self::memory::MemoryInbox;
pub use self::postgres::{
    ACCEPT_CONNECTIONS, PostgresInbox, REQUEUE_BATCH, RequeueCounts, RequeueFilter, RequeueProgress,
};
pub use self::report::Report;
pub use self::retry::{DEFAULT_MAX_ATTEMPTS, Jitter, RandomJitter, RetrySchedule};
pub use self::row::InboxEvent;
pub use self::sizing::WORKER_POOL_HEADROOM;
pub use self::state::InboxState;
pub use self::store::{
    Accepted, AfterFailure, AttemptId, AttemptRecord, Buried, ClaimRequest, Claimed, Completed,
    Delivery, InboxStore, MIN_DONE_RETENTION,
};
pub use self::unhandled::WhenUnhandled;
pub use self::worker::{
    BatchSummary, DEFAULT_ATTEMPT_LEASE, DEFAULT_BATCH, DEFAULT_CONCURRENCY, DEFAULT_MAX_LAPSES,
    MAX_POLL_INTERVAL, PRUNE_INTERVAL, SAMPLE_INTERVAL, Workers, WorkersBuilder, WorkersHandle,
};
