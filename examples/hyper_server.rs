//! A Monite webhook receiver on bare hyper 1, at `POST /webhooks/monite`: no framework, the
//! receiver is the tower service hyper-util adapts.
//!
//! ```sh
//! MONITE_WEBHOOK_SECRETS=<subscription_id>=whsec_... cargo run --example hyper_server --features tower
//! cargo run --example hyper_server --features tower -- --dev   # the development secret
//! ```
//!
//! Listens on `MONITE_WEBHOOK_ADDR` (default `127.0.0.1:3000`); prints one JSON line per
//! handled event on stdout, and the address on stderr. Other paths answer `404`.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the example reports handled events on stdout"
)]

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use monite_webhooks::tower::ResponseBody;
use monite_webhooks::{Dispatcher, Event, Receiver, Unhandled};
use tower::ServiceExt as _;

#[path = "common/config.rs"]
mod config;
#[path = "common/event_line.rs"]
mod event_line;
use config::Secrets;
use event_line::print_handled;

const PATH: &str = "/webhooks/monite";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let receiver = receiver_from_env()?;
    let listener = tokio::net::TcpListener::bind(config::listen_addr()?).await?;
    eprintln!("listening on http://{}{PATH}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let receiver = receiver.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request| route(receiver.clone(), request));
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = served {
                eprintln!("connection: {error}");
            }
        });
    }
}

/// The receiver at its path, `404` elsewhere. The receiver takes hyper's `Incoming` body
/// as it is, and reads no more of it than its limit.
async fn route(
    receiver: Receiver,
    request: Request<Incoming>,
) -> Result<Response<Either<ResponseBody, Full<Bytes>>>, Infallible> {
    if request.uri().path() != PATH {
        let mut response = Response::new(Either::Right(Full::from("not found")));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return Ok(response);
    }
    let response = receiver.oneshot(request).await?;
    Ok(response.map(Either::Left))
}

/// The receiver, from the secrets the environment configures; the development secret only
/// with `--dev` or `MONITE_WEBHOOK_DEV=1`, never because nothing is set.
fn receiver_from_env() -> Result<Receiver, Box<dyn std::error::Error + Send + Sync>> {
    let secrets = Secrets::from_env(true)?;
    if let Secrets::Development = secrets {
        eprintln!("--dev: accepting the development secret; never expose this server");
    }
    let dispatcher = Dispatcher::builder()
        .fallback(|event: Event, _: Unhandled| async move { print_handled(&event) })
        .build();
    Ok(Receiver::new(secrets.verifier()?, dispatcher))
}
