//! Recovering the events missed while a listener was down, through the receiver's own
//! router and idempotency store.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;

use super::Client;
use super::models::{ListQuery, Order};
use super::pagination::Pages;
use crate::error::{Error, ErrorKind, Result};
use crate::event::Event;
use crate::event::ObjectType;
use crate::receive::{Outcome, Receiver};

/// Fetches an entity's events from `GET /events`, oldest first, and dispatches each through
/// a [`Receiver`]. The receiver's idempotency store sees them as it sees deliveries, so an
/// event that was delivered and also fetched runs its handlers once.
///
/// Progress is reported after each page, with the token to resume from: keep the last one,
/// and if a run fails part-way (a handler error, Monite unreachable), start the next run
/// with [`resume_from`](Self::resume_from). Events of the page that failed that were already
/// handled are then skipped as duplicates.
///
/// An event another delivery holds "in flight" (the store answers that it is claimed) is
/// never skipped. The holder may be a live delivery about to finish, or one that died
/// mid-handler and whose claim stays until its lease runs out (5 minutes by default, see
/// [`Idempotency::with_lease`](crate::Idempotency::with_lease)). After each page, such
/// events are dispatched again with back-off (half a second, doubling up to 30 s) for up to
/// [`in_flight_wait`](Self::in_flight_wait) ([`DEFAULT_IN_FLIGHT_WAIT`], the default lease,
/// by default). One still held then stops the run with [`ErrorKind::InFlight`], naming the
/// events and the token of their page to resume from.
///
/// An event the parser refuses is reported (its id and why, in
/// [`RecoveryProgress::unparsable`]) and the recovery goes on: stopping would stop every
/// later run at the same event. [`stop_on_unparsable`](Self::stop_on_unparsable) stops
/// instead. The same body delivered as a webhook is refused too (400), so the event needs a
/// look either way: fetch it with [`Events::get`](super::Events::get).
///
/// ```no_run
/// # use monite_webhooks::{client::Client, Receiver};
/// # async fn run(client: Client, receiver: Receiver) -> Result<(), monite_webhooks::Error> {
/// let report = client
///     .recover_missed_events(&receiver, "c381e88f-7019-4f06-9fbb-3bab8d88348a")
///     .since("2024-05-01T00:00:00Z")
///     .on_progress(|progress| eprintln!("{progress}"))
///     .run()
///     .await?;
/// println!("{} handled, {} already handled", report.handled, report.duplicates);
/// for refused in &report.unparsable {
///     eprintln!("event {:?} could not be parsed: {}", refused.id, refused.error);
/// }
/// # Ok(()) }
/// ```
#[must_use]
pub struct Recovery<'a> {
    client: &'a Client,
    receiver: &'a Receiver,
    entity_id: String,
    query: ListQuery,
    subscription_id: Option<String>,
    resume_from: Option<String>,
    on_unparsable: OnUnparsable,
    in_flight_wait: Duration,
    // In a mutex so that `&Recovery` is `Sync` and `run`'s future `Send` (a spawned
    // task), whatever the closure is.
    on_progress: Option<std::sync::Mutex<ProgressReport<'a>>>,
}

/// How long a [`Recovery`] waits, by default, for events held in flight by another
/// delivery: [`DEFAULT_CLAIM_LEASE`](crate::idempotency::DEFAULT_CLAIM_LEASE), so that a claim left by
/// a delivery that died under the default lease runs out within the run.
pub const DEFAULT_IN_FLIGHT_WAIT: Duration = crate::idempotency::DEFAULT_CLAIM_LEASE;

/// The first pause before an event held in flight is dispatched again; it doubles each
/// time, up to [`MAX_IN_FLIGHT_BACKOFF`].
const FIRST_IN_FLIGHT_BACKOFF: Duration = Duration::from_millis(500);
const MAX_IN_FLIGHT_BACKOFF: Duration = Duration::from_secs(30);
/// At most this many ids are named in the error of a run stopped by events in flight.
const NAMED_IN_FLIGHT: usize = 10;

/// What a [`Recovery`] does with an event the parser refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnUnparsable {
    /// Reports it in [`RecoveryProgress::unparsable`] and goes on. The default.
    #[default]
    Report,
    /// Stops the recovery with the parse error, as a failing handler does.
    Stop,
}

/// An event a [`Recovery`] could not parse, and so did not dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnparsableEvent {
    /// Its `id`, if that much could be read.
    pub id: Option<String>,
    /// Why the parser refused it.
    pub error: String,
}

type ProgressReport<'a> = Box<dyn FnMut(&RecoveryProgress) + Send + 'a>;

/// How far a [`Recovery`] got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryProgress {
    /// Pages fetched and fully dispatched.
    pub pages: usize,
    /// Events dispatched.
    pub events: usize,
    /// Events whose handler ran now.
    pub handled: usize,
    /// Events already handled, by a delivery or an earlier recovery.
    pub duplicates: usize,
    /// Events no handler took.
    pub unhandled: usize,
    /// Events the parser refused, which were not dispatched (with
    /// [`OnUnparsable::Report`], the default).
    pub unparsable: Vec<UnparsableEvent>,
    /// Events another delivery held in flight when they were first dispatched. Each was
    /// dispatched again, with back-off, until it was handled (and counted above) or the
    /// [wait](Recovery::in_flight_wait) ran out, which stops the run.
    pub in_flight: usize,
    /// Where to resume if the next page fails; `None` once the last page is done.
    pub resume_from: Option<String>,
}

impl fmt::Display for RecoveryProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} pages, {} events: {} handled, {} already handled, {} without a handler, {} in flight",
            self.pages, self.events, self.handled, self.duplicates, self.unhandled, self.in_flight
        )?;
        if !self.unparsable.is_empty() {
            write!(f, ", {} unparsable:", self.unparsable.len())?;
            for event in &self.unparsable {
                let id = event.id.as_deref().unwrap_or("(no id)");
                write!(f, " {id} ({})", event.error)?;
            }
        }
        Ok(())
    }
}

impl<'a> Recovery<'a> {
    pub(super) fn new(client: &'a Client, receiver: &'a Receiver, entity_id: String) -> Self {
        Self {
            client,
            receiver,
            entity_id,
            query: ListQuery::new().order(&Order::Asc),
            subscription_id: None,
            resume_from: None,
            on_unparsable: OnUnparsable::default(),
            in_flight_wait: DEFAULT_IN_FLIGHT_WAIT,
            on_progress: None,
        }
    }

    /// Only events created at or after this time (RFC 3339).
    pub fn since(mut self, rfc3339: impl Into<String>) -> Self {
        self.query = self.query.created_since(rfc3339);
        self
    }

    /// Only events created at or before this time (RFC 3339).
    pub fn until(mut self, rfc3339: impl Into<String>) -> Self {
        self.query = self.query.created_until(rfc3339);
        self
    }

    /// Only events created at or after `at`: [`since`](Self::since), typed.
    pub fn created_at_or_after(mut self, at: jiff::Timestamp) -> Self {
        self.query = self.query.created_at_or_after(at);
        self
    }

    /// Only events created at or before `at`: [`until`](Self::until), typed.
    pub fn created_at_or_before(mut self, at: jiff::Timestamp) -> Self {
        self.query = self.query.created_at_or_before(at);
        self
    }

    /// Only events of this object type.
    pub fn object_type(mut self, object_type: &ObjectType) -> Self {
        self.query = self.query.object_type(object_type);
        self
    }

    /// Events per page, 1 to 100 (Monite's default is 100): progress is reported, and a run
    /// can resume, at page boundaries.
    pub fn page_size(mut self, size: u8) -> Self {
        self.query = self.query.limit(size);
        self
    }

    /// Treats the fetched events as deliveries of this subscription.
    ///
    /// Only for an idempotency store keyed with
    /// [`KeyScope::PerSubscription`](crate::idempotency::KeyScope::PerSubscription): `GET
    /// /events` does not say which subscription an event went to, and this makes a fetched
    /// event's key match its delivery's. Such a recovery covers one subscription: filter it
    /// with [`object_type`](Self::object_type) to that subscription's object type. With the
    /// default [`KeyScope::PerEvent`](crate::idempotency::KeyScope::PerEvent) the key is the
    /// event id alone, and this changes nothing.
    pub fn as_subscription(mut self, subscription_id: impl Into<String>) -> Self {
        self.subscription_id = Some(subscription_id.into());
        self
    }

    /// Resumes from a token a progress report gave.
    pub fn resume_from(mut self, token: impl Into<String>) -> Self {
        self.resume_from = Some(token.into());
        self
    }

    /// Stops at the first event the parser refuses, instead of reporting it and going on.
    pub fn stop_on_unparsable(self) -> Self {
        self.on_unparsable(OnUnparsable::Stop)
    }

    /// What to do with an event the parser refuses; defaults to [`OnUnparsable::Report`].
    pub fn on_unparsable(mut self, choice: OnUnparsable) -> Self {
        self.on_unparsable = choice;
        self
    }

    /// How long to keep dispatching again, after a page, the events of that page another
    /// delivery holds in flight; defaults to [`DEFAULT_IN_FLIGHT_WAIT`] (5 minutes). Past
    /// it, the run stops with [`ErrorKind::InFlight`] and the token of that page.
    /// `Duration::ZERO` stops at once. Set it above the receiver's lease to have a claim
    /// left by a dead delivery run out within the run.
    pub fn in_flight_wait(mut self, wait: Duration) -> Self {
        self.in_flight_wait = wait;
        self
    }

    /// Calls `report` after each page.
    pub fn on_progress(mut self, report: impl FnMut(&RecoveryProgress) + Send + 'a) -> Self {
        self.on_progress = Some(std::sync::Mutex::new(Box::new(report)));
        self
    }

    /// Runs the recovery to the last page.
    ///
    /// # Errors
    /// The first error that stops it: Monite unreachable or refusing ([`ErrorKind::Api`],
    /// [`ErrorKind::Transport`]), Monite giving a pagination token a second time, a handler
    /// failing, an event no handler takes when the receiver's
    /// [`unhandled_status`](crate::ReceiverBuilder::unhandled_status) is not a success (the
    /// receiver released it for a retry: it is not done), the idempotency store
    /// unreachable, events still held in flight by another
    /// delivery after the [wait](Self::in_flight_wait) ([`ErrorKind::InFlight`], naming
    /// them), or (with [`stop_on_unparsable`](Self::stop_on_unparsable)) an event the
    /// parser refuses. The message says where to resume; `run` never returns `Ok` with an
    /// event left undispatched, other than those the parser refused (reported in
    /// [`RecoveryProgress::unparsable`]).
    pub async fn run(mut self) -> Result<RecoveryProgress> {
        let mut progress = RecoveryProgress {
            resume_from: self.resume_from.clone(),
            ..RecoveryProgress::default()
        };
        let entity_id = Some(self.entity_id.as_str());
        let mut pages = match self.resume_from.take() {
            Some(token) => Pages::resume(self.client, "/events".to_owned(), entity_id, token),
            None => Pages::new(
                self.client,
                "/events".to_owned(),
                entity_id,
                self.query.clone(),
            ),
        };
        loop {
            let (items, next) = match pages.next().await {
                Ok(Some(page)) => page,
                Ok(None) => return Ok(progress),
                Err(e) => return Err(stopped(e, &progress)),
            };
            // Events of this page another delivery holds in flight, to dispatch again.
            let mut held = Vec::new();
            for raw in items {
                let event = match self.parse(&raw) {
                    Ok(event) => event,
                    Err(e) if self.on_unparsable == OnUnparsable::Stop => {
                        return Err(stopped(e, &progress));
                    }
                    Err(e) => {
                        progress.unparsable.push(UnparsableEvent {
                            id: id_of(&raw),
                            error: e.to_string(),
                        });
                        continue;
                    }
                };
                progress.events += 1;
                match self.receiver.receive_event(event).await {
                    Ok(outcome) => self.count(&mut progress, &outcome, &raw)?,
                    Err(e) if e.kind() == ErrorKind::InFlight => {
                        progress.in_flight += 1;
                        held.push(raw);
                    }
                    Err(e) => return Err(stopped(e, &progress)),
                }
            }
            if !held.is_empty() {
                self.wait_for(held, &mut progress).await?;
            }
            progress.pages += 1;
            progress.resume_from.clone_from(&next);
            if let Some(report) = &mut self.on_progress {
                let report = report.get_mut().unwrap_or_else(|e| e.into_inner());
                report(&progress);
            }
        }
    }
}

impl Recovery<'_> {
    /// `raw` as an event, as this recovery dispatches it.
    fn parse(&self, raw: &Bytes) -> Result<Event> {
        let mut event = Event::parse(raw.clone())?;
        if let Some(subscription_id) = &self.subscription_id {
            event.assume_webhook_subscription_id(subscription_id);
        }
        Ok(event)
    }

    /// Dispatches the `held` events (parsed once already) again, with back-off, until none
    /// is in flight or the wait runs out.
    ///
    /// # Errors
    /// [`ErrorKind::InFlight`] naming those still held after the wait; any other dispatch
    /// error. Both say where to resume: the page they are on.
    async fn wait_for(&self, mut held: Vec<Bytes>, progress: &mut RecoveryProgress) -> Result<()> {
        // `None`: a wait too long for the clock (`Duration::MAX`, "as long as it takes").
        let deadline = tokio::time::Instant::now().checked_add(self.in_flight_wait);
        let mut pause = FIRST_IN_FLIGHT_BACKOFF;
        loop {
            let now = tokio::time::Instant::now();
            let left = deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(now));
            if left.is_zero() {
                return Err(stopped(self.still_in_flight(&held), progress));
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(MAX_IN_FLIGHT_BACKOFF);
            let mut still = Vec::new();
            for raw in held {
                let event = match self.parse(&raw) {
                    Ok(event) => event,
                    Err(e) => return Err(stopped(e, progress)),
                };
                match self.receiver.receive_event(event).await {
                    Ok(outcome) => self.count(progress, &outcome, &raw)?,
                    Err(e) if e.kind() == ErrorKind::InFlight => still.push(raw),
                    Err(e) => return Err(stopped(e, progress)),
                }
            }
            if still.is_empty() {
                return Ok(());
            }
            held = still;
        }
    }

    /// The error for events still held in flight after the wait.
    fn still_in_flight(&self, held: &[Bytes]) -> Error {
        let mut ids: Vec<String> = held
            .iter()
            .take(NAMED_IN_FLIGHT)
            .map(|raw| id_of(raw).unwrap_or_else(|| "(no id)".to_owned()))
            .collect();
        if held.len() > NAMED_IN_FLIGHT {
            ids.push(format!("and {} more", held.len() - NAMED_IN_FLIGHT));
        }
        Error::new(
            ErrorKind::InFlight,
            format!(
                "{} event(s) still held in flight by another delivery after waiting {:?}: {}",
                held.len(),
                self.in_flight_wait,
                ids.join(", ")
            ),
        )
    }
}

impl Recovery<'_> {
    /// Counts a dispatched event's outcome.
    ///
    /// # Errors
    /// [`ErrorKind::Handler`] for an event no handler took when the receiver answers such
    /// events with a non-2xx status: it released the event for a retry, so it is not done
    /// and the run must not go past it (a sweep would move its checkpoint beyond it).
    fn count(&self, progress: &mut RecoveryProgress, outcome: &Outcome, raw: &Bytes) -> Result<()> {
        match outcome {
            Outcome::Handled | Outcome::Accepted => progress.handled += 1,
            Outcome::Duplicate => progress.duplicates += 1,
            Outcome::Unhandled(why) => {
                if let Some(status) = self.receiver.releases_unhandled() {
                    let e = Error::new(
                        ErrorKind::Handler,
                        format!(
                            "no handler took event {} ({why:?}), and the receiver answers \
                             such events {status} so that they run again: it is not done",
                            id_of(raw).as_deref().unwrap_or("(no id)")
                        ),
                    );
                    return Err(stopped(e, progress));
                }
                progress.unhandled += 1;
            }
        }
        Ok(())
    }
}

/// `e`, with how far the recovery got and where to resume.
fn stopped(e: Error, progress: &RecoveryProgress) -> Error {
    let resume = progress.resume_from.as_deref().map_or_else(
        || "start again from the beginning".to_owned(),
        |token| format!("resume with resume_from({token:?})"),
    );
    e.context(&format!("recovery stopped after {progress}; {resume}"))
}

/// The `id` of an event the parser refused, if it is a string a lenient reader finds.
fn id_of(raw: &Bytes) -> Option<String> {
    #[derive(Deserialize)]
    struct Id {
        id: Option<String>,
    }
    // An `id` that is not a string fails the whole read, as invalid JSON does: `None`.
    serde_json::from_slice::<Id>(raw).ok()?.id
}

impl fmt::Debug for Recovery<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recovery")
            .field("entity_id", &self.entity_id)
            .field("query", &self.query)
            .field("subscription_id", &self.subscription_id)
            .field("resume_from", &self.resume_from)
            .field("on_unparsable", &self.on_unparsable)
            .field("in_flight_wait", &self.in_flight_wait)
            .finish_non_exhaustive()
    }
}
