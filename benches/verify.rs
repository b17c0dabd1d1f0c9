//! Verification throughput next to the physical limit, raw HMAC-SHA256 over `t.body`.
//!
//! `cargo bench --bench verify`; ids are `verify/<what>/<body bytes>`.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{KeyInit, Mac};
use monite_webhooks::{Dispatcher, Event, Receiver, Secret, Verifier, sign};

const SECRET: &str = "whsec_IpHYzcMQQR5+wnN4pmHJNRh8B+TVY26b";
const SIZES: [usize; 4] = [400, 4096, 65536, 1_048_576];

/// A real-looking envelope padded to `size` bytes with a long string field.
fn envelope(size: usize) -> Vec<u8> {
    let head = r#"{"id":"f8130c42-6c0f-4b9d-81db-38c08712b8bc","created_at":"2024-03-04T20:06:48.593225+00:00","action":"counterpart.created","api_version":"2024-01-31","entity_id":"c381e88f-7019-4f06-9fbb-3bab8d88348a","description":"counterpart created","object":{"id":"587fd280-3b1a-4ad4-8e00-75a8c2cd789a"},"object_type":"counterpart","webhook_subscription_id":"f3c64af7-4a2f-4ed2-8160-d66b6a8ac4ba","padding":""#;
    let mut body = head.as_bytes().to_vec();
    body.resize(size.saturating_sub(2).max(body.len()), b'x');
    body.extend_from_slice(b"\"}");
    assert!(Event::parse(body.clone()).is_ok());
    body
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn verify(c: &mut Criterion) {
    let secret = Secret::new(SECRET).unwrap();
    let verifier = Verifier::new(secret.clone()).with_max_body_bytes(usize::MAX);
    let receiver = Receiver::new(
        verifier.clone(),
        Dispatcher::builder()
            .on_object("counterpart".into(), |_: Event| async {})
            .build(),
    );
    let keyed = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    let mut group = c.benchmark_group("verify");
    for size in SIZES {
        let body = envelope(size);
        let t = now();
        let header = sign(&secret, t, &body);
        let tag: [u8; 32] = keyed
            .clone()
            .chain_update(t.to_string())
            .chain_update(b".")
            .chain_update(&body)
            .finalize()
            .into_bytes()
            .into();
        let timestamp = t.to_string();
        group.throughput(Throughput::Bytes(size as u64));

        group.bench_with_input(
            BenchmarkId::new("hmac_sha256_limit", size),
            &body,
            |b, body| {
                b.iter(|| {
                    let mut mac = keyed.clone();
                    mac.update(black_box(timestamp.as_bytes()));
                    mac.update(b".");
                    mac.update(black_box(body));
                    mac.verify_slice(black_box(&tag)).unwrap();
                });
            },
        );

        let headers = [("monite-signature", header.as_str())];
        group.bench_with_input(BenchmarkId::new("monite_verify", size), &body, |b, body| {
            b.iter(|| {
                verifier
                    .verify(black_box(&headers), black_box(body))
                    .unwrap()
            });
        });

        let request_headers = {
            let mut map = http::HeaderMap::new();
            map.insert("monite-signature", header.parse().unwrap());
            map
        };
        let body = Bytes::from(body);
        group.bench_with_input(
            BenchmarkId::new("monite_receive", size),
            &body,
            |b, body| {
                b.iter(|| {
                    let result = runtime.block_on(receiver.receive(&request_headers, body.clone()));
                    receiver.response(black_box(&result))
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
