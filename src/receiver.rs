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
use crate::idempotency::{Claim, ClaimToken, Idempotency};
use crate::memory_store::MemoryStore;
use crate::metrics;
use crate::trace;
use crate::verify::Verifier;

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
}

type ClaimTokens = Arc<dyn Fn() -> ClaimToken + Send + Sync>;

/// Configures a [`Receiver`].
#[must_use]
pub struct ReceiverBuilder {
    verifier: Verifier,
    dispatcher: Dispatcher,
    unhandled_status: StatusCode,
    idempotency: Option<Idempotency>,
    clock: Arc<dyn Clock>,
    claim_tokens: Option<ClaimTokens>,
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
            verifier,
            dispatcher,
            unhandled_status: StatusCode::OK,
            idempotency: Some(Idempotency::new(MemoryStore::new())),
            clock: Arc::new(SystemClock),
            claim_tokens: None,
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
        let verified = self
            .inner
            .verifier
            .verify_at(headers, &body, self.inner.clock.now_unix())
            .and_then(|verified| {
                trace::verified(&verified);
                Event::parse(body)
            });
        verified.inspect_err(trace::rejected)
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
        let dispatcher = &self.inner.dispatcher;
        let run =
            |event| metrics::handler_run(dispatcher.dispatch(event), |d| *d == Dispatched::Handled);
        let Some(idempotency) = &self.inner.idempotency else {
            return run(event).await.map(Outcome::from);
        };
        let key = idempotency.key(&event);
        let token = self
            .inner
            .claim_tokens
            .as_ref()
            .map_or_else(ClaimToken::new, |next| next());
        let claim = idempotency.claim(&key, &token).await.map_err(|source| {
            Error::new(
                ErrorKind::StoreUnavailable,
                format!("the idempotency store could not claim {key}, so no handler ran: {source}"),
            )
            .with_source(source)
        })?;
        match claim {
            Claim::Acquired => {}
            Claim::Done => return Ok(Outcome::Duplicate),
            Claim::InFlight => {
                return Err(Error::new(
                    ErrorKind::InFlight,
                    format!("{key} is being handled by another delivery; Monite will retry"),
                ));
            }
        }
        let result = run(event).await.map(Outcome::from);
        if result.is_ok() {
            // The event is handled whatever happens next: answer 200 either way. A failed
            // mark leaves the claim to expire, and Monite sends nothing more after a 200.
            match idempotency.complete(&key, &token).await {
                Ok(true) => {}
                Ok(false) => trace::store_trouble(
                    &key,
                    "the lease ran out before the handler finished; raise it",
                ),
                Err(e) => trace::store_trouble(&key, &format!("marking done failed: {e}")),
            }
        } else if let Err(e) = idempotency.release(&key, &token).await {
            // The lease runs out on its own; until then retries get 409.
            trace::store_trouble(&key, &format!("releasing the claim failed: {e}"));
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
        let response = self.response(&result);
        metrics::delivered(&result, response.status());
        response
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
    /// not retry events you chose not to handle; a `4xx` or `5xx` here makes Monite retry
    /// them for a week and then disable the subscription.
    pub fn unhandled_status(mut self, status: StatusCode) -> Self {
        self.unhandled_status = status;
        self
    }

    /// How the receiver handles each event once. Defaults to an in-process
    /// [`MemoryStore`]; with several replicas, give them a shared store.
    pub fn idempotency(mut self, idempotency: Idempotency) -> Self {
        self.idempotency = Some(idempotency);
        self
    }

    /// Runs handlers for every delivery, duplicates included, as Monite sends them: at
    /// least once. For handlers that are idempotent by themselves.
    pub fn without_idempotency(mut self) -> Self {
        self.idempotency = None;
        self
    }

    /// Where the timestamp check reads the time. Defaults to [`SystemClock`]; see
    /// [`Clock`] for when to inject another.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Where the idempotency claims get their tokens. Defaults to [`ClaimToken::new`],
    /// which reads `std::process::id`: on `wasm32-unknown-unknown` and WASI, where that
    /// panics, give tokens from [`ClaimToken::from_parts`] instead. Each call must return
    /// a token no other delivery, in any instance, ever holds.
    pub fn claim_tokens(mut self, next: impl Fn() -> ClaimToken + Send + Sync + 'static) -> Self {
        self.claim_tokens = Some(Arc::new(next));
        self
    }

    /// Builds the receiver.
    #[must_use]
    pub fn build(self) -> Receiver {
        Receiver {
            inner: Arc::new(Inner {
                verifier: self.verifier,
                dispatcher: self.dispatcher,
                unhandled_status: self.unhandled_status,
                idempotency: self.idempotency,
                clock: self.clock,
                claim_tokens: self.claim_tokens,
            }),
        }
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("verifier", &self.inner.verifier)
            .field("dispatcher", &self.inner.dispatcher)
            .field("unhandled_status", &self.inner.unhandled_status)
            .field("idempotency", &self.inner.idempotency)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ReceiverBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiverBuilder")
            .field("verifier", &self.verifier)
            .field("dispatcher", &self.dispatcher)
            .field("unhandled_status", &self.unhandled_status)
            .field("idempotency", &self.idempotency)
            .finish_non_exhaustive()
    }
}
