//! The receiver mounted in each framework: axum, actix-web, tower and hyper, AWS Lambda.
//!
//! One binary for the area, a module per file in `tests/adapters/`, so the crate and its
//! dependencies are linked once for all of them (cargo's `tests/testsuite/` is the model).
//! One file's tests: `cargo test --test adapters adapters::<module>::`.

#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]
mod support;

// An inline module takes its files from the folder of its name: `tests/adapters/`.
mod adapters {
    #[cfg(feature = "actix-web")]
    mod actix_adapter;
    #[cfg(feature = "axum")]
    mod axum_adapter;
    #[cfg(feature = "tower")]
    mod lambda;
    #[cfg(feature = "tower")]
    mod tower_service;
}
