//! Workers: tasks that claim events from an inbox, run the dispatcher's handlers, and
//! settle each attempt; and the handle that stops them.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinHandle;

use super::alert::{AttemptFailure, OnFailure};
use super::attempt::InboxAttempt;
use super::backlog::{OnBacklog, Sampler};
use super::retry::RetrySchedule;
use super::store::{
    AfterFailure, AttemptReport, Buried, ClaimRequest, Claimed, Completed, InboxStore,
    MIN_DONE_RETENTION,
};
use super::unhandled::WhenUnhandled;
use crate::dispatch::{Dispatched, Dispatcher};
use crate::error::{Error, ErrorKind};
use crate::event::{Event, ObjectType};
use crate::observe;
use crate::postgres::Pace;

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
/// The most done events one prune deletes, so that a first prune of a large table does
/// not keep a worker from events for long.
const PRUNE_AT_MOST: u64 = 10_000;
/// How long a successful attempt may wait for its done mark, so that the done marks of a
/// batch of quick handlers are written together.
const MARK_DONE_WITHIN: Duration = Duration::from_millis(10);
/// The first wait before a failed done mark is written again; it doubles each time.
const MARK_DONE_BACKOFF: Duration = Duration::from_millis(50);

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
    pub(super) on_failure: Option<OnFailure>,
    pub(super) on_backlog: Option<(Duration, OnBacklog)>,
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
                tokio::spawn(supervise(Arc::clone(&shared), name))
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

/// Runs a worker, and again after a panic outside its batches (a store's claim, rescue
/// or prune), one poll interval later, until it stops: the process keeps its workers.
async fn supervise<S: InboxStore>(shared: Arc<Shared<S>>, name: Arc<str>) {
    loop {
        match tokio::spawn(Arc::clone(&shared).run(Arc::clone(&name))).await {
            Err(e) if e.is_panic() && !shared.stopping.load(Ordering::Acquire) => {
                observe::store_trouble(
                    "(inbox worker)",
                    &format!("a worker panicked, it starts again: {e}"),
                );
                tokio::time::sleep(shared.poll).await;
            }
            _ => return,
        }
    }
}

impl<S: InboxStore> Shared<S> {
    async fn run(self: Arc<Self>, name: Arc<str>) {
        while !self.stopping.load(Ordering::Acquire) {
            self.rescue_if_due().await;
            self.prune_if_due().await;
            self.sampler.sample_if_due(&*self.store).await;
            // Listening before the claim: a wake-up during it is not lost.
            let mut woken = std::pin::pin!(self.wake.notified());
            woken.as_mut().enable();
            let saturated: Vec<&str> = self
                .limits
                .iter()
                .filter(|(_, permits)| permits.available_permits() == 0)
                .map(|(object_type, _)| object_type.as_str())
                .collect();
            let request = ClaimRequest {
                skip_object_types: &saturated,
                in_entity_order: self.in_entity_order,
                ..ClaimRequest::new(&name, self.batch, self.lease)
            };
            let claiming = Instant::now();
            let claimed = match self.store.claim(&request).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    observe::store_trouble("(inbox claim)", &e.to_string());
                    self.idle(woken).await;
                    continue;
                }
            };
            if claimed.is_empty() {
                self.idle(woken).await;
                continue;
            }
            if claimed.len() == self.batch {
                // More may be waiting: one more idle worker looks, and so on.
                self.wake.notify_one();
            }
            // A task of its own, so that a panic outside the dispatcher's catch (a jitter,
            // a metrics recorder, a store) ends the batch and not the worker: as the batch
            // unwinds its heartbeat stops and its unstarted events go back, and the lease
            // of the event it was settling lapses and is rescued.
            let batch = Arc::clone(&self).run_batch(Arc::clone(&name), claimed, claiming);
            if let Err(e) = tokio::spawn(batch).await {
                observe::store_trouble(
                    "(inbox worker)",
                    &format!("a batch ended early, the lease of the event it ran will lapse: {e}"),
                );
            }
        }
    }

    async fn idle(&self, woken: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>) {
        let _woken = tokio::time::timeout(self.poll, woken).await;
    }

    /// Runs a batch's events one at a time under one heartbeat, starting each only while
    /// its lease is known to be held; the successes' done marks are written by a task of
    /// their own. A stopping worker hands back the events it has not started at once,
    /// while the running handler goes on.
    async fn run_batch(self: Arc<Self>, name: Arc<str>, claimed: Vec<Claimed>, claiming: Instant) {
        let leases = Arc::new(Mutex::new(Leases {
            held: claimed.iter().map(|c| (c.id, c.attempt)).collect(),
            confirmed: Some(claiming),
        }));
        let _heartbeat = Heartbeat(tokio::spawn(heartbeat(
            Arc::clone(&self.store),
            Arc::clone(&leases),
            self.lease,
        )));
        let marks = DoneMarks::start(
            Arc::clone(&self.store),
            Arc::clone(&name),
            Arc::clone(&leases),
            self.lease,
        );
        let mut unstarted = Unstarted {
            events: claimed.into(),
            store: Arc::clone(&self.store),
            name: Arc::clone(&name),
            leases: Arc::clone(&leases),
        };
        let mut stopped = pin!(self.stopped.notified());
        stopped.as_mut().enable();
        let mut handing_back = None;
        while let Some(event) = unstarted.events.pop_front() {
            if self.stopping.load(Ordering::Acquire) {
                unstarted.events.push_front(event);
                break;
            }
            match self.still_held(&leases, &event).await {
                Some(true) => {}
                Some(false) => {
                    lapsed_before_start(event.id, event.attempt);
                    forget(&leases, [event.id]);
                    continue;
                }
                None => {
                    unstarted.events.push_front(event);
                    break;
                }
            }
            let id = event.id;
            let mut run = pin!(self.run_one(&name, event));
            // While events wait behind this one, the stop signal is heard too.
            let finished = std::future::poll_fn(|cx| {
                if let Poll::Ready(outcome) = run.as_mut().poll(cx) {
                    return Poll::Ready(Some(outcome));
                }
                if !unstarted.events.is_empty() && stopped.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                Poll::Pending
            })
            .await;
            let outcome = match finished {
                Some(outcome) => outcome,
                None => {
                    // Handed back now, not after this handler: a grace period may end in
                    // a kill, which would charge each of them a lapse.
                    handing_back = Some(tokio::spawn(unstarted.hand_back()));
                    run.await
                }
            };
            match outcome {
                Some(completed) => marks.add(completed),
                None => forget(&leases, [id]),
            }
        }
        unstarted.hand_back().await;
        let handed_back = match handing_back {
            Some(task) => task.await,
            None => Ok(()),
        };
        if let Err(e) = handed_back {
            observe::store_trouble("(inbox release)", &format!("the hand-back ended: {e}"));
        }
        marks.finish().await;
    }

    /// Whether `event`'s lease is still this worker's, just before it starts: yes if every
    /// lease of the batch was extended (by the claim or a heartbeat) less than half a lease
    /// ago; otherwise a fenced extension of this one lease asks the store. `None`: the
    /// store cannot tell, and the batch stops.
    ///
    /// Not a fenced statement before every event: that would be a third non-HOT update
    /// of every row. A confirmation timed from before its statement was sent is as sound
    /// while it is fresh; once the heartbeats fail or a lease was found missing, it is
    /// not, and then each start asks.
    async fn still_held(&self, leases: &Mutex<Leases>, event: &Claimed) -> Option<bool> {
        let confirmed = lock(leases).confirmed;
        if confirmed.is_some_and(|at| at.elapsed() < self.lease / 2) {
            return Some(true);
        }
        match self
            .store
            .heartbeat(&[(event.id, event.attempt)], self.lease)
            .await
        {
            Ok(extended) => Some(extended == 1),
            Err(e) => {
                observe::store_trouble(
                    "(inbox heartbeat)",
                    &format!(
                        "cannot confirm the lease of event row {} before starting it; the \
                         batch's unstarted events go back: {e}",
                        event.id
                    ),
                );
                None
            }
        }
    }

    /// Frees lapsed leases at most once per poll interval in this process.
    async fn rescue_if_due(&self) {
        if !self.rescue.due() {
            return;
        }
        let max_attempts = self.retry.max_attempts();
        match self
            .store
            .rescue_listing_dead(self.max_lapses, max_attempts)
            .await
        {
            Ok(buried) => buried.into_iter().for_each(|dead| self.report_buried(dead)),
            Err(e) => observe::store_trouble("(inbox rescue)", &e.to_string()),
        }
    }

    /// Tells the failure hook of an event the rescue made `dead`.
    fn report_buried(&self, buried: Buried) {
        let Some(report) = &self.on_failure else {
            return;
        };
        let event = Event::parse(buried.body).ok();
        let error = Error::new(
            ErrorKind::Handler,
            format!(
                "the lease lapsed without a completion ({} lapses in all): the worker running \
                 it died or hung",
                buried.lapses
            ),
        );
        let failure = AttemptFailure {
            event: event.as_ref(),
            error: &error,
            attempt: buried.attempt,
            tries: buried.tries,
            dead: true,
        };
        let hook = std::panic::AssertUnwindSafe(|| report(&failure));
        if std::panic::catch_unwind(hook).is_err() {
            observe::store_trouble("(inbox on_failure)", "the hook panicked");
        }
    }

    /// Deletes done events past the retention, at most once per [`PRUNE_INTERVAL`] in
    /// this process.
    async fn prune_if_due(&self) {
        let Some(retention) = self.retention else {
            return;
        };
        if !self.prune.due() {
            return;
        }
        match self.store.prune(retention, PRUNE_AT_MOST).await {
            // More are due: the next turn comes at once, between claims.
            Ok(deleted) if deleted >= PRUNE_AT_MOST => self.prune.again(),
            Ok(_) => {}
            Err(e) => observe::store_trouble("(inbox prune)", &e.to_string()),
        }
    }

    /// Runs one event's handlers and settles a failure; answers a success still to be
    /// marked done (a transactional handler marks its own).
    async fn run_one(&self, name: &Arc<str>, claimed: Claimed) -> Option<Completed> {
        let attempt = Arc::new(InboxAttempt::new(
            Arc::clone(&self.table),
            claimed.id,
            claimed.attempt,
            Arc::clone(name),
        ));
        let parsed = Event::parse(claimed.body);
        // Kept only for the failure hook and the metrics' labels: a clone shares its body.
        let reported = (self.on_failure.is_some() || cfg!(feature = "metrics"))
            .then(|| parsed.as_ref().ok().cloned())
            .flatten();
        let result = match parsed {
            Ok(event) => {
                let _permit = match self.permits_for(event.object_type()) {
                    Some(permits) => permits.acquire().await.ok(),
                    None => None,
                };
                Arc::clone(&attempt)
                    .scope(self.dispatcher.dispatch(event))
                    .await
            }
            Err(error) => Err(error),
        };
        let result = match result {
            // Failed like a handler, so that the retry schedule brings it to a worker that
            // has a handler for it, as Monite's retries would without the inbox.
            Ok(Dispatched::Unhandled(why))
                if self.retries_unhandled(claimed.id, claimed.retry_unhandled) =>
            {
                Err(Error::new(
                    ErrorKind::Handler,
                    format!(
                        "no handler takes the event here ({why:?}); it is retried, as its \
                     receiver's unhandled_status or these workers' WhenUnhandled ask"
                    ),
                ))
            }
            other => other,
        };
        let mut report = AttemptReport {
            worker: name,
            duration: attempt.started.elapsed(),
            error: None,
        };
        #[cfg(feature = "metrics")]
        if result.is_ok() {
            super::metrics::attempted(reported.as_ref(), None, report.duration);
        }
        let settled = match result {
            Ok(_) if attempt.completed() => Ok(true),
            Ok(_) => {
                return Some(Completed {
                    id: claimed.id,
                    attempt: claimed.attempt,
                    duration: report.duration,
                });
            }
            Err(error) => {
                let message = error.to_string();
                report.error = Some(&message);
                let next = match error.kind() {
                    // Bytes that are not an envelope never will be.
                    crate::ErrorKind::NotAnEnvelope => AfterFailure::Dead,
                    _ => self.retry.after_failure(claimed.tries),
                };
                #[cfg(feature = "metrics")]
                super::metrics::attempted(
                    reported.as_ref(),
                    Some(next == AfterFailure::Dead),
                    report.duration,
                );
                if let Some(report) = &self.on_failure {
                    let failure = AttemptFailure {
                        event: reported.as_ref(),
                        error: &error,
                        attempt: claimed.attempt,
                        tries: claimed.tries,
                        dead: next == AfterFailure::Dead,
                    };
                    let hook = std::panic::AssertUnwindSafe(|| report(&failure));
                    if std::panic::catch_unwind(hook).is_err() {
                        observe::store_trouble("(inbox on_failure)", "the hook panicked");
                    }
                }
                self.store
                    .fail(claimed.id, claimed.attempt, &report, next)
                    .await
            }
        };
        match settled {
            Ok(true) => {}
            Ok(false) => superseded(claimed.id, claimed.attempt),
            Err(e) => observe::store_trouble(
                "(inbox)",
                &format!(
                    "event row {} attempt {}: settling failed, the lease will lapse: {e}",
                    claimed.id, claimed.attempt
                ),
            ),
        }
        None
    }

    /// Whether event row `id`, which no handler took, is retried rather than done;
    /// `receiver_retries` is what its receiver asked.
    fn retries_unhandled(&self, id: i64, receiver_retries: bool) -> bool {
        match self.unhandled {
            WhenUnhandled::AsReceiver => receiver_retries,
            WhenUnhandled::Retry => true,
            WhenUnhandled::Done => {
                if receiver_retries {
                    // Loud: the receiver told Monite `202`, so nothing retries it now.
                    observe::store_trouble(
                        "(inbox)",
                        &format!(
                            "event row {id}: no handler takes it, and these workers mark it done \
                             (WhenUnhandled::Done) although its receiver answers unhandled \
                             events with a non-2xx unhandled_status (a retry)"
                        ),
                    );
                }
                false
            }
        }
    }

    fn permits_for(&self, object_type: &ObjectType) -> Option<&Semaphore> {
        self.limits
            .iter()
            .find(|(limited, _)| limited == object_type)
            .map(|(_, permits)| &**permits)
    }
}

fn superseded(id: i64, attempt: i32) {
    observe::store_trouble(
        "(inbox)",
        &format!(
            "event row {id} attempt {attempt}: the lease lapsed and another attempt holds it; \
             this attempt's result is ignored"
        ),
    );
}

fn lapsed_before_start(id: i64, attempt: i32) {
    observe::store_trouble(
        "(inbox)",
        &format!(
            "event row {id} attempt {attempt}: the lease lapsed before the event started; \
             this worker does not start it"
        ),
    );
}

/// A batch's leases still to renew, and since when all of them are known to be held.
struct Leases {
    held: Vec<(i64, i32)>,
    // When the last statement that extended every one of them was sent (the claim, or a
    // heartbeat that extended them all): each is held for at least a lease from then.
    confirmed: Option<Instant>,
}

fn lock(leases: &Mutex<Leases>) -> std::sync::MutexGuard<'_, Leases> {
    leases.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Stops the heartbeat extending these events' leases.
fn forget(leases: &Mutex<Leases>, settled: impl IntoIterator<Item = i64>) {
    let settled: Vec<i64> = settled.into_iter().collect();
    lock(leases).held.retain(|(id, _)| !settled.contains(id));
}

/// Owns a batch's heartbeat task and aborts it when dropped, unwinding included: a
/// heartbeat outliving its batch would renew the leases forever.
struct Heartbeat(JoinHandle<()>);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Extends the leases of a batch's unfinished events every third of the lease.
async fn heartbeat<S: InboxStore>(store: Arc<S>, leases: Arc<Mutex<Leases>>, lease: Duration) {
    loop {
        tokio::time::sleep(lease / 3).await;
        let now: Vec<(i64, i32)> = lock(&leases).held.clone();
        if now.is_empty() {
            return;
        }
        let sent = Instant::now();
        match store.heartbeat(&now, lease).await {
            // Fewer than held: which lapsed is unknown, so each start asks for its own.
            Ok(extended) => lock(&leases).confirmed = (extended >= now.len()).then_some(sent),
            Err(e) => observe::store_trouble("(inbox heartbeat)", &e.to_string()),
        }
    }
}

/// A batch's events not started yet. Dropped with some left (the batch panicked), it
/// hands them back, so that they are not charged a lapse they did not cause.
struct Unstarted<S: InboxStore> {
    events: VecDeque<Claimed>,
    store: Arc<S>,
    name: Arc<str>,
    leases: Arc<Mutex<Leases>>,
}

impl<S: InboxStore> Unstarted<S> {
    /// Hands back every event left, which leaves none.
    fn hand_back(&mut self) -> impl Future<Output = ()> + Send + 'static {
        let events = self.events.drain(..).map(|c| (c.id, c.attempt)).collect();
        hand_back(
            Arc::clone(&self.store),
            Arc::clone(&self.name),
            Arc::clone(&self.leases),
            events,
        )
    }
}

impl<S: InboxStore> Drop for Unstarted<S> {
    fn drop(&mut self) {
        if self.events.is_empty() {
            return;
        }
        // No panic here, as this may run while unwinding: without a runtime, they lapse.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            drop(runtime.spawn(self.hand_back()));
        }
    }
}

/// Hands back claimed events this worker will not start, not counted as attempts.
async fn hand_back<S: InboxStore>(
    store: Arc<S>,
    name: Arc<str>,
    leases: Arc<Mutex<Leases>>,
    unstarted: Vec<(i64, i32)>,
) {
    if unstarted.is_empty() {
        return;
    }
    if let Err(e) = store.release(&name, &unstarted).await {
        observe::store_trouble(
            "(inbox release)",
            &format!("cannot hand back unstarted events, their leases will lapse: {e}"),
        );
    }
    forget(&leases, unstarted.iter().map(|(id, _)| *id));
}

/// The done marks of a batch's successes, written by a task of their own: a success waits
/// at most [`MARK_DONE_WITHIN`] for its mark whatever the next handler does, and a mark
/// that fails is written again while the heartbeat keeps its lease.
struct DoneMarks {
    queue: mpsc::UnboundedSender<Completed>,
    task: JoinHandle<()>,
}

impl DoneMarks {
    fn start<S: InboxStore>(
        store: Arc<S>,
        name: Arc<str>,
        leases: Arc<Mutex<Leases>>,
        lease: Duration,
    ) -> Self {
        let (queue, succeeded) = mpsc::unbounded_channel();
        let task = tokio::spawn(write_done_marks(store, name, leases, lease, succeeded));
        Self { queue, task }
    }

    fn add(&self, completed: Completed) {
        if self.queue.send(completed).is_err() {
            // The task panicked: the lease lapses at the batch's end and the event runs again.
            observe::store_trouble(
                "(inbox)",
                &format!(
                    "event row {}: no done mark can be written, the lease will lapse",
                    completed.id
                ),
            );
        }
    }

    /// Waits for the marks still to write.
    async fn finish(self) {
        drop(self.queue);
        if let Err(e) = self.task.await {
            observe::store_trouble(
                "(inbox)",
                &format!("the done marks ended early, their leases will lapse: {e}"),
            );
        }
    }
}

/// Writes the successes as they come, those within [`MARK_DONE_WITHIN`] of the first in
/// one statement, until the batch closes the queue.
async fn write_done_marks<S: InboxStore>(
    store: Arc<S>,
    name: Arc<str>,
    leases: Arc<Mutex<Leases>>,
    lease: Duration,
    mut succeeded: mpsc::UnboundedReceiver<Completed>,
) {
    while let Some(first) = succeeded.recv().await {
        let mut marks = vec![first];
        let deadline = tokio::time::Instant::now() + MARK_DONE_WITHIN;
        while let Ok(Some(next)) = tokio::time::timeout_at(deadline, succeeded.recv()).await {
            marks.push(next);
        }
        mark_done(&*store, &name, &leases, lease, &marks).await;
    }
}

/// Writes the done marks of `marks` in one statement, again with back-off while it fails,
/// for up to a lease: their ids stay held meanwhile, so the heartbeat keeps their leases.
async fn mark_done<S: InboxStore>(
    store: &S,
    name: &str,
    leases: &Mutex<Leases>,
    lease: Duration,
    marks: &[Completed],
) {
    let first_try = Instant::now();
    let mut backoff = MARK_DONE_BACKOFF;
    loop {
        match store.complete_batch(name, marks).await {
            Ok(marked) => {
                for lapsed in marks.iter().filter(|c| !marked.contains(&c.id)) {
                    superseded(lapsed.id, lapsed.attempt);
                }
                break;
            }
            Err(e) if first_try.elapsed() + backoff < lease => {
                observe::store_trouble(
                    "(inbox)",
                    &format!(
                        "{} done marks failed, trying again in {backoff:?}: {e}",
                        marks.len()
                    ),
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(lease / 3);
            }
            Err(e) => {
                observe::store_trouble(
                    "(inbox)",
                    &format!(
                        "{} done marks failed for a lease, their leases will lapse and they \
                         will run again: {e}",
                        marks.len()
                    ),
                );
                break;
            }
        }
    }
    forget(leases, marks.iter().map(|c| c.id));
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
