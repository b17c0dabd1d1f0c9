//! The emulator (`monite_webhooks::testing::Emulator`, feature `emulator`), over real HTTP
//! on loopback: its API against Monite's schemas, its deliveries on Monite's schedule, its
//! control endpoints against hostile input. One binary, a module per file in
//! `tests/emulator/`; one file's tests: `cargo test --features emulator --test emulator
//! emulator::<module>::`.

#[allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]
mod support;

// An inline module takes its files from the folder of its name: `tests/emulator/`.
mod emulator {
    mod api;
    mod control;
    mod deliveries;
    mod http;
    mod receiver;
    mod recipe;
}
