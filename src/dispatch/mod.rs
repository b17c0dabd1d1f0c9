//! Who handles it? The [`Dispatcher`] routes a parsed event to the async [`Handler`]
//! registered for it, else to the [`Fallback`].

mod handler;
mod running;

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use self::handler::{ErasedFallback, ErasedHandler};
use self::running::{Failure, Running};
use crate::error::Result;
use crate::event::{Event, EventType, ObjectType};

pub use self::handler::{Fallback, Handler, HandlerResult, IntoHandlerResult, Unhandled};

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
    // Shared, so that one handler can serve several events (`on_events`).
    by_event: Vec<(EventType, Arc<dyn ErasedHandler>)>,
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
    /// [`ErrorKind::Handler`](crate::ErrorKind::Handler) if the handler returned an error
    /// (it is the error's source), [`ErrorKind::HandlerPanicked`](crate::ErrorKind::HandlerPanicked)
    /// if it panicked; the panic is caught.
    pub fn dispatch(&self, event: Event) -> impl Future<Output = Result<Dispatched>> + Send + '_ {
        let routes = self.routes.for_object(event.object_type());
        let handler = routes.and_then(|routes| {
            routes
                .by_event
                .iter()
                .find(|(event_type, _)| event_type == event.event_type())
                .map(|(_, handler)| &**handler)
                .or(routes.any_event.as_deref())
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
    pub fn on(self, object_type: ObjectType, event_type: EventType, handler: impl Handler) -> Self {
        self.on_events(object_type, [event_type], handler)
    }

    /// Runs one `handler` for several events of `object_type`, as if registered for each
    /// with [`on`](Self::on).
    ///
    /// ```
    /// use monite_webhooks::{Dispatcher, Event, EventType, HandlerResult, ObjectType};
    ///
    /// async fn settle(event: Event) -> HandlerResult {
    ///     println!("{}", event.action());
    ///     Ok(())
    /// }
    ///
    /// let dispatcher = Dispatcher::builder()
    ///     .on_events(ObjectType::Payable, [EventType::Paid, EventType::PartiallyPaid], settle)
    ///     .build();
    /// assert_eq!(dispatcher.routes().count(), 2);
    /// ```
    ///
    /// # Panics
    /// If a handler is already registered for one of the pairs, or `event_types` names one
    /// twice.
    pub fn on_events(
        mut self,
        object_type: ObjectType,
        event_types: impl IntoIterator<Item = EventType>,
        handler: impl Handler,
    ) -> Self {
        let handler: Arc<dyn ErasedHandler> = Arc::new(handler);
        let name = object_type.to_string();
        let routes = self.routes.for_object_mut(object_type);
        for event_type in event_types {
            let taken = routes.by_event.iter().any(|(e, _)| *e == event_type);
            assert!(
                !taken,
                "a handler for {name}.{event_type} is already registered"
            );
            routes.by_event.push((event_type, handler.clone()));
        }
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

/// A builder is as good as its dispatcher where one is taken (`Receiver::new`), so the
/// final `.build()` can be left out.
impl From<DispatcherBuilder> for Dispatcher {
    fn from(builder: DispatcherBuilder) -> Self {
        builder.build()
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
