//! Setting up one endpoint's subscriptions in one call, and rotating their secrets: the
//! secrets Monite returns go straight into a [`Keyring`].

mod run;
mod summary;

use futures_util::TryStreamExt as _;

use self::run::{Run, stopped};
use super::models::{ListQuery, SubscriptionWithSecret, WebhookSubscription};
use super::subscriptions::Subscriptions;
use crate::error::Result;
use crate::event::{EventType, ObjectType, SUBSCRIBABLE};
use crate::signature::Keyring;

pub use self::summary::{EnsureSummary, Ensured, SecretStatus};

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
    ) -> Result<EnsureSummary> {
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
    ) -> Result<EnsureSummary> {
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
                .ensure_object_type(plan, object_type, event_types.as_deref(), found)
                .await
                .map_err(|e| stopped(e, object_type, run.issued))?;
            entries.push(entry);
        }
        Ok(EnsureSummary {
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
