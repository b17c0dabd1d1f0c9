//! Workers: tasks that claim events from an inbox, run the dispatcher's handlers, and
//! settle each attempt; and the handle that stops them. The builder and the handle are
//! here; the claim loop and one event's run in `run`, the done marks and the lease
//! heartbeat in `completer`, and rescue, prune and the backlog sample in `maintenance`.

mod completer;
mod maintenance;
mod run;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;

use self::maintenance::Sampler;
use super::alert::{AttemptFailure, OnFailure};
use super::backlog::{Backlog, OnBacklog};
use super::pace::Pace;
use super::retry::RetrySchedule;
use super::store::{InboxStore, MIN_DONE_RETENTION};
use super::unhandled::WhenUnhandled;
use crate::dispatch::Dispatcher;
use crate::event::ObjectType;
use crate::observe;

/// Workers per process by default.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Events one claim takes by default.
pub const DEFAULT_BATCH: usize = 32;
/// How long a claimed event stays a worker's without a heartbeat, by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
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
/// ```no_run
/// use monite_webhooks::{Dispatcher, PostgresStore};
/// use monite_webhooks::inbox::{PostgresInbox, Workers};
///
/// # async fn run(store: PostgresStore, dispatcher: Dispatcher) {
/// let workers = Workers::builder(PostgresInbox::new(&store), dispatcher)
///     .concurrency(4)
///     .start();
/// tokio::signal::ctrl_c().await.ok();
/// workers.shutdown().await; // stops claiming; running handlers finish
/// # }
/// ```
#[derive(Debug)]
pub struct Workers;

/// Configures and starts [`Workers`].
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
    on_failure: Option<OnFailure>,
    on_backlog: Option<(Duration, OnBacklog)>,
}

impl Workers {
    /// Workers over `store` running `dispatcher`'s handlers, with the defaults.
    pub fn builder<S: InboxStore>(
        store: S,
        dispatcher: impl Into<Dispatcher>,
    ) -> WorkersBuilder<S> {
        WorkersBuilder {
            store,
            dispatcher: dispatcher.into(),
            concurrency: DEFAULT_CONCURRENCY,
            batch: DEFAULT_BATCH,
            lease: DEFAULT_LEASE,
            poll: MAX_POLL_INTERVAL,
            retry: RetrySchedule::default(),
            max_lapses: DEFAULT_MAX_LAPSES,
            name: format!("pid{}", std::process::id()),
            limits: Vec::new(),
            in_entity_order: false,
            poll_only: false,
            retention: Some(MIN_DONE_RETENTION),
            unhandled: WhenUnhandled::default(),
            on_failure: None,
            on_backlog: None,
        }
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

    /// How long a claimed event stays a worker's (default [`DEFAULT_LEASE`], at least a
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

    /// Starts the workers on the current Tokio runtime; warns (feature `tracing`) when the
    /// store's pool is smaller than the concurrency plus [`super::WORKER_POOL_HEADROOM`].
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn start(self) -> WorkersHandle {
        let connections = self.store.worker_connections();
        super::sizing::warn_if_pool_small(self.concurrency, !self.poll_only, connections);
        let table: Arc<str> = self.store.transactional_table().unwrap_or("").into();
        let shared = Arc::new(Shared {
            store: Arc::new(self.store),
            dispatcher: self.dispatcher,
            batch: self.batch,
            lease: self.lease,
            poll: self.poll,
            retry: self.retry,
            max_lapses: self.max_lapses,
            on_failure: self.on_failure,
            sampler: Sampler::new(self.on_backlog),
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
            stopping: AtomicBool::new(false),
            stopped: Notify::new(),
            wake: Arc::new(Notify::new()),
            rescue: Pace::every(self.poll),
        });
        let tasks = (0..self.concurrency)
            .map(|n| {
                let name: Arc<str> = format!("{}-{n}", self.name).into();
                tokio::spawn(run::supervise(Arc::clone(&shared), name))
            })
            .collect();
        let watch = (self.concurrency > 0).then(|| {
            let store = Arc::clone(&shared.store);
            let wake = Arc::clone(&shared.wake);
            let remote = !self.poll_only;
            tokio::spawn(async move {
                store
                    .watch(Arc::new(move || wake.notify_one()), remote)
                    .await;
            })
        });
        WorkersHandle {
            shared,
            tasks,
            watch,
        }
    }

    /// Calls `report` for every failed attempt, before the retry or the burial is written:
    /// the alert hook for a first failure (`tries == 1`) and for a dead event (`dead`). An
    /// event whose lease lapsed once too often (its worker died or hung on it) is reported
    /// `dead` too, after the rescue buried it, by the process whose workers rescued it. A
    /// panic in `report` is caught and ignored.
    pub fn on_failure(
        mut self,
        report: impl Fn(&AttemptFailure<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.on_failure = Some(Arc::new(report));
        self
    }

    /// Calls `report` when the oldest pending event was received more than `threshold`
    /// ago: the alert hook for a backlog the workers do not drain. The workers read the
    /// backlog at most once per [`SAMPLE_INTERVAL`](crate::inbox::SAMPLE_INTERVAL) in a process,
    /// so `report` is called at most that often, on a worker's task (keep it quick: hand
    /// the alert to a channel); a panic in it is caught and ignored.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use monite_webhooks::{Dispatcher, PostgresStore};
    /// use monite_webhooks::inbox::{PostgresInbox, Workers};
    ///
    /// # fn run(store: PostgresStore, dispatcher: Dispatcher) {
    /// let workers = Workers::builder(PostgresInbox::new(&store), dispatcher)
    ///     .on_backlog(Duration::from_secs(300), |backlog| {
    ///         eprintln!("{} events wait, the oldest for {:?}", backlog.pending, backlog.oldest);
    ///     })
    ///     .start();
    /// # }
    /// ```
    pub fn on_backlog(
        mut self,
        threshold: Duration,
        report: impl Fn(&Backlog) + Send + Sync + 'static,
    ) -> Self {
        self.on_backlog = Some((threshold, Arc::new(report)));
        self
    }
}

/// Running [`Workers`]: stop them with [`shutdown`](Self::shutdown).
#[must_use = "dropping the handle leaves the workers running"]
pub struct WorkersHandle {
    shared: Arc<dyn Stop>,
    tasks: Vec<JoinHandle<()>>,
    watch: Option<JoinHandle<()>>,
}

trait Stop: Send + Sync {
    fn stop(&self);
}

impl WorkersHandle {
    /// Stops claiming, hands back at once the claimed events not started yet while every
    /// worker finishes the event it is running, and waits for the workers. A process killed
    /// instead leaves its leases to lapse: other workers rescue them.
    pub async fn shutdown(self) {
        if let Some(watch) = &self.watch {
            watch.abort();
        }
        self.shared.stop();
        for task in self.tasks {
            if let Err(e) = task.await {
                observe::store_trouble("(inbox worker)", &format!("a worker ended: {e}"));
            }
        }
    }
}

struct Shared<S> {
    store: Arc<S>,
    dispatcher: Dispatcher,
    batch: usize,
    lease: Duration,
    poll: Duration,
    retry: RetrySchedule,
    max_lapses: u32,
    on_failure: Option<OnFailure>,
    sampler: Sampler,
    table: Arc<str>,
    limits: Vec<(ObjectType, Arc<Semaphore>)>,
    in_entity_order: bool,
    retention: Option<Duration>,
    unhandled: WhenUnhandled,
    prune: Pace,
    stopping: AtomicBool,
    // Told once, by `stop`: a batch hands back its unstarted events while a handler runs.
    stopped: Notify,
    wake: Arc<Notify>,
    rescue: Pace,
}

impl<S: InboxStore> Stop for Shared<S> {
    fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.wake.notify_waiters();
        self.stopped.notify_waiters();
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

impl fmt::Debug for WorkersHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkersHandle")
            .field("workers", &self.tasks.len())
            .finish_non_exhaustive()
    }
}
