//! What the watchdog tells its callback (and the logs): subscriptions disabled and
//! re-enabled, failing deliveries, and checks that could not be made.

use std::fmt;

/// Something an operator should know, passed to
/// [`WatchdogBuilder::on_report`](super::WatchdogBuilder::on_report).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Report {
    /// A subscription is disabled: Monite records none of its events until it is
    /// enabled again, and nothing can recover those.
    SubscriptionDisabled {
        /// The subscription.
        subscription_id: String,
        /// Its object type.
        object_type: String,
        /// When this process last saw it enabled (Monite's time), if it did.
        last_seen_enabled: Option<jiff::Timestamp>,
    },
    /// A disabled subscription was enabled again. The events of the interval between
    /// are lost: Monite did not record them.
    SubscriptionReenabled {
        /// The subscription.
        subscription_id: String,
        /// Its object type.
        object_type: String,
        /// The lost interval's start: when it was last seen enabled (`None`: before this
        /// process started).
        lost_from: Option<jiff::Timestamp>,
        /// The lost interval's end: when it was enabled again.
        lost_until: jiff::Timestamp,
    },
    /// The receiver failed deliveries of a subscription since the last check.
    DeliveriesFailing {
        /// The subscription.
        subscription_id: String,
        /// How many failed.
        count: usize,
    },
    /// Monite's delivery log shows failed deliveries not reported before.
    DeliveryLogFailures {
        /// The entity whose log it is.
        entity_id: String,
        /// Where Monite delivered (the log names no subscription).
        url: String,
        /// How many new failed deliveries.
        count: usize,
        /// The most attempts Monite made for one of them: about 28 in its week.
        most_attempts: u32,
    },
    /// An entity's delivery log could not be scanned; it is scanned from the same point
    /// next time.
    DeliveryLogUnreadable {
        /// The entity.
        entity_id: String,
        /// Why.
        error: String,
    },
    /// A check failed as a whole (the subscriptions could not be listed); the next one
    /// goes on.
    CheckFailed {
        /// Why.
        error: String,
    },
    /// This replica leads the fleet's watchdogs (see
    /// `WatchdogBuilder::fleet`).
    LeadershipGained {
        /// This replica.
        replica: String,
        /// The lease's generation: raised by every acquisition, a fencing token.
        generation: i64,
        /// The leader replaced because its lease ran out, if one was.
        taken_over_from: Option<String>,
    },
    /// This replica no longer leads the watchdogs.
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
            Self::SubscriptionDisabled {
                subscription_id,
                object_type,
                ..
            } => {
                write!(
                    f,
                    "subscription {subscription_id} ({object_type}) is disabled: its events are not recorded"
                )
            }
            Self::SubscriptionReenabled {
                subscription_id,
                object_type,
                lost_from,
                lost_until,
            } => {
                let from = lost_from.map_or_else(
                    || "before this process started".to_owned(),
                    |t| t.to_string(),
                );
                write!(
                    f,
                    "subscription {subscription_id} ({object_type}) re-enabled; events from {from} to {lost_until} are lost"
                )
            }
            Self::DeliveriesFailing {
                subscription_id,
                count,
            } => {
                write!(
                    f,
                    "subscription {subscription_id}: {count} delivery(ies) failed since the last check"
                )
            }
            Self::DeliveryLogFailures {
                entity_id,
                url,
                count,
                most_attempts,
            } => write!(
                f,
                "entity {entity_id}: {count} failed delivery(ies) to {url} in Monite's log (up to {most_attempts} attempts)"
            ),
            Self::DeliveryLogUnreadable { entity_id, error } => {
                write!(f, "entity {entity_id}: {error}")
            }
            Self::CheckFailed { error } => write!(f, "the subscription check failed: {error}"),
            Self::LeadershipGained {
                replica,
                generation,
                taken_over_from: None,
            } => write!(
                f,
                "replica {replica} leads the subscription watchdog (lease generation {generation})"
            ),
            Self::LeadershipGained {
                replica,
                generation,
                taken_over_from: Some(from),
            } => write!(
                f,
                "replica {replica} leads the subscription watchdog (lease generation {generation}), taking over from {from} whose lease ran out"
            ),
            Self::LeadershipLost { replica, reason } => write!(
                f,
                "replica {replica} no longer leads the subscription watchdog: {reason}"
            ),
        }
    }
}
