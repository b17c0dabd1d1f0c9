//! What the alert hook hears about a failed attempt.

use std::sync::Arc;

use crate::event::Event;

pub(crate) type OnFailure = Arc<dyn Fn(&AttemptFailure<'_>) + Send + Sync>;

/// A failed attempt, as the [`on_failure`](super::WorkersBuilder::on_failure) hook sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct AttemptFailure<'a> {
    /// The event, unless its body was not an envelope.
    pub event: Option<&'a Event>,
    /// Why the attempt failed.
    pub error: &'a crate::Error,
    /// The attempt's number.
    pub attempt: i32,
    /// Attempts since the last retry or replay by hand: 1 is the first failure.
    pub tries: i32,
    /// No attempt follows: the event is now `dead`.
    pub dead: bool,
}
