//! What a handler is: [`Handler`], [`Fallback`], what their futures may resolve to, and
//! their object-safe forms, so that handlers of different types share one table.

use std::future::Future;
use std::pin::Pin;

use crate::error::BoxError;
use crate::event::Event;

pub(super) type BoxFuture<'a> = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>>;

/// What a handler returns: `Ok` once the event is durably handled, or any error.
///
/// With it, a handler is a plain `async fn`, no annotation or turbofish needed:
///
/// ```
/// use monite_webhooks::{Dispatcher, Event, EventType, HandlerResult, ObjectType};
///
/// async fn on_paid(event: Event) -> HandlerResult {
///     let amount: u64 = "42".parse()?; // any error converts
///     println!("payable {:?} paid {amount}", event.object_id());
///     Ok(())
/// }
///
/// let dispatcher = Dispatcher::builder()
///     .on(ObjectType::Payable, EventType::Paid, on_paid)
///     .build();
/// # let _ = dispatcher;
/// ```
pub type HandlerResult = Result<(), BoxError>;

/// Handles one event.
///
/// Implemented for every async closure or `async fn` `Fn(Event) -> impl Future<Output = R>`
/// where `R` is `()`, [`HandlerResult`] or `Result<(), E: Into<BoxError>>`, and for your
/// own types:
///
/// ```
/// use monite_webhooks::{BoxError, Event, Handler};
///
/// struct Ledger;
///
/// impl Handler for Ledger {
///     async fn call(&self, event: Event) -> Result<(), BoxError> {
///         println!("booking {:?}", event.object_id());
///         Ok(())
///     }
/// }
/// ```
///
/// Return `Ok` only once the event is durably handled: the receiver then answers `200`
/// and Monite will not send it again. An error or a panic answers `500`, and Monite retries.
pub trait Handler: Send + Sync + 'static {
    /// Handles `event`.
    fn call(&self, event: Event) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// What a handler's future may resolve to: `()`, or `Result<(), E>` for any error that
/// converts into [`BoxError`] (`std::io::Error`, `anyhow::Error`, your own, ...).
pub trait IntoHandlerResult {
    /// Converts to the result the dispatcher works with.
    ///
    /// # Errors
    /// The handler's error, boxed.
    fn into_handler_result(self) -> Result<(), BoxError>;
}

impl IntoHandlerResult for () {
    fn into_handler_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<E: Into<BoxError>> IntoHandlerResult for Result<(), E> {
    fn into_handler_result(self) -> Result<(), BoxError> {
        self.map_err(Into::into)
    }
}

impl<F, Fut> Handler for F
where
    F: Fn(Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: IntoHandlerResult> + Send,
{
    fn call(&self, event: Event) -> impl Future<Output = Result<(), BoxError>> + Send {
        let future = self(event);
        async move { future.await.into_handler_result() }
    }
}

/// A handler's error saying the event can never be handled, so that retrying it is
/// pointless: the receiver reports it through `on_failure` and acknowledges the event
/// (`200`), the inbox workers report it and make the event `dead` at once
/// ([`ErrorKind::Unresolvable`](crate::ErrorKind::Unresolvable)). Return it boxed, as any
/// handler error:
///
/// ```
/// use monite_webhooks::dispatch::Unresolvable;
/// use monite_webhooks::{Event, HandlerResult};
///
/// async fn on_paid(event: Event) -> HandlerResult {
///     let Some(id) = event.object_id() else {
///         return Err(Unresolvable::new("a payable.paid event without an object id").into());
///     };
///     println!("{id}");
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Unresolvable {
    why: String,
}

impl Unresolvable {
    /// Why the event cannot be handled.
    pub fn new(why: impl Into<String>) -> Self {
        Self { why: why.into() }
    }
}

impl std::fmt::Display for Unresolvable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why)
    }
}

impl std::error::Error for Unresolvable {}

/// Why no handler took an event; given to the fallback, and reported by the dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Unhandled {
    /// This crate knows the object type and the event name, but no handler is registered.
    NoHandler,
    /// The object type or the event name is newer than this version of the crate.
    UnknownEvent,
}

/// Handles events no other handler took.
///
/// Implemented for every async closure `Fn(Event, Unhandled) -> impl Future<Output = R>`,
/// `R` as for [`Handler`].
pub trait Fallback: Send + Sync + 'static {
    /// Handles `event`, which no handler took for the reason `why`.
    fn call(
        &self,
        event: Event,
        why: Unhandled,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;
}

impl<F, Fut> Fallback for F
where
    F: Fn(Event, Unhandled) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: IntoHandlerResult> + Send,
{
    fn call(
        &self,
        event: Event,
        why: Unhandled,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let future = self(event, why);
        async move { future.await.into_handler_result() }
    }
}

// Object-safe forms of the two traits, so handlers of different types share one table.
pub(super) trait ErasedHandler: Send + Sync {
    fn call_boxed(&self, event: Event) -> BoxFuture<'_>;
}

impl<H: Handler> ErasedHandler for H {
    fn call_boxed(&self, event: Event) -> BoxFuture<'_> {
        Box::pin(self.call(event))
    }
}

pub(super) trait ErasedFallback: Send + Sync {
    fn call_boxed(&self, event: Event, why: Unhandled) -> BoxFuture<'_>;
}

impl<H: Fallback> ErasedFallback for H {
    fn call_boxed(&self, event: Event, why: Unhandled) -> BoxFuture<'_> {
        Box::pin(self.call(event, why))
    }
}
