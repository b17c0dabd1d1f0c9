//! The pipeline: precheck, verify, parse, claim, dispatch, settle, answer. [`Receiver`]
//! turns one HTTP request from Monite into one handled event and the status to answer.

mod answer;
mod claim;
mod oneshot;
mod spawn;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};

use self::spawn::Spawner;
use crate::dispatch::Dispatcher;
use crate::error::{Error, ErrorKind, Result};
use crate::event::Event;
use crate::headers::HeaderLookup;
use crate::idempotency::{ClaimToken, Idempotency, IdempotencyStore, MemoryStore};
use crate::observe;
use crate::signature::Verifier;

pub use self::spawn::{Spawn, Task};
pub use crate::clock::{Clock, SystemClock};
pub use crate::outcome::Outcome;

/// Turns one HTTP request from Monite into one handled event and the status to answer.
///
/// It takes no framework types and needs no async runtime: give it an
/// `http::Request<Bytes>` (a serverless function) or headers and a body (an adapter), and
/// drive the future on whatever executor you have. Cloning shares it.
///
/// | situation | status |
/// |---|---|
/// | verified and handled | `200` |
/// | verified, no handler for this event | `200`, see [`ReceiverBuilder::unhandled_status`] |
/// | missing or malformed `Monite-Signature` | `400` |
/// | no signature matches, or timestamp outside tolerance | `401` |
/// | signed with one subscription's secret, the envelope names another | `401` |
/// | body over the limit | `413`, before any HMAC work |
/// | verified but not a Monite envelope | `400` |
/// | a handler failed or panicked | `500` (Monite retries) |
/// | an event already handled (idempotency) | `200`, no handler runs |
/// | the same event being handled by another delivery | `409` (Monite retries) |
/// | the idempotency store unreachable | `503`, no handler runs (Monite retries) |
/// | not a `POST` | `405` |
///
/// ```
/// use monite_webhooks::{Dispatcher, Event, ObjectType, Receiver, Secret, Verifier};
/// use monite_webhooks::testing::signed_request;
///
/// # async fn example() -> Result<(), monite_webhooks::Error> {
/// let secret = Secret::new("whsec_test")?;
/// let receiver = Receiver::new(
///     Verifier::new(secret.clone()),
///     Dispatcher::builder()
///         .on_object(ObjectType::Counterpart, |event: Event| async move {
///             println!("{}", event.action());
///         })
///         .build(),
/// );
/// let body = r#"{"id":"1","object_type":"counterpart","action":"counterpart.created"}"#;
/// let response = receiver.handle(signed_request(&secret, body)).await;
/// assert_eq!(response.status(), 200);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Inner>,
}

struct Inner {
    verifier: Verifier,
    dispatcher: Dispatcher,
    unhandled_status: StatusCode,
    idempotency: Option<Idempotency>,
    clock: Arc<dyn Clock>,
    claim_tokens: Option<ClaimTokens>,
    spawner: Option<Spawner>,
    on_failure: Option<OnFailure>,
    // Set: verified deliveries are written there and answered, handled by workers later.
    #[cfg(feature = "postgres")]
    inbox: Option<crate::inbox::Inbox>,
}

type ClaimTokens = Arc<dyn Fn() -> ClaimToken + Send + Sync>;
type OnFailure = Box<dyn Fn(&Event, &Error) + Send + Sync>;

/// Configures a [`Receiver`].
#[must_use]
pub struct ReceiverBuilder {
    // What the receiver will hold, set field by field.
    inner: Inner,
}

impl Receiver {
    /// How long its idempotency store remembers a handled event; `None` without one.
    #[cfg(feature = "client")]
    pub(crate) fn idempotency_retention(&self) -> Option<std::time::Duration> {
        // An inbox's rows are its dedup keys, pruned no sooner than this.
        #[cfg(feature = "postgres")]
        if self.inner.inbox.is_some() {
            return Some(crate::inbox::MIN_DONE_RETENTION);
        }
        self.inner.idempotency.as_ref().map(Idempotency::retention)
    }

    /// The status an event no handler takes is answered with, when it is not a success:
    /// such an event is released, not marked done, so that a retry runs it again.
    #[cfg(feature = "client")]
    pub(crate) fn releases_unhandled(&self) -> Option<StatusCode> {
        let status = self.inner.unhandled_status;
        (!status.is_success()).then_some(status)
    }

    /// Whether what deduplicates its events outlives the process: an inbox, or an
    /// idempotency store that says so ([`IdempotencyStore::survives_restart`]).
    #[cfg(feature = "client")]
    pub(crate) fn idempotency_survives_restart(&self) -> bool {
        #[cfg(feature = "postgres")]
        if self.inner.inbox.is_some() {
            return true;
        }
        self.inner
            .idempotency
            .as_ref()
            .is_some_and(Idempotency::survives_restart)
    }

    /// A receiver with the default settings; `dispatcher` may be a [`Dispatcher`] or its
    /// unfinished builder.
    #[must_use]
    pub fn new(verifier: Verifier, dispatcher: impl Into<Dispatcher>) -> Self {
        Self::builder(verifier, dispatcher).build()
    }

    /// A receiver to configure, running `dispatcher`'s handlers for each verified delivery.
    pub fn builder(verifier: Verifier, dispatcher: impl Into<Dispatcher>) -> ReceiverBuilder {
        ReceiverBuilder {
            inner: Inner {
                verifier,
                dispatcher: dispatcher.into(),
                on_failure: None,
                unhandled_status: StatusCode::OK,
                idempotency: Some(Idempotency::new(MemoryStore::new())),
                clock: Arc::new(SystemClock),
                claim_tokens: None,
                spawner: None,
                #[cfg(feature = "postgres")]
                inbox: None,
            },
        }
    }

    /// A receiver to configure that writes each verified delivery to `store` and answers
    /// (`202`, or `200` for an event already there; `503` if the write fails) instead of
    /// running handlers: run [`Workers`](crate::inbox::Workers) on the same store to handle
    /// them. The inbox deduplicates, so the idempotency settings and the spawner do not
    /// apply. The [`unhandled_status`](ReceiverBuilder::unhandled_status) is kept with each
    /// event for the workers, which mark done or retry an event no handler takes as it
    /// says.
    ///
    /// ```no_run
    /// use monite_webhooks::inbox::PostgresInbox;
    /// use monite_webhooks::{PostgresStore, Receiver, Secret, Verifier};
    ///
    /// # async fn build(pool: sqlx::PgPool) -> Result<Receiver, monite_webhooks::Error> {
    /// let inbox = PostgresInbox::new(&PostgresStore::new(pool, "billing")?);
    /// inbox.ensure_schema().await?;
    /// let verifier = Verifier::new(Secret::new("whsec_from_your_environment")?);
    /// let receiver = Receiver::inbox_builder(verifier, inbox).build();
    /// # Ok(receiver) }
    /// ```
    #[cfg(feature = "postgres")]
    pub fn inbox_builder(
        verifier: Verifier,
        store: impl crate::inbox::InboxStore,
    ) -> ReceiverBuilder {
        let mut builder = Self::builder(verifier, Dispatcher::builder());
        builder.inner.idempotency = None;
        builder.inner.inbox = Some(crate::inbox::Inbox::new(store));
        builder
    }

    /// The verifier, for its body limit and secrets.
    #[must_use]
    pub fn verifier(&self) -> &Verifier {
        &self.inner.verifier
    }

    /// The dispatcher; an [inbox](Self::inbox_builder) receiver's has no handler.
    #[must_use]
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.inner.dispatcher
    }

    /// Verifies a delivery and parses it, without dispatching: what an extractor does.
    /// Synchronous, so it holds no borrow of `headers` across an `.await`.
    ///
    /// # Errors
    /// The verifier's errors (see [`Verifier::verify`]), then
    /// [`ErrorKind::NotAnEnvelope`].
    pub fn verify_event<H: HeaderLookup + ?Sized>(
        &self,
        headers: &H,
        body: Bytes,
    ) -> Result<Event> {
        let verifier = &self.inner.verifier;
        let now = self.inner.clock.now_unix();
        let matched = match verifier.verify_at(headers, &body, now) {
            Ok(verified) => {
                observe::verified(&verified);
                verified.subscription_id()
            }
            Err(error) => {
                observe::rejected_explained(&error, now, || {
                    verifier.diagnose_at(headers, &body, now).err()
                });
                return Err(error);
            }
        };
        let event = Event::parse(body).inspect_err(observe::rejected)?;
        // A keyed secret vouches for its own subscription's envelopes only: the verifier
        // chose it from a hint anywhere in the body, the envelope's field is what counts.
        match matched {
            Some(matched) if event.webhook_subscription_id() != Some(matched) => {
                let error = subscription_mismatch(matched, event.webhook_subscription_id());
                observe::rejected(&error);
                Err(error)
            }
            _ => Ok(event),
        }
    }

    /// Runs the handlers for a verified event, once: with an idempotency store (the
    /// default), a delivery of an event already handled runs no handler, and one that is
    /// being handled elsewhere right now is refused with `409`.
    ///
    /// # Errors
    /// [`ErrorKind::Handler`] or
    /// [`ErrorKind::HandlerPanicked`];
    /// [`ErrorKind::InFlight`] or
    /// [`ErrorKind::StoreUnavailable`] with a store;
    /// [`ErrorKind::Misconfigured`] for an [inbox](Self::inbox_builder) receiver, which
    /// has no handlers (give it the event with [`receive_event`](Self::receive_event)).
    pub async fn dispatch(&self, event: Event) -> Result<Outcome> {
        #[cfg(feature = "postgres")]
        if self.inner.inbox.is_some() {
            return Err(Error::new(
                ErrorKind::Misconfigured,
                "this receiver writes events to its inbox and has no handlers to dispatch to: \
                 give it events with Receiver::receive_event",
            ));
        }
        let span = observe::delivery_span(&event);
        observe::in_delivery(span, self.dispatch_once(event)).await
    }

    /// Takes a verified event as it takes a delivery once verified: runs the handlers
    /// ([`dispatch`](Self::dispatch)), or, for an [inbox](Self::inbox_builder) receiver,
    /// writes the event to the inbox (no headers are kept with it). What the recovery of
    /// missed events and the reconciler feed each event through.
    ///
    /// # Errors
    /// As [`dispatch`](Self::dispatch); for an inbox receiver,
    /// [`ErrorKind::StoreUnavailable`] if the write failed.
    pub async fn receive_event(&self, event: Event) -> Result<Outcome> {
        #[cfg(feature = "postgres")]
        if let Some(inbox) = &self.inner.inbox {
            let no_headers: &[(&str, &str)] = &[];
            return self.accept_into(inbox, &event, no_headers).await;
        }
        self.dispatch(event).await
    }

    async fn dispatch_once(&self, event: Event) -> Result<Outcome> {
        match &self.inner.spawner {
            None => self.claim_and_dispatch(event).await,
            Some(spawner) => {
                // The task owns the claim and the handlers: dropping this future (the caller
                // hung up) leaves them running to the end, and the event marked done.
                let (sender, answer) = oneshot::channel();
                let receiver = self.clone();
                spawner
                    .0
                    .spawn(Box::pin(observe::in_current_span(async move {
                        sender.send(receiver.claim_and_dispatch(event).await);
                    })));
                answer.await.unwrap_or_else(|| {
                    Err(Error::new(
                        ErrorKind::Handler,
                        "the task running the handlers was dropped before it finished \
                         (its claim was released)",
                    ))
                })
            }
        }
    }

    /// Verifies, parses and dispatches one delivery (or, for an
    /// [inbox](Self::inbox_builder) receiver, writes it to the inbox with its signature,
    /// content type and user agent).
    ///
    /// # Errors
    /// As [`verify_event`](Self::verify_event) and [`receive_event`](Self::receive_event).
    pub async fn receive<H: HeaderLookup + ?Sized>(
        &self,
        headers: &H,
        body: Bytes,
    ) -> Result<Outcome> {
        let event = self.verify_event(headers, body)?;
        #[cfg(feature = "postgres")]
        if let Some(inbox) = &self.inner.inbox {
            return self.accept_into(inbox, &event, headers).await;
        }
        self.dispatch(event).await
    }

    /// Answers one HTTP request: the entry point for serverless functions.
    pub async fn handle(&self, request: Request<Bytes>) -> Response<Bytes> {
        let (parts, body) = request.into_parts();
        let result = self
            .receive_request(parts.method.as_str(), &parts.headers, body)
            .await;
        self.answer(&result)
    }

    /// [`receive`](Self::receive) after the same precheck the adapters make before reading
    /// a body, so that a serverless function answers exactly as they do.
    async fn receive_request<H: HeaderLookup + ?Sized>(
        &self,
        method: &str,
        headers: &H,
        body: Bytes,
    ) -> Result<Outcome> {
        self.precheck(method, headers)?;
        self.receive(headers, body).await
    }
}

impl ReceiverBuilder {
    /// The status for verified events no handler took. Defaults to `200`, so Monite does
    /// not retry events you chose not to handle. A `4xx` or `5xx` here makes Monite retry
    /// them (for a week, then it disables the subscription): such an event's claim is
    /// released, not marked done, so a retry that reaches a replica with a handler runs it.
    ///
    /// An [inbox](Receiver::inbox_builder) receiver answers `202` instead, and a non-`2xx`
    /// status here is kept with each event: the workers then retry one that no handler
    /// takes (see [`WhenUnhandled`](crate::inbox::WhenUnhandled)).
    pub fn unhandled_status(mut self, status: StatusCode) -> Self {
        self.inner.unhandled_status = status;
        self
    }

    /// How the receiver handles each event once. Defaults to an in-process
    /// [`MemoryStore`]; with several replicas, give them a shared store.
    pub fn idempotency(mut self, idempotency: Idempotency) -> Self {
        self.inner.idempotency = Some(idempotency);
        self
    }

    /// Handles each event once through `store`, with the default lease, retention and key
    /// scope: short for `.idempotency(Idempotency::new(store))`.
    pub fn store(self, store: impl IdempotencyStore) -> Self {
        self.idempotency(Idempotency::new(store))
    }

    /// Calls `report` with the event and the error each time a verified delivery fails
    /// so that Monite will retry it: a handler failed or panicked (`500`), or the
    /// idempotency store or the inbox could not be reached (`503`, no handler ran; see
    /// [`Error::kind`]). One place to send failed deliveries to Sentry, a log, a counter or
    /// the watchdog's `Watchdog::record_failure`, instead of wrapping every handler. Not
    /// for `409` (another delivery of the event is being handled) nor for an event no
    /// handler took. A panic in `report` itself is caught and ignored.
    ///
    /// ```
    /// # use monite_webhooks::{Dispatcher, Receiver, Verifier};
    /// # fn build(verifier: Verifier, dispatcher: Dispatcher) -> Receiver {
    /// Receiver::builder(verifier, dispatcher)
    ///     .on_failure(|event, error| {
    ///         eprintln!("{} {:?} failed: {error}", event.action(), event.id());
    ///     })
    ///     .build()
    /// # }
    /// ```
    pub fn on_failure(mut self, report: impl Fn(&Event, &Error) + Send + Sync + 'static) -> Self {
        self.inner.on_failure = Some(Box::new(report));
        self
    }

    /// Runs handlers for every delivery, duplicates included, as Monite sends them: at
    /// least once. For handlers that are idempotent by themselves.
    pub fn without_idempotency(mut self) -> Self {
        self.inner.idempotency = None;
        self
    }

    /// Where the timestamp check reads the time. Defaults to [`SystemClock`]; see
    /// [`Clock`] for when to inject another.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.inner.clock = Arc::new(clock);
        self
    }

    /// Where the idempotency claims get their tokens. Defaults to [`ClaimToken::new`],
    /// which reads `std::process::id`: on `wasm32-unknown-unknown` and WASI, where that
    /// panics, give tokens from [`ClaimToken::from_parts`] instead. Each call must return
    /// a token no other delivery, in any instance, ever holds.
    pub fn claim_tokens(mut self, next: impl Fn() -> ClaimToken + Send + Sync + 'static) -> Self {
        self.inner.claim_tokens = Some(Arc::new(next));
        self
    }

    /// Runs each delivery's claim, handlers and done mark in a task of its own, started by
    /// `spawner`, which the request then waits for.
    ///
    /// Without it (the default), the handlers run inside the request's future: if the
    /// caller hangs up first (Monite's or a proxy's timeout, a closed connection), the
    /// handler is cancelled at its next `.await` and the claim is released, so Monite's
    /// retry runs it again from the start. Handlers must then be cancel-safe, and one that
    /// always outlasts the caller's timeout never finishes. With a spawner, a handler
    /// keeps running after the caller left: retries meanwhile get `409`, and the first one
    /// after it finished gets `200` with no second run.
    ///
    /// ```
    /// # use monite_webhooks::{Dispatcher, Receiver, Secret, Verifier};
    /// # fn build(verifier: Verifier, dispatcher: Dispatcher) -> Receiver {
    /// Receiver::builder(verifier, dispatcher)
    ///     .spawn_handlers(|task| {
    ///         tokio::spawn(task);
    ///     })
    ///     .build()
    /// # }
    /// ```
    pub fn spawn_handlers(mut self, spawner: impl Spawn) -> Self {
        self.inner.spawner = Some(Spawner(Box::new(spawner)));
        self
    }

    /// Builds the receiver.
    #[must_use]
    pub fn build(self) -> Receiver {
        let inner = self.inner;
        // Here, not in `inbox_builder`: `unhandled_status` is set after it.
        #[cfg(feature = "postgres")]
        let inner = {
            let status = inner.unhandled_status;
            Inner {
                inbox: inner.inbox.map(|inbox| inbox.for_unhandled_status(status)),
                ..inner
            }
        };
        Receiver {
            inner: Arc::new(inner),
        }
    }
}

#[cold]
fn subscription_mismatch(matched: &str, named: Option<&str>) -> Error {
    // The envelope's id is the sender's text: escaped and cut, as in every message.
    let shown = |id: &str| {
        id.chars()
            .take(64)
            .flat_map(char::escape_debug)
            .collect::<String>()
    };
    Error::new(
        ErrorKind::SubscriptionMismatch,
        format!(
            "the delivery is signed with the secret of webhook subscription {} but its \
             envelope names {}",
            shown(matched),
            named.map_or_else(
                || "no subscription".to_owned(),
                |named| format!("subscription {}", shown(named))
            ),
        ),
    )
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.debug_as("Receiver", f)
    }
}

impl fmt::Debug for ReceiverBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.debug_as("ReceiverBuilder", f)
    }
}

impl Inner {
    fn debug_as(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("verifier", &self.verifier)
            .field("dispatcher", &self.dispatcher)
            .field("unhandled_status", &self.unhandled_status)
            .field("idempotency", &self.idempotency)
            .field("spawner", &self.spawner)
            .finish_non_exhaustive()
    }
}
