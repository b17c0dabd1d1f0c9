//! Heap allocations on the hot path, counted with a counting global allocator. One test per
//! binary, so that nothing else allocates while a region is measured.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use std::alloc::System;

use monite_webhooks::{Secret, Verifier, sign};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
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

    let region = Region::new(GLOBAL);
    for _ in 0..1000 {
        verifier.verify(&map, body).unwrap();
        verifier.verify(&pairs, body).unwrap();
    }
    let change = region.change();
    assert_eq!(change.allocations, 0, "{change:?}");
    assert_eq!(change.reallocations, 0, "{change:?}");
}
