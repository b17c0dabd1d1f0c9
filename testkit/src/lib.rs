//! The test kit of `monite-webhooks`, shared by the library's tests and benches and by the
//! command-line tool's tests: servers a test starts for itself, on a free loopback port,
//! stopped when dropped; and the data files they read. The fake Monite
//! is the library's own emulator (`monite_webhooks::testing::Emulator`), which the
//! tests reach through `tests/support/fake_monite.rs`.
//!
//! - [`fixture`]: the JSON files of the library's `tests/data/`.
//! - [`pg`]: a real PostgreSQL cluster of the test's own.
//! - [`redis`]: a real `redis-server` of the test's own.
//!
//! It depends on no type of the library, so the library is built once per test: helpers
//! over the library's types stay in `tests/support/`.

#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    reason = "a test kit: set-up that goes wrong panics and says why"
)]

pub mod fixture;

pub mod pg;

pub mod redis;
