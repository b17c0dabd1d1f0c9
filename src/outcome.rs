//! What happened to a verified delivery: a leaf type outside `receive`, so the observers
//! read it without depending on the receiver that calls them.

use crate::dispatch::{Dispatched, Unhandled};

/// What happened to a verified delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// A handler ran and succeeded.
    Handled,
    /// No handler took the event.
    Unhandled(Unhandled),
    /// An earlier delivery already handled the event; no handler ran.
    Duplicate,
}

impl From<Dispatched> for Outcome {
    fn from(dispatched: Dispatched) -> Self {
        match dispatched {
            Dispatched::Handled => Self::Handled,
            Dispatched::Unhandled(why) => Self::Unhandled(why),
        }
    }
}
