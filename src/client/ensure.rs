//! Setting up one endpoint's subscriptions in one call, and rotating their secrets: the
//! secrets Monite returns go straight into a [`Keyring`].

use std::fmt;

use futures_util::TryStreamExt as _;
use http::StatusCode;

use super::models::{
    ListQuery, NewSubscription, SubscriptionStatus, SubscriptionUpdate, SubscriptionWithSecret,
    WebhookSubscription,
};
use super::subscriptions::Subscriptions;
use crate::error::{Error, Result};
use crate::event::{EventType, ObjectType, SUBSCRIBABLE};
use crate::signature::Keyring;

/// The subscriptions one endpoint should have: one per object type, all sent to one URL.
/// [`Subscriptions::ensure`] makes Monite's subscriptions match it.
///
/// ```
/// use monite_webhooks::client::SubscriptionPlan;
/// use monite_webhooks::{EventType, ObjectType};
///
/// let plan = SubscriptionPlan::new(
///     "https://example.com/webhooks/monite",
///     [ObjectType::Payable, ObjectType::Counterpart],
/// )
/// .event_types(ObjectType::Payable, [EventType::Paid, EventType::Approved])
/// .regenerate_missing_secrets(true);
/// assert_eq!(plan.object_types().count(), 2);
/// assert_eq!(SubscriptionPlan::every_object_type("https://example.com/hooks").object_types().count(), 42);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct SubscriptionPlan {
    url: String,
    // In the order given; each object type once.
    object_types: Vec<(ObjectType, Option<Vec<EventType>>)>,
    regenerate_missing_secrets: bool,
}

impl SubscriptionPlan {
    /// Every event of each of `object_types`, sent to `url` (public HTTPS; Monite follows
    /// no redirects). An object type given twice counts once.
    pub fn new(url: impl Into<String>, object_types: impl IntoIterator<Item = ObjectType>) -> Self {
        let mut plan = Self {
            url: url.into(),
            object_types: Vec::new(),
            regenerate_missing_secrets: false,
        };
        for object_type in object_types {
            plan.entry(object_type);
        }
        plan
    }

    /// Every object type Monite's API accepts (the 42 of its `WebhookObjectType` enum,
    /// API 2024-05-25), every event of each. With an older `X-Monite-Version`, Monite
    /// refuses the object types it does not know yet: [`Ensured::refused`] says which.
    pub fn every_object_type(url: impl Into<String>) -> Self {
        Self::new(url, SUBSCRIBABLE)
    }

    fn entry(&mut self, object_type: ObjectType) -> &mut Option<Vec<EventType>> {
        let at = match self
            .object_types
            .iter()
            .position(|(t, _)| *t == object_type)
        {
            Some(at) => at,
            None => {
                self.object_types.push((object_type, None));
                self.object_types.len() - 1
            }
        };
        &mut self.object_types[at].1
    }

    /// Only these events of `object_type` (added to the plan if it was not in it).
    /// Existing subscriptions for it whose events differ are updated to these.
    ///
    /// Without this, a new subscription gets every event of its object type, and the event
    /// types of an existing one are left as they are.
    pub fn event_types(
        mut self,
        object_type: ObjectType,
        event_types: impl IntoIterator<Item = EventType>,
    ) -> Self {
        *self.entry(object_type) = Some(event_types.into_iter().collect());
        self
    }

    /// Whether to regenerate the secret of a subscription that exists but whose secret the
    /// keyring does not hold (lost, or never seen because a create's answer was lost).
    /// Off by default: regenerating invalidates the old secret at once, and another
    /// receiver may still hold it.
    pub fn regenerate_missing_secrets(mut self, regenerate: bool) -> Self {
        self.regenerate_missing_secrets = regenerate;
        self
    }

    /// The URL.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The object types planned, in order.
    pub fn object_types(&self) -> impl Iterator<Item = &ObjectType> {
        self.object_types.iter().map(|(t, _)| t)
    }
}

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
    /// with [`SubscriptionPlan::regenerate_missing_secrets`].
    NotHeld,
    /// Created now, but Monite's answer had no readable id: the secret was added to the
    /// keyring as an unkeyed secret, tried for deliveries naming a subscription the
    /// keyring does not hold. The next run reports the subscription as [`NotHeld`](Self::NotHeld).
    Unkeyed,
    /// No subscription: Monite refused to create it ([`Ensured::refused`]).
    NoSubscription,
}

/// What [`Subscriptions::ensure`] found and did for one planned object type.
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
    fn new(object_type: ObjectType) -> Self {
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

/// What [`Subscriptions::ensure`] found and did. `Display` prints one line per planned
/// object type, for a log or a terminal.
#[derive(Debug)]
#[non_exhaustive]
pub struct EnsureReport {
    /// One entry per planned object type, in the plan's order.
    pub subscriptions: Vec<Ensured>,
    /// Subscriptions for the plan's URL whose object type is not in the plan: left alone.
    pub unplanned: Vec<WebhookSubscription>,
}

impl EnsureReport {
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

impl fmt::Display for EnsureReport {
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
fn stopped(error: Error, object_type: &ObjectType, issued: usize) -> Error {
    error.context(&format!(
        "setting up the {object_type} subscription, so the run stopped there (run it again \
         to finish; the keyring holds the {issued} secret(s) this run obtained)"
    ))
}

/// Whether two event-type lists name the same events.
fn same_events(a: &[EventType], b: &[EventType]) -> bool {
    a.iter().all(|e| b.contains(e)) && b.iter().all(|e| a.contains(e))
}

impl Subscriptions<'_> {
    /// Makes Monite's subscriptions for the plan's URL match the plan, and puts every
    /// secret Monite returns into `keyring`. See [`ensure_with`](Self::ensure_with), which
    /// also saves the keyring after each new secret: prefer it.
    ///
    /// # Errors
    /// As [`ensure_with`](Self::ensure_with).
    pub async fn ensure(
        &self,
        plan: &SubscriptionPlan,
        keyring: &mut Keyring,
    ) -> Result<EnsureReport> {
        self.ensure_with(plan, keyring, |_| Ok(())).await
    }

    /// Makes Monite's subscriptions for the plan's URL match the plan, puts every secret
    /// Monite returns into `keyring`, and calls `save` with the keyring after each one.
    ///
    /// It lists every subscription (all pages), keeps those sent to the plan's URL
    /// (compared as exact strings), and for each planned object type:
    ///
    /// - none exists: creates it, and its secret (returned only now) goes into the keyring;
    /// - one exists: checks that the keyring holds its secret, and if not reports
    ///   [`SecretStatus::NotHeld`], or regenerates it if the plan
    ///   [asks](SubscriptionPlan::regenerate_missing_secrets); enables it if Monite
    ///   disabled it; updates its event types if the plan names others;
    /// - several exist (an old create whose answer was lost, say): the one whose secret
    ///   the keyring holds (enabled first) is treated as above, the others are reported in
    ///   [`Ensured::duplicates`] and left alone; nothing is created.
    ///
    /// Subscriptions for the URL whose object type is not planned are reported, not
    /// touched. Running it twice changes nothing the second time. Run it from one place
    /// (a deploy step, a command), not from every replica at start-up: two runs at once
    /// can each create the same subscription.
    ///
    /// **No secret is lost.** Each secret goes into `keyring` as soon as Monite returns
    /// it, and `save` runs right then, before the next request: with `|keyring|
    /// keyring.save(path)`, a crash or an error half-way leaves every secret obtained so
    /// far in the keyring file. If `save` fails the run stops with its error (the secret is
    /// still in `keyring`, in memory). A create that fails in a way that may have created
    /// the subscription (a 5xx, a timeout, a lost connection) is not sent again: the
    /// object type is listed again, and a subscription found there is taken as existing,
    /// with [`Ensured::create_answer_lost`] set and its secret not held.
    ///
    /// ```no_run
    /// use monite_webhooks::client::{Client, Environment, SubscriptionPlan};
    /// use monite_webhooks::{Keyring, Verifier};
    ///
    /// # async fn run() -> Result<(), monite_webhooks::Error> {
    /// let client = Client::builder(Environment::Sandbox).credentials("id", "secret").build()?;
    /// let path = "monite-keyring.json";
    /// let mut keyring = if std::path::Path::new(path).exists() { Keyring::load(path)? } else { Keyring::new() };
    /// let plan = SubscriptionPlan::every_object_type("https://example.com/webhooks/monite");
    /// let subscriptions = client.webhook_subscriptions();
    /// let report = subscriptions.ensure_with(&plan, &mut keyring, |k| k.save(path)).await?;
    /// println!("{report}");
    /// // Later, a rotation: the new secret beside the old one until in-flight deliveries are in.
    /// let id = report.subscriptions[0].subscription.as_ref().map(|s| s.id.clone()).unwrap_or_default();
    /// subscriptions.rotate_secret(&id, &mut keyring).await?;
    /// keyring.save(path)?; // then, ten minutes later: keyring.forget_previous(&id); keyring.save(path)?;
    /// let verifier = Verifier::from_keyring(keyring);
    /// # let _ = verifier; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The run stops with an error, saying where, when the listing fails, when Monite
    /// cannot be reached or keeps answering 5xx or 429 (after the retries the
    /// [retry policy](super#retries) allows), on 401 or 403, when a create failed in a way
    /// that may have acted and the listing that follows does not find the subscription,
    /// and when `save` fails. Everything done before stays done and every secret obtained
    /// is in `keyring`: run it again to finish. A request Monite refuses with another 4xx
    /// (a 422 for an object type this API version does not know, say) does not stop the
    /// run: [`Ensured::refused`] holds it.
    pub async fn ensure_with(
        &self,
        plan: &SubscriptionPlan,
        keyring: &mut Keyring,
        mut save: impl FnMut(&Keyring) -> Result<()> + Send,
    ) -> Result<EnsureReport> {
        let existing = self
            .for_url(&plan.url, ListQuery::new().limit(100))
            .await
            .map_err(|e| e.context("listing the subscriptions before setting them up"))?;
        let unplanned = existing
            .iter()
            .filter(|s| !plan.object_types().any(|t| *t == s.object_type))
            .cloned()
            .collect();
        let mut run = Run {
            subscriptions: self,
            keyring,
            save: &mut save,
            issued: 0,
        };
        let mut entries = Vec::with_capacity(plan.object_types.len());
        for (object_type, event_types) in &plan.object_types {
            let found: Vec<WebhookSubscription> = existing
                .iter()
                .filter(|s| s.object_type == *object_type)
                .cloned()
                .collect();
            let entry = run
                .one(plan, object_type, event_types.as_deref(), found)
                .await
                .map_err(|e| stopped(e, object_type, run.issued))?;
            entries.push(entry);
        }
        Ok(EnsureReport {
            subscriptions: entries,
            unplanned,
        })
    }

    /// Every subscription sent to `url`, over all pages.
    async fn for_url(&self, url: &str, query: ListQuery) -> Result<Vec<WebhookSubscription>> {
        self.list(query)
            .try_filter(|s| std::future::ready(s.url == url))
            .try_collect()
            .await
    }

    /// Regenerates a subscription's secret and puts the new one into `keyring` beside the
    /// old one ([`Keyring::rotate`]), which it keeps as the previous secret.
    ///
    /// Monite invalidates the old secret at once and signs every delivery from then on with
    /// the new one. A delivery already signed with the old one (sent just before, still in
    /// flight) still verifies while the keyring keeps it. A delivery that fails and is
    /// retried later is assumed to be signed again with the current secret, as Monite's
    /// documentation says of "webhooks triggered from then on" (it does not speak of
    /// retries). A delivery signed with the old secret carries a timestamp from before the
    /// rotation, so the verifier's timestamp tolerance (300 s by default) refuses it after
    /// that long anyway: keep the previous secret for that long plus a margin, ten minutes
    /// say, then [`Keyring::forget_previous`] and save the keyring again.
    ///
    /// Save the keyring (and give it to the receivers) right after this returns: until
    /// they hold the new secret, deliveries are refused and Monite retries them.
    ///
    /// # Errors
    /// As [`regenerate_secret`](Self::regenerate_secret); `keyring` is then unchanged. If
    /// the error says Monite may have acted, the old secret may already be invalid and the
    /// new one was lost: rotate again.
    pub async fn rotate_secret(
        &self,
        id: &str,
        keyring: &mut Keyring,
    ) -> Result<SubscriptionWithSecret> {
        let rotated = self.regenerate_secret(id).await?;
        keyring.rotate(id, rotated.secret.clone());
        Ok(rotated)
    }
}

/// One `ensure` run's state.
struct Run<'r, 'c> {
    subscriptions: &'r Subscriptions<'c>,
    keyring: &'r mut Keyring,
    save: &'r mut (dyn FnMut(&Keyring) -> Result<()> + Send),
    /// Secrets obtained so far, for the error message if the run stops.
    issued: usize,
}

impl Run<'_, '_> {
    /// Sets up one planned object type; an error stops the run.
    async fn one(
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
