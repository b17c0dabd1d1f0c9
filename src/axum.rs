//! Mounting the receiver in an [axum](https://docs.rs/axum/0.8) 0.8 app.
//!
//! ```
//! use axum::Router;
//! use monite_webhooks::{Dispatcher, Event, ObjectType, Receiver, Secret, Verifier};
//!
//! # fn app() -> Result<Router, monite_webhooks::Error> {
//! let receiver = Receiver::new(
//!     Verifier::new(Secret::new("whsec_from_your_environment")?),
//!     Dispatcher::builder()
//!         .on_object(ObjectType::Payable, |event: Event| async move {
//!             println!("payable {}", event.event_type());
//!         })
//!         .build(),
//! );
//! let app = Router::new()
//!     .route("/health", axum::routing::get(|| async { "ok" }))
//!     .route("/webhooks/monite", monite_webhooks::axum::route(receiver));
//! # Ok(app) }
//! ```

use axum::extract::{FromRef, FromRequest, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any_service};

use crate::error::{Error, Result};
use crate::event::Event;
use crate::receive::Receiver;
use crate::tower::read_body;

/// The receiver as a route, for [`Router::route`](axum::Router::route) in a router with any
/// state.
///
/// It reads the raw body itself (no other extractor can alter it first), refuses bodies
/// over the verifier's limit with `413` before any HMAC work, and answers every request,
/// whatever its method, with the statuses [`Receiver`] documents.
///
/// It is the receiver's [tower service](crate::tower) mounted for every method, so
/// `Router::route_service("/webhooks/monite", receiver)` does the same.
pub fn route<S>(receiver: Receiver) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    any_service(receiver)
}

/// An extractor for a verified, parsed event, for when you write the handler yourself.
///
/// It needs a [`Receiver`] in the router's state (directly, or through
/// [`FromRef`]); it verifies and parses with it but does not dispatch. The raw body is
/// [`Event::body`]. A rejected request is answered with the status [`Receiver`] documents.
///
/// ```
/// use axum::{Router, routing::post};
/// use monite_webhooks::axum::VerifiedEvent;
/// use monite_webhooks::{Dispatcher, Receiver, Secret, Verifier};
///
/// async fn webhook(VerifiedEvent(event): VerifiedEvent) -> &'static str {
///     println!("{} {:?}", event.action(), event.id());
///     "ok"
/// }
///
/// # fn app() -> Result<Router, monite_webhooks::Error> {
/// let receiver = Receiver::new(
///     Verifier::new(Secret::new("whsec_from_your_environment")?),
///     Dispatcher::builder().build(),
/// );
/// let app = Router::new().route("/webhooks/monite", post(webhook)).with_state(receiver);
/// # Ok(app) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct VerifiedEvent(pub Event);

impl<S> FromRequest<S> for VerifiedEvent
where
    Receiver: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let receiver = Receiver::from_ref(state);
        let (parts, body) = request.into_parts();
        let body = read_body(&receiver, &parts.method, &parts.headers, body).await?;
        receiver.verify_event(&parts.headers, body).map(Self)
    }
}

impl IntoResponse for Error {
    /// The error's status and its [public message](Error::public_message), never more.
    fn into_response(self) -> Response {
        (self.status(), self.public_message()).into_response()
    }
}
