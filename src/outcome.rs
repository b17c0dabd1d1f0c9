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
    /// An earlier delivery already handled the event (or, with an inbox, wrote it); no
    /// handler ran.
    Duplicate,
    /// Written to the inbox: a worker will handle it. `202`.
    Accepted,
}

impl From<Dispatched> for Outcome {
    fn from(dispatched: Dispatched) -> Self {
        match dispatched {
            Dispatched::Handled => Self::Handled,
            Dispatched::Unhandled(why) => Self::Unhandled(why),
        }
    }
}
