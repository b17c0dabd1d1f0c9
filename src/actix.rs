//! Mounting the receiver in an [actix-web](https://docs.rs/actix-web/4) 4 app.
//!
//! actix-web 4 has its own (`http` 0.2) header map; the receiver reads it in place through
//! [`HeaderLookup`], so no headers are copied on the way in.
//!
//! ```
//! use actix_web::{App, web};
//! use monite_webhooks::{Dispatcher, Event, ObjectType, Receiver, Secret, Verifier};
//!
//! # fn build() -> Result<(), monite_webhooks::Error> {
//! let receiver = Receiver::new(
//!     Verifier::new(Secret::new("whsec_from_your_environment")?),
//!     Dispatcher::builder()
//!         .on_object(ObjectType::Payable, |event: Event| async move {
//!             println!("payable {}", event.event_type());
//!         })
//!         .build(),
//! );
//! let app = App::new()
//!     .route("/health", web::get().to(|| async { "ok" }))
//!     .service(monite_webhooks::actix::resource("/webhooks/monite", receiver));
//! # let _ = app; Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;

use actix_web::body::BoxBody;
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, Resource, ResponseError, web};
use bytes::Bytes;

use crate::error::{Error, ErrorKind, Result};
use crate::event::Event;
use crate::headers::HeaderLookup;
use crate::observe;
use crate::receive::Receiver;

impl HeaderLookup for actix_web::http::header::HeaderMap {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.get(name)
            .map(actix_web::http::header::HeaderValue::as_bytes)
    }
}

/// The receiver as a resource at `path`, for [`App::service`](actix_web::App::service) or
/// [`Scope::service`](actix_web::Scope::service).
///
/// It reads the raw body itself, refuses bodies over the verifier's limit with `413` before
/// any HMAC work, and answers every request, whatever its method, with the statuses
/// [`Receiver`] documents: the same as the axum adapter.
#[must_use]
pub fn resource(path: &str, receiver: Receiver) -> Resource {
    web::resource(path).to(move |request: HttpRequest, payload: web::Payload| {
        let receiver = receiver.clone();
        async move { respond(&receiver, &request, payload).await }
    })
}

async fn respond(
    receiver: &Receiver,
    request: &HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let result = match read_body(receiver, request, payload).await {
        Ok(body) => receiver.receive(request.headers(), body).await,
        Err(error) => Err(error),
    };
    into_actix(receiver.answer(&result))
}

async fn read_body(
    receiver: &Receiver,
    request: &HttpRequest,
    payload: web::Payload,
) -> Result<Bytes> {
    receiver.precheck(request.method().as_str(), request.headers())?;
    let limit = receiver.verifier().max_body_bytes();
    let read = match payload.to_bytes_limited(limit).await {
        Ok(Ok(body)) => return Ok(body),
        // actix's error is not `Send`, so it can only be kept as text.
        Ok(Err(error)) => Error::new(
            ErrorKind::UnreadableBody,
            format!("the request body could not be read: {error}"),
        ),
        Err(_) => Error::body_too_large(format_args!("more than {limit}"), limit),
    };
    observe::rejected(&read);
    Err(read)
}

/// Rebuilds the core's `http` 1.x response in actix's `http` 0.2 types.
fn into_actix(response: http::Response<Bytes>) -> HttpResponse {
    let (parts, body) = response.into_parts();
    let status =
        StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = HttpResponse::build(status);
    for (name, value) in &parts.headers {
        builder.insert_header((name.as_str(), value.as_bytes()));
    }
    builder.body(body)
}

/// An extractor for a verified, parsed event, for when you write the handler yourself.
///
/// It reads the [`Receiver`] from app data (registered with `app_data(receiver)` or as
/// `web::Data<Receiver>`); it verifies and parses with it but does not dispatch. The raw
/// body is [`Event::body`]. A rejected request is answered with the status [`Receiver`]
/// documents.
///
/// ```
/// use actix_web::{App, web};
/// use monite_webhooks::actix::VerifiedEvent;
/// use monite_webhooks::{Dispatcher, Receiver, Secret, Verifier};
///
/// async fn webhook(VerifiedEvent(event): VerifiedEvent) -> &'static str {
///     println!("{} {:?}", event.action(), event.id());
///     "ok"
/// }
///
/// # fn build() -> Result<(), monite_webhooks::Error> {
/// let receiver = Receiver::new(
///     Verifier::new(Secret::new("whsec_from_your_environment")?),
///     Dispatcher::builder().build(),
/// );
/// let app = App::new()
///     .app_data(receiver)
///     .route("/webhooks/monite", web::post().to(webhook));
/// # let _ = app; Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct VerifiedEvent(pub Event);

impl FromRequest for VerifiedEvent {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let receiver = request.app_data::<Receiver>().cloned().or_else(|| {
            request
                .app_data::<web::Data<Receiver>>()
                .map(|data| Receiver::clone(data))
        });
        let request = request.clone();
        let payload = web::Payload::from_request(&request, payload).into_inner();
        Box::pin(async move {
            let receiver = receiver.ok_or_else(|| {
                Error::new(
                    ErrorKind::Misconfigured,
                    "VerifiedEvent found no Receiver in the app data",
                )
            })?;
            let payload = payload.map_err(|e| {
                Error::new(ErrorKind::UnreadableBody, format!("no request body: {e}"))
            })?;
            let body = read_body(&receiver, &request, payload).await?;
            receiver.verify_event(request.headers(), body).map(Self)
        })
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status().as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The error's status and its [public message](Error::public_message), never more.
    fn error_response(&self) -> HttpResponse<BoxBody> {
        HttpResponse::build(self.status_code())
            .content_type("text/plain; charset=utf-8")
            .body(self.public_message())
    }
}
