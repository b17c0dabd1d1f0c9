//! The inbox: acknowledge a delivery once it is durably written, and handle it later, at
//! the workers' own pace, with retries, leases and a dead state.
//!
//! - accepting: what a receiver built with
//!   [`Receiver::inbox_builder`](crate::Receiver::inbox_builder) writes verified
//!   deliveries to (accept);
//! - [`Workers`] (worker): tasks in any number of processes running the dispatcher's
//!   handlers over the accepted events;
//! - [`AttemptFailure`] (alert) and [`Backlog`] (backlog): what the alert hooks (hooks)
//!   [`on_failure`](WorkersBuilder::on_failure) and
//!   [`on_backlog`](WorkersBuilder::on_backlog) hear; the backlog is sampled at a pace
//!   also feeding the gauges of `metrics` (feature `metrics`);
//! - [`RetrySchedule`] (retry): when a failed event is tried again, and [`WhenUnhandled`]
//!   (unhandled): what happens to an event no handler takes;
//! - [`InboxStore`] (store): the storage contract, and [`PostgresInbox`] (postgres) its
//!   PostgreSQL tables.

mod accept;
mod alert;
// The attempt a worker runs a dispatch as, for transactional handlers.
pub(crate) mod attempt;
mod backlog;
mod hooks;
#[cfg(feature = "metrics")]
pub mod metrics;
pub(crate) mod postgres;
mod retry;
mod sizing;
mod store;
mod unhandled;
mod worker;

pub(crate) use self::accept::Inbox;
pub use self::alert::AttemptFailure;
pub use self::backlog::{Backlog, SAMPLE_INTERVAL};
pub use self::postgres::{
    ACCEPT_CONNECTIONS, InboxEvent, InboxStatus, PostgresInbox, REPLAY_BATCH, ReplayCounts,
    ReplayFilter, ReplayProgress,
};
pub use self::retry::{DEFAULT_MAX_ATTEMPTS, Jitter, RandomJitter, RetrySchedule};
pub use self::sizing::WORKER_POOL_HEADROOM;
pub use self::store::{
    Accepted, AfterFailure, AttemptReport, Buried, ClaimRequest, Claimed, Completed, Delivery,
    InboxSample, InboxStore, MIN_DONE_RETENTION,
};
pub use self::unhandled::WhenUnhandled;
pub use self::worker::{
    DEFAULT_BATCH, DEFAULT_CONCURRENCY, DEFAULT_LEASE, DEFAULT_MAX_LAPSES, MAX_POLL_INTERVAL,
    PRUNE_INTERVAL, Workers, WorkersBuilder, WorkersHandle,
};
