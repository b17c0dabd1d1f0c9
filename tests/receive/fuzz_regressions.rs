//! Inputs the fuzz targets in `fuzz/` stopped on, kept as tests.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use monite_webhooks::testing::signed_request;
use monite_webhooks::{Dispatcher, Event, Receiver, Secret, Unhandled, Verifier};

/// `receiver`, 2026-11-27: the harness expected the second delivery of an id-less envelope
/// to be a duplicate, as it was when such envelopes were keyed by their body for 8 days.
/// They name no event, so each delivery runs (two real updates of one object are
/// byte-identical); the harness now says so too.
#[tokio::test]
async fn an_id_less_envelope_delivered_twice_runs_twice() {
    let secret = Secret::new("whsec_fuzz").unwrap();
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = runs.clone();
    let receiver = Receiver::new(
        Verifier::new(secret.clone()),
        Dispatcher::builder()
            .fallback(move |_: Event, _: Unhandled| {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                async {}
            })
            .build(),
    );
    let body = r#"{"action":"a\u0457","object_type":"b","":7}"#;
    for _ in 0..2 {
        let response = receiver.handle(signed_request(&secret, body)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(&response.body()[..], b"ok");
    }
    assert_eq!(runs.load(std::sync::atomic::Ordering::Relaxed), 2);
}
