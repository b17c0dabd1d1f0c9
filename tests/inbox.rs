//! The inbox against a real PostgreSQL: accepting, workers, crashes, replays, order,
//! metrics.
//!
//! One binary for the area, a module per file in `tests/inbox/`, so the crate and its
//! dependencies are linked once for all of them (cargo's `tests/testsuite/` is the model).
//! One file's tests: `cargo test --test inbox inbox::<module>::`. Built with the feature
//! `postgres` (its `[[test]]` entry); a module that needs more is gated below.

#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]
mod support;

// An inline module takes its files from the folder of its name: `tests/inbox/`.
mod inbox {
    mod crash;
    mod lifecycle;
    #[cfg(feature = "metrics")]
    mod metrics;
    mod order;
    mod replay;
    mod review_turn4;
    mod soak;
    mod store;
}
