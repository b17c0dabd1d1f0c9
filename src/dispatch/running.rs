//! A dispatch under way: the handler's future polled inside `catch_unwind`, and a failure
//! (an error or a panic) turned into an [`Error`].

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use super::Dispatched;
use super::handler::{BoxFuture, Unhandled};
use crate::error::{BoxError, Error, ErrorKind, Result};
use crate::event::{EventType, ObjectType};

/// Why a handler run failed.
pub(super) enum Failure {
    Returned(BoxError),
    Panicked(Box<dyn Any + Send>),
}

impl Failure {
    pub(super) fn into_error(self, (object_type, event_type): &(ObjectType, EventType)) -> Error {
        match self {
            Self::Returned(source) if source.is::<super::handler::Unresolvable>() => Error::new(
                ErrorKind::Unresolvable,
                format!("the handler for {object_type}.{event_type} cannot handle it: {source}"),
            )
            .with_source(source),
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
pub(super) enum Running<'a> {
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
