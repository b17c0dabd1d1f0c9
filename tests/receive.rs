//! Receiving without any framework: signatures and keyrings, envelopes, the receiver,
//! exactly-once over every store, and what each feature adds to it.
//!
//! One binary for the area, a module per file in `tests/receive/`, so the crate and its
//! dependencies are linked once for all of them (cargo's `tests/testsuite/` is the model).
//! One file's tests: `cargo test --test receive receive::<module>::`.

#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]
mod support;

// An inline module takes its files from the folder of its name: `tests/receive/`.
mod receive {
    mod alerts;
    mod catalog;
    mod edges;
    mod envelope_differential;
    mod fuzz_regressions;
    mod idempotency;
    mod injected_clock;
    mod keyring_file;
    #[cfg(feature = "metrics")]
    mod metrics;
    #[cfg(feature = "postgres")]
    mod postgres_crash;
    #[cfg(all(feature = "postgres", feature = "client"))]
    mod postgres_migrations;
    #[cfg(feature = "postgres")]
    mod postgres_transactional;
    mod receiver;
    #[cfg(feature = "redis")]
    mod review_turn4_redis;
    mod robustness;
    mod vectors;
}
