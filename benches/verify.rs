//! Verification throughput next to the physical limit, raw HMAC-SHA256 over `t.body`.
//!
//! ```sh
//! cargo bench --bench verify && bash benches/ratios.sh
//! ```
//!
//! `ratios.sh` prints each size's verify, receive and keyring figures as multiples of the
//! floor, from the medians of criterion's samples. Sizes run in order, each beside its
//! floor.
//!
//! - `verify/hmac_sha256_limit/<bytes>`: pre-keyed RustCrypto HMAC-SHA256 over `t.body` and a
//!   32-byte constant-time compare: the floor for any correct verifier.
//! - `verify/monite_verify/<bytes>`: `Verifier::verify` on a header and a body: header parse,
//!   hex, HMAC, compare, clock read and tolerance.
//! - `verify/monite_receive/<bytes>`: the framework-free receiver end to end: verify, parse,
//!   dispatch to a no-op handler, build the response (idempotency off: its cost is measured
//!   by `benches/idempotency.rs`).
//! - `verify/keyring_40/<bytes>`: a [`Keyring`] of 40 subscriptions (one per object type, as
//!   Monite makes them), a delivery from the last of them, in Monite's field order
//!   (`webhook_subscription_id` last); `keyring_40_forged_known` names a held subscription
//!   with a wrong signature (one HMAC), `keyring_40_forged_unknown` names one not held
//!   (no HMAC). Sizes 400 B and 200 KB, each right after its `hmac_sha256_limit`.
//! - `verify/secrets_40_forged/<bytes>`: 40 plain secrets (no keyring) and a forged
//!   delivery: 40 HMACs over the body and 40 finalisations, the most a forgery costs;
//!   `secrets_40_forged_many_v1` adds 2,000 `v1` values, of which 8 are compared.
//! - `parts/*`: the pieces, so that a regression can be located; `parts/header_lookup/*`
//!   finds the signature header among twelve by comparing names, as the verifier does,
//!   and by hashing its name, as `HeaderMap::get` does.

#![allow(
    clippy::unwrap_used,
    reason = "a bench fails loudly where its setup is wrong"
)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use hmac::{KeyInit, Mac};
use monite_webhooks::signature::{HeaderLookup as _, SIGNATURE_HEADER, SignatureHeader};
use monite_webhooks::testing::sign;
use monite_webhooks::{
    Dispatcher, Event, EventType, Keyring, ObjectType, Receiver, Secret, Verifier,
};

const SECRET: &str = "whsec_IpHYzcMQQR5+wnN4pmHJNRh8B+TVY26b";
/// Sizes of `monite_verify` and `monite_receive`.
const SIZES: [usize; 4] = [400, 4096, 65536, 1_048_576];
/// Sizes of the forty-subscription benches.
const KEYRING_SIZES: [usize; 2] = [400, 204_800];
/// Every size with a floor, in the order they are measured.
const ALL_SIZES: [usize; 5] = [400, 4096, 65536, 204_800, 1_048_576];

/// A real Monite envelope, padded to `size` bytes with a long string field.
fn envelope(size: usize) -> Vec<u8> {
    let head = r#"{"id":"f8130c42-6c0f-4b9d-81db-38c08712b8bc","created_at":"2024-03-04T20:06:48.593225+00:00","action":"counterpart.created","api_version":"2024-01-31","entity_id":"c381e88f-7019-4f06-9fbb-3bab8d88348a","description":"counterpart created","object":{"id":"587fd280-3b1a-4ad4-8e00-75a8c2cd789a"},"object_type":"counterpart","webhook_subscription_id":"f3c64af7-4a2f-4ed2-8160-d66b6a8ac4ba","padding":""#;
    let mut body = head.as_bytes().to_vec();
    body.resize(size.saturating_sub(2).max(body.len()), b'x');
    body.extend_from_slice(b"\"}");
    assert_eq!(body.len(), size);
    assert!(Event::parse(body.clone()).is_ok());
    body
}

/// A Monite envelope in Monite's own field order, padded in `description` to `size` bytes.
fn monite_ordered(size: usize, subscription: &str) -> Vec<u8> {
    let head = r#"{"id":"f8130c42-6c0f-4b9d-81db-38c08712b8bc","created_at":"2024-03-04T20:06:48.593225+00:00","action":"payable.created","api_version":"2024-05-25","entity_id":"c381e88f-7019-4f06-9fbb-3bab8d88348a","description":""#;
    let tail = format!(
        r#"","object":{{"id":"587fd280-3b1a-4ad4-8e00-75a8c2cd789a"}},"object_type":"payable","webhook_subscription_id":"{subscription}"}}"#
    );
    let mut body = head.as_bytes().to_vec();
    body.resize(size.saturating_sub(tail.len()).max(body.len()), b'x');
    body.extend_from_slice(tail.as_bytes());
    assert_eq!(body.len(), size);
    assert!(Event::parse(body.clone()).is_ok());
    body
}

/// 40 subscription ids, as random as Monite's UUIDs.
fn subscription_ids() -> Vec<String> {
    (0..40u64)
        .map(|i| {
            let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
            format!(
                "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                x >> 32,
                x & 0xffff,
                i,
                i * 7,
                x & 0xffff_ffff_ffff
            )
        })
        .collect()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Polls a future that is ready at once, as the no-op handler's is: measures our code, not
/// an executor's.
fn ready<F: Future>(future: F) -> F::Output {
    let mut context = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut context) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the bench's handlers never wait"),
    }
}

fn receiver(verifier: Verifier) -> Receiver {
    let dispatcher = Dispatcher::builder()
        .on(
            ObjectType::Counterpart,
            EventType::Created,
            |_: Event| async {},
        )
        .build();
    Receiver::builder(verifier, dispatcher)
        .without_idempotency()
        .build()
}

fn verify(c: &mut Criterion) {
    let secret = Secret::new(SECRET).unwrap();
    let verifier = Verifier::new(secret.clone()).with_max_body_bytes(usize::MAX);
    let receiver = receiver(verifier.clone());
    let keyed = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    let forty = FortySubscriptions::new();

    // Size by size, so that each figure is measured within a minute of its floor: on this
    // shared VM, the keyring's 400-byte figure measured minutes after its floor, behind
    // the 1 MiB runs, came out a tenth slower (1.22x) than beside it (1.11x).
    let mut group = c.benchmark_group("verify");
    for size in ALL_SIZES {
        let body = envelope(size);
        let t = now();
        let header = sign(&secret, t, &body);
        let timestamp = t.to_string();
        let tag: [u8; 32] = keyed
            .clone()
            .chain_update(&timestamp)
            .chain_update(b".")
            .chain_update(&body)
            .finalize()
            .into_bytes()
            .into();
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

        if KEYRING_SIZES.contains(&size) {
            forty.bench(&mut group, size);
        }
        if !SIZES.contains(&size) {
            continue;
        }

        let mut headers = http::HeaderMap::new();
        headers.insert("monite-signature", header.parse().unwrap());
        group.bench_with_input(BenchmarkId::new("monite_verify", size), &body, |b, body| {
            b.iter(|| {
                verifier
                    .verify(black_box(&headers), black_box(body))
                    .unwrap()
            });
        });

        let body = Bytes::from(body);
        group.bench_with_input(
            BenchmarkId::new("monite_receive", size),
            &body,
            |b, body| {
                b.iter(|| {
                    let result = ready(receiver.receive(black_box(&headers), body.clone()));
                    receiver.response(&result)
                });
            },
        );
    }
    group.finish();
}

fn parts(c: &mut Criterion) {
    let secret = Secret::new(SECRET).unwrap();
    let body = Bytes::from(envelope(400));
    let header = sign(&secret, now(), &body);
    let receiver = receiver(Verifier::new(secret));
    let event = Event::parse(body.clone()).unwrap();

    let mut group = c.benchmark_group("parts");
    group.bench_function("header_parse", |b| {
        b.iter(|| {
            SignatureHeader::parse(black_box(header.as_bytes()))
                .unwrap()
                .signatures()
                .count()
        });
    });
    // The verifier reads the coarse clock where there is one; the precise one for scale.
    group.bench_function("clock_precise", |b| b.iter(now));
    #[cfg(any(target_os = "linux", target_os = "android"))]
    group.bench_function("clock_coarse", |b| {
        b.iter(|| rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse).tv_sec);
    });
    // The signature header among a dozen, as a proxied request carries them: found by
    // comparing names (what `HeaderLookup` does up to 12 names) or by hashing its name.
    let proxied = proxied_headers(&header);
    group.bench_function("header_lookup/compared_12", |b| {
        b.iter(|| {
            black_box(&proxied)
                .header(SIGNATURE_HEADER)
                .map(<[u8]>::len)
        });
    });
    let name = http::HeaderName::from_static(SIGNATURE_HEADER);
    group.bench_function("header_lookup/hashed_12", |b| {
        b.iter(|| black_box(&proxied).get(&name).map(http::HeaderValue::len));
    });
    group.bench_function("envelope_parse_typed/400", |b| {
        b.iter(|| Event::parse(black_box(body.clone())).unwrap());
    });
    group.bench_function("envelope_skip_serde/400", |b| {
        b.iter(|| serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&body)).unwrap());
    });
    group.bench_function("envelope_parse_value/400", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&body)).unwrap());
    });
    group.bench_function("dispatch/400", |b| {
        b.iter(|| ready(receiver.dispatch(black_box(event.clone()))).unwrap());
    });
    group.bench_function("response", |b| {
        b.iter(|| receiver.response(black_box(&Ok(monite_webhooks::Outcome::Handled))));
    });
    group.finish();
}

/// Twelve headers, the signature last, as a delivery arrives through a proxy.
fn proxied_headers(signature: &str) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for (name, value) in [
        ("host", "partner.example"),
        ("user-agent", "Monite-Webhooks/1.0"),
        ("accept", "*/*"),
        ("accept-encoding", "gzip, deflate"),
        ("content-type", "application/json"),
        ("content-length", "400"),
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
        ("x-request-id", "3f9c1a52-8f0e-4b8e-9d5c-6f1f0e2d4c3b"),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        (
            "x-amzn-trace-id",
            "Root=1-67891233-abcdef012345678912345678",
        ),
        ("monite-signature", signature),
    ] {
        headers.insert(name, value.parse().unwrap());
    }
    headers
}

/// Forty subscriptions, one per object type as Monite makes them, as a keyring and as
/// forty plain secrets.
struct FortySubscriptions {
    ids: Vec<String>,
    secrets: Vec<Secret>,
    keyed: Verifier,
    plain: Verifier,
}

impl FortySubscriptions {
    fn new() -> Self {
        let ids = subscription_ids();
        let secrets: Vec<Secret> = (0..ids.len())
            .map(|i| Secret::new(format!("whsec_subscription_{i}_IpHYzcMQQR5wnN4pm")).unwrap())
            .collect();
        let keyring = ids
            .iter()
            .zip(&secrets)
            .fold(Keyring::new(), |keyring, (id, secret)| {
                keyring.with_subscription(id.clone(), secret.clone())
            });
        let keyed = Verifier::from_keyring(keyring).with_max_body_bytes(usize::MAX);
        let plain = Verifier::with_secrets(secrets.iter().cloned())
            .unwrap()
            .with_max_body_bytes(usize::MAX);
        Self {
            ids,
            secrets,
            keyed,
            plain,
        }
    }

    /// The keyring and plain-secret benches at `size`, in the group the floor for that
    /// size was just measured in.
    fn bench(&self, group: &mut BenchmarkGroup<'_, WallTime>, size: usize) {
        let Self {
            ids,
            secrets,
            keyed,
            plain,
        } = self;
        let last = ids.len() - 1;
        let forger = Secret::new("whsec_not_monites").unwrap();
        let t = now();
        let signed = monite_ordered(size, &ids[last]);
        let header = |value: String| {
            let mut headers = http::HeaderMap::new();
            headers.insert("monite-signature", value.parse().unwrap());
            headers
        };
        let valid = header(sign(&secrets[last], t, &signed));
        let forged = header(sign(&forger, t, &signed));
        let unknown_body = monite_ordered(size, "ffffffff-ffff-4fff-8fff-ffffffffffff");
        let unknown = header(sign(&forger, t, &unknown_body));
        let many_v1 = {
            let decoy = format!(",v1={}", "ab".repeat(32));
            header(format!("t={t}{}", decoy.repeat(2000)))
        };

        group.bench_with_input(BenchmarkId::new("keyring_40", size), &signed, |b, body| {
            b.iter(|| keyed.verify(black_box(&valid), black_box(body)).unwrap());
        });
        // Refused deliveries: each must fail, and costs what the verifier spends on it.
        for (id, verifier, headers, body) in [
            ("keyring_40_forged_known", keyed, &forged, &signed),
            ("keyring_40_forged_unknown", keyed, &unknown, &unknown_body),
            ("secrets_40_forged", plain, &forged, &signed),
            ("secrets_40_forged_many_v1", plain, &many_v1, &signed),
        ] {
            group.bench_with_input(BenchmarkId::new(id, size), body, |b, body| {
                b.iter(|| {
                    verifier
                        .verify(black_box(headers), black_box(body))
                        .unwrap_err()
                });
            });
        }
    }
}

criterion_group!(benches, verify, parts);
criterion_main!(benches);
