//! What the integration tests share, one module per job. The root file of each test
//! binary (`tests/<area>.rs`) declares `mod support;` and uses what it needs; each module
//! allows its own dead code, since no binary uses all of it. The servers come from the
//! workspace's test kit (`testkit/`, shared with the CLI's tests and the benches); the
//! helpers over the library's types are here.
//!
//! - [`fixture`]: the receiver the adapter tests serve, its table of cases, a raw HTTP/1.1
//!   client, hostile requests, and delivering to a receiver directly.
//! - [`pg`], [`redis`]: a real PostgreSQL cluster and a real `redis-server` of the test's
//!   own, from the kit.
//! - [`inbox`]: an inbox on that PostgreSQL, a receiver writing to it, an envelope.
//! - [`fake_monite`]: the shipped emulator (`testing::Emulator`) as the tests know it.
//! - [`client`]: the client tests' shared set-up over the fake.
//! - [`examples`]: the example servers' binaries, built once with every backend.
//! - [`process`]: the name of a test, for running it again as a child process.
//! - [`openapi`]: Monite's OpenAPI document, and a checker and instance maker for its schemas.
//!
//! A module whose tests all need a feature is compiled only with that feature, so a build
//! without it does not type-check code nothing runs.

pub(crate) mod fixture;

pub(crate) mod examples;

#[cfg(feature = "postgres")]
#[allow(unused_imports, reason = "each test uses what it needs")]
pub(crate) use monite_webhooks_testkit::pg;

#[cfg(feature = "postgres")]
pub(crate) mod inbox;

#[cfg(feature = "postgres")]
pub(crate) mod swallowing;

#[cfg(feature = "redis")]
#[allow(unused_imports, reason = "each test uses what it needs")]
pub(crate) use monite_webhooks_testkit::redis;

#[cfg(feature = "emulator")]
pub(crate) mod fake_monite;

#[cfg(feature = "emulator")]
pub(crate) mod client;

#[cfg(feature = "emulator")]
pub(crate) mod openapi;

pub(crate) mod process;
