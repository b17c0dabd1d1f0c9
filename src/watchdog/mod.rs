//! The subscription watchdog: Monite stops recording a subscription's events while it is
//! disabled (after a week of failed deliveries), so nothing can recover them; the only
//! lever is noticing at once. Each check lists the subscriptions (one request), reports
//! each disabled one, re-enables it if asked, and reports the interval whose events are
//! lost. The receiver's own failed deliveries, recorded through
//! [`Watchdog::record_failure`], are reported at the next check, long before Monite's
//! week runs out.
//!
//! Replicas that share PostgreSQL or Redis check by turns (`WatchdogBuilder::fleet`):
//! one leads under a lease, so each incident is acted on and reported once, and the
//! failures recorded on any replica reach it.
//!
//! One check by hand or from cron, with [`Watchdog::run_once`]; or one every
//! [`every`](WatchdogBuilder::every) in the background, with [`Watchdog::start`], until
//! [`WatchdogHandle::shutdown`].

mod builder;
#[cfg(any(feature = "postgres", feature = "redis"))]
mod fleet;
mod handle;
mod report;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::TryStreamExt as _;

use crate::client::{Client, ListQuery, SubscriptionStatus, WebhookDelivery, WebhookSubscription};
use crate::error::Result;
use crate::observe;
use crate::reconcile::{DEEP_DEPTH, Reconciler, signed};
use crate::stop::Stop;

pub use self::builder::WatchdogBuilder;
pub use self::handle::WatchdogHandle;
pub use self::report::Report;

/// How often a started watchdog checks, unless told otherwise
/// ([`WatchdogBuilder::every`]): a disabled subscription is reported within this long.
pub const WATCH_EVERY: Duration = Duration::from_secs(60);

/// How far before an entity's last scan of the delivery log the next one lists: a
/// delivery's final failure can come a week (Monite's retries) after it was created, so
/// this is [`DEEP_DEPTH`], 8 days. The first scan of an entity lists this far back too.
const LOG_MARGIN: Duration = DEEP_DEPTH;

/// Watches the webhook subscriptions; cloning shares its state.
///
/// ```no_run
/// use monite_webhooks::watchdog::Watchdog;
/// # async fn run(client: monite_webhooks::client::Client) -> Result<(), monite_webhooks::Error> {
/// let watchdog = Watchdog::builder(client)
///     .reenable(true)
///     .on_report(|r| eprintln!("{r}"))
///     .build()?;
/// let check = watchdog.run_once().await?;
/// for subscription in &check.disabled {
///     eprintln!("{} ({}) was disabled", subscription.id, subscription.object_type);
/// }
///
/// let running = watchdog.start();
/// // ... until the process is asked to stop:
/// running.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Watchdog {
    inner: Arc<Inner>,
}

type OnReport = Arc<dyn Fn(&Report) + Send + Sync>;

struct Inner {
    client: Client,
    reenable: bool,
    on_report: Option<OnReport>,
    reconciler: Option<Reconciler>,
    every: Duration,
    state: Mutex<State>,
    /// The replicas this one checks by turns with; `None`: alone.
    #[cfg(any(feature = "postgres", feature = "redis"))]
    fleet: Option<fleet::Shared>,
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
    /// With a fleet, [`run_once`](Watchdog::run_once) checked nothing: this replica (named
    /// here) held the lease; the receiver's failures recorded here were passed on to it.
    pub led_elsewhere: Option<String>,
    /// Entities whose delivery log could not be scanned, with why (also reported as
    /// [`Report::DeliveryLogUnreadable`]); they are scanned from the same point next time.
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
    /// Starts configuring a watchdog over `client`'s subscriptions: by default it reports
    /// and does not re-enable.
    pub fn builder(client: Client) -> WatchdogBuilder {
        WatchdogBuilder::new(client)
    }

    /// Records a delivery the receiver failed (a non-2xx answer) for `subscription_id`:
    /// call it from [`ReceiverBuilder::on_failure`](crate::ReceiverBuilder::on_failure).
    /// With a fleet, it reaches whichever replica leads through the shared store, within
    /// a check's time (or a third of the lease, if shorter).
    pub fn record_failure(&self, subscription_id: &str) {
        self.add_failures([(subscription_id.to_owned(), 1)]);
    }

    fn add_failures(&self, failures: impl IntoIterator<Item = (String, usize)>) {
        let mut state = self.lock();
        for (subscription_id, count) in failures {
            *state.failures.entry(subscription_id).or_default() += count;
        }
    }

    fn take_failures(&self) -> HashMap<String, usize> {
        std::mem::take(&mut self.lock().failures)
    }

    /// One check, for tests, a run by hand or cron: lists the subscriptions, reports (and
    /// re-enables, if asked) the disabled ones, and reports the receiver's failures since
    /// the last check.
    ///
    /// With a fleet (`WatchdogBuilder::fleet`), it checks only if no other replica leads
    /// (then gives the lease up), with the failures every replica recorded; otherwise it
    /// passes this replica's failures on and names the leader in
    /// [`WatchCheck::led_elsewhere`].
    ///
    /// # Errors
    /// The listing failing; a failed re-enable is in [`WatchCheck::failed`] instead.
    pub async fn run_once(&self) -> Result<WatchCheck> {
        #[cfg(any(feature = "postgres", feature = "redis"))]
        if let Some(shared) = &self.inner.fleet {
            return self.run_once_in_fleet(shared).await;
        }
        let failures = self.take_failures();
        self.check(failures).await
    }

    /// One check, with the receiver's failures since the last; they are kept for the next
    /// check if this one fails.
    async fn check(&self, failures: HashMap<String, usize>) -> Result<WatchCheck> {
        let checked = self.check_with(failures.clone()).await;
        if checked.is_err() {
            self.add_failures(failures);
        }
        checked
    }

    async fn check_with(&self, failures: HashMap<String, usize>) -> Result<WatchCheck> {
        let inner = &*self.inner;
        let all: Vec<WebhookSubscription> = inner
            .client
            .webhook_subscriptions()
            .list(ListQuery::new())
            .try_collect()
            .await?;
        let now = inner
            .client
            .monite_now()
            .unwrap_or_else(jiff::Timestamp::now);
        let mut check = WatchCheck::default();
        // Per object type, whether every subscription of it is enabled after this check:
        // one gauge per type, set once, so a disabled one is never hidden by another.
        let mut enabled_by_type: HashMap<String, bool> = HashMap::new();
        for subscription in all {
            if subscription.status != SubscriptionStatus::Disabled {
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
            if inner.reenable {
                match inner
                    .client
                    .webhook_subscriptions()
                    .enable(&subscription.id)
                    .await
                {
                    Ok(_) => {
                        let at = inner.client.monite_now().unwrap_or(now);
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
            let reenabled = check.reenabled.last() == Some(&subscription.id);
            let all_enabled = enabled_by_type
                .entry(subscription.object_type.as_str().to_owned())
                .or_insert(true);
            *all_enabled &= reenabled;
            check.disabled.push(subscription);
        }
        let (failures, cleared) = {
            let mut state = self.lock();
            let cleared = state.was_failing && failures.is_empty();
            state.was_failing = !failures.is_empty();
            (failures, cleared)
        };
        observe::watchdog::checked(&enabled_by_type, failures.values().sum());
        for (subscription_id, count) in failures {
            self.report(&Report::DeliveriesFailing {
                subscription_id,
                count,
            });
        }
        // Before the scan, which may fail: the outage's deep sweep must not wait on it.
        if (cleared || !check.reenabled.is_empty())
            && let Some(reconciler) = &inner.reconciler
        {
            reconciler.request_deep_sweep();
        }
        check.delivery_log_failed = self.scan_delivery_log().await;
        Ok(check)
    }

    /// Checks every [`every`](WatchdogBuilder::every) in a task on the current tokio
    /// runtime, until [`WatchdogHandle::shutdown`]. A check that fails is reported as
    /// [`Report::CheckFailed`] and the next one goes on. Dropping the handle leaves the
    /// task running.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(&self) -> WatchdogHandle {
        WatchdogHandle::start(self.clone())
    }

    /// Checks every `every` until `stop` is raised: what [`start`](Self::start) spawns.
    async fn run_until(self, stop: Stop) {
        #[cfg(any(feature = "postgres", feature = "redis"))]
        if let Some(shared) = &self.inner.fleet {
            return self.run_in_fleet(shared, &stop).await;
        }
        loop {
            if let Err(e) = self.run_once().await {
                self.report(&Report::CheckFailed {
                    error: e.to_string(),
                });
            }
            if stop.is_raised() || !stop.pause(self.inner.every).await {
                return;
            }
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
                self.report(&Report::DeliveryLogUnreadable {
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
        let client = &self.inner.client;
        let started = client.monite_now().unwrap_or_else(jiff::Timestamp::now);
        let mark = self
            .lock()
            .log_marks
            .get(entity_id)
            .copied()
            .unwrap_or(started);
        let from = mark.checked_sub(signed(LOG_MARGIN)).unwrap_or(mark);
        let failed: Vec<WebhookDelivery> = client
            .webhook_deliveries(entity_id.to_owned())
            .list(ListQuery::new().created_at_or_after(from))
            .try_filter(|d| std::future::ready(d.was_successful == Some(false)))
            .try_collect()
            .await?;
        let seen_at = client.monite_now().unwrap_or(started);
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
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn report(&self, report: &Report) {
        observe::watchdog::report(report);
        if let Some(on_report) = &self.inner.on_report {
            on_report(report);
        }
    }
}

impl fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watchdog")
            .field("reenable", &self.inner.reenable)
            .field("every", &self.inner.every)
            .finish_non_exhaustive()
    }
}
