//! The claim loop, and one event's run: claim a batch, start each event while its lease
//! is held, run its handlers, and settle the attempt.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::sync::futures::Notified;

use super::completer::{DoneMarks, Heartbeat, Leases, forget, heartbeat, lock, superseded};
use super::{Control, Shared};
use crate::dispatch::Dispatched;
use crate::error::{BoxError, Error, ErrorKind};
use crate::event::{Event, ObjectType};
use crate::inbox::attempt::InboxAttempt;
use crate::inbox::report::Report;
use crate::inbox::store::{
    AfterFailure, AttemptId, AttemptRecord, ClaimRequest, Claimed, Completed, InboxStore,
};
use crate::inbox::unhandled::WhenUnhandled;
use crate::observe;

/// What one batch did: what [`Workers::run_once`](super::Workers::run_once) answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchSummary {
    /// Events claimed.
    pub claimed: usize,
    /// Of those, events whose handlers succeeded, or that no handler took and are done.
    pub succeeded: usize,
    /// Events whose attempt failed: each is retried later, or dead.
    pub failed: usize,
    /// Events not started: handed back, or their lease lapsed before they could start.
    pub not_started: usize,
}

/// How one event's run ended.
enum Ran {
    /// Succeeded, its done mark still to write.
    Succeeded(Completed),
    /// Succeeded and marked done already (by a transactional handler).
    Done,
    /// Failed, and settled: a retry or the burial written.
    Failed,
}

/// Runs a worker, and again after a panic outside its batches (a store's claim, rescue
/// or prune), one poll interval later, until it stops: the process keeps its workers.
pub(super) async fn supervise<S: InboxStore>(
    shared: Arc<Shared<S>>,
    control: Arc<Control>,
    name: Arc<str>,
) {
    loop {
        let run = Arc::clone(&shared).run(Arc::clone(&control), Arc::clone(&name));
        match tokio::spawn(run).await {
            Err(e) if e.is_panic() && !control.stopping() => {
                observe::inbox::trouble(
                    "worker",
                    &format!("a worker panicked, it starts again: {e}"),
                );
                tokio::time::sleep(shared.poll).await;
            }
            _ => return,
        }
    }
}

impl<S: InboxStore> Shared<S> {
    async fn run(self: Arc<Self>, control: Arc<Control>, name: Arc<str>) {
        while !control.stopping() {
            self.maintain().await;
            // Listening before the claim: a wake-up during it is not lost.
            let mut woken = pin!(control.wake.notified());
            woken.as_mut().enable();
            let (claimed, claiming) = match self.claim(&name).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    observe::inbox::trouble("claim", &e.to_string());
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
                control.wake.notify_one();
            }
            // A task of its own, so that a panic outside the dispatcher's catch (a jitter,
            // a metrics recorder, a store) ends the batch and not the worker: as the batch
            // unwinds its heartbeat stops and its unstarted events go back, and the lease
            // of the event it was settling lapses and is rescued.
            let batch = Arc::clone(&self).run_batch(
                Arc::clone(&control),
                Arc::clone(&name),
                claimed,
                claiming,
            );
            if let Err(e) = tokio::spawn(batch).await {
                observe::inbox::trouble(
                    "worker",
                    &format!("a batch ended early, the lease of the event it ran will lapse: {e}"),
                );
            }
        }
    }

    async fn idle(&self, woken: Pin<&mut Notified<'_>>) {
        let _woken = tokio::time::timeout(self.poll, woken).await;
    }

    /// Claims a batch for `name`, skipping the object types at their limit; answers it
    /// with when the claim was sent, from which its leases are held.
    pub(super) async fn claim(
        &self,
        name: &str,
    ) -> std::result::Result<(Vec<Claimed>, Instant), BoxError> {
        let saturated: Vec<&str> = self
            .limits
            .iter()
            .filter(|(_, permits)| permits.available_permits() == 0)
            .map(|(object_type, _)| object_type.as_str())
            .collect();
        let request = ClaimRequest {
            skip_object_types: &saturated,
            in_entity_order: self.in_entity_order,
            ..ClaimRequest::new(name, self.batch, self.lease)
        };
        let claiming = Instant::now();
        let claimed = self.store.claim(&request).await?;
        Ok((claimed, claiming))
    }

    /// Runs a batch's events one at a time under one heartbeat, starting each only while
    /// its lease is known to be held; the successes' done marks are written by a task of
    /// their own. A stopping worker hands back the events it has not started at once,
    /// while the running handler goes on.
    pub(super) async fn run_batch(
        self: Arc<Self>,
        control: Arc<Control>,
        name: Arc<str>,
        claimed: Vec<Claimed>,
        claiming: Instant,
    ) -> BatchSummary {
        let mut summary = BatchSummary {
            claimed: claimed.len(),
            ..BatchSummary::default()
        };
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
        let mut stopped = pin!(control.stopped.notified());
        stopped.as_mut().enable();
        let mut handing_back = None;
        while let Some(event) = unstarted.events.pop_front() {
            if control.stopping() {
                unstarted.events.push_front(event);
                break;
            }
            match self.still_held(&leases, &event).await {
                Some(true) => {}
                Some(false) => {
                    lapsed_before_start(event.attempt);
                    forget(&leases, [event.attempt.row]);
                    summary.not_started += 1;
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
                if let Poll::Ready(ran) = run.as_mut().poll(cx) {
                    return Poll::Ready(Some(ran));
                }
                if !unstarted.events.is_empty() && stopped.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                Poll::Pending
            })
            .await;
            let ran = match finished {
                Some(ran) => ran,
                None => {
                    // Handed back now, not after this handler: a grace period may end in
                    // a kill, which would charge each of them a lapse.
                    summary.not_started += unstarted.events.len();
                    handing_back = Some(tokio::spawn(unstarted.hand_back()));
                    run.await
                }
            };
            match ran {
                Ran::Succeeded(completed) => {
                    summary.succeeded += 1;
                    marks.add(completed);
                }
                Ran::Done => {
                    summary.succeeded += 1;
                    forget(&leases, [id]);
                }
                Ran::Failed => {
                    summary.failed += 1;
                    forget(&leases, [id]);
                }
            }
        }
        summary.not_started += unstarted.events.len();
        unstarted.hand_back().await;
        let handed_back = match handing_back {
            Some(task) => task.await,
            None => Ok(()),
        };
        if let Err(e) = handed_back {
            observe::inbox::trouble("release", &format!("the hand-back ended: {e}"));
        }
        marks.finish().await;
        summary
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
                observe::inbox::trouble(
                    "heartbeat",
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

    /// Runs one event's handlers, and settles a failure.
    async fn run_one(&self, name: &Arc<str>, claimed: Claimed) -> Ran {
        let Claimed {
            attempt: id,
            tries,
            body,
            retry_unhandled,
            ..
        } = claimed;
        let attempt = Arc::new(InboxAttempt::new(
            Arc::clone(&self.table),
            id.row,
            id.attempt,
            Arc::clone(name),
        ));
        let parsed = Event::parse(body);
        // Kept only for the hooks and the metrics' labels: a clone shares its body.
        let reported = (self.hooks.hear_events() || observe::inbox::RECORDS_METRICS)
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
        // Before an unhandled event is failed below: that is no handler's failure.
        let handler_failed = result.is_err();
        let result = match result {
            // Failed like a handler, so that the retry schedule brings it to a worker that
            // has a handler for it, as Monite's retries would without the inbox.
            Ok(Dispatched::Unhandled(why)) if self.retries_unhandled(id.row, retry_unhandled) => {
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
        let duration = attempt.started.elapsed();
        match result {
            Ok(_) => {
                observe::inbox::attempted(reported.as_ref(), None, duration);
                if attempt.completed() {
                    return Ran::Done;
                }
                Ran::Succeeded(Completed {
                    attempt: id,
                    duration,
                })
            }
            Err(error) => {
                let failed = Failed {
                    attempt: id,
                    tries,
                    event: reported,
                    error,
                    handler_failed,
                    duration,
                };
                self.settle_failure(name, failed).await;
                Ran::Failed
            }
        }
    }

    /// Settles a failed attempt: a retry from the schedule or, after the last attempt (or
    /// for bytes that are not an envelope), the burial; reported before it is written.
    async fn settle_failure(&self, name: &str, failed: Failed) {
        let Failed {
            attempt: id,
            tries,
            event,
            error,
            handler_failed,
            duration,
        } = failed;
        if let (true, Some(event)) = (handler_failed, &event) {
            self.hooks.failed(event, &error);
        }
        let next = match error.kind() {
            // Bytes that are not an envelope never will be.
            ErrorKind::NotAnEnvelope => AfterFailure::Dead,
            _ => self.retry.after_failure(tries),
        };
        observe::inbox::attempted(event.as_ref(), Some(next == AfterFailure::Dead), duration);
        let message = error.to_string();
        let retry_in = match &next {
            AfterFailure::RetryIn(delay) => Some(*delay),
            _ => None,
        };
        self.hooks.report(|| match retry_in {
            Some(retry_in) => Report::AttemptFailed {
                event,
                error,
                attempt: id.attempt,
                tries,
                retry_in,
            },
            None => Report::Dead {
                event,
                error,
                attempt: id.attempt,
                tries,
            },
        });
        let record = AttemptRecord::new(name, duration).failed(&message);
        match self.store.fail(id, &record, next).await {
            Ok(true) => {}
            Ok(false) => superseded(id),
            Err(e) => observe::inbox::trouble(
                "settle",
                &format!("{id}: settling failed, the lease will lapse: {e}"),
            ),
        }
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
                    observe::inbox::trouble(
                        "unhandled",
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

/// A failed attempt, to settle.
struct Failed {
    attempt: AttemptId,
    tries: i32,
    // Kept when a hook or the metrics want it; `None` too for a body not an envelope.
    event: Option<Event>,
    error: Error,
    // A handler failed or panicked (not: no handler took the event, or no envelope).
    handler_failed: bool,
    duration: Duration,
}

fn lapsed_before_start(attempt: AttemptId) {
    observe::inbox::trouble(
        "start",
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
        observe::inbox::trouble(
            "release",
            &format!("cannot hand back unstarted events, their leases will lapse: {e}"),
        );
    }
    forget(&leases, unstarted.iter().map(|a| a.row));
}
