//! The `ensure` run: one planned object type after the other, each set up by
//! [`Run::ensure_object_type`], and how a failed request is taken.

use http::StatusCode;

use super::{Ensured, SecretStatus, SubscriptionPlan};
use crate::client::models::{
    ListQuery, NewSubscription, SubscriptionStatus, SubscriptionUpdate, SubscriptionWithSecret,
    WebhookSubscription,
};
use crate::client::subscriptions::Subscriptions;
use crate::error::{Error, Result};
use crate::event::{EventType, ObjectType};
use crate::signature::Keyring;

/// How a failed request about one subscription is taken.
enum Failure {
    /// Monite answered and refused this request: the run goes on with the others.
    Refused,
    /// The request may have been carried out though its answer was lost.
    MayHaveActed,
    /// Anything else (Monite unreachable, rate limits after retries, credentials): the run
    /// stops.
    Stop,
}

fn classify(error: &Error) -> Failure {
    match error.api_status() {
        Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS) => {
            Failure::Stop
        }
        Some(StatusCode::REQUEST_TIMEOUT) => Failure::MayHaveActed,
        Some(status) if status.is_client_error() => Failure::Refused,
        // A 5xx, a lost or unreadable answer, a connection that failed (counted here too:
        // telling the cases apart saves one listing, and a wrong guess costs a duplicate).
        _ => Failure::MayHaveActed,
    }
}

/// `error`, if Monite refused the request (the subscription is reported as refused and the
/// run goes on).
///
/// # Errors
/// `error` itself for any other failure, which stops the run: Monite may have carried the
/// request out, or is not to be worked with now (credentials, rate limits).
fn refused(error: Error) -> Result<Error> {
    match classify(&error) {
        Failure::Refused => Ok(error),
        Failure::MayHaveActed | Failure::Stop => Err(error),
    }
}

/// The run stopped at `object_type`: says so, and that running again finishes it.
pub(super) fn stopped(error: Error, object_type: &ObjectType, issued: usize) -> Error {
    error.context(&format!(
        "setting up the {object_type} subscription, so the run stopped there (run it again \
         to finish; the keyring holds the {issued} secret(s) this run obtained)"
    ))
}

/// Whether two event-type lists name the same events.
fn same_events(a: &[EventType], b: &[EventType]) -> bool {
    a.iter().all(|e| b.contains(e)) && b.iter().all(|e| a.contains(e))
}

/// One `ensure` run's state.
pub(super) struct Run<'r, 'c> {
    pub(super) subscriptions: &'r Subscriptions<'c>,
    pub(super) keyring: &'r mut Keyring,
    pub(super) save: &'r mut (dyn FnMut(&Keyring) -> Result<()> + Send),
    /// Secrets obtained so far, for the error message if the run stops.
    pub(super) issued: usize,
}

impl Run<'_, '_> {
    /// Sets up one planned object type; an error stops the run.
    pub(super) async fn ensure_object_type(
        &mut self,
        plan: &SubscriptionPlan,
        object_type: &ObjectType,
        event_types: Option<&[EventType]>,
        mut found: Vec<WebhookSubscription>,
    ) -> Result<Ensured> {
        let mut entry = Ensured::new(object_type.clone());
        if found.is_empty() {
            let mut new = NewSubscription::new(object_type.clone(), plan.url.clone());
            if let Some(event_types) = event_types {
                new = new.event_types(event_types.iter().cloned());
            }
            match self.subscriptions.create(&new).await {
                Ok(created) => {
                    entry.created = true;
                    entry.secret = self.keep(&created.subscription.id, &created)?;
                    entry.subscription = Some(created.subscription);
                    return Ok(entry);
                }
                Err(error) => {
                    match classify(&error) {
                        Failure::Refused => {
                            entry.refused = Some(error);
                            return Ok(entry);
                        }
                        Failure::Stop => return Err(error),
                        Failure::MayHaveActed => {
                            let query = ListQuery::new().object_type(object_type).limit(100);
                            found = self.subscriptions.for_url(&plan.url, query).await.map_err(
                                |e| {
                                    e.context(&format!(
                                        "listing again after a create that may have acted ({error})"
                                    ))
                                },
                            )?;
                            if found.is_empty() {
                                return Err(error);
                            }
                            entry.create_answer_lost = Some(error);
                        }
                    }
                }
            }
        }
        // The one whose secret is held, enabled first; else the oldest listed.
        let held = |s: &WebhookSubscription| self.keyring.contains(&s.id);
        let primary = found
            .iter()
            .position(|s| held(s) && s.status == SubscriptionStatus::Enabled)
            .or_else(|| found.iter().position(held))
            .unwrap_or(0);
        let mut subscription = found.remove(primary);
        entry.duplicates = found;

        // The secret first: enabling a subscription whose secret is about to change would
        // send deliveries the receivers refuse.
        entry.secret = if self.keyring.contains(&subscription.id) {
            SecretStatus::Held
        } else if plan.regenerate_missing_secrets {
            match self.subscriptions.regenerate_secret(&subscription.id).await {
                Ok(regenerated) => {
                    self.keep(&subscription.id, &regenerated)?;
                    SecretStatus::Regenerated
                }
                Err(error) => {
                    entry.refused = Some(refused(error)?);
                    SecretStatus::NotHeld
                }
            }
        } else {
            SecretStatus::NotHeld
        };

        if subscription.status == SubscriptionStatus::Disabled && entry.refused.is_none() {
            match self.subscriptions.enable(&subscription.id).await {
                Ok(enabled) => {
                    entry.reenabled = enabled.status == SubscriptionStatus::Enabled;
                    subscription = enabled;
                }
                Err(error) => entry.refused = Some(refused(error)?),
            }
        }

        if let Some(wanted) = event_types
            && !same_events(wanted, &subscription.event_types)
            && entry.refused.is_none()
        {
            let update = SubscriptionUpdate::new().event_types(wanted.iter().cloned());
            match self.subscriptions.update(&subscription.id, &update).await {
                Ok(updated) => {
                    entry.event_types_updated = true;
                    subscription = updated;
                }
                Err(error) => entry.refused = Some(refused(error)?),
            }
        }
        entry.subscription = Some(subscription);
        Ok(entry)
    }

    /// Puts a secret Monite just returned for subscription `id` into the keyring and saves
    /// it. `id` is empty when a create's answer had none readable.
    fn keep(&mut self, id: &str, answer: &SubscriptionWithSecret) -> Result<SecretStatus> {
        let status = if id.is_empty() {
            self.keyring.push_unkeyed(answer.secret.clone());
            SecretStatus::Unkeyed
        } else {
            self.keyring.insert(id, answer.secret.clone());
            SecretStatus::Issued
        };
        self.issued += 1;
        (self.save)(self.keyring).map_err(|e| {
            e.context(&format!(
                "saving the keyring after Monite returned the secret of subscription {id:?} \
                 (it is in the keyring in memory, not saved)"
            ))
        })?;
        Ok(status)
    }
}
