//! The API client against the fake Monite API: requests, recovery of missed events,
//! `ensure`, fetching an event's object and the handlers that receive it.
//!
//! One binary for the area, a module per file in `tests/client/`, so the crate and its
//! dependencies are linked once for all of them (cargo's `tests/testsuite/` is the model).
//! One file's tests: `cargo test --features emulator --test client client::<module>::`.
//! Built with the feature `emulator` (its `[[test]]` entry: the fake Monite is the shipped
//! emulator, which brings `client`); a module that needs more is gated below.

#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]
mod support;

// An inline module takes its files from the folder of its name: `tests/client/`.
mod client {
    mod api;
    mod ensure;
    mod fetch;
    mod fetch_handlers;
    mod fetch_table;
    #[cfg(any(feature = "postgres", feature = "redis"))]
    mod fleet_budget;
    mod recovery;
}
