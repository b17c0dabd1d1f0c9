//! A serverless function with no web framework and no async runtime: the platform hands
//! over an `http::Request`, the receiver answers with an `http::Response`.
//!
//! Run it with `cargo run --example serverless`. It signs two sample deliveries the way
//! Monite would, passes them to the function, and prints what the function answered.

#![allow(
    clippy::print_stdout,
    reason = "an example shows what it did on stdout"
)]

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use bytes::Bytes;
use http::{Request, Response};
use monite_webhooks::testing::signed_request;
use monite_webhooks::{
    Dispatcher, Event, EventType, ObjectType, Receiver, Secret, Unhandled, Verifier,
};

/// What a Lambda or Cloud Run handler would call for every request.
async fn function(receiver: &Receiver, request: Request<Bytes>) -> Response<Bytes> {
    receiver.handle(request).await
}

fn build_receiver(secret: &Secret) -> Receiver {
    let dispatcher = Dispatcher::builder()
        .on(
            ObjectType::Entity,
            EventType::OnboardingRequirementsUpdated,
            |event: Event| async move {
                eprintln!(
                    "entity {:?}: onboarding requirements changed",
                    event.entity_id()
                );
                Ok::<(), std::io::Error>(())
            },
        )
        .fallback(|event: Event, why: Unhandled| async move {
            eprintln!(
                "acknowledged {} without a handler ({why:?})",
                event.action()
            );
        })
        .build();
    Receiver::new(Verifier::new(secret.clone()), dispatcher)
}

fn main() -> Result<(), monite_webhooks::Error> {
    // In a real function: std::env::var("MONITE_WEBHOOK_SECRET").
    let secret = Secret::new("whsec_serverless_example_only")?;
    let receiver = build_receiver(&secret);

    let deliveries = [
        (
            "entity.onboarding_requirements.updated",
            signed_request(
                &secret,
                sample("1", "entity", "entity.onboarding_requirements.updated"),
            ),
        ),
        (
            "tag.created",
            signed_request(&secret, sample("2", "tag", "tag.created")),
        ),
        (
            "forged",
            signed_request(
                &Secret::new("whsec_attacker")?,
                sample("3", "tag", "tag.deleted"),
            ),
        ),
    ];
    for (name, request) in deliveries {
        let response = block_on(function(&receiver, request));
        println!(
            "{name}: {} {}",
            response.status().as_u16(),
            String::from_utf8_lossy(response.body())
        );
    }
    Ok(())
}

/// A current envelope; each event has its own `id`, or the receiver would take the second
/// for a duplicate of the first.
fn sample(id: &str, object_type: &str, action: &str) -> String {
    format!(
        r#"{{"id":"f8130c42-6c0f-4b9d-81db-38c08712b8b{id}","created_at":"2024-03-04T20:06:48Z","action":"{action}","api_version":"2024-01-31","entity_id":"c381e88f-7019-4f06-9fbb-3bab8d88348a","description":"sample","object":{{"id":"587fd280-3b1a-4ad4-8e00-75a8c2cd789a"}},"object_type":"{object_type}","webhook_subscription_id":"f3c64af7-4a2f-4ed2-8160-d66b6a8ac4ba"}}"#
    )
}

/// Runs a future to completion on this thread: all the executor the core needs.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}
