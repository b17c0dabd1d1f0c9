//! The example servers as users start them: real processes over loopback.
//!
//! One binary for the area, a module per file in `tests/example_servers/`, so the crate and
//! its dependencies are linked once for all of them (cargo's `tests/testsuite/` is the
//! model). One file's tests: `cargo test --test example_servers
//! example_servers::<module>::`. Built with the features `axum`, `actix-web`, `postgres`
//! (its `[[test]]` entry); a module that needs more is gated below.

#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]
mod support;

// An inline module takes its files from the folder of its name: `tests/example_servers/`.
mod example_servers {
    #[cfg(feature = "emulator")]
    mod emulator_recipe;
    #[cfg(all(feature = "emulator", feature = "redis"))]
    mod fleet;
    #[cfg(feature = "emulator")]
    mod reconcile;
    #[cfg(all(feature = "tracing", feature = "redis"))]
    mod servers;
}
