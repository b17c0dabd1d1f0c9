//! The receiver as a [tower](https://docs.rs/tower) `Service`, and [`VerifyLayer`] for a
//! handler stack of your own.
//!
//! Most Rust hosts take or call a `tower::Service<http::Request<B>>`: hyper (through
//! hyper-util's `TowerToHyperService`), AWS Lambda's `lambda_http::run`, axum's
//! `Router::route_service`, Vercel's runtime, and any tower middleware stack. [`Receiver`]
//! is one, for every request body `B` whose chunks are [`Bytes`]:
//!
//! - it refuses a declared `Content-Length` over the verifier's limit with `413` before
//!   reading a byte, and stops reading a streamed body as soon as it passes the limit;
//! - it answers every request, with the statuses [`Receiver`] documents: the same table as
//!   [`Receiver::handle`] and the framework adapters, built by the same code;
//! - its error type is [`Infallible`]: every failure is an HTTP answer.
//!
//! ```
//! use monite_webhooks::{Dispatcher, Event, ObjectType, Receiver, Secret, Verifier};
//! use monite_webhooks::testing::signed_request;
//! use http_body_util::Full;
//! use tower::ServiceExt as _;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = Secret::new("whsec_from_your_environment")?;
//! let receiver = Receiver::new(
//!     Verifier::new(secret.clone()),
//!     Dispatcher::builder()
//!         .on_object(ObjectType::Counterpart, |event: Event| async move {
//!             println!("{}", event.action());
//!         })
//!         .build(),
//! );
//! // What a host hands over: any `http::Request` whose body is an `http_body::Body`.
//! let body = r#"{"id":"1","object_type":"counterpart","action":"counterpart.created"}"#;
//! let request = signed_request(&secret, body).map(Full::new);
//! let response = receiver.oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(example()).unwrap();
//! ```

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::{BodyExt as _, Either, Full, LengthLimitError, Limited};
use tower_layer::Layer;
use tower_service::Service;

use crate::error::{BoxError, Error, ErrorKind, Result};
use crate::observe;
use crate::receive::Receiver;

/// The body of the receiver's answers: the short plain text [`Receiver::response`] gives.
pub type ResponseBody = Full<Bytes>;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<B> Service<Request<B>> for Receiver
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    /// Always ready: the receiver holds no per-connection state.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let receiver = self.clone();
        Box::pin(async move { Ok(receiver.serve(request).await) })
    }
}

impl Receiver {
    /// Reads, verifies, parses and dispatches one request, and answers it.
    async fn serve<B>(&self, request: Request<B>) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        let result = match read_body(self, &parts.method, &parts.headers, body).await {
            Ok(body) => self.receive(&parts.headers, body).await,
            Err(error) => Err(error),
        };
        self.answer(&result).map(Full::new)
    }
}

/// What every entry point that is handed a streaming body does before verifying: the
/// precheck (method, declared length), then the body, read no further than the limit.
pub(crate) async fn read_body<B>(
    receiver: &Receiver,
    method: &Method,
    headers: &HeaderMap,
    body: B,
) -> Result<Bytes>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    receiver.precheck(method.as_str(), headers)?;
    let limit = receiver.verifier().max_body_bytes();
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => {
            let error = if error.is::<LengthLimitError>() {
                Error::body_too_large(format_args!("more than {limit}"), limit)
            } else {
                Error::new(
                    ErrorKind::UnreadableBody,
                    format!("the request body could not be read: {error}"),
                )
                .with_source(error)
            };
            observe::rejected(&error);
            Err(error)
        }
    }
}

/// Verifies and parses each request before your own service sees it.
///
/// For a handler stack you keep yourself: a rejected request (bad signature, stale
/// timestamp, body over the limit, not a Monite envelope, not a `POST`) is answered by the
/// layer with the status [`Receiver`] documents, and never reaches your service. A verified
/// one reaches it with the parsed [`Event`](crate::Event) in the request's extensions and the raw body,
/// byte for byte as received, as the request body.
///
/// The layer does not dispatch, so the receiver's handlers and idempotency store are not
/// used: your service decides what to answer, and must answer `2xx` only once the event is
/// handled, and expect the same event more than once.
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::{BodyExt as _, Full};
/// use monite_webhooks::tower::VerifyLayer;
/// use monite_webhooks::{Dispatcher, Event, Receiver, Secret, Verifier};
/// use monite_webhooks::testing::signed_request;
/// use tower::{ServiceBuilder, ServiceExt as _, service_fn};
///
/// async fn my_handler(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
///     let event = request.extensions().get::<Event>().expect("put there by VerifyLayer");
///     let reply = format!("{} {:?}", event.action(), event.id());
///     Ok(Response::new(Full::from(reply)))
/// }
///
/// # async fn example() -> Result<(), monite_webhooks::BoxError> {
/// let secret = Secret::new("whsec_from_your_environment")?;
/// let receiver = Receiver::new(Verifier::new(secret.clone()), Dispatcher::builder().build());
/// let service = ServiceBuilder::new()
///     .layer(VerifyLayer::new(receiver))
///     .service(service_fn(my_handler));
///
/// let body = r#"{"id":"1","object_type":"counterpart","action":"counterpart.created"}"#;
/// let response = service.clone().oneshot(signed_request(&secret, body).map(Full::new)).await?;
/// assert_eq!(response.into_body().collect().await?.to_bytes(), r#"counterpart.created Some("1")"#);
///
/// let forged = signed_request(&Secret::new("whsec_forged")?, body).map(Full::new);
/// assert_eq!(service.oneshot(forged).await?.status(), 401);
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(example()).unwrap();
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct VerifyLayer {
    receiver: Receiver,
}

impl VerifyLayer {
    /// A layer verifying with `receiver`'s verifier (its secrets, tolerance, body limit and
    /// clock).
    pub fn new(receiver: Receiver) -> Self {
        Self { receiver }
    }
}

impl<S> Layer<S> for VerifyLayer {
    type Service = Verify<S>;

    fn layer(&self, inner: S) -> Verify<S> {
        Verify {
            receiver: self.receiver.clone(),
            inner,
        }
    }
}

/// The service [`VerifyLayer`] wraps around yours.
///
/// Its answers have the body `Either::Left` for the layer's own rejections and
/// `Either::Right` for your service's responses.
#[derive(Clone)]
pub struct Verify<S> {
    receiver: Receiver,
    inner: S,
}

impl<S, B, ResBody> Service<Request<B>> for Verify<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Either<ResponseBody, ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let receiver = self.receiver.clone();
        // The clone is the one not yet driven to readiness: call the ready one.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let verified = match read_body(&receiver, &parts.method, &parts.headers, body).await {
                Ok(body) => receiver
                    .verify_event(&parts.headers, body.clone())
                    .map(|event| (event, body)),
                Err(error) => Err(error),
            };
            match verified {
                Ok((event, body)) => {
                    parts.extensions.insert(event);
                    let request = Request::from_parts(parts, Full::new(body));
                    let response = inner.call(request).await?;
                    Ok(response.map(Either::Right))
                }
                Err(error) => Ok(receiver
                    .response(&Err(error))
                    .map(|text| Either::Left(Full::new(text)))),
            }
        })
    }
}

impl<S> fmt::Debug for Verify<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verify")
            .field("receiver", &self.receiver)
            .finish_non_exhaustive()
    }
}
