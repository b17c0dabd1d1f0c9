//! The framework-free receiver end to end: routing, fallback, failures and status codes.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use monite_webhooks::testing::{sign, signed_request, signed_request_at};
use monite_webhooks::{
    Dispatcher, Event, EventType, ObjectType, Outcome, Receiver, Secret, Unhandled, Verifier,
};

type Log = Arc<Mutex<Vec<String>>>;

fn secret() -> Secret {
    Secret::new("whsec_IpHYzcMQQR5+wnN4pmHJNRh8B+TVY26b").unwrap()
}

/// A current envelope with an id of its own: the receiver handles each event id once.
fn envelope(object_type: &str, action: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = format!(
        "evt-{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    format!(
        r#"{{"id":"{id}","object_type":"{object_type}","action":"{action}","object":{{"id":"587fd280"}},"webhook_subscription_id":"f3c64af7","description":"d"}}"#
    )
}

/// A receiver whose handlers write what ran into `log`.
fn receiver(log: &Log) -> Receiver {
    let specific = log.clone();
    let object = log.clone();
    let fallback = log.clone();
    let dispatcher = Dispatcher::builder()
        .on(
            ObjectType::Counterpart,
            EventType::Created,
            move |e: Event| {
                let log = specific.clone();
                async move { log.lock().unwrap().push(format!("specific {}", e.action())) }
            },
        )
        .on_object(ObjectType::Counterpart, move |e: Event| {
            let log = object.clone();
            async move { log.lock().unwrap().push(format!("object {}", e.action())) }
        })
        .on(ObjectType::Payable, EventType::Paid, |_: Event| async {
            Err::<(), _>(std::io::Error::other("ledger unavailable"))
        })
        .on(
            ObjectType::Payable,
            EventType::Rejected,
            panics_while_running,
        )
        .on(
            ObjectType::Payable,
            EventType::Canceled,
            |_: Event| -> std::future::Ready<()> { panic!("bug before the future") },
        )
        .fallback(move |e: Event, why: Unhandled| {
            let log = fallback.clone();
            async move {
                log.lock()
                    .unwrap()
                    .push(format!("fallback {} {why:?}", e.action()))
            }
        })
        .build();
    Receiver::new(Verifier::new(secret()), dispatcher)
}

async fn panics_while_running(_: Event) {
    panic!("bug in rejected handler")
}

async fn status_of(receiver: &Receiver, request: Request<Bytes>) -> StatusCode {
    receiver.handle(request).await.status()
}

#[tokio::test]
async fn the_most_specific_handler_runs() {
    let log = Log::default();
    let receiver = receiver(&log);
    for action in [
        "counterpart.created",
        "counterpart.updated",
        "tag.created",
        "brand_new.thing",
    ] {
        let object_type = action.split('.').next().unwrap();
        let request = signed_request(&secret(), envelope(object_type, action));
        assert_eq!(
            status_of(&receiver, request).await,
            StatusCode::OK,
            "{action}"
        );
    }
    assert_eq!(
        *log.lock().unwrap(),
        [
            "specific counterpart.created",
            "object counterpart.updated",
            "fallback tag.created NoHandler",
            "fallback brand_new.thing UnknownEvent",
        ]
    );
}

#[tokio::test]
async fn handler_errors_and_panics_are_500_with_a_generic_body() {
    let receiver = receiver(&Log::default());
    for (action, detail) in [
        ("payable.paid", "ledger unavailable"),
        ("payable.rejected", "bug in rejected handler"),
        ("payable.canceled", "bug before the future"),
    ] {
        let request = signed_request(&secret(), envelope("payable", action));
        let response = receiver.handle(request).await;
        assert_eq!(
            response.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "{action}"
        );
        assert_eq!(response.body(), "event could not be handled");

        // The precise reason is in the error, for logs.
        let request = signed_request(&secret(), envelope("payable", action));
        let (parts, body) = request.into_parts();
        let error = receiver.receive(&parts.headers, body).await.unwrap_err();
        assert!(error.to_string().contains(detail), "{error}");
        assert!(error.is_retryable());
    }
}

#[tokio::test]
async fn handler_errors_keep_their_source() {
    let receiver = receiver(&Log::default());
    let (parts, body) = signed_request(&secret(), envelope("payable", "payable.paid")).into_parts();
    let error = receiver.receive(&parts.headers, body).await.unwrap_err();
    let source = std::error::Error::source(&error).unwrap();
    assert_eq!(source.to_string(), "ledger unavailable");
}

#[tokio::test]
async fn unhandled_events_are_acknowledged_unless_configured_otherwise() {
    let dispatcher = Dispatcher::builder().build();
    let request = || signed_request(&secret(), envelope("tag", "tag.created"));

    let default = Receiver::new(Verifier::new(secret()), dispatcher.clone());
    let (parts, body) = request().into_parts();
    assert_eq!(
        default.receive(&parts.headers, body).await.unwrap(),
        Outcome::Unhandled(Unhandled::NoHandler)
    );
    assert_eq!(status_of(&default, request()).await, StatusCode::OK);

    let strict = Receiver::builder(Verifier::new(secret()), dispatcher)
        .unhandled_status(StatusCode::UNPROCESSABLE_ENTITY)
        .build();
    assert_eq!(
        status_of(&strict, request()).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[tokio::test]
async fn status_codes_follow_protocol_section_5() {
    let receiver = receiver(&Log::default());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body = envelope("tag", "tag.created");
    let with_header = |value: &str, body: &str| {
        Request::post("/webhooks/monite")
            .header("monite-signature", value)
            .body(Bytes::from(body.to_owned()))
            .unwrap()
    };
    // One second past the tolerance on either side, so that neither a second boundary
    // passing while the cases run nor the coarse clock's lag can bring them back inside it
    // (the exact boundary is tested with an injected clock in `verify.rs`).
    let cases = [
        (
            "valid",
            signed_request(&secret(), body.clone()),
            StatusCode::OK,
        ),
        (
            "missing header",
            Request::post("/").body(Bytes::from(body.clone())).unwrap(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "malformed header",
            with_header("sha256=abc", &body),
            StatusCode::BAD_REQUEST,
        ),
        (
            "wrong secret",
            signed_request(&Secret::new("whsec_wrong").unwrap(), body.clone()),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "tampered body",
            with_header(&sign(&secret(), now, b"{}"), &body),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "stale",
            signed_request_at(&secret(), body.clone(), now - 302),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "future",
            signed_request_at(&secret(), body.clone(), now + 302),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "too large",
            signed_request(&secret(), vec![b' '; 256 * 1024 + 1]),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "signed non-JSON",
            signed_request(&secret(), "hello"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "signed JSON, not an envelope",
            signed_request(&secret(), r#"{"hello":"world"}"#),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (name, request, expected) in cases {
        assert_eq!(status_of(&receiver, request).await, expected, "{name}");
    }

    let mut get = signed_request(&secret(), body);
    *get.method_mut() = Method::GET;
    let response = receiver.handle(get).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST");
}

#[tokio::test]
async fn a_rotated_secret_and_the_raw_body_reach_the_handler() {
    let seen = Arc::new(Mutex::new(None));
    let sink = seen.clone();
    let old = Secret::new("whsec_old").unwrap();
    let verifier = Verifier::new(secret()).with_secret(old.clone());
    let dispatcher = Dispatcher::builder()
        .on_object(ObjectType::Entity, move |e: Event| {
            let sink = sink.clone();
            async move { *sink.lock().unwrap() = Some(e.body().clone()) }
        })
        .build();
    let receiver = Receiver::new(verifier, dispatcher);
    // Non-ASCII text must arrive byte for byte.
    let body = envelope("entity", "entity.updated").replace("\"d\"", "\"Zürich — 東京 🚀\"");
    let response = receiver.handle(signed_request(&old, body.clone())).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.lock().unwrap().as_deref(), Some(body.as_bytes()));
}

#[test]
#[should_panic(expected = "a handler for counterpart.created is already registered")]
fn registering_one_event_twice_is_a_wiring_error() {
    let _ = Dispatcher::builder()
        .on(
            ObjectType::Counterpart,
            EventType::Created,
            |_: Event| async {},
        )
        .on(
            ObjectType::Counterpart,
            EventType::Created,
            |_: Event| async {},
        );
}

#[test]
fn the_dispatcher_lists_its_routes() {
    let receiver = receiver(&Log::default());
    let routes: Vec<String> = receiver
        .dispatcher()
        .routes()
        .map(|(o, e)| format!("{o}.{}", e.map_or("*", EventType::as_str)))
        .collect();
    assert!(
        routes.contains(&"counterpart.created".to_owned()),
        "{routes:?}"
    );
    assert!(routes.contains(&"counterpart.*".to_owned()), "{routes:?}");
    assert_eq!(routes.len(), 5);
}

/// F14: a keyed delivery is accepted only when the subscription whose secret matched is the
/// one the envelope names, so subscription A's secret cannot vouch for B's events (with
/// A's id nested in the body, where the verifier's hint finds it).
#[tokio::test]
async fn one_subscriptions_secret_cannot_vouch_for_another_subscriptions_event() {
    let tag_secret = Secret::new("whsec_tag_subscription_secret").unwrap();
    let payable_secret = Secret::new("whsec_payable_subscription_secret").unwrap();
    let keyring = monite_webhooks::Keyring::new()
        .with_subscription("sub-tag", tag_secret.clone())
        .with_subscription("sub-payable", payable_secret.clone());
    let log = Log::default();
    let sink = log.clone();
    let dispatcher = Dispatcher::builder()
        .fallback(move |e: Event, _: Unhandled| {
            let sink = sink.clone();
            async move { sink.lock().unwrap().push(e.action().to_owned()) }
        })
        .build();
    let receiver = Receiver::new(Verifier::from_keyring(keyring), dispatcher);

    let forged = [
        // The envelope names the payable subscription; the tag subscription's id, nested
        // last, is what the hint reads.
        r#"{"id":"e1","object_type":"payable","action":"payable.paid","webhook_subscription_id":"sub-payable","object":{"webhook_subscription_id":"sub-tag"}}"#,
        // The envelope names no subscription at all.
        r#"{"id":"e2","object_type":"payable","action":"payable.paid","object":{"webhook_subscription_id":"sub-tag"}}"#,
    ];
    for body in forged {
        let response = receiver.handle(signed_request(&tag_secret, body)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{body}");
    }
    let error = receiver
        .receive(
            &[(
                "Monite-Signature",
                sign(&tag_secret, now(), forged[0].as_bytes()),
            )],
            Bytes::from_static(forged[0].as_bytes()),
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.kind(),
        monite_webhooks::ErrorKind::SubscriptionMismatch
    );
    assert!(log.lock().unwrap().is_empty(), "a handler ran");

    // Each subscription's own deliveries still pass.
    let genuine = r#"{"id":"e3","object_type":"payable","action":"payable.paid","object":{"id":"p"},"webhook_subscription_id":"sub-payable"}"#;
    let response = receiver
        .handle(signed_request(&payable_secret, genuine))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(*log.lock().unwrap(), ["payable.paid"]);
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The front door: a plain `async fn` handler returning `HandlerResult`, one handler for
/// several events, a dispatcher builder given as is, `store`, the re-exported `http`, and
/// the `on_failure` hook seeing each handler error and panic before the `500`.
#[tokio::test]
async fn handlers_are_plain_async_fns_and_failures_reach_one_hook() {
    use monite_webhooks::{HandlerResult, MemoryStore, http};

    async fn settle(event: Event) -> HandlerResult {
        if event.action() == "payable.partially_paid" {
            let _: u32 = "not a number".parse()?;
        }
        Ok(())
    }

    let failures: Log = Log::default();
    let seen = failures.clone();
    let receiver = Receiver::builder(
        Verifier::new(secret()),
        Dispatcher::builder()
            .on_events(
                ObjectType::Payable,
                [EventType::Paid, EventType::PartiallyPaid],
                settle,
            )
            .on(
                ObjectType::Payable,
                EventType::Rejected,
                panics_while_running,
            ),
    )
    .store(MemoryStore::new())
    .on_failure(move |event, error| {
        seen.lock()
            .unwrap()
            .push(format!("{} {:?}", event.action(), error.kind()));
    })
    .build();

    let statuses: Vec<http::StatusCode> = {
        let mut statuses = Vec::new();
        for action in ["paid", "partially_paid", "rejected"] {
            let body = envelope("payable", &format!("payable.{action}"));
            statuses.push(status_of(&receiver, signed_request(&secret(), body)).await);
        }
        statuses
    };
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::INTERNAL_SERVER_ERROR
        ]
    );
    assert_eq!(
        *failures.lock().unwrap(),
        [
            "payable.partially_paid Handler",
            "payable.rejected HandlerPanicked"
        ]
    );
}

/// A panic in the `on_failure` hook is caught: the delivery is still answered `500`.
#[tokio::test]
async fn a_panicking_failure_hook_does_not_take_the_request_down() {
    let receiver = Receiver::builder(
        Verifier::new(secret()),
        Dispatcher::builder().on_object(ObjectType::Payable, |_: Event| async {
            Err::<(), _>(std::io::Error::other("down"))
        }),
    )
    .on_failure(|_, _| panic!("the hook is broken"))
    .build();
    let body = envelope("payable", "payable.paid");
    assert_eq!(
        status_of(&receiver, signed_request(&secret(), body)).await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
}
