//! What the workers tell their [`on_report`](super::WorkersBuilder::on_report) hook: a
//! failed attempt and what follows it, an event gone dead, a backlog grown old.

use std::time::Duration;

use super::counts::InboxCounts;
use crate::error::Error;
use crate::event::Event;

/// Something an operator should know about an inbox, passed to
/// [`WorkersBuilder::on_report`](super::WorkersBuilder::on_report).
#[derive(Debug)]
#[non_exhaustive]
pub enum Report {
    /// An attempt failed; the event is tried again in `retry_in`.
    AttemptFailed {
        /// The event (always there: a body that is not an envelope is never retried).
        event: Option<Event>,
        /// Why the attempt failed.
        error: Error,
        /// The attempt's number.
        attempt: i32,
        /// Attempts since the last retry or replay by hand: 1 is the first failure.
        tries: i32,
        /// When the next attempt comes, from now.
        retry_in: Duration,
    },
    /// No attempt follows: the event is now `dead`. Its last attempt failed, its body was
    /// not an envelope (`event` is `None`), or its lease lapsed once too often (its worker
    /// died or hung on it: reported after the rescue buried it, by the process whose
    /// workers rescued it).
    Dead {
        /// The event, unless its body was not an envelope.
        event: Option<Event>,
        /// Why the last attempt failed.
        error: Error,
        /// The last attempt's number.
        attempt: i32,
        /// Attempts since the last retry or replay by hand.
        tries: i32,
    },
    /// The oldest pending event was received longer ago than
    /// [`backlog_alert_after`](super::WorkersBuilder::backlog_alert_after): a backlog the
    /// workers do not drain.
    BacklogOld {
        /// The counts the workers read: `pending` is first attempts and retries.
        counts: InboxCounts,
        /// How long ago the oldest of them was received.
        oldest: Duration,
    },
}
