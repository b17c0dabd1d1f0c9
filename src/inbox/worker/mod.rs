//! Workers: tasks that claim events from an inbox, run the dispatcher's handlers, and
//! settle each attempt; and the handle that stops them. The builder and the handle are
//! here; the claim loop and one event's run in `run`, the done marks and the lease
//! heartbeat in `completer`, and rescue, prune and the backlog sample in `maintenance`.

mod completer;
mod maintenance;
mod run;

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;

pub use self::maintenance::SAMPLE_INTERVAL;
use self::maintenance::Sampler;
pub use self::run::BatchSummary;
use super::postgres::PostgresInbox;
use super::report::Report;
use super::retry::RetrySchedule;
use super::store::{InboxStore, MIN_DONE_RETENTION};
use super::unhandled::WhenUnhandled;
use crate::dispatch::Dispatcher;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Event, ObjectType};
use crate::observe;
use crate::postgres::Pace;

/// Workers per process by default.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Events one claim takes by default.
pub const DEFAULT_BATCH: usize = 32;
/// How long a claimed event's attempt stays a worker's without a heartbeat, by default.
pub const DEFAULT_ATTEMPT_LEASE: Duration = Duration::from_secs(30);
/// Lapsed leases after which an event is dead (a poison event), by default.
pub const DEFAULT_MAX_LAPSES: u32 = 3;
/// The longest wait between two looks at an idle inbox.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often the workers of a process prune done events, unless the last turn was full.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Runs the handlers of a [`Dispatcher`] over the events of an inbox: `concurrency` tasks
/// in this process, beside any number in other processes or machines on the same tables.
///
/// Each task claims a batch (`FOR UPDATE SKIP LOCKED`, so workers never wait on each
/// other), each event under a lease that a heartbeat extends while the batch runs, and
/// runs the handlers one event at a time. Success marks the event done; a failure or a
/// panic schedules a retry from the [`RetrySchedule`] or, after the last attempt, makes the
/// event `dead`. Every settlement names the attempt, so a worker whose lease lapsed and
/// whose event was rescued by another changes nothing. A lease that lapses (the worker
/// died) is rescued within a poll interval of its end; after
/// [`max_lapses`](WorkersBuilder::max_lapses) lapses the event is dead.
///
/// A [transactional handler](crate::PostgresStore::transactional) of the inbox's store
/// commits the done mark in its own transaction; no other handler runs inside one.
///
/// Built idle by [`WorkersBuilder::build`]: [`start`](Self::start) runs the tasks until
/// [`WorkersHandle::shutdown`], and [`run_once`](Self::run_once) runs one batch, for tests
/// and cron. A clone shares the store, the dispatcher and the settings.
///
/// ```no_run
/// use monite_webhooks::{Dispatcher, PostgresStore};
/// use monite_webhooks::inbox::{PostgresInbox, Workers};
///
/// # async fn run(store: PostgresStore, dispatcher: Dispatcher) -> monite_webhooks::Result<()> {
/// let running = Workers::builder(PostgresInbox::new(&store), dispatcher)
///     .concurrency(4)
///     .start()?;
/// tokio::signal::ctrl_c().await.ok();
/// running.shutdown().await; // stops claiming; running handlers finish
/// # Ok(())
/// # }
/// ```
pub struct Workers<S = PostgresInbox> {
    shared: Arc<Shared<S>>,
}

/// Configures [`Workers`]: [`build`](Self::build) them idle, or [`start`](Self::start)
/// them.
#[must_use]
pub struct WorkersBuilder<S> {
    store: S,
    dispatcher: Dispatcher,
    concurrency: usize,
    batch: usize,
    lease: Duration,
    poll: Duration,
    retry: RetrySchedule,
    max_lapses: u32,
    name: String,
    limits: Vec<(ObjectType, usize)>,
    in_entity_order: bool,
    poll_only: bool,
    retention: Option<Duration>,
    unhandled: WhenUnhandled,
    backlog_alert_after: Option<Duration>,
    hooks: Hooks,
}

impl<S: InboxStore> Workers<S> {
    /// Workers over `store` running `dispatcher`'s handlers, with the defaults.
    pub fn builder(store: S, dispatcher: impl Into<Dispatcher>) -> WorkersBuilder<S> {
        WorkersBuilder {
            store,
            dispatcher: dispatcher.into(),
            concurrency: DEFAULT_CONCURRENCY,
            batch: DEFAULT_BATCH,
            lease: DEFAULT_ATTEMPT_LEASE,
            poll: MAX_POLL_INTERVAL,
            retry: RetrySchedule::default(),
            max_lapses: DEFAULT_MAX_LAPSES,
            name: format!("pid{}", std::process::id()),
            limits: Vec::new(),
            in_entity_order: false,
            poll_only: false,
            retention: Some(MIN_DONE_RETENTION),
            unhandled: WhenUnhandled::default(),
            backlog_alert_after: None,
            hooks: Hooks::default(),
        }
    }

    /// Starts the workers' tasks on the current Tokio runtime, beside those of any other
    /// start; warns (feature `tracing`) when the store's pool is smaller than the
    /// concurrency plus [`WORKER_POOL_HEADROOM`](crate::inbox::WORKER_POOL_HEADROOM).
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn start(&self) -> WorkersHandle<S> {
        let shared = &self.shared;
        let connections = shared.store.worker_connections();
        super::sizing::warn_if_pool_small(shared.concurrency, !shared.poll_only, connections);
        let control = Arc::new(Control::default());
        let tasks = (0..shared.concurrency)
            .map(|n| {
                let name: Arc<str> = format!("{}-{n}", shared.name).into();
                tokio::spawn(run::supervise(
                    Arc::clone(shared),
                    Arc::clone(&control),
                    name,
                ))
            })
            .collect();
        let watch = (shared.concurrency > 0).then(|| {
            let store = Arc::clone(&shared.store);
            let wake = Arc::clone(&control.wake);
            let remote = !shared.poll_only;
            tokio::spawn(async move {
                store
                    .watch(Arc::new(move || wake.notify_one()), remote)
                    .await;
            })
        });
        WorkersHandle {
            service: self.clone(),
            control,
            tasks,
            watch,
        }
    }

    /// One turn of one worker, for tests and cron: the rescue, prune and backlog sample
    /// that are due, then one claim, whose batch is run and settled (done marks written,
    /// failures scheduled for a retry or dead) before it returns. The attempts log names
    /// the worker after [`name`](WorkersBuilder::name) as it is. Run it again while
    /// [`BatchSummary::claimed`] is the [`batch`](WorkersBuilder::batch) size: more may be
    /// waiting.
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] when the claim fails, and
    /// [`ErrorKind::HandlerPanicked`] when the batch ended early on a panic outside the
    /// handlers (a jitter, a store): its unstarted events are handed back, and the lease of
    /// the event it was settling lapses.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub async fn run_once(&self) -> Result<BatchSummary> {
        let shared = &self.shared;
        shared.maintain().await;
        let name: Arc<str> = shared.name.as_str().into();
        let (claimed, claiming) = shared.claim(&name).await.map_err(|e| {
            Error::new(
                ErrorKind::StoreUnavailable,
                format!("the inbox claim failed: {e}"),
            )
        })?;
        if claimed.is_empty() {
            return Ok(BatchSummary::default());
        }
        let control = Arc::new(Control::default());
        let batch = Arc::clone(shared).run_batch(control, name, claimed, claiming);
        tokio::spawn(batch).await.map_err(|e| {
            Error::new(
                ErrorKind::HandlerPanicked,
                format!("a batch of the inbox ended early: {e}"),
            )
        })
    }
}

impl<S: InboxStore> WorkersBuilder<S> {
    /// Worker tasks in this process (default [`DEFAULT_CONCURRENCY`]; 0 runs none).
    pub fn concurrency(mut self, workers: usize) -> Self {
        self.concurrency = workers;
        self
    }

    /// Events one claim takes (default [`DEFAULT_BATCH`], at least 1).
    pub fn batch(mut self, events: usize) -> Self {
        self.batch = events.max(1);
        self
    }

    /// How long a claimed event stays a worker's (default [`DEFAULT_ATTEMPT_LEASE`], at least a
    /// second); a heartbeat every third of it extends it while the worker runs.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_secs(1));
        self
    }

    /// How long an idle worker waits before it looks again, at most
    /// [`MAX_POLL_INTERVAL`].
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll = interval.min(MAX_POLL_INTERVAL);
        self
    }

    /// When failed events are tried again, and how often (default
    /// [`RetrySchedule::default`]).
    pub fn retry(mut self, schedule: RetrySchedule) -> Self {
        self.retry = schedule;
        self
    }

    /// Lapsed leases after which an event is dead (default [`DEFAULT_MAX_LAPSES`], at
    /// least 1): an event that kills or hangs its worker every time.
    pub fn max_lapses(mut self, lapses: u32) -> Self {
        self.max_lapses = lapses.max(1);
        self
    }

    /// This process's name in the attempts log and `locked_by` (default `pid<pid>`);
    /// each task adds `-<n>`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// At most `max` events of `object_type` run at once in this process (at least 1):
    /// for a handler that calls a service with a connection limit. While the limit is
    /// reached, this process's workers claim other object types. With `P` processes, up
    /// to `P × max` run at once.
    pub fn limit(mut self, object_type: ObjectType, max: usize) -> Self {
        self.limits.retain(|(limited, _)| *limited != object_type);
        self.limits.push((object_type, max.max(1)));
        self
    }

    /// First in, first out per entity (default off): an event starts only after every
    /// event accepted before it for the same `entity_id` is done or dead, so one
    /// entity's events never run at once, and a failing event holds back its entity's
    /// later ones until it succeeds or goes dead. Events without an entity keep no
    /// order. Set it on the workers of every process of the namespace: a worker without
    /// it ignores the order. The order is that of acceptance, which is Monite's order
    /// only as far as its deliveries arrive in order.
    pub fn in_entity_order(mut self, ordered: bool) -> Self {
        self.in_entity_order = ordered;
        self
    }

    /// Only polls (default off): no connection held to listen for other processes'
    /// acceptances, for a pool behind PgBouncer in transaction mode, where `LISTEN`
    /// does not work. Idle workers then find another process's events within a poll
    /// interval; this process's acceptances still wake them at once.
    pub fn poll_only(mut self, poll_only: bool) -> Self {
        self.poll_only = poll_only;
        self
    }

    /// How long done events are kept (default and least [`MIN_DONE_RETENTION`], 8 days:
    /// their rows are the dedup keys that answer Monite's retries); `None` keeps them
    /// until you prune them yourself. The workers of each process delete the older ones
    /// every [`PRUNE_INTERVAL`], a bounded number at a time, and again at once while a
    /// turn finds its fill.
    pub fn retention(mut self, retention: Option<Duration>) -> Self {
        self.retention = retention.map(|kept| kept.max(MIN_DONE_RETENTION));
        self
    }

    /// What happens to an event no handler takes (default [`WhenUnhandled::AsReceiver`]:
    /// what the receiver that accepted it would have answered without the inbox).
    pub fn unhandled(mut self, policy: WhenUnhandled) -> Self {
        self.unhandled = policy;
        self
    }

    /// Calls `hook` each time a handler fails or panics on an event, before the retry or
    /// the burial is written: as [`ReceiverBuilder::on_failure`](crate::ReceiverBuilder::on_failure),
    /// one place to send failed handlers to Sentry, a log or a counter. Not for a body
    /// that is not an envelope, nor for an event no handler takes, nor for an event whose
    /// lease lapsed: those are [`Report`]s, as is what follows each failure (a retry, or
    /// the event gone dead). A panic in `hook` is caught and ignored.
    pub fn on_failure(mut self, hook: impl Fn(&Event, &Error) + Send + Sync + 'static) -> Self {
        self.hooks.on_failure = Some(Arc::new(hook));
        self
    }

    /// Calls `hook` with what an operator should know ([`Report`]): each failed attempt
    /// and what follows it (a retry, or the event gone `dead`, also when the rescue buries
    /// an event whose lease lapsed once too often), and a backlog older than
    /// [`backlog_alert_after`](Self::backlog_alert_after). `hook` runs on a worker's task
    /// (keep it quick: hand the alert to a channel); a panic in it is caught and ignored.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use monite_webhooks::{Dispatcher, PostgresStore};
    /// use monite_webhooks::inbox::{PostgresInbox, Report, Workers};
    ///
    /// # fn run(store: PostgresStore, dispatcher: Dispatcher) -> monite_webhooks::Result<()> {
    /// let running = Workers::builder(PostgresInbox::new(&store), dispatcher)
    ///     .backlog_alert_after(Duration::from_secs(300))
    ///     .on_report(|report| match report {
    ///         Report::Dead { error, .. } => eprintln!("an event is dead: {error}"),
    ///         Report::BacklogOld { counts, oldest, .. } => {
    ///             eprintln!("{} events wait, the oldest for {oldest:?}", counts.pending);
    ///         }
    ///         _ => {}
    ///     })
    ///     .start()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_report(mut self, hook: impl Fn(&Report) + Send + Sync + 'static) -> Self {
        self.hooks.on_report = Some(Arc::new(hook));
        self
    }

    /// Reports [`Report::BacklogOld`] when the oldest pending event was received more than
    /// `age` ago (default: never): the alert for a backlog the workers do not drain. The
    /// workers read the backlog at most once per [`SAMPLE_INTERVAL`] in a process, so the
    /// report comes at most that often.
    pub fn backlog_alert_after(mut self, age: Duration) -> Self {
        self.backlog_alert_after = Some(age);
        self
    }

    /// The workers, idle: [`start`](Workers::start) them, or
    /// [`run_once`](Workers::run_once).
    ///
    /// # Errors
    /// [`ErrorKind::Misconfigured`] when [`backlog_alert_after`](Self::backlog_alert_after)
    /// is set with no [`on_report`](Self::on_report) hook to hear the alert.
    pub fn build(self) -> Result<Workers<S>> {
        if self.backlog_alert_after.is_some() && self.hooks.on_report.is_none() {
            return Err(Error::new(
                ErrorKind::Misconfigured,
                "the workers' backlog_alert_after is set but no on_report hook hears it",
            ));
        }
        let table: Arc<str> = self.store.transactional_table().unwrap_or("").into();
        let shared = Shared {
            store: Arc::new(self.store),
            dispatcher: self.dispatcher,
            concurrency: self.concurrency,
            batch: self.batch,
            lease: self.lease,
            poll: self.poll,
            retry: self.retry,
            max_lapses: self.max_lapses,
            name: self.name,
            poll_only: self.poll_only,
            hooks: self.hooks,
            sampler: Sampler::new(self.backlog_alert_after),
            table,
            limits: self
                .limits
                .into_iter()
                .map(|(object_type, max)| (object_type, Arc::new(Semaphore::new(max))))
                .collect(),
            in_entity_order: self.in_entity_order,
            retention: self.retention,
            unhandled: self.unhandled,
            prune: Pace::every(PRUNE_INTERVAL),
            rescue: Pace::every(self.poll),
        };
        Ok(Workers {
            shared: Arc::new(shared),
        })
    }

    /// Builds the workers and [starts](Workers::start) them: short for
    /// `build()?.start()`.
    ///
    /// # Errors
    /// As [`build`](Self::build).
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn start(self) -> Result<WorkersHandle<S>> {
        Ok(self.build()?.start())
    }
}

type OnFailure = Arc<dyn Fn(&Event, &Error) + Send + Sync>;
type OnReport = Arc<dyn Fn(&Report) + Send + Sync>;

/// The hooks set on the builder; a panic in one is caught, and logged.
#[derive(Clone, Default)]
struct Hooks {
    on_failure: Option<OnFailure>,
    on_report: Option<OnReport>,
}

impl Hooks {
    /// Whether any hook wants the events of failed attempts.
    fn hear_events(&self) -> bool {
        self.on_failure.is_some() || self.on_report.is_some()
    }

    /// Tells `on_failure` that a handler failed on `event`.
    fn failed(&self, event: &Event, error: &Error) {
        if let Some(hook) = &self.on_failure
            && catch_unwind(AssertUnwindSafe(|| hook(event, error))).is_err()
        {
            observe::inbox::hook_panicked("on_failure");
        }
    }

    /// Tells `on_report` what `report` makes, made only when there is a hook.
    fn report(&self, report: impl FnOnce() -> Report) {
        if let Some(hook) = &self.on_report {
            let report = report();
            if catch_unwind(AssertUnwindSafe(|| hook(&report))).is_err() {
                observe::inbox::hook_panicked("on_report");
            }
        }
    }
}

/// Running [`Workers`]: stop them with [`shutdown`](Self::shutdown).
#[must_use = "dropping the handle leaves the workers running"]
pub struct WorkersHandle<S = PostgresInbox> {
    service: Workers<S>,
    control: Arc<Control>,
    tasks: Vec<JoinHandle<()>>,
    watch: Option<JoinHandle<()>>,
}

impl<S: InboxStore> WorkersHandle<S> {
    /// The workers, for what they offer while they run: [`run_once`](Workers::run_once),
    /// another [`start`](Workers::start).
    #[must_use]
    pub fn service(&self) -> &Workers<S> {
        &self.service
    }

    /// Stops claiming, hands back at once the claimed events not started yet while every
    /// worker finishes the event it is running, and waits for the workers. A process killed
    /// instead leaves its leases to lapse: other workers rescue them.
    pub async fn shutdown(self) {
        if let Some(watch) = &self.watch {
            watch.abort();
        }
        self.control.stop();
        for task in self.tasks {
            if let Err(e) = task.await {
                observe::inbox::trouble("worker", &format!("a worker ended: {e}"));
            }
        }
    }
}

/// What the workers of one start share: the store, the dispatcher, the settings.
struct Shared<S> {
    store: Arc<S>,
    dispatcher: Dispatcher,
    concurrency: usize,
    batch: usize,
    lease: Duration,
    poll: Duration,
    retry: RetrySchedule,
    max_lapses: u32,
    name: String,
    poll_only: bool,
    hooks: Hooks,
    sampler: Sampler,
    table: Arc<str>,
    limits: Vec<(ObjectType, Arc<Semaphore>)>,
    in_entity_order: bool,
    retention: Option<Duration>,
    unhandled: WhenUnhandled,
    prune: Pace,
    rescue: Pace,
}

/// How the tasks of one start are stopped and woken.
#[derive(Default)]
struct Control {
    stopping: AtomicBool,
    // Told once, by `stop`: a batch hands back its unstarted events while a handler runs.
    stopped: Notify,
    wake: Arc<Notify>,
}

impl Control {
    fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.wake.notify_waiters();
        self.stopped.notify_waiters();
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
}

impl<S> Clone for Workers<S> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S> fmt::Debug for Workers<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.shared;
        f.debug_struct("Workers")
            .field("concurrency", &shared.concurrency)
            .field("batch", &shared.batch)
            .field("lease", &shared.lease)
            .field("retry", &shared.retry)
            .field("max_lapses", &shared.max_lapses)
            .field("unhandled", &shared.unhandled)
            .field("name", &shared.name)
            .finish_non_exhaustive()
    }
}

impl<S> fmt::Debug for WorkersBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkersBuilder")
            .field("concurrency", &self.concurrency)
            .field("batch", &self.batch)
            .field("lease", &self.lease)
            .field("retry", &self.retry)
            .field("max_lapses", &self.max_lapses)
            .field("unhandled", &self.unhandled)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<S> fmt::Debug for WorkersHandle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkersHandle")
            .field("service", &self.service)
            .field("tasks", &self.tasks.len())
            .finish_non_exhaustive()
    }
}
