//! What an `ensure` run found and did: per object type, and for the whole plan.

use std::fmt;

use crate::client::models::{SubscriptionStatus, WebhookSubscription};
use crate::error::Error;
use crate::event::ObjectType;

/// Where a planned subscription's secret is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretStatus {
    /// The keyring already held it.
    Held,
    /// The subscription was created now; its secret is in the keyring.
    Issued,
    /// The keyring did not hold it, so it was regenerated; the new one is in the keyring.
    Regenerated,
    /// The subscription exists but the keyring does not hold its secret: deliveries from
    /// it are refused (`UnknownSubscription`). Add the secret to the keyring, or run again
    /// with
    /// [`SubscriptionPlan::regenerate_missing_secrets`](super::SubscriptionPlan::regenerate_missing_secrets).
    NotHeld,
    /// Created now, but Monite's answer had no readable id: the secret was added to the
    /// keyring as an unkeyed secret, tried for deliveries naming a subscription the
    /// keyring does not hold. The next run reports the subscription as [`NotHeld`](Self::NotHeld).
    Unkeyed,
    /// No subscription: Monite refused to create it ([`Ensured::refused`]).
    NoSubscription,
}

/// What [`Subscriptions::ensure`](crate::client::Subscriptions::ensure) found and did for one
/// planned object type.
#[derive(Debug)]
#[non_exhaustive]
pub struct Ensured {
    /// The object type.
    pub object_type: ObjectType,
    /// The subscription, as it is now; `None` if Monite refused to create it.
    pub subscription: Option<WebhookSubscription>,
    /// Whether it was created by this run.
    pub created: bool,
    /// Whether it was disabled (Monite disables a subscription after a week of failed
    /// deliveries) and this run enabled it.
    pub reenabled: bool,
    /// Whether its event types differed from the plan's and were updated.
    pub event_types_updated: bool,
    /// Where its secret is.
    pub secret: SecretStatus,
    /// Other subscriptions for the same URL and object type, left alone: each delivers
    /// every event once more. Delete them once the keyring holds the one in `subscription`.
    pub duplicates: Vec<WebhookSubscription>,
    /// This run's create failed in a way that may have created it anyway (the answer was
    /// lost), and the listing that followed found it: it was not created again, and its
    /// secret, sent only in the lost answer, is [`SecretStatus::NotHeld`] unless regenerated.
    pub create_answer_lost: Option<Error>,
    /// Monite refused a request about this subscription (a 4xx such as 422): the run went
    /// on with the others. Running again will not help until the plan or the account
    /// changes.
    pub refused: Option<Error>,
}

impl Ensured {
    pub(super) fn new(object_type: ObjectType) -> Self {
        Self {
            object_type,
            subscription: None,
            created: false,
            reenabled: false,
            event_types_updated: false,
            secret: SecretStatus::NoSubscription,
            duplicates: Vec::new(),
            create_answer_lost: None,
            refused: None,
        }
    }

    /// Whether it exists, is enabled, and its secret is in the keyring, keyed by its id.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.refused.is_none()
            && self
                .subscription
                .as_ref()
                .is_some_and(|s| s.status == SubscriptionStatus::Enabled)
            && matches!(
                self.secret,
                SecretStatus::Held | SecretStatus::Issued | SecretStatus::Regenerated
            )
    }

    /// Whether this run changed anything at Monite for it.
    #[must_use]
    pub fn changed(&self) -> bool {
        self.created
            || self.reenabled
            || self.event_types_updated
            || self.secret == SecretStatus::Regenerated
    }
}

/// What [`Subscriptions::ensure`](crate::client::Subscriptions::ensure) found and did.
/// `Display` prints one line per planned object type, for a log or a terminal.
#[derive(Debug)]
#[non_exhaustive]
pub struct EnsureSummary {
    /// One entry per planned object type, in the plan's order.
    pub subscriptions: Vec<Ensured>,
    /// Subscriptions for the plan's URL whose object type is not in the plan: left alone.
    pub unplanned: Vec<WebhookSubscription>,
}

impl EnsureSummary {
    /// Whether every planned subscription is ready (see [`Ensured::is_ready`]).
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.subscriptions.iter().all(Ensured::is_ready)
    }

    /// Whether this run changed anything at Monite. A second run right after a complete
    /// one changes nothing.
    #[must_use]
    pub fn changed(&self) -> bool {
        self.subscriptions.iter().any(Ensured::changed)
    }

    /// The entries for which `keep` holds.
    fn filtered(&self, keep: impl Fn(&Ensured) -> bool) -> impl Iterator<Item = &Ensured> {
        self.subscriptions.iter().filter(move |e| keep(e))
    }

    /// The subscriptions created by this run.
    pub fn created(&self) -> impl Iterator<Item = &Ensured> {
        self.filtered(|e| e.created)
    }

    /// The subscriptions this run enabled again.
    pub fn reenabled(&self) -> impl Iterator<Item = &Ensured> {
        self.filtered(|e| e.reenabled)
    }

    /// The subscriptions whose secret the keyring still does not hold.
    pub fn secrets_not_held(&self) -> impl Iterator<Item = &Ensured> {
        self.filtered(|e| matches!(e.secret, SecretStatus::NotHeld | SecretStatus::Unkeyed))
    }

    /// The object types Monite refused.
    pub fn refused(&self) -> impl Iterator<Item = &Ensured> {
        self.filtered(|e| e.refused.is_some())
    }
}

impl fmt::Display for EnsureSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for entry in &self.subscriptions {
            write!(f, "{}", entry.object_type)?;
            if let Some(subscription) = &entry.subscription {
                write!(f, " ({})", subscription.id)?;
            }
            let mut said = Vec::new();
            if entry.created {
                said.push("created".to_owned());
            }
            if entry.reenabled {
                said.push("re-enabled".to_owned());
            }
            if entry.event_types_updated {
                said.push("event types updated".to_owned());
            }
            if entry
                .subscription
                .as_ref()
                .is_some_and(|s| s.status == SubscriptionStatus::Disabled)
            {
                said.push("still disabled".to_owned());
            }
            said.push(
                match entry.secret {
                    SecretStatus::Held => "secret held",
                    SecretStatus::Issued => "secret added to the keyring",
                    SecretStatus::Regenerated => "secret regenerated into the keyring",
                    SecretStatus::NotHeld => "secret NOT held: deliveries will be refused",
                    SecretStatus::Unkeyed => "secret held unkeyed (the id was unreadable)",
                    SecretStatus::NoSubscription => "no subscription",
                }
                .to_owned(),
            );
            if !entry.duplicates.is_empty() {
                let ids: Vec<&str> = entry.duplicates.iter().map(|s| s.id.as_str()).collect();
                said.push(format!("duplicates left alone: {}", ids.join(", ")));
            }
            if let Some(error) = &entry.create_answer_lost {
                said.push(format!(
                    "found after a create whose answer was lost ({error})"
                ));
            }
            if let Some(error) = &entry.refused {
                said.push(format!("refused by Monite: {error}"));
            }
            writeln!(f, ": {}", said.join("; "))?;
        }
        for subscription in &self.unplanned {
            writeln!(
                f,
                "{} ({}): not in the plan, left alone ({})",
                subscription.object_type, subscription.id, subscription.status
            )?;
        }
        Ok(())
    }
}
