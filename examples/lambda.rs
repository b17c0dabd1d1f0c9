//! A Monite webhook receiver as an AWS Lambda function, behind API Gateway (HTTP API or
//! REST API), an Application Load Balancer, or a function URL.
//!
//! The receiver is a `tower::Service`, so `lambda_http::run` takes it as it is: lambda_http
//! turns each Lambda event into an `http::Request` (decoding a base64 body), and the
//! receiver's answer back into the event's response shape.
//!
//! ```sh
//! cargo lambda build --release --example lambda --features tower
//! # set MONITE_WEBHOOK_SECRET in the function's configuration (comma-separated to rotate)
//! ```
//!
//! Each handled event is printed as one JSON line (to CloudWatch Logs). The idempotency
//! store is in memory, so it only covers retries that reach the same warm instance: give
//! the receiver a shared store (`RedisStore`, or your own over DynamoDB) in production.
//! tests/lambda.rs runs this program against a local Lambda Runtime API.

#![allow(
    clippy::print_stdout,
    reason = "the example reports handled events on stdout, which Lambda sends to CloudWatch"
)]

use monite_webhooks::{Dispatcher, Event, Receiver, Secret, Unhandled, Verifier};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let secrets = std::env::var("MONITE_WEBHOOK_SECRET")
        .map_err(|_| "MONITE_WEBHOOK_SECRET is not set")?
        .split(',')
        .map(|text| Secret::new(text.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    let dispatcher = Dispatcher::builder()
        .fallback(|event: Event, _: Unhandled| async move {
            let line = serde_json::json!({
                "id": event.id(),
                "object_type": event.object_type(),
                "event": event.event_type(),
                "object_id": event.object_id(),
                "entity_id": event.entity_id(),
                "webhook_subscription_id": event.webhook_subscription_id(),
            });
            println!("{line}");
        })
        .build();
    let receiver = Receiver::new(Verifier::with_secrets(secrets)?, dispatcher);
    lambda_http::run(receiver).await
}
