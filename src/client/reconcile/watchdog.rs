//! The subscription watchdog: Monite stops recording a subscription's events while it is
//! disabled (after a week of failed deliveries), so nothing can recover them; the only
//! lever is noticing at once. Each check lists the subscriptions (one request), reports
//! each disabled one, re-enables it if asked, and reports the interval whose events are
//! lost. The receiver's own failed deliveries, recorded through
//! [`Watchdog::record_failure`], are reported at the next check, long before Monite's
//! week runs out.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::TryStreamExt as _;

use super::window::signed;
use super::{DEEP_DEPTH, OnReport, Reconciler, Report};
use crate::client::{Client, ListQuery, SubscriptionStatus, WebhookDelivery, WebhookSubscription};
use crate::error::Result;

/// How often [`Watchdog::run`] checks, unless told otherwise: a disabled subscription is
/// reported within this long.
pub const WATCH_EVERY: Duration = Duration::from_secs(60);

/// How far before an entity's last scan of the delivery log the next one lists: a
/// delivery's final failure can come a week (Monite's retries) after it was created, so
/// this is [`DEEP_DEPTH`], 8 days. The first scan of an entity lists this far back too.
const LOG_MARGIN: Duration = DEEP_DEPTH;

/// Watches the webhook subscriptions; cloning shares its state.
///
/// ```no_run
/// use monite_webhooks::client::reconcile::Watchdog;
/// # async fn run(client: monite_webhooks::client::Client) -> Result<(), monite_webhooks::Error> {
/// let watchdog = Watchdog::new(client).reenable(true).on_report(|r| eprintln!("{r}"));
/// let check = watchdog.check_once().await?;
/// for subscription in &check.disabled {
///     eprintln!("{} ({}) was disabled", subscription.id, subscription.object_type);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct Watchdog {
    client: Client,
    reenable: bool,
    on_report: Option<OnReport>,
    reconciler: Option<Reconciler>,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// When each subscription was last seen enabled (Monite's time).
    last_enabled: HashMap<String, jiff::Timestamp>,
    /// Failed deliveries the receiver recorded since the last check, per subscription.
    failures: HashMap<String, usize>,
    /// Whether the last check found failures.
    was_failing: bool,
    /// Entities whose delivery log is scanned, a few per check in turn.
    log_entities: Vec<String>,
    log_per_check: usize,
    log_cursor: usize,
    /// Per entity, Monite's time when its last scan started: the next lists deliveries
    /// created from [`LOG_MARGIN`] before it, not the whole log (kept for months).
    log_marks: HashMap<String, jiff::Timestamp>,
    /// Per entity, the failed deliveries already reported and when they were first seen
    /// (Monite's time, after their listing: not before they were created); forgotten once
    /// the next listing starts after that, since it can no longer return them.
    log_seen: HashMap<String, HashMap<String, jiff::Timestamp>>,
}

/// What one check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatchCheck {
    /// The subscriptions disabled when listed.
    pub disabled: Vec<WebhookSubscription>,
    /// Those re-enabled by this check.
    pub reenabled: Vec<String>,
    /// Those that could not be re-enabled, with why.
    pub failed: Vec<(String, String)>,
    /// Entities whose delivery log could not be scanned, with why (also reported as
    /// [`Report::SweepStale`]); they are scanned from the same point next time.
    pub delivery_log_failed: Vec<(String, String)>,
}

impl WatchCheck {
    /// Whether a subscription is still disabled after the check.
    #[must_use]
    pub fn any_still_disabled(&self) -> bool {
        self.disabled.len() > self.reenabled.len()
    }
}

impl Watchdog {
    /// A watchdog that reports and does not re-enable.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            reenable: false,
            on_report: None,
            reconciler: None,
            state: Arc::default(),
        }
    }

    /// Re-enables each disabled subscription as soon as it is seen.
    pub fn reenable(mut self, reenable: bool) -> Self {
        self.reenable = reenable;
        self
    }

    /// Calls `report` for each [`Report`].
    pub fn on_report(mut self, report: impl Fn(&Report) + Send + Sync + 'static) -> Self {
        self.on_report = Some(Arc::new(report));
        self
    }

    /// Asks `reconciler` for a deep sweep after a re-enable or once the receiver's
    /// failures clear: the events Monite did record during the outage are swept at once.
    pub fn deep_sweep_with(mut self, reconciler: Reconciler) -> Self {
        self.reconciler = Some(reconciler);
        self
    }

    /// Also scans the delivery log (`GET /webhook_deliveries`) of these entities,
    /// `per_check` of them per check in turn, for deliveries Monite marks unsuccessful
    /// ([`Report::DeliveryLogFailures`], each delivery once). This costs one listing per
    /// entity scanned, of the deliveries created from 8 days (Monite's week of retries and
    /// a day) before that entity's last scan; the receiver's own failures
    /// ([`record_failure`](Self::record_failure)) cost nothing and come first. A scan that
    /// fails is in [`WatchCheck::delivery_log_failed`] and does not stop the check.
    pub fn delivery_log(
        self,
        entities: impl IntoIterator<Item = impl Into<String>>,
        per_check: usize,
    ) -> Self {
        {
            let mut state = self.lock();
            state.log_entities = entities.into_iter().map(Into::into).collect();
            state.log_per_check = per_check.max(1);
        }
        self
    }

    /// Records a delivery the receiver failed (a non-2xx answer) for `subscription_id`:
    /// call it from [`ReceiverBuilder::on_failure`](crate::ReceiverBuilder::on_failure).
    pub fn record_failure(&self, subscription_id: &str) {
        let mut state = self.lock();
        *state
            .failures
            .entry(subscription_id.to_owned())
            .or_default() += 1;
    }

    /// One check: lists the subscriptions, reports (and re-enables, if asked) the disabled
    /// ones, and reports the receiver's failures since the last check.
    ///
    /// # Errors
    /// The listing failing; a failed re-enable is in [`WatchCheck::failed`] instead.
    pub async fn check_once(&self) -> Result<WatchCheck> {
        let all: Vec<WebhookSubscription> = self
            .client
            .webhook_subscriptions()
            .list(ListQuery::new())
            .try_collect()
            .await?;
        let now = self
            .client
            .monite_now()
            .unwrap_or_else(jiff::Timestamp::now);
        let mut check = WatchCheck::default();
        // Per object type, whether every subscription of it is enabled after this check:
        // one gauge per type, set once, so a disabled one is never hidden by another.
        #[cfg(feature = "metrics")]
        let mut enabled_by_type: HashMap<String, bool> = HashMap::new();
        for subscription in all {
            if subscription.status != SubscriptionStatus::Disabled {
                #[cfg(feature = "metrics")]
                enabled_by_type
                    .entry(subscription.object_type.as_str().to_owned())
                    .or_insert(true);
                self.lock()
                    .last_enabled
                    .insert(subscription.id.clone(), now);
                continue;
            }
            let since = self.lock().last_enabled.get(&subscription.id).copied();
            self.report(&Report::SubscriptionDisabled {
                subscription_id: subscription.id.clone(),
                object_type: subscription.object_type.as_str().to_owned(),
                last_seen_enabled: since,
            });
            if self.reenable {
                match self
                    .client
                    .webhook_subscriptions()
                    .enable(&subscription.id)
                    .await
                {
                    Ok(_) => {
                        let at = self.client.monite_now().unwrap_or(now);
                        self.lock().last_enabled.insert(subscription.id.clone(), at);
                        self.report(&Report::SubscriptionReenabled {
                            subscription_id: subscription.id.clone(),
                            object_type: subscription.object_type.as_str().to_owned(),
                            lost_from: since,
                            lost_until: at,
                        });
                        check.reenabled.push(subscription.id.clone());
                    }
                    Err(e) => check.failed.push((subscription.id.clone(), e.to_string())),
                }
            }
            #[cfg(feature = "metrics")]
            {
                let reenabled = check.reenabled.last() == Some(&subscription.id);
                let all_enabled = enabled_by_type
                    .entry(subscription.object_type.as_str().to_owned())
                    .or_insert(true);
                *all_enabled &= reenabled;
            }
            check.disabled.push(subscription);
        }
        #[cfg(feature = "metrics")]
        super::metrics::subscriptions_enabled(&enabled_by_type);
        let (failures, cleared) = {
            let mut state = self.lock();
            let failures = std::mem::take(&mut state.failures);
            let cleared = state.was_failing && failures.is_empty();
            state.was_failing = !failures.is_empty();
            (failures, cleared)
        };
        #[cfg(feature = "metrics")]
        super::metrics::unsuccessful(failures.values().sum());
        for (subscription_id, count) in failures {
            self.report(&Report::DeliveriesFailing {
                subscription_id,
                count,
            });
        }
        // Before the scan, which may fail: the outage's deep sweep must not wait on it.
        if (cleared || !check.reenabled.is_empty())
            && let Some(reconciler) = &self.reconciler
        {
            reconciler.request_deep_sweep();
        }
        check.delivery_log_failed = self.scan_delivery_log().await;
        Ok(check)
    }

    /// Checks every `every` (see [`WATCH_EVERY`]) forever; a failed check is reported
    /// as [`Report::SweepStale`] with entity `*` and the next one goes on.
    pub async fn run(&self, every: Duration) -> std::convert::Infallible {
        loop {
            if let Err(e) = self.check_once().await {
                self.report(&Report::SweepStale {
                    entity_id: "*".to_owned(),
                    error: e.to_string(),
                });
            }
            tokio::time::sleep(every).await;
        }
    }

    /// The next entities' delivery logs: each failed delivery not reported before. Returns
    /// the entities whose scan failed, with why.
    async fn scan_delivery_log(&self) -> Vec<(String, String)> {
        let due: Vec<String> = {
            let mut state = self.lock();
            let count = state.log_entities.len();
            if count == 0 {
                return Vec::new();
            }
            let take = state.log_per_check.min(count);
            let start = state.log_cursor % count;
            state.log_cursor = (start + take) % count;
            (0..take)
                .map(|i| state.log_entities[(start + i) % count].clone())
                .collect()
        };
        let mut errors = Vec::new();
        for entity_id in due {
            if let Err(e) = self.scan_entity_log(&entity_id).await {
                let error = format!("the delivery log could not be scanned: {e}");
                self.report(&Report::SweepStale {
                    entity_id: entity_id.clone(),
                    error: error.clone(),
                });
                errors.push((entity_id, error));
            }
        }
        errors
    }

    /// One entity's delivery log, from [`LOG_MARGIN`] before its last scan.
    async fn scan_entity_log(&self, entity_id: &str) -> Result<()> {
        let started = self
            .client
            .monite_now()
            .unwrap_or_else(jiff::Timestamp::now);
        let mark = self
            .lock()
            .log_marks
            .get(entity_id)
            .copied()
            .unwrap_or(started);
        let from = mark.checked_sub(signed(LOG_MARGIN)).unwrap_or(mark);
        let failed: Vec<WebhookDelivery> = self
            .client
            .webhook_deliveries(entity_id.to_owned())
            .list(ListQuery::new().created_at_or_after(from))
            .try_filter(|d| std::future::ready(d.was_successful == Some(false)))
            .try_collect()
            .await?;
        let seen_at = self.client.monite_now().unwrap_or(started);
        let mut by_url: HashMap<String, (usize, u32)> = HashMap::new();
        {
            let mut state = self.lock();
            state.log_marks.insert(entity_id.to_owned(), started);
            let seen = state.log_seen.entry(entity_id.to_owned()).or_default();
            // Seen before this listing's start, so created before it: never listed again.
            seen.retain(|_, at| *at >= from);
            for delivery in failed {
                if seen.insert(delivery.id.clone(), seen_at).is_none() {
                    let entry = by_url.entry(delivery.url).or_default();
                    entry.0 += 1;
                    entry.1 = entry.1.max(delivery.requests_made_count);
                }
            }
        }
        for (url, (count, most_attempts)) in by_url {
            self.report(&Report::DeliveryLogFailures {
                entity_id: entity_id.to_owned(),
                url,
                count,
                most_attempts,
            });
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn report(&self, report: &Report) {
        #[cfg(feature = "tracing")]
        tracing::warn!(target: "monite_webhooks::watchdog", "{report}");
        #[cfg(feature = "metrics")]
        super::metrics::report(report);
        if let Some(on_report) = &self.on_report {
            on_report(report);
        }
    }
}

impl fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watchdog")
            .field("reenable", &self.reenable)
            .finish_non_exhaustive()
    }
}
