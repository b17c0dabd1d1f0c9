//! Heap allocations on the hot path, counted with a counting global allocator.
//!
//! Without the test harness (`harness = false`): the harness's own threads allocate now
//! and then while a test runs, and the counter is global, so one in three runs failed.
//! Here only `main` runs.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a test fails loudly where its setup is wrong, and says it passed"
)]

use std::alloc::System;

use monite_webhooks::testing::sign;
use monite_webhooks::{Keyring, Secret, Verifier};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn main() {
    verifying_a_delivery_allocates_nothing();
    verifying_with_a_keyring_allocates_nothing();
    println!("allocations: 2 passed, 0 failed");
}

fn verifying_with_a_keyring_allocates_nothing() {
    let keyring = (0..40).fold(Keyring::new(), |keyring, i| {
        keyring.with_subscription(
            format!("sub-{i}"),
            Secret::new(format!("whsec_{i}")).unwrap(),
        )
    });
    let verifier = Verifier::from_keyring(keyring);
    let secret = verifier.keyring().get("sub-39").unwrap().current().clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // The hint at the body's end, and (with a field after it) found by search.
    for body in [
        &br#"{"id":"e","object_type":"tag","action":"tag.created","webhook_subscription_id":"sub-39"}"#[..],
        br#"{"webhook_subscription_id":"sub-39","id":"e","object_type":"tag","action":"tag.created"}"#,
    ] {
        let pairs = [("Monite-Signature", sign(&secret, now, body))];
        verifier.verify(&pairs, body).unwrap();
        let region = Region::new(GLOBAL);
        for _ in 0..1000 {
            verifier.verify(&pairs, body).unwrap();
        }
        let change = region.change();
        assert_eq!(change.allocations, 0, "{change:?}");
    }
}

fn verifying_a_delivery_allocates_nothing() {
    let secret = Secret::new("whsec_IpHYzcMQQR5+wnN4pmHJNRh8B+TVY26b").unwrap();
    let verifier = Verifier::new(secret.clone()).with_secret(Secret::new("whsec_old").unwrap());
    let body = br#"{"id":"f8130c42","object_type":"counterpart","action":"counterpart.created"}"#;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let value = sign(&secret, now, body);
    let mut map = http::HeaderMap::new();
    map.insert("monite-signature", value.parse().unwrap());
    let pairs = [("Monite-Signature", value.as_str())];

    // One-time set-up (the clock's first read) is not a delivery's cost.
    verifier.verify(&map, body).unwrap();
    let region = Region::new(GLOBAL);
    for _ in 0..1000 {
        verifier.verify(&map, body).unwrap();
        verifier.verify(&pairs, body).unwrap();
    }
    let change = region.change();
    assert_eq!(change.allocations, 0, "{change:?}");
    assert_eq!(change.reallocations, 0, "{change:?}");
}
