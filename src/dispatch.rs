//! Routing a parsed event to the async handler registered for it.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::error::{BoxError, Error, ErrorKind, Result};
use crate::event::Event;
use crate::event::EventType;
use crate::event::ObjectType;

type BoxFuture<'a> = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>>;

/// Handles one event.
///
/// Implemented for every async closure `Fn(Event) -> impl Future<Output = R>` where `R` is
/// `()` or `Result<(), E: Into<BoxError>>`, and for your own types:
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
trait ErasedHandler: Send + Sync {
    fn call_boxed(&self, event: Event) -> BoxFuture<'_>;
}

impl<H: Handler> ErasedHandler for H {
    fn call_boxed(&self, event: Event) -> BoxFuture<'_> {
        Box::pin(self.call(event))
    }
}

trait ErasedFallback: Send + Sync {
    fn call_boxed(&self, event: Event, why: Unhandled) -> BoxFuture<'_>;
}

impl<H: Fallback> ErasedFallback for H {
    fn call_boxed(&self, event: Event, why: Unhandled) -> BoxFuture<'_> {
        Box::pin(self.call(event, why))
    }
}

/// Routes each event to one handler: the one for its `(ObjectType, EventType)`, else the
/// one for its `ObjectType`, else the fallback.
///
/// Built once with [`Dispatcher::builder`], then frozen; cloning shares it.
///
/// ```
/// use monite_webhooks::{Dispatcher, Event, EventType, ObjectType, Unhandled};
///
/// let dispatcher = Dispatcher::builder()
///     .on(ObjectType::Counterpart, EventType::Created, |event: Event| async move {
///         println!("new counterpart {:?}", event.object_id());
///     })
///     .on_object(ObjectType::Payable, |event: Event| async move {
///         println!("payable {}", event.event_type());
///     })
///     .fallback(|event: Event, why: Unhandled| async move {
///         println!("ignored {} ({why:?})", event.action());
///     })
///     .build();
/// # let _ = dispatcher;
/// ```
#[derive(Clone)]
pub struct Dispatcher {
    routes: Arc<Routes>,
}

/// Collects handlers for a [`Dispatcher`].
#[must_use]
pub struct DispatcherBuilder {
    routes: Routes,
}

struct Routes {
    // Indexed by `ObjectType::known_index`: one array read finds a known type's routes.
    known: Box<[ObjectRoutes]>,
    unknown: Vec<(ObjectType, ObjectRoutes)>,
    fallback: Option<Box<dyn ErasedFallback>>,
}

#[derive(Default)]
struct ObjectRoutes {
    by_event: Vec<(EventType, Box<dyn ErasedHandler>)>,
    any_event: Option<Box<dyn ErasedHandler>>,
}

/// What the dispatcher did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dispatched {
    /// A handler (or the fallback) ran and succeeded.
    Handled,
    /// No handler took the event and there is no fallback.
    Unhandled(Unhandled),
}

impl Dispatcher {
    /// Starts an empty dispatcher.
    pub fn builder() -> DispatcherBuilder {
        DispatcherBuilder {
            routes: Routes {
                known: ObjectType::KNOWN
                    .iter()
                    .map(|_| ObjectRoutes::default())
                    .collect(),
                unknown: Vec::new(),
                fallback: None,
            },
        }
    }

    /// Runs the handler for `event` and waits for it.
    ///
    /// The route is chosen and the handler started before the first `.await`, so the event
    /// moves straight into the handler's future: what is awaited stays small.
    ///
    /// # Errors
    /// [`ErrorKind::Handler`] if the handler returned an error (it is the error's source),
    /// [`ErrorKind::HandlerPanicked`] if it panicked; the panic is caught.
    pub fn dispatch(&self, event: Event) -> impl Future<Output = Result<Dispatched>> + Send + '_ {
        let routes = self.routes.for_object(event.object_type());
        let handler = routes.and_then(|routes| {
            routes
                .by_event
                .iter()
                .find(|(event_type, _)| event_type == event.event_type())
                .map(|(_, handler)| handler)
                .or(routes.any_event.as_ref())
        });
        let why = if event.object_type().is_known() && event.event_type().is_known() {
            Unhandled::NoHandler
        } else {
            Unhandled::UnknownEvent
        };
        // Kept for error messages; cheap for known types, which are plain variants.
        let route = (event.object_type().clone(), event.event_type().clone());
        let build = || match (handler, &self.routes.fallback) {
            (Some(handler), _) => Some(handler.call_boxed(event)),
            (None, Some(fallback)) => Some(fallback.call_boxed(event, why)),
            (None, None) => None,
        };
        match catch_unwind(AssertUnwindSafe(build)) {
            Ok(Some(future)) => Running::Started { future, route },
            Ok(None) => Running::Unhandled(why),
            Err(payload) => Running::Failed(Some(Failure::Panicked(payload).into_error(&route))),
        }
    }

    /// The routes registered, as `(object type, event type)`; `None` stands for any event.
    /// For logging at start-up what this service handles.
    pub fn routes(&self) -> impl Iterator<Item = (&ObjectType, Option<&EventType>)> {
        let known = ObjectType::KNOWN.iter().zip(self.routes.known.iter());
        let unknown = self.routes.unknown.iter().map(|(t, r)| (t, r));
        known.chain(unknown).flat_map(|(object_type, routes)| {
            let any = routes.any_event.as_ref().map(|_| (object_type, None));
            let by_event = routes
                .by_event
                .iter()
                .map(move |(e, _)| (object_type, Some(e)));
            by_event.chain(any)
        })
    }

    /// Whether a fallback is registered.
    #[must_use]
    pub fn has_fallback(&self) -> bool {
        self.routes.fallback.is_some()
    }
}

impl DispatcherBuilder {
    /// Runs `handler` for events of `object_type` named `event_type`.
    ///
    /// # Panics
    /// If a handler is already registered for that pair: two handlers for one event is a
    /// wiring mistake, found at start-up rather than by a missed event.
    pub fn on(
        mut self,
        object_type: ObjectType,
        event_type: EventType,
        handler: impl Handler,
    ) -> Self {
        let taken = self
            .routes
            .for_object(&object_type)
            .is_some_and(|routes| routes.by_event.iter().any(|(e, _)| *e == event_type));
        assert!(
            !taken,
            "a handler for {object_type}.{event_type} is already registered"
        );
        let routes = self.routes.for_object_mut(object_type);
        routes.by_event.push((event_type, Box::new(handler)));
        self
    }

    /// Runs `handler` for events of `object_type` that have no handler of their own.
    ///
    /// # Panics
    /// If `object_type` already has such a handler.
    pub fn on_object(mut self, object_type: ObjectType, handler: impl Handler) -> Self {
        let taken = self
            .routes
            .for_object(&object_type)
            .is_some_and(|routes| routes.any_event.is_some());
        assert!(
            !taken,
            "a handler for every {object_type} event is already registered"
        );
        self.routes.for_object_mut(object_type).any_event = Some(Box::new(handler));
        self
    }

    /// Runs `fallback` for events no other handler takes, telling it why.
    ///
    /// Without a fallback such events are reported as [`Dispatched::Unhandled`], and the
    /// receiver acknowledges them with `200` unless configured otherwise.
    ///
    /// # Panics
    /// If a fallback is already registered.
    pub fn fallback(mut self, fallback: impl Fallback) -> Self {
        assert!(
            self.routes.fallback.is_none(),
            "a fallback is already registered"
        );
        self.routes.fallback = Some(Box::new(fallback));
        self
    }

    /// Freezes the routes.
    #[must_use]
    pub fn build(self) -> Dispatcher {
        Dispatcher {
            routes: Arc::new(self.routes),
        }
    }
}

impl Routes {
    fn for_object(&self, object_type: &ObjectType) -> Option<&ObjectRoutes> {
        match object_type.known_index() {
            Some(index) => self.known.get(index),
            None => self
                .unknown
                .iter()
                .find(|(t, _)| t == object_type)
                .map(|(_, r)| r),
        }
    }

    fn for_object_mut(&mut self, object_type: ObjectType) -> &mut ObjectRoutes {
        if let Some(index) = object_type.known_index() {
            return &mut self.known[index];
        }
        let at = match self.unknown.iter().position(|(t, _)| *t == object_type) {
            Some(at) => at,
            None => {
                self.unknown.push((object_type, ObjectRoutes::default()));
                self.unknown.len() - 1
            }
        };
        &mut self.unknown[at].1
    }
}

/// Why a handler run failed.
enum Failure {
    Returned(BoxError),
    Panicked(Box<dyn Any + Send>),
}

impl Failure {
    fn into_error(self, (object_type, event_type): &(ObjectType, EventType)) -> Error {
        match self {
            Self::Returned(source) => Error::new(
                ErrorKind::Handler,
                format!("the handler for {object_type}.{event_type} failed: {source}"),
            )
            .with_source(source),
            Self::Panicked(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("(no message)");
                Error::new(
                    ErrorKind::HandlerPanicked,
                    format!("the handler for {object_type}.{event_type} panicked: {message}"),
                )
            }
        }
    }
}

/// A dispatch under way: the handler's boxed future, polled inside `catch_unwind` so that
/// one bad event cannot take the server down; or an answer known from the start.
enum Running<'a> {
    Started {
        future: BoxFuture<'a>,
        route: (ObjectType, EventType),
    },
    Unhandled(Unhandled),
    // The handler panicked while building its future; taken on the first poll.
    Failed(Option<Error>),
}

impl Future for Running<'_> {
    type Output = Result<Dispatched>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut *self {
            Self::Started { future, route } => {
                let failure = match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
                    Ok(Poll::Pending) => return Poll::Pending,
                    Ok(Poll::Ready(Ok(()))) => return Poll::Ready(Ok(Dispatched::Handled)),
                    Ok(Poll::Ready(Err(error))) => Failure::Returned(error),
                    Err(payload) => Failure::Panicked(payload),
                };
                Poll::Ready(Err(failure.into_error(route)))
            }
            Self::Unhandled(why) => Poll::Ready(Ok(Dispatched::Unhandled(*why))),
            Self::Failed(error) => Poll::Ready(Err(error.take().unwrap_or_else(|| {
                Error::new(
                    ErrorKind::HandlerPanicked,
                    "a dispatch was polled after it ended",
                )
            }))),
        }
    }
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let routes: Vec<String> = self
            .routes()
            .map(|(object_type, event_type)| match event_type {
                Some(event_type) => format!("{object_type}.{event_type}"),
                None => format!("{object_type}.*"),
            })
            .collect();
        f.debug_struct("Dispatcher")
            .field("routes", &routes)
            .field("fallback", &self.has_fallback())
            .finish()
    }
}

impl fmt::Debug for DispatcherBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DispatcherBuilder").finish_non_exhaustive()
    }
}
