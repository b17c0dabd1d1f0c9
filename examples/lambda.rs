//! A Monite webhook receiver as an AWS Lambda function, behind API Gateway (HTTP API or
//! REST API), an Application Load Balancer, or a function URL.
//!
//! The receiver is a `tower::Service`, so `lambda_http::run` takes it as it is: lambda_http
//! turns each Lambda event into an `http::Request` (decoding a base64 body), and the
//! receiver's answer back into the event's response shape.
//!
//! ```sh
//! cargo lambda build --release --example lambda --features tower
//! # set MONITE_WEBHOOK_SECRETS (<subscription_id>=<secret>,...) or MONITE_WEBHOOK_SECRET
//! # in the function's configuration
//! ```
//!
//! Each handled event is printed as one JSON line (to CloudWatch Logs). The idempotency
//! store is in memory, so it only covers retries that reach the same warm instance: give
//! the receiver a shared store (`RedisStore`, or your own over DynamoDB) in production.
//! tests/adapters/lambda.rs runs this program against a local Lambda Runtime API.

#![allow(
    clippy::print_stdout,
    reason = "the example reports handled events on stdout, which Lambda sends to CloudWatch"
)]

use monite_webhooks::{Dispatcher, Event, Receiver, Unhandled};

#[allow(
    dead_code,
    reason = "a Lambda function listens on no address of its own"
)]
#[path = "common/config.rs"]
mod config;
#[path = "common/event_line.rs"]
mod event_line;
use config::Secrets;
use event_line::print_handled;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // MONITE_WEBHOOK_SECRETS, MONITE_WEBHOOK_KEYRING or MONITE_WEBHOOK_SECRET; a function
    // is never offered the development secret.
    let verifier = Secrets::from_env(false)?.verifier()?;
    let dispatcher = Dispatcher::builder()
        .fallback(|event: Event, _: Unhandled| async move { print_handled(&event) })
        .build();
    let receiver = Receiver::new(verifier, dispatcher);
    lambda_http::run(receiver).await
}
