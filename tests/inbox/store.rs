//! The inbox's store contract: one behaviour table run against `MemoryInbox` (no database)
//! and against `PostgresInbox` on a real PostgreSQL, as `tests/receive/idempotency.rs` does for the
//! idempotency stores. Then the workers' loop over `MemoryInbox`: events handled, retried,
//! buried, rescued after a lapse, and a shutdown that hands back what it never started.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use monite_webhooks::inbox::{
    Accepted, AfterFailure, AttemptRecord, ClaimRequest, Claimed, Completed, InboxCounts,
    InboxEvent, InboxState, InboxStore, MemoryInbox, Report, RetrySchedule, Workers,
};
use monite_webhooks::{
    Dispatcher, Event, EventType, ObjectType, Outcome, Receiver, Secret, Verifier,
};
use support::fixture::fresh_id;
use support::pg::PgServer;

const LEASE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// What a case does to a store beside its contract: the operator's calls, and time.
trait Operator {
    /// Time passes for the store: leases lapse, retries come due, done events age.
    fn advance(&self, by: Duration) -> impl Future<Output = ()>;
    fn pause(&self, paused: bool) -> impl Future<Output = ()>;
    fn status(&self) -> impl Future<Output = InboxCounts>;
    fn list(&self, state: Option<InboxState>) -> impl Future<Output = Vec<InboxEvent>>;
    fn retry(&self, id: i64) -> impl Future<Output = bool>;
}

impl Operator for MemoryInbox {
    async fn advance(&self, by: Duration) {
        Self::advance(self, by);
    }
    async fn pause(&self, paused: bool) {
        if paused {
            Self::pause(self);
        } else {
            Self::resume(self);
        }
    }
    async fn status(&self) -> InboxCounts {
        Self::status(self)
    }
    async fn list(&self, state: Option<InboxState>) -> Vec<InboxEvent> {
        Self::list(self, state.as_ref(), 100)
    }
    async fn retry(&self, id: i64) -> bool {
        Self::retry(self, id)
    }
}

/// A `PostgresInbox`, and the pool to move its clock with: every time of its namespace's
/// rows moves back, which is `now()` moving forward.
struct Pg {
    inbox: monite_webhooks::inbox::PostgresInbox,
    store: monite_webhooks::PostgresStore,
    namespace: String,
}

impl Operator for Pg {
    async fn advance(&self, by: Duration) {
        let sql = format!(
            "UPDATE {} SET received_at = received_at - $1 * interval '1 millisecond', \
               run_at = run_at - $1 * interval '1 millisecond', \
               locked_until = locked_until - $1 * interval '1 millisecond', \
               done_at = done_at - $1 * interval '1 millisecond' \
             WHERE namespace = $2",
            self.inbox.events_table()
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::try_from(by.as_millis()).unwrap())
            .bind(&self.namespace)
            .execute(self.store.pool())
            .await
            .unwrap();
    }
    async fn pause(&self, paused: bool) {
        if paused {
            self.inbox.pause().await.unwrap();
        } else {
            self.inbox.resume().await.unwrap();
        }
    }
    async fn status(&self) -> InboxCounts {
        self.inbox.status().await.unwrap()
    }
    async fn list(&self, state: Option<InboxState>) -> Vec<InboxEvent> {
        self.inbox.list(state.as_ref(), 100).await.unwrap()
    }
    async fn retry(&self, id: i64) -> bool {
        self.inbox.retry(id).await.unwrap()
    }
}

fn envelope(id: &str, object_type: &str, entity: Option<&str>) -> String {
    let entity = entity.map_or(String::new(), |e| format!(r#""entity_id":"{e}","#));
    format!(
        r#"{{"id":"{id}","action":"{object_type}.created",{entity}"object":{{"id":"o"}},"object_type":"{object_type}","webhook_subscription_id":"s"}}"#
    )
}

/// Accepts an event of `object_type` for `entity` into `store`; answers its event id.
/// Writes `event` to `store` as an inbox receiver does (`Receiver::receive_event`), and
/// says whether it was new.
async fn written<S: InboxStore + Clone>(
    store: &S,
    event: &Event,
    _no_headers: &[(&str, &str)],
) -> Result<Accepted, monite_webhooks::Error> {
    let receiver = Receiver::inbox_builder(
        Verifier::new(Secret::new("whsec_inbox_store").unwrap()),
        store.clone(),
    )
    .build();
    Ok(match receiver.receive_event(event.clone()).await? {
        Outcome::Duplicate => Accepted::Duplicate,
        _ => Accepted::New,
    })
}

async fn accept<S: InboxStore + Clone>(
    store: &S,
    object_type: &str,
    entity: Option<&str>,
) -> String {
    let id = fresh_id();
    let event = Event::parse(envelope(&id, object_type, entity)).unwrap();
    let no_headers: &[(&str, &str)] = &[];
    let accepted = written(store, &event, no_headers).await.unwrap();
    assert_eq!(accepted, Accepted::New);
    id
}

async fn claim<S: InboxStore>(store: &S, worker: &str, batch: usize) -> Vec<Claimed> {
    store
        .claim(&ClaimRequest::new(worker, batch, LEASE))
        .await
        .unwrap()
}

fn event_id(claimed: &Claimed) -> String {
    Event::parse(claimed.body.clone())
        .unwrap()
        .id()
        .unwrap()
        .to_owned()
}

fn report(worker: &str) -> AttemptRecord<'_> {
    AttemptRecord::new(worker, Duration::from_millis(3))
}

/// The behaviour every inbox store shows; `fresh` gives an empty store and its operator.
async fn behaviour_table<S, O, F>(fresh: impl Fn() -> F)
where
    S: InboxStore + Clone,
    O: Operator,
    F: Future<Output = (S, O)>,
{
    let (store, op) = fresh().await;
    accepting_is_once_per_event(&store, &op).await;
    let (store, op) = fresh().await;
    claims_take_the_oldest_under_a_lease_fenced_by_the_attempt(&store, &op).await;
    let (store, op) = fresh().await;
    retries_wait_for_their_time_then_the_event_is_dead(&store, &op).await;
    let (store, op) = fresh().await;
    a_lease_that_keeps_lapsing_buries_the_event(&store, &op).await;
    let (store, op) = fresh().await;
    released_and_heartbeaten_leases(&store, &op).await;
    let (store, op) = fresh().await;
    pausing_and_skipped_object_types(&store, &op).await;
    let (store, op) = fresh().await;
    first_in_first_out_per_entity(&store, &op).await;
    let (store, op) = fresh().await;
    done_events_are_kept_eight_days(&store, &op).await;
}

async fn accepting_is_once_per_event<S: InboxStore + Clone>(store: &S, op: &impl Operator) {
    let id = accept(store, "payable", Some("e1")).await;
    let event = Event::parse(envelope(&id, "payable", Some("e1"))).unwrap();
    let no_headers: &[(&str, &str)] = &[];
    let again = written(store, &event, no_headers).await;
    assert_eq!(again.unwrap(), Accepted::Duplicate);
    let status = op.status().await;
    assert_eq!(
        (status.pending, status.retrying, status.done),
        (1, 0, Some(0))
    );
    assert!(status.oldest_pending.is_some());
    let listed = op.list(None).await;
    assert_eq!(listed.len(), 1);
    let row = &listed[0];
    assert_eq!(row.event_id.as_deref(), Some(id.as_str()));
    assert_eq!(row.object_type, ObjectType::Payable);
    assert_eq!(row.event_type, EventType::Created);
    assert_eq!(row.action(), "payable.created");
    assert_eq!((&row.state, row.attempt), (&InboxState::Pending, 0));
    assert!(op.list(Some(InboxState::Dead)).await.is_empty());
}

async fn claims_take_the_oldest_under_a_lease_fenced_by_the_attempt<S: InboxStore + Clone>(
    store: &S,
    op: &impl Operator,
) {
    let first = accept(store, "payable", None).await;
    accept(store, "payable", None).await;
    let slow = claim(store, "slow", 1).await;
    assert_eq!(slow.len(), 1);
    assert_eq!(event_id(&slow[0]), first, "the oldest first");
    let held = slow[0].attempt;
    assert_eq!((held.attempt, slow[0].tries), (1, 1));
    assert_eq!(
        claim(store, "other", 10).await.len(),
        1,
        "the leased one is skipped"
    );
    assert_eq!(op.status().await.running, 2);

    // The slow worker's lease lapses; a rescue frees it and another worker takes it.
    op.advance(LEASE + Duration::from_secs(1)).await;
    assert_eq!(store.rescue(3, 25).await.unwrap(), 2);
    let fast = claim(store, "fast", 10).await;
    let retaken = fast.iter().find(|c| c.attempt.row == held.row).unwrap();
    assert_eq!(retaken.attempt.attempt, 2);
    assert_eq!(retaken.tries, 2);

    // Every call of the late attempt changes nothing.
    assert!(!store.complete(held, &report("slow")).await.unwrap());
    let failed = store.fail(held, &report("slow"), AfterFailure::Dead).await;
    assert!(!failed.unwrap());
    let late = Completed {
        attempt: held,
        duration: Duration::ZERO,
    };
    assert!(
        store
            .complete_batch("slow", &[late])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.heartbeat(&[held], LEASE).await.unwrap(), 0);
    assert_eq!(store.release("slow", &[held]).await.unwrap(), 0);
    assert_eq!(
        op.status().await.running,
        2,
        "the late attempt changed nothing"
    );

    // The holding attempts settle; a done event stays the key of its duplicates.
    let done: Vec<Completed> = fast
        .iter()
        .map(|c| Completed {
            attempt: c.attempt,
            duration: Duration::ZERO,
        })
        .collect();
    let mut marked = store.complete_batch("fast", &done).await.unwrap();
    marked.sort_unstable();
    let mut rows: Vec<i64> = fast.iter().map(|c| c.attempt.row).collect();
    rows.sort_unstable();
    assert_eq!(marked, rows);
    let status = op.status().await;
    assert_eq!((status.running, status.done), (0, Some(2)));
    let event = Event::parse(envelope(&first, "payable", None)).unwrap();
    let no_headers: &[(&str, &str)] = &[];
    let again = written(store, &event, no_headers).await;
    assert_eq!(again.unwrap(), Accepted::Duplicate);
}

async fn retries_wait_for_their_time_then_the_event_is_dead<S: InboxStore + Clone>(
    store: &S,
    op: &impl Operator,
) {
    accept(store, "payable", None).await;
    let first = claim(store, "w", 1).await.remove(0);
    let failed = store
        .fail(
            first.attempt,
            &report("w").failed("ledger unavailable"),
            AfterFailure::RetryIn(HOUR),
        )
        .await;
    assert!(failed.unwrap());
    let status = op.status().await;
    assert_eq!(
        (status.pending, status.retrying),
        (1, 1),
        "a retry is pending"
    );
    assert_eq!(status.first_attempts(), 0);
    assert!(claim(store, "w", 1).await.is_empty(), "not before its time");
    op.advance(HOUR + Duration::from_secs(1)).await;
    let second = claim(store, "w", 1).await.remove(0);
    assert_eq!((second.attempt.attempt, second.tries), (2, 2));
    let failed = store
        .fail(
            second.attempt,
            &report("w").failed("ledger unavailable"),
            AfterFailure::Dead,
        )
        .await;
    assert!(failed.unwrap());
    op.advance(DAY).await;
    assert!(
        claim(store, "w", 1).await.is_empty(),
        "dead is never claimed"
    );
    let dead = op.list(Some(InboxState::Dead)).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempt, 2);
    assert_eq!(dead[0].last_error.as_deref(), Some("ledger unavailable"));
    let status = op.status().await;
    assert_eq!((status.pending, status.dead), (0, 1));

    // Retried by hand: pending now, with a fresh set of attempts.
    assert!(op.retry(dead[0].id).await);
    let again = claim(store, "w", 1).await.remove(0);
    assert_eq!((again.attempt.attempt, again.tries), (3, 1));
    assert!(
        !op.retry(dead[0].id).await,
        "a running event is not retried"
    );
}

async fn a_lease_that_keeps_lapsing_buries_the_event<S: InboxStore + Clone>(
    store: &S,
    op: &impl Operator,
) {
    let id = accept(store, "payable", None).await;
    for lapse in 1..=3 {
        let claimed = claim(store, "dies", 1).await;
        assert_eq!(claimed.len(), 1, "claimable again after lapse {lapse}");
        op.advance(LEASE).await;
        let buried = store.rescue_listing_dead(3, 25).await.unwrap();
        if lapse < 3 {
            assert!(buried.is_empty());
        } else {
            assert_eq!(buried.len(), 1);
            assert_eq!((buried[0].attempt.attempt, buried[0].lapses), (3, 3));
            assert_eq!(buried[0].tries, 3);
            let body = Event::parse(buried[0].body.clone()).unwrap();
            assert_eq!(body.id(), Some(id.as_str()));
        }
    }
    let dead = op.list(Some(InboxState::Dead)).await;
    assert!(
        dead[0]
            .last_error
            .as_ref()
            .unwrap()
            .contains("lapsed 3 times")
    );
    assert!(claim(store, "next", 1).await.is_empty());

    // Out of attempts: a single lapse of the last one buries it too.
    accept(store, "payable", None).await;
    claim(store, "dies", 1).await;
    op.advance(LEASE).await;
    assert_eq!(store.rescue_listing_dead(3, 1).await.unwrap().len(), 1);
    assert_eq!(op.status().await.dead, 2);
}

async fn released_and_heartbeaten_leases<S: InboxStore + Clone>(store: &S, op: &impl Operator) {
    accept(store, "payable", None).await;
    accept(store, "payable", None).await;
    let claimed = claim(store, "stopping", 2).await;
    let held: Vec<_> = claimed.iter().map(|c| c.attempt).collect();
    assert_eq!(store.release("stopping", &held).await.unwrap(), 2);
    assert_eq!(op.status().await.pending, 2);
    let again = claim(store, "next", 2).await;
    assert!(
        again.iter().all(|c| c.attempt.attempt == 2 && c.tries == 1),
        "a released attempt is not counted against the schedule"
    );

    // A heartbeat keeps the leases: only one left without it lapses.
    let (kept, left) = (again[0].attempt, again[1].attempt);
    op.advance(LEASE / 2).await;
    assert_eq!(store.heartbeat(&[kept], LEASE).await.unwrap(), 1);
    op.advance(LEASE / 2 + Duration::from_secs(1)).await;
    assert_eq!(store.rescue(3, 25).await.unwrap(), 1);
    assert_eq!(store.heartbeat(&[kept, left], LEASE).await.unwrap(), 1);
    assert_eq!(op.status().await.running, 1);
}

async fn pausing_and_skipped_object_types<S: InboxStore + Clone>(store: &S, op: &impl Operator) {
    op.pause(true).await;
    accept(store, "payable", None).await;
    let counterpart = accept(store, "counterpart", None).await;
    assert!(claim(store, "w", 10).await.is_empty(), "paused");
    assert_eq!(
        op.status().await.pending,
        2,
        "accepting goes on while paused"
    );
    op.pause(false).await;
    let mut request = ClaimRequest::new("w", 10, LEASE);
    request.skip_object_types = &["payable"];
    let claimed = store.claim(&request).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(event_id(&claimed[0]), counterpart);
}

async fn first_in_first_out_per_entity<S: InboxStore + Clone>(store: &S, op: &impl Operator) {
    let a = accept(store, "payable", Some("e1")).await;
    let b = accept(store, "payable", Some("e1")).await;
    let c = accept(store, "payable", Some("e2")).await;
    let d = accept(store, "payable", None).await;
    let mut ordered = ClaimRequest::new("w", 10, LEASE);
    ordered.in_entity_order = true;
    let claimed = store.claim(&ordered).await.unwrap();
    let mut ids: Vec<String> = claimed.iter().map(event_id).collect();
    ids.sort();
    let mut heads = vec![a.clone(), c, d];
    heads.sort();
    assert_eq!(ids, heads, "each entity's head, and events without one");
    assert!(store.claim(&ordered).await.unwrap().is_empty(), "e1 runs");

    // The head fails and waits for its retry: its entity waits with it.
    let head = claimed.iter().find(|c| event_id(c) == a).unwrap();
    let retry = AfterFailure::RetryIn(HOUR);
    assert!(store.fail(head.attempt, &report("w"), retry).await.unwrap());
    assert!(
        store.claim(&ordered).await.unwrap().is_empty(),
        "b waits for a"
    );
    op.advance(HOUR).await;
    let again = store.claim(&ordered).await.unwrap();
    assert_eq!(again.iter().map(event_id).collect::<Vec<_>>(), [a]);
    assert!(
        store
            .complete(again[0].attempt, &report("w"))
            .await
            .unwrap()
    );
    let next = store.claim(&ordered).await.unwrap();
    assert_eq!(next.iter().map(event_id).collect::<Vec<_>>(), [b]);
}

async fn done_events_are_kept_eight_days<S: InboxStore + Clone>(store: &S, op: &impl Operator) {
    let old = accept(store, "payable", None).await;
    accept(store, "payable", None).await;
    for claimed in claim(store, "w", 2).await {
        assert!(store.complete(claimed.attempt, &report("w")).await.unwrap());
    }
    op.advance(7 * DAY).await;
    assert_eq!(
        store.prune(Duration::from_secs(60), 100).await.unwrap(),
        0,
        "a retention under 8 days is raised to 8"
    );
    op.advance(2 * DAY).await;
    assert_eq!(store.prune(Duration::from_secs(60), 1).await.unwrap(), 1);
    assert_eq!(store.prune(Duration::from_secs(60), 100).await.unwrap(), 1);
    assert_eq!(op.status().await.done, Some(0));
    let event = Event::parse(envelope(&old, "payable", None)).unwrap();
    let no_headers: &[(&str, &str)] = &[];
    let again = written(store, &event, no_headers).await;
    assert_eq!(again.unwrap(), Accepted::New, "a pruned key is forgotten");
}

#[tokio::test]
async fn memory_inbox_behaviour() {
    behaviour_table(|| async {
        let inbox = MemoryInbox::new();
        (inbox.clone(), inbox)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_inbox_behaviour() {
    let server = PgServer::start();
    let url = server.url();
    behaviour_table(|| {
        let url = url.clone();
        async move {
            // A namespace per case: its rows, its pause, its clock.
            let namespace = fresh_id();
            let store = monite_webhooks::PostgresStore::connect(&url, &namespace)
                .await
                .unwrap();
            let inbox = monite_webhooks::inbox::PostgresInbox::new(&store);
            inbox.ensure_schema().await.unwrap();
            (
                inbox.clone(),
                Pg {
                    inbox,
                    store,
                    namespace,
                },
            )
        }
    })
    .await;
}

/// Waits (ten seconds at most) until `done` holds for the inbox's counts.
async fn wait_until(inbox: &MemoryInbox, done: impl Fn(&InboxCounts) -> bool) {
    for _ in 0..1000 {
        if done(&inbox.status()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never reached: {:?}", inbox.status());
}

/// A dispatcher whose payable handler fails each event's first `failures` runs; counts runs.
fn failing_first(failures: usize, runs: &Arc<AtomicUsize>) -> Dispatcher {
    let runs = Arc::clone(runs);
    Dispatcher::builder()
        .on_object(ObjectType::Payable, move |_: Event| {
            let run = runs.fetch_add(1, Ordering::SeqCst);
            async move {
                if run < failures {
                    Err(std::io::Error::other("ledger unavailable"))
                } else {
                    Ok(())
                }
            }
        })
        .build()
}

type Heard = Arc<Mutex<Vec<(i32, bool)>>>;

/// A failure the workers report: its tries, and whether the event is now dead.
fn failure_of(report: &Report) -> Option<(i32, bool)> {
    match report {
        Report::AttemptFailed { tries, .. } => Some((*tries, false)),
        Report::Dead { tries, .. } => Some((*tries, true)),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_over_memory_handle_retry_and_bury() {
    // Handled: every event once.
    let inbox = MemoryInbox::new();
    for _ in 0..20 {
        accept(&inbox, "payable", None).await;
    }
    let runs = Arc::new(AtomicUsize::new(0));
    let workers = Workers::builder(inbox.clone(), failing_first(0, &runs))
        .concurrency(3)
        .batch(4)
        .poll_interval(Duration::from_millis(10))
        .start()
        .unwrap();
    wait_until(&inbox, |c| c.done == Some(20)).await;
    workers.shutdown().await;
    assert_eq!(runs.load(Ordering::SeqCst), 20);

    // Retried: a first failure, then success on the schedule.
    let inbox = MemoryInbox::new();
    accept(&inbox, "payable", None).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let heard: Heard = Arc::default();
    let hook = Arc::clone(&heard);
    let workers = Workers::builder(inbox.clone(), failing_first(1, &runs))
        .on_report(move |report| hook.lock().unwrap().extend(failure_of(report)))
        .poll_interval(Duration::from_millis(10))
        .retry(RetrySchedule::new([Duration::ZERO], 3).with_jitter(|d| d))
        .start()
        .unwrap();
    wait_until(&inbox, |c| c.done == Some(1)).await;
    workers.shutdown().await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(*heard.lock().unwrap(), [(1, false)]);

    // Dead: out of attempts, the hook hears each failure and the burial.
    let inbox = MemoryInbox::new();
    accept(&inbox, "payable", None).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let heard: Heard = Arc::default();
    let hook = Arc::clone(&heard);
    let workers = Workers::builder(inbox.clone(), failing_first(usize::MAX, &runs))
        .on_report(move |report| hook.lock().unwrap().extend(failure_of(report)))
        .poll_interval(Duration::from_millis(10))
        .retry(RetrySchedule::new([Duration::ZERO], 3).with_jitter(|d| d))
        .start()
        .unwrap();
    wait_until(&inbox, |c| c.dead == 1).await;
    workers.shutdown().await;
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert_eq!(*heard.lock().unwrap(), [(1, false), (2, false), (3, true)]);
    let dead = inbox.list(Some(&InboxState::Dead), 10);
    assert!(
        dead[0]
            .last_error
            .as_ref()
            .unwrap()
            .contains("ledger unavailable")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_over_memory_rescue_a_lapsed_lease() {
    let inbox = MemoryInbox::new();
    accept(&inbox, "payable", None).await;
    // A worker of another process claimed it and died.
    assert_eq!(claim(&inbox, "died", 1).await.len(), 1);
    inbox.advance(LEASE + Duration::from_secs(1));
    let runs = Arc::new(AtomicUsize::new(0));
    let workers = Workers::builder(inbox.clone(), failing_first(0, &runs))
        .poll_interval(Duration::from_millis(10))
        .start()
        .unwrap();
    wait_until(&inbox, |c| c.done == Some(1)).await;
    workers.shutdown().await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(inbox.list(None, 1)[0].attempt, 2, "the second attempt ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_finishes_the_running_event_and_hands_back_the_rest() {
    let inbox = MemoryInbox::new();
    for _ in 0..5 {
        accept(&inbox, "payable", None).await;
    }
    let started = Arc::new(tokio::sync::Semaphore::new(0));
    let finish = Arc::new(tokio::sync::Semaphore::new(0));
    let (on_start, gate) = (Arc::clone(&started), Arc::clone(&finish));
    let dispatcher = Dispatcher::builder()
        .on_object(ObjectType::Payable, move |_: Event| {
            let (on_start, gate) = (Arc::clone(&on_start), Arc::clone(&gate));
            async move {
                on_start.add_permits(1);
                gate.acquire().await.unwrap().forget();
            }
        })
        .build();
    let workers = Workers::builder(inbox.clone(), dispatcher)
        .concurrency(1)
        .batch(5)
        .poll_interval(Duration::from_millis(10))
        .start()
        .unwrap();
    started.acquire().await.unwrap().forget();
    let stopping = tokio::spawn(workers.shutdown());
    // The four unstarted go back at once, while the running handler goes on.
    wait_until(&inbox, |c| c.pending == 4).await;
    assert_eq!(inbox.status().running, 1);
    finish.add_permits(1);
    stopping.await.unwrap();
    let status = inbox.status();
    assert_eq!(
        (status.pending, status.running, status.done),
        (4, 0, Some(1))
    );
    assert_eq!(status.retrying, 0, "handed back, not failed");
    let again = claim(&inbox, "next", 10).await;
    assert!(
        again.iter().all(|c| c.tries == 1),
        "not counted as attempts"
    );
}

/// One batch at a time (`Workers::run_once`, for tests and cron) over `MemoryInbox`, its
/// clock moved instead of waited for: a failure waits for its retry's time, then succeeds.
#[tokio::test]
async fn run_once_over_memory_retries_when_the_schedule_says() {
    let inbox = MemoryInbox::new();
    for _ in 0..3 {
        accept(&inbox, "payable", None).await;
    }
    let runs = Arc::new(AtomicUsize::new(0));
    let workers = Workers::builder(inbox.clone(), failing_first(1, &runs))
        .batch(10)
        .retry(RetrySchedule::new([HOUR], 3).with_jitter(|d| d))
        .build()
        .unwrap();
    let first = workers.run_once().await.unwrap();
    assert_eq!((first.claimed, first.succeeded, first.failed), (3, 2, 1));
    let status = inbox.status();
    assert_eq!(
        (status.done, status.pending, status.retrying),
        (Some(2), 1, 1)
    );
    assert_eq!(
        workers.run_once().await.unwrap().claimed,
        0,
        "not before its time"
    );
    inbox.advance(HOUR);
    let retried = workers.run_once().await.unwrap();
    assert_eq!((retried.claimed, retried.succeeded), (1, 1));
    assert_eq!(inbox.status().done, Some(3));
    assert_eq!(runs.load(Ordering::SeqCst), 4);
}
