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
use monite_webhooks::{Dispatcher, Event, Keyring, Receiver, Secret, Unhandled, Verifier};
use tower::ServiceExt as _;

#[path = "common/event_line.rs"]
mod event_line;
use event_line::print_handled;

const PATH: &str = "/webhooks/monite";
const DEVELOPMENT_SECRET: &str = "whsec_development_only_do_not_use_in_production";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let receiver = receiver_from_env()?;
    let addr: std::net::SocketAddr = std::env::var("MONITE_WEBHOOK_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".to_owned())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
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

/// The receiver, from the secrets the environment configures (`Keyring::from_env`:
/// `MONITE_WEBHOOK_SECRETS`, `MONITE_WEBHOOK_KEYRING`, `MONITE_WEBHOOK_SECRET`); the
/// development secret only with `--dev`, never because nothing is set.
fn receiver_from_env() -> Result<Receiver, Box<dyn std::error::Error + Send + Sync>> {
    let keyring = Keyring::from_env()?;
    let verifier = if !keyring.is_empty() {
        Verifier::from_keyring(keyring)
    } else if std::env::args().skip(1).any(|arg| arg == "--dev") {
        eprintln!("--dev: accepting the development secret; never expose this server");
        Verifier::new(Secret::new(DEVELOPMENT_SECRET)?)
    } else {
        return Err(
            "no secret configured: set MONITE_WEBHOOK_SECRETS, MONITE_WEBHOOK_KEYRING \
                    or MONITE_WEBHOOK_SECRET, or pass --dev"
                .into(),
        );
    };
    let dispatcher = Dispatcher::builder()
        .fallback(|event: Event, _: Unhandled| async move { print_handled(&event) })
        .build();
    Ok(Receiver::new(verifier, dispatcher))
}
