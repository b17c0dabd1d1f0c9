//! Recovering the events missed while a listener was down, through the receiver's own
//! router and idempotency store.

use std::fmt;

use super::{Client, Cursor, ListQuery, Order};
use crate::error::{ErrorKind, Result};
use crate::event::Event;
use crate::object_type::ObjectType;
use crate::receiver::{Outcome, Receiver};

/// Fetches an entity's events from `GET /events`, oldest first, and dispatches each through
/// a [`Receiver`]. The receiver's idempotency store sees them as it sees deliveries, so an
/// event that was delivered and also fetched runs its handlers once.
///
/// Progress is reported after each page, with the token to resume from: keep the last one,
/// and if a run fails part-way (a handler error, Monite unreachable), start the next run
/// with [`resume_from`](Self::resume_from). Events of the page that failed that were already
/// handled are then skipped as duplicates.
///
/// ```no_run
/// # use monite_webhooks::{client::Client, Receiver};
/// # async fn run(client: Client, receiver: Receiver) -> Result<(), monite_webhooks::Error> {
/// let report = client
///     .recover_missed_events(&receiver, "c381e88f-7019-4f06-9fbb-3bab8d88348a")
///     .since("2024-05-01T00:00:00Z")
///     .as_subscription("f3c64af7-4a2f-4ed2-8160-d66b6a8ac4ba")
///     .on_progress(|progress| eprintln!("{progress}"))
///     .run()
///     .await?;
/// println!("{} handled, {} already handled", report.handled, report.duplicates);
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
    on_progress: Option<ProgressReport<'a>>,
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
    /// Events a delivery was handling at that moment; that delivery (and Monite's retries of
    /// it) sees them through.
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
        )
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

    /// Treats the fetched events as deliveries of this subscription. `GET /events` does not
    /// say which subscription an event went to; with the default per-subscription
    /// idempotency key, this makes a fetched event's key match its delivery's.
    pub fn as_subscription(mut self, subscription_id: impl Into<String>) -> Self {
        self.subscription_id = Some(subscription_id.into());
        self
    }

    /// Resumes from a token a progress report gave.
    pub fn resume_from(mut self, token: impl Into<String>) -> Self {
        self.resume_from = Some(token.into());
        self
    }

    /// Calls `report` after each page.
    pub fn on_progress(mut self, report: impl FnMut(&RecoveryProgress) + Send + 'a) -> Self {
        self.on_progress = Some(Box::new(report));
        self
    }

    /// Runs the recovery to the last page.
    ///
    /// # Errors
    /// The first error that stops it: Monite unreachable or refusing ([`ErrorKind::Api`],
    /// [`ErrorKind::Transport`]), a handler failing, or the idempotency store unreachable.
    /// The message says where to resume.
    pub async fn run(mut self) -> Result<RecoveryProgress> {
        let mut progress = RecoveryProgress {
            resume_from: self.resume_from.clone(),
            ..RecoveryProgress::default()
        };
        let mut cursor = match self.resume_from.take() {
            Some(token) => Cursor::Token(token),
            None => Cursor::First(self.query.clone()),
        };
        loop {
            let stopped = |e: crate::Error, progress: &RecoveryProgress| {
                let resume = progress.resume_from.as_deref().map_or_else(
                    || "start again from the beginning".to_owned(),
                    |token| format!("resume with resume_from({token:?})"),
                );
                e.context(&format!("recovery stopped after {progress}; {resume}"))
            };
            let request = cursor.request("/events".to_owned(), Some(&self.entity_id));
            let (items, next) = match self.client.page(&request).await {
                Ok(page) => page,
                Err(e) => return Err(stopped(e, &progress)),
            };
            for raw in items {
                let mut event = Event::parse(raw).map_err(|e| stopped(e, &progress))?;
                if let Some(subscription_id) = &self.subscription_id {
                    event.assume_webhook_subscription_id(subscription_id);
                }
                progress.events += 1;
                match self.receiver.dispatch(event).await {
                    Ok(Outcome::Handled) => progress.handled += 1,
                    Ok(Outcome::Duplicate) => progress.duplicates += 1,
                    Ok(Outcome::Unhandled(_)) => progress.unhandled += 1,
                    Err(e) if e.kind() == ErrorKind::InFlight => progress.in_flight += 1,
                    Err(e) => return Err(stopped(e, &progress)),
                }
            }
            progress.pages += 1;
            progress.resume_from.clone_from(&next);
            if let Some(report) = &mut self.on_progress {
                report(&progress);
            }
            match next {
                Some(token) => cursor = Cursor::Token(token),
                None => return Ok(progress),
            }
        }
    }
}

impl fmt::Debug for Recovery<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recovery")
            .field("entity_id", &self.entity_id)
            .field("query", &self.query)
            .field("subscription_id", &self.subscription_id)
            .field("resume_from", &self.resume_from)
            .finish_non_exhaustive()
    }
}
