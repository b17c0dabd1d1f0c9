//! Receive [Monite](https://monite.com) webhooks: verify the `Monite-Signature` header,
//! parse the body into a typed [`Event`], and dispatch it to your async handlers.
//!
//! Monite POSTs each event as JSON, signed with `Monite-Signature: t=<unix>,v1=<hex>`
//! (HMAC-SHA256 over `t.body` with the subscription's secret). It retries failed deliveries
//! for a week, so a receiver must answer `2xx` only once an event is handled, and must
//! expect the same event more than once.
//!
//! The core takes no web-framework types and needs no async runtime:
//!
//! - [`Verifier`] checks signatures against one or more [`Secret`]s;
//! - [`Event`] parses every envelope generation, with [`ObjectType`] and [`EventType`]
//!   enums that keep values Monite adds later instead of rejecting them;
//! - [`Dispatcher`] routes an event to the most specific [`Handler`];
//! - [`Receiver`] composes the three into `http::Request` in, `http::Response` out.
//!
//! ```
//! use monite_webhooks::testing::signed_request;
//! use monite_webhooks::{Dispatcher, Event, EventType, ObjectType, Receiver, Secret, Verifier};
//!
//! # async fn example() -> Result<(), monite_webhooks::Error> {
//! // The secret `POST /webhook_subscriptions` returned; keep it out of your source.
//! let secret = Secret::new("whsec_Iw3mrExampleOnly")?;
//! let receiver = Receiver::new(
//!     Verifier::new(secret.clone()),
//!     Dispatcher::builder()
//!         .on(ObjectType::Counterpart, EventType::Created, |event: Event| async move {
//!             println!("counterpart {:?} created", event.object_id());
//!         })
//!         .build(),
//! );
//!
//! // What Monite sends (signed here with the test helper).
//! let body = r#"{"id":"f8130c42","object_type":"counterpart","action":"counterpart.created",
//!               "object":{"id":"587fd280"},"webhook_subscription_id":"f3c64af7"}"#;
//! let response = receiver.handle(signed_request(&secret, body)).await;
//! assert_eq!(response.status(), 200);
//! # Ok(()) }
//! # let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! # runtime.block_on(example()).unwrap();
//! ```
//!
//! # Feature flags
//!
//! No feature is on by default; the core above needs none.
//!
//! | feature | what it adds |
//! |---|---|
//! | `axum` | `axum::route` mounts the receiver in a `Router`; `axum::VerifiedEvent` extracts a verified event |
//! | `actix-web` | `actix::resource` mounts it in an `App` or `Scope`; `actix::VerifiedEvent` likewise |
//! | `client` | `client::Client`: subscriptions and their secrets, `GET /events` recovery through the receiver, the delivery log; `reconcile::Reconciler`, which sweeps every entity's events continuously, and `watchdog::Watchdog`, which watches the subscriptions |
//! | `redis` | `RedisStore`: idempotency shared by every replica through Redis |
//! | `postgres` | `PostgresStore`: idempotency in your PostgreSQL (sqlx 0.9), and `PostgresStore::transactional` handlers whose writes commit with the event's done mark; `inbox`: acknowledge once written, handle with workers |
//! | `tracing` | one span per delivery, with event id, object type and event; each rejection's reason |
//! | `tower` | [`Receiver`] is a `tower::Service` for any `http_body::Body` (hyper, AWS Lambda, axum's `route_service`, any tower stack); `tower::VerifyLayer` verifies in front of your own service |
//! | `emulator` | `testing::Emulator`: a local Monite for tests, which retries on Monite's schedule, disables a subscription after a week and records nothing while it is disabled, on a clock you move (the guide `test_the_whole_loop`); turns `client` on |
//! | `metrics` | `metrics`: deliveries by outcome and status, rejections by reason, handler duration, idempotency store latency and failures, the reconciler's and the watchdog's series (with `client`), and the inbox's backlog gauges and attempt counters (with `postgres`), through the `metrics` facade |
//!
//! # Security
//!
//! - Signatures are compared in constant time with `hmac`'s `verify_slice`.
//! - Timestamps older or newer than 300 s are refused (configurable); only
//!   [`Verifier::dangerously_skip_timestamp_check`] turns that off.
//! - The body limit (256 KiB by default) is checked before any HMAC work.
//! - [`Secret`] has a redacted `Debug` and no `Display`; response bodies never say more
//!   than [`Error::public_message`], while the error's `Display` tells your logs why.
#![cfg_attr(docsrs, feature(doc_cfg))]

// The stages, in the order a delivery meets them. Is it from Monite?
pub mod signature;
// What did Monite send?
pub mod event;
// Who handles it?
pub mod dispatch;
// Was it handled already? Handle each event once.
pub mod idempotency;
// Or: acknowledge once written, handle later (behind `postgres`, its only store so far).
#[cfg(feature = "postgres")]
pub mod inbox;
// The pipeline: the stages above composed, request in, response out.
pub mod receive;
// Or: events swept from `GET /events` through the receiver, and subscriptions watched
// (behind `client`, Monite's API being how both reach Monite).
#[cfg(feature = "client")]
pub mod reconcile;
#[cfg(feature = "client")]
pub mod watchdog;
// Many replicas: one rate budget, and one of them doing what only one should.
#[cfg(all(feature = "client", any(feature = "postgres", feature = "redis")))]
pub mod fleet;

// The adapters, each behind its feature.
#[cfg(feature = "actix-web")]
pub mod actix;
#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "tower")]
pub mod tower;

// Monite's API, metrics, and helpers for tests and tools.
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "metrics")]
pub use crate::observe::metrics;
pub mod testing;

/// The guides: how to run exactly once, with many subscriptions, on each platform, how to
/// recover missed events, how to fetch the object an event is about, and how to test the
/// whole loop against a local Monite. The same text
/// reads on GitHub in `src/docs/`.
pub mod guide {
    #[doc = include_str!("docs/exactly_once.md")]
    pub mod exactly_once {}
    #[doc = include_str!("docs/keyring.md")]
    pub mod keyring {}
    #[doc = include_str!("docs/where_it_runs.md")]
    pub mod where_it_runs {}
    #[doc = include_str!("docs/missed_events.md")]
    pub mod missed_events {}
    #[cfg(feature = "client")]
    #[doc = include_str!("docs/fetch.md")]
    pub mod fetch {}
    #[cfg(feature = "postgres")]
    #[doc = include_str!("docs/inbox.md")]
    pub mod inbox {}
    #[cfg(feature = "emulator")]
    #[doc = include_str!("docs/test_the_whole_loop.md")]
    pub mod test_the_whole_loop {}
}

// What every stage shares.
mod clock;
mod error;
mod headers;
mod observe;
mod outcome;
// The service's own PostgreSQL, as every store on it uses it.
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "client")]
mod stop;

#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;

pub use crate::dispatch::{Dispatcher, Handler, HandlerResult, Unhandled};
pub use crate::error::{BoxError, Error, ErrorKind, Result};
pub use crate::event::{Event, EventType, ObjectType};
#[cfg(feature = "postgres")]
pub use crate::idempotency::PostgresStore;
#[cfg(feature = "redis")]
pub use crate::idempotency::RedisStore;
pub use crate::idempotency::{Idempotency, IdempotencyStore, MemoryStore};
pub use crate::receive::{Outcome, Receiver, ReceiverBuilder};
pub use crate::signature::{Keyring, Secret, Verifier};
/// The `http` crate this one takes requests and returns responses of: adapters and
/// serverless functions need no second `http` dependency of their own.
#[doc(no_inline)]
pub use http;
/// The time type of `created_at`, sweep windows and checkpoints.
#[cfg(feature = "jiff")]
pub use jiff;

// The README's examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_shared<T: Clone + Send + Sync + 'static>() {}

    #[test]
    fn shared_objects_are_clone_send_sync() {
        assert_shared::<Secret>();
        assert_shared::<Verifier>();
        assert_shared::<Dispatcher>();
        assert_shared::<Receiver>();
        assert_shared::<MemoryStore>();
        assert_shared::<Idempotency>();
        #[cfg(feature = "redis")]
        assert_shared::<RedisStore>();
        #[cfg(feature = "postgres")]
        assert_shared::<PostgresStore>();
        #[cfg(feature = "postgres")]
        assert_shared::<inbox::PostgresInbox>();
        #[cfg(feature = "postgres")]
        assert_shared::<inbox::Inbox>();
        #[cfg(feature = "postgres")]
        assert_shared::<inbox::RetrySchedule>();
        #[cfg(feature = "postgres")]
        assert_shared::<inbox::Workers>();
        #[cfg(feature = "client")]
        assert_shared::<client::Client>();
        #[cfg(feature = "client")]
        assert_shared::<reconcile::Reconciler>();
        #[cfg(feature = "client")]
        assert_shared::<watchdog::Watchdog>();
        #[cfg(feature = "tower")]
        assert_shared::<tower::VerifyLayer>();
        assert_shared::<receive::SystemClock>();
        assert_shared::<Event>();
        assert_shared::<ObjectType>();
        assert_shared::<EventType>();
    }

    #[test]
    fn errors_are_send_sync_and_small() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Error>();
        assert_eq!(size_of::<Error>(), size_of::<usize>());
    }
}
