//! The reconciler and the watchdog against the fake Monite API: sweeps, the rate budget,
//! checkpoints, metrics.
//!
//! One binary for the area, a module per file in `tests/reconcile/`, so the crate and its
//! dependencies are linked once for all of them (cargo's `tests/testsuite/` is the model).
//! One file's tests: `cargo test --features emulator --test reconcile reconcile::<module>::`.
//! Built with the feature `emulator` (its `[[test]]` entry: the fake Monite is the shipped
//! emulator, which brings `client`); a module that needs more is gated below.

#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]
mod support;

// An inline module takes its files from the folder of its name: `tests/reconcile/`.
mod reconcile {
    #[cfg(all(feature = "postgres", feature = "redis"))]
    mod lease;
    #[cfg(feature = "metrics")]
    mod metrics;
    #[cfg(feature = "postgres")]
    mod postgres_checkpoints;
    mod rate_budget;
    mod reconciler;
    #[cfg(feature = "redis")]
    mod redis_checkpoints;
    #[cfg(feature = "metrics")]
    mod review_turn4;
    mod scale;
    mod watch;
}
