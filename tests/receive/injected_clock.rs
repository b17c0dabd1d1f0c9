//! A receiver with its clock and claim tokens injected, as on `wasm32-unknown-unknown`
//! (Cloudflare Workers) and WASI (Spin), where `SystemTime::now` or `std::process::id`
//! panic: every delivery reads the injected clock once and takes one injected token, and
//! the timestamp check follows the injected time, not the system's.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use support::fixture;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use monite_webhooks::Receiver;
use monite_webhooks::idempotency::ClaimToken;
use monite_webhooks::testing::signed_request_at;

/// A day in 2024: the system clock is far from it, so only the injected clock accepts it.
const NOW: u64 = 1_713_773_729;

#[tokio::test]
async fn the_receiver_reads_only_the_injected_clock_and_tokens() {
    let clock_reads = Arc::new(AtomicU64::new(0));
    let tokens_made = Arc::new(AtomicU64::new(0));
    let (reads, made) = (clock_reads.clone(), tokens_made.clone());
    let seen = fixture::Seen::default();
    let plain = fixture::receiver(&seen);
    let receiver = Receiver::builder(plain.verifier().clone(), plain.dispatcher().clone())
        .clock(move || {
            reads.fetch_add(1, Ordering::SeqCst);
            NOW
        })
        .claim_tokens(move || ClaimToken::from_parts(7, made.fetch_add(1, Ordering::SeqCst)))
        .build();
    let secret = fixture::secret(fixture::CURRENT);

    // Signed at the injected now, and at the edges of the tolerance around it.
    for t in [NOW, NOW - 300, NOW + 300] {
        let body = fixture::current_envelope("counterpart", "counterpart.created");
        let response = receiver.handle(signed_request_at(&secret, body, t)).await;
        assert_eq!(
            response.status(),
            200,
            "t = NOW {:+}",
            t as i64 - NOW as i64
        );
    }
    assert_eq!(seen.lock().unwrap().len(), 3);
    assert_eq!(clock_reads.load(Ordering::SeqCst), 3);
    assert_eq!(tokens_made.load(Ordering::SeqCst), 3);

    // One second past the tolerance of the injected time, and the system's own now: stale
    // or ahead for this receiver. Refused before any claim: no token taken.
    for t in [NOW - 301, NOW + 301, fixture::now()] {
        let body = fixture::current_envelope("counterpart", "counterpart.created");
        let response = receiver.handle(signed_request_at(&secret, body, t)).await;
        assert_eq!(response.status(), 401, "t = {t}");
    }
    assert_eq!(seen.lock().unwrap().len(), 3);
    assert_eq!(clock_reads.load(Ordering::SeqCst), 6);
    assert_eq!(tokens_made.load(Ordering::SeqCst), 3);
}
