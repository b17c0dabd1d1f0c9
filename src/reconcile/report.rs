//! What the reconciler tells its callback (and the logs): events a sweep had to recover,
//! sweeps that failed, Monite throttling, and windows older than the store remembers.

use std::fmt;

use super::window::Window;

/// Something an operator should know, passed to
/// [`ReconcilerBuilder::on_report`](super::ReconcilerBuilder::on_report).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Report {
    /// A sweep handled events no delivery had: webhooks were missed.
    EventsRecovered {
        /// The entity.
        entity_id: String,
        /// How many handlers ran now.
        count: usize,
        /// The window swept.
        window: Window,
    },
    /// An entity's sweep failed; its checkpoint stays where it was.
    SweepStale {
        /// The entity; `*` when the whole cycle failed, or the flush of the checkpoints
        /// it moved.
        entity_id: String,
        /// Why.
        error: String,
    },
    /// Monite answered 429 this many times more since the last report.
    RateLimited {
        /// 429 answers since the last report.
        count: u64,
    },
    /// A window reaches back past the idempotency store's retention: an event handled
    /// longer ago than that may run again.
    GapBeyondRetention {
        /// The entity.
        entity_id: String,
        /// The window's start.
        from: jiff::Timestamp,
        /// The oldest time the store still remembers.
        horizon: jiff::Timestamp,
    },
    /// This replica leads the fleet's reconcilers (see
    /// `ReconcilerBuilder::fleet`).
    LeadershipGained {
        /// This replica.
        replica: String,
        /// The lease's generation: raised by every acquisition, a fencing token.
        generation: i64,
        /// The leader replaced because its lease ran out (killed, hung, cut off), if one
        /// was: its unfinished cycle is resumed.
        taken_over_from: Option<String>,
    },
    /// This replica no longer leads: it stopped, or it could not renew its lease in time,
    /// or another replica took the lease.
    LeadershipLost {
        /// This replica.
        replica: String,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EventsRecovered {
                entity_id,
                count,
                window,
            } => {
                write!(
                    f,
                    "entity {entity_id}: {count} missed event(s) recovered in {window}"
                )
            }
            Self::SweepStale { entity_id, error } => {
                write!(
                    f,
                    "entity {entity_id}: sweep failed, checkpoint held: {error}"
                )
            }
            Self::RateLimited { count } => write!(f, "Monite answered 429 {count} time(s)"),
            Self::GapBeyondRetention {
                entity_id,
                from,
                horizon,
            } => write!(
                f,
                "entity {entity_id}: window from {from} reaches past the store's retention ({horizon})"
            ),
            Self::LeadershipGained {
                replica,
                generation,
                taken_over_from: None,
            } => write!(
                f,
                "replica {replica} leads the reconciler (lease generation {generation})"
            ),
            Self::LeadershipGained {
                replica,
                generation,
                taken_over_from: Some(from),
            } => write!(
                f,
                "replica {replica} leads the reconciler (lease generation {generation}), taking over from {from} whose lease ran out"
            ),
            Self::LeadershipLost { replica, reason } => {
                write!(
                    f,
                    "replica {replica} no longer leads the reconciler: {reason}"
                )
            }
        }
    }
}
