//! What workers do with an event no handler takes: the inbox's counterpart of the
//! receiver's `unhandled_status`.

/// What [`Workers`](super::Workers) do with an event that no handler (and no fallback)
/// takes, set with [`WorkersBuilder::unhandled`](super::WorkersBuilder::unhandled).
///
/// Without an inbox the receiver answers such an event with its
/// [`unhandled_status`](crate::ReceiverBuilder::unhandled_status): `200` (the default)
/// acknowledges it, a `4xx` or `5xx` makes Monite retry it until a replica with a handler
/// takes it. With an inbox the receiver has already answered `202`, so each accepted row
/// carries what its receiver would have done, and the default here follows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WhenUnhandled {
    /// As the receiver that accepted the event would have answered it without an inbox:
    /// retried when its `unhandled_status` is not `2xx`, done otherwise. The default.
    #[default]
    AsReceiver,
    /// Retried on the [`RetrySchedule`](super::RetrySchedule), so that a worker with a
    /// handler for it (a newer release, mid-deploy) runs it; `dead` after the last attempt.
    Retry,
    /// Marked done: events without a handler are not wanted. An event whose receiver
    /// answers unhandled events with a non-`2xx` status is marked done too, each time with
    /// an error in the log, since the two settings disagree.
    Done,
}
