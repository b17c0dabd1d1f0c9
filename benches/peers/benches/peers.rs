//! Our verifier next to peer crates, on the same bodies, in one criterion run.
//!
//! ```sh
//! cd benches/peers && CARGO_TARGET_DIR=../../target cargo bench
//! ```
//!
//! - `peers/hmac_sha256_limit`: raw pre-keyed HMAC-SHA256 over `t.body` and a compare.
//! - `peers/monite_verify`: `Verifier::verify` (header parse, hex, HMAC, compare, clock).
//! - `peers/monite_verify_parse`: `Receiver::verify_event`, verification plus the typed parse.
//! - `peers/svix_verify`: svix's `Webhook::verify` (Standard Webhooks headers and scheme).
//! - `peers/stripe_construct_event`: async-stripe's `Webhook::construct_event`, its only
//!   verifying entry point, which also parses the body (a Monite body fails that parse after
//!   the signature passed, so it is compared with `monite_verify_parse` as well).

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{KeyInit, Mac};
use monite_webhooks::{Dispatcher, Receiver, Secret, Verifier};
use monite_webhooks::testing::sign;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SIZES: [usize; 4] = [400, 4096, 65536, 1_048_576];

fn envelope(size: usize) -> String {
    let head = r#"{"id":"f8130c42-6c0f-4b9d-81db-38c08712b8bc","created_at":"2024-03-04T20:06:48.593225+00:00","action":"counterpart.created","api_version":"2024-01-31","entity_id":"c381e88f-7019-4f06-9fbb-3bab8d88348a","description":"counterpart created","object":{"id":"587fd280-3b1a-4ad4-8e00-75a8c2cd789a"},"object_type":"counterpart","webhook_subscription_id":"f3c64af7-4a2f-4ed2-8160-d66b6a8ac4ba","padding":""#;
    let mut body = head.to_owned();
    while body.len() < size.saturating_sub(2) {
        body.push('x');
    }
    body.push_str("\"}");
    body
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn peers(c: &mut Criterion) {
    let secret = Secret::new(SECRET).unwrap();
    let verifier = Verifier::new(secret.clone()).with_max_body_bytes(usize::MAX);
    let receiver = Receiver::new(verifier.clone(), Dispatcher::builder().build());
    let svix = svix::webhooks::Webhook::new(SECRET).unwrap();
    let keyed = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();

    let mut group = c.benchmark_group("peers");
    for size in SIZES {
        let body = envelope(size);
        let t = now();
        let header = sign(&secret, t, body.as_bytes());
        let headers = [("monite-signature", header.as_str())];
        let timestamp = t.to_string();
        let tag: [u8; 32] = keyed
            .clone()
            .chain_update(&timestamp)
            .chain_update(b".")
            .chain_update(body.as_bytes())
            .finalize()
            .into_bytes()
            .into();

        let svix_signature = svix.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", t as i64, body.as_bytes()).unwrap();
        let mut svix_headers = http::HeaderMap::new();
        svix_headers.insert("svix-id", "msg_p5jXN8AQM9LWM0D4loKWxJek".parse().unwrap());
        svix_headers.insert("svix-timestamp", timestamp.parse().unwrap());
        svix_headers.insert("svix-signature", svix_signature.parse().unwrap());
        svix.verify(body.as_bytes(), &svix_headers).unwrap();

        // Stripe signs exactly as Monite does: the same header verifies.
        let stripe_header = stripe_webhook::Webhook::generate_test_header(&body, SECRET, Some(t as i64));
        assert_eq!(stripe_header, header);

        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("hmac_sha256_limit", size), &body, |b, body| {
            b.iter(|| {
                let mut mac = keyed.clone();
                mac.update(black_box(timestamp.as_bytes()));
                mac.update(b".");
                mac.update(black_box(body.as_bytes()));
                mac.verify_slice(black_box(&tag)).unwrap();
            });
        });
        group.bench_with_input(BenchmarkId::new("monite_verify", size), &body, |b, body| {
            b.iter(|| verifier.verify(black_box(&headers), black_box(body.as_bytes())).unwrap());
        });
        let bytes = bytes::Bytes::from(body.clone());
        group.bench_with_input(BenchmarkId::new("monite_verify_parse", size), &bytes, |b, bytes| {
            b.iter(|| receiver.verify_event(black_box(&headers), bytes.clone()).unwrap());
        });
        group.bench_with_input(BenchmarkId::new("svix_verify", size), &body, |b, body| {
            b.iter(|| svix.verify(black_box(body.as_bytes()), black_box(&svix_headers)).unwrap());
        });
        group.bench_with_input(BenchmarkId::new("stripe_construct_event", size), &body, |b, body| {
            b.iter(|| {
                let result = stripe_webhook::Webhook::construct_event(black_box(body), black_box(&header), SECRET);
                // The signature passed; only the Stripe-shaped parse fails on a Monite body.
                assert!(matches!(result, Err(stripe_webhook::WebhookError::BadParse(_))));
            });
        });
    }
    group.finish();
}

criterion_group!(benches, peers);
criterion_main!(benches);
