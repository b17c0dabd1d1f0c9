//! `Receiver`: verifier, parser and dispatcher composed into one request-to-response step.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};

use crate::clock::{Clock, SystemClock};
use crate::dispatch::{Dispatched, Dispatcher, Unhandled};
use crate::error::{Error, ErrorKind, Result};
use crate::event::Event;
use crate::headers::HeaderLookup;
use crate::idempotency::MemoryStore;
use crate::idempotency::{Claim, ClaimToken, Idempotency};
use crate::metrics;
use crate::signature::Verifier;
use crate::spawn::{Spawn, Spawner, oneshot};
use crate::trace;

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
/// use monite_webhooks::{signed_request, Dispatcher, Event, ObjectType, Receiver, Secret, Verifier};
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
}

type ClaimTokens = Arc<dyn Fn() -> ClaimToken + Send + Sync>;

/// Configures a [`Receiver`].
#[must_use]
pub struct ReceiverBuilder {
    // What the receiver will hold, set field by field.
    inner: Inner,
}

/// What happened to a verified delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// A handler ran and succeeded.
    Handled,
    /// No handler took the event.
    Unhandled(Unhandled),
    /// An earlier delivery already handled the event; no handler ran.
    Duplicate,
}

impl From<Dispatched> for Outcome {
    fn from(dispatched: Dispatched) -> Self {
        match dispatched {
            Dispatched::Handled => Self::Handled,
            Dispatched::Unhandled(why) => Self::Unhandled(why),
        }
    }
}

impl Receiver {
    /// A receiver with the default settings.
    #[must_use]
    pub fn new(verifier: Verifier, dispatcher: Dispatcher) -> Self {
        Self::builder(verifier, dispatcher).build()
    }

    /// A receiver to configure.
    pub fn builder(verifier: Verifier, dispatcher: Dispatcher) -> ReceiverBuilder {
        ReceiverBuilder {
            inner: Inner {
                verifier,
                dispatcher,
                unhandled_status: StatusCode::OK,
                idempotency: Some(Idempotency::new(MemoryStore::new())),
                clock: Arc::new(SystemClock),
                claim_tokens: None,
                spawner: None,
            },
        }
    }

    /// The verifier, for its body limit and secrets.
    #[must_use]
    pub fn verifier(&self) -> &Verifier {
        &self.inner.verifier
    }

    /// The dispatcher.
    #[must_use]
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.inner.dispatcher
    }

    /// Verifies a delivery and parses it, without dispatching: what an extractor does.
    /// Synchronous, so it holds no borrow of `headers` across an `.await`.
    ///
    /// # Errors
    /// The verifier's errors (see [`Verifier::verify`]), then
    /// [`ErrorKind::NotAnEnvelope`](crate::ErrorKind::NotAnEnvelope).
    pub fn verify_event<H: HeaderLookup + ?Sized>(
        &self,
        headers: &H,
        body: Bytes,
    ) -> Result<Event> {
        let verifier = &self.inner.verifier;
        let now = self.inner.clock.now_unix();
        let matched = match verifier.verify_at(headers, &body, now) {
            Ok(verified) => {
                trace::verified(&verified);
                verified.subscription_id()
            }
            Err(error) => {
                trace::rejected_explained(&error, now, || {
                    verifier.diagnose_at(headers, &body, now).err()
                });
                return Err(error);
            }
        };
        let event = Event::parse(body).inspect_err(trace::rejected)?;
        // A keyed secret vouches for its own subscription's envelopes only: the verifier
        // chose it from a hint anywhere in the body, the envelope's field is what counts.
        match matched {
            Some(matched) if event.webhook_subscription_id() != Some(matched) => {
                let error = subscription_mismatch(matched, event.webhook_subscription_id());
                trace::rejected(&error);
                Err(error)
            }
            _ => Ok(event),
        }
    }

    /// Dispatches a verified event, once: with an idempotency store (the default), a
    /// delivery of an event already handled runs no handler, and one that is being handled
    /// elsewhere right now is refused with `409`.
    ///
    /// # Errors
    /// [`ErrorKind::Handler`](crate::ErrorKind::Handler) or
    /// [`ErrorKind::HandlerPanicked`](crate::ErrorKind::HandlerPanicked);
    /// [`ErrorKind::InFlight`](crate::ErrorKind::InFlight) or
    /// [`ErrorKind::StoreUnavailable`](crate::ErrorKind::StoreUnavailable) with a store.
    pub async fn dispatch(&self, event: Event) -> Result<Outcome> {
        let span = trace::delivery_span(&event);
        trace::in_delivery(span, self.dispatch_once(event)).await
    }

    async fn dispatch_once(&self, event: Event) -> Result<Outcome> {
        match &self.inner.spawner {
            None => self.claim_and_dispatch(event).await,
            Some(spawner) => {
                // The task owns the claim and the handlers: dropping this future (the caller
                // hung up) leaves them running to the end, and the event marked done.
                let (sender, answer) = oneshot::channel();
                let receiver = self.clone();
                spawner.0.spawn(Box::pin(trace::in_current_span(async move {
                    sender.send(receiver.claim_and_dispatch(event).await);
                })));
                answer.await.unwrap_or_else(|| {
                    Err(Error::new(
                        ErrorKind::Handler,
                        "the task running the handlers was dropped before it finished \
                         (the runtime shut down?); its claim was released, Monite will retry",
                    ))
                })
            }
        }
    }

    async fn claim_and_dispatch(&self, event: Event) -> Result<Outcome> {
        let dispatcher = &self.inner.dispatcher;
        let run =
            |event| metrics::handler_run(dispatcher.dispatch(event), |d| *d == Dispatched::Handled);
        let Some(idempotency) = &self.inner.idempotency else {
            return run(event).await.map(Outcome::from);
        };
        let Some(key) = idempotency.key(&event) else {
            // An id-less 2022 envelope with no deduplication window: at least once.
            return run(event).await.map(Outcome::from);
        };
        let token = self
            .inner
            .claim_tokens
            .as_ref()
            .map_or_else(ClaimToken::new, |next| next());
        // The guard exists before the claim is sent: a delivery dropped while the claim is on
        // its way, or a claim that fails after the store applied it, must not leave the key
        // held for the whole lease.
        let mut held = HeldClaim {
            idempotency,
            key: &key,
            token,
            stage: Stage::Claiming,
        };
        let claim = match idempotency.claim(&key, &token).await {
            Ok(claim) => claim,
            Err(source) => {
                held.release_detached();
                return Err(Error::new(
                    ErrorKind::StoreUnavailable,
                    format!(
                        "the idempotency store could not claim {key}, so no handler ran: {source}"
                    ),
                )
                .with_source(source));
            }
        };
        match claim {
            Claim::Acquired => held.stage = Stage::Running,
            Claim::Done => {
                held.stage = Stage::Settled;
                return Ok(Outcome::Duplicate);
            }
            Claim::InFlight => {
                held.stage = Stage::Settled;
                return Err(Error::new(
                    ErrorKind::InFlight,
                    format!("{key} is being handled by another delivery; Monite will retry"),
                ));
            }
        }
        let result = run(event).await.map(Outcome::from);
        let handled = match &result {
            Ok(Outcome::Unhandled(_)) => self.inner.unhandled_status.is_success(),
            Ok(_) => true,
            Err(_) => false,
        };
        if handled {
            held.complete().await;
        } else {
            // A failure, or an unhandled event answered non-2xx so that Monite retries it:
            // the retry must find the key free, not done.
            held.release().await;
        }
        result
    }

    /// Verifies, parses and dispatches one delivery.
    ///
    /// # Errors
    /// As [`verify_event`](Self::verify_event) and [`dispatch`](Self::dispatch).
    pub async fn receive<H: HeaderLookup + ?Sized>(
        &self,
        headers: &H,
        body: Bytes,
    ) -> Result<Outcome> {
        let event = self.verify_event(headers, body)?;
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

    /// What adapters check before reading a body: the method, and a declared
    /// `Content-Length` over the limit (answered `413` without reading a byte).
    pub(crate) fn precheck<H: HeaderLookup + ?Sized>(
        &self,
        method: &str,
        headers: &H,
    ) -> Result<()> {
        let limit = self.inner.verifier.max_body_bytes();
        let declared = headers
            .header("content-length")
            .and_then(|value| std::str::from_utf8(value).ok()?.trim().parse::<u64>().ok());
        let checked = if method != Method::POST.as_str() {
            Err(Error::method_not_allowed(method))
        } else if declared.is_some_and(|length| length > limit as u64) {
            Err(Error::body_too_large(declared.unwrap_or_default(), limit))
        } else {
            Ok(())
        };
        checked.inspect_err(trace::rejected)
    }

    /// The status for a result of [`receive`](Self::receive).
    #[must_use]
    pub fn status(&self, result: &Result<Outcome>) -> StatusCode {
        match result {
            Ok(Outcome::Handled | Outcome::Duplicate) => StatusCode::OK,
            Ok(Outcome::Unhandled(_)) => self.inner.unhandled_status,
            Err(error) => error.status(),
        }
    }

    /// The response to a delivery, counted in the metrics: what every adapter answers.
    /// (`response` alone does not count, for layers that only verify.)
    pub(crate) fn answer(&self, result: &Result<Outcome>) -> Response<Bytes> {
        let response = self.response(result);
        metrics::delivered(result, response.status());
        response
    }

    /// The response for a result of [`receive`](Self::receive): its status and a short
    /// plain-text body that never says more than [`Error::public_message`].
    #[must_use]
    pub fn response(&self, result: &Result<Outcome>) -> Response<Bytes> {
        let status = self.status(result);
        let text = match result {
            Ok(Outcome::Handled) => "ok",
            Ok(Outcome::Duplicate) => "ok (already handled)",
            Ok(Outcome::Unhandled(_)) if status.is_success() => "ok (no handler)",
            Ok(Outcome::Unhandled(_)) => "no handler for this event",
            Err(error) => error.public_message(),
        };
        let mut response = Response::new(Bytes::from_static(text.as_bytes()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if status == StatusCode::METHOD_NOT_ALLOWED {
            headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

impl ReceiverBuilder {
    /// The status for verified events no handler took. Defaults to `200`, so Monite does
    /// not retry events you chose not to handle. A `4xx` or `5xx` here makes Monite retry
    /// them (for a week, then it disables the subscription): such an event's claim is
    /// released, not marked done, so a retry that reaches a replica with a handler runs it.
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
        Receiver {
            inner: Arc::new(self.inner),
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

/// A delivery's claim, from before it is sent until it is settled. Dropped unsettled (the
/// caller hung up, a handler panicked), it ends the claim as its stage requires.
struct HeldClaim<'a> {
    idempotency: &'a Idempotency,
    key: &'a str,
    token: ClaimToken,
    stage: Stage,
}

/// Where a delivery is in the claim protocol, and so what dropping it must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The claim is on its way: it may reach the store, so release it.
    Claiming,
    /// The handlers are running: they have not succeeded, so release the claim for a retry.
    Running,
    /// The handlers succeeded: the event must end done, never free, or a retry runs them a
    /// second time.
    Handled,
    /// Nothing left to do.
    Settled,
}

impl HeldClaim<'_> {
    async fn complete(mut self) {
        // From here the event is handled whatever happens: answer 200 either way, and if
        // this call is dropped or fails, the store finishes the mark in the background.
        self.stage = Stage::Handled;
        let key = self.key;
        match self.idempotency.complete(key, &self.token).await {
            Ok(true) => self.stage = Stage::Settled,
            Ok(false) => {
                trace::store_trouble(key, crate::idempotency::TAKEN_OVER);
                self.stage = Stage::Settled;
            }
            Err(e) => {
                trace::store_trouble(key, &format!("marking done failed, retrying: {e}"));
                // `Drop` hands the mark over to the store's detached completion.
            }
        }
    }

    async fn release(mut self) {
        if let Err(e) = self.idempotency.release(self.key, &self.token).await {
            // The lease runs out on its own; until then retries get 409.
            trace::store_trouble(self.key, &format!("releasing the claim failed: {e}"));
        }
        self.stage = Stage::Settled;
    }

    fn release_detached(&mut self) {
        self.idempotency.release_detached(self.key, &self.token);
        self.stage = Stage::Settled;
    }
}

impl Drop for HeldClaim<'_> {
    fn drop(&mut self) {
        match self.stage {
            Stage::Claiming | Stage::Running => self.release_detached(),
            Stage::Handled => self.idempotency.complete_detached(self.key, &self.token),
            Stage::Settled => {}
        }
    }
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
