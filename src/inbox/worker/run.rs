//! The claim loop, and one event's run: claim a batch, start each event while its lease
//! is held, run its handlers, and settle the attempt.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Instant;

use tokio::sync::Semaphore;

use super::Shared;
use super::completer::{DoneMarks, Heartbeat, Leases, forget, heartbeat, lock, superseded};
use crate::dispatch::Dispatched;
use crate::dispatch::attempt::InboxAttempt;
use crate::error::{Error, ErrorKind};
use crate::event::{Event, ObjectType};
use crate::inbox::alert::AttemptFailure;
use crate::inbox::store::{
    AfterFailure, AttemptId, AttemptReport, ClaimRequest, Claimed, Completed, InboxStore,
};
use crate::inbox::unhandled::WhenUnhandled;
use crate::observe;

/// Runs a worker, and again after a panic outside its batches (a store's claim, rescue
/// or prune), one poll interval later, until it stops: the process keeps its workers.
pub(super) async fn supervise<S: InboxStore>(shared: Arc<Shared<S>>, name: Arc<str>) {
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
            held: claimed.iter().map(|c| c.attempt).collect(),
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
                    lapsed_before_start(event.attempt);
                    forget(&leases, [event.attempt.row]);
                    continue;
                }
                None => {
                    unstarted.events.push_front(event);
                    break;
                }
            }
            let id = event.attempt.row;
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
        match self.store.heartbeat(&[event.attempt], self.lease).await {
            Ok(extended) => Some(extended == 1),
            Err(e) => {
                observe::store_trouble(
                    "(inbox heartbeat)",
                    &format!(
                        "cannot confirm the lease of event row {} before starting it; the \
                         batch's unstarted events go back: {e}",
                        event.attempt.row
                    ),
                );
                None
            }
        }
    }

    /// Runs one event's handlers and settles a failure; answers a success still to be
    /// marked done (a transactional handler marks its own).
    async fn run_one(&self, name: &Arc<str>, claimed: Claimed) -> Option<Completed> {
        let attempt = Arc::new(InboxAttempt::new(
            Arc::clone(&self.table),
            claimed.attempt.row,
            claimed.attempt.attempt,
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
                if self.retries_unhandled(claimed.attempt.row, claimed.retry_unhandled) =>
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
            crate::inbox::metrics::attempted(reported.as_ref(), None, report.duration);
        }
        let settled = match result {
            Ok(_) if attempt.completed() => Ok(true),
            Ok(_) => {
                return Some(Completed {
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
                crate::inbox::metrics::attempted(
                    reported.as_ref(),
                    Some(next == AfterFailure::Dead),
                    report.duration,
                );
                if let Some(report) = &self.on_failure {
                    let failure = AttemptFailure {
                        event: reported.as_ref(),
                        error: &error,
                        attempt: claimed.attempt.attempt,
                        tries: claimed.tries,
                        dead: next == AfterFailure::Dead,
                    };
                    let hook = std::panic::AssertUnwindSafe(|| report(&failure));
                    if std::panic::catch_unwind(hook).is_err() {
                        observe::store_trouble("(inbox on_failure)", "the hook panicked");
                    }
                }
                self.store.fail(claimed.attempt, &report, next).await
            }
        };
        match settled {
            Ok(true) => {}
            Ok(false) => superseded(claimed.attempt),
            Err(e) => observe::store_trouble(
                "(inbox)",
                &format!(
                    "{}: settling failed, the lease will lapse: {e}",
                    claimed.attempt
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

fn lapsed_before_start(attempt: AttemptId) {
    observe::store_trouble(
        "(inbox)",
        &format!(
            "{attempt}: the lease lapsed before the event started; \
             this worker does not start it"
        ),
    );
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
        let events = self.events.drain(..).map(|c| c.attempt).collect();
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
    unstarted: Vec<AttemptId>,
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
    forget(&leases, unstarted.iter().map(|a| a.row));
}
