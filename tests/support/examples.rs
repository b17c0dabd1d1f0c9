//! The example servers' binaries, built once for every test binary that starts them: one
//! feature set for all, so that one test's build never replaces another's binary with a
//! build lacking what it needs (and the servers are compiled once, not once per set).

#![allow(dead_code, reason = "each test uses what it needs")]

use std::path::PathBuf;
use std::process::Command;

/// The features the example servers are built with: every backend they can use.
const FEATURES: &str = "axum,actix-web,tracing,redis,postgres,client";

/// `target/<profile>/examples/<name>`, built first: `cargo test --test NAME` alone builds
/// no example, and an old binary would test old code.
///
/// # Panics
/// If the build fails.
pub(crate) fn example(name: &str) -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--quiet", "--example", "axum_server", "--example"])
            .args(["actix_server", "--features", FEATURES])
            .status()
            .unwrap();
        assert!(status.success(), "building the example servers failed");
    });
    let deps = std::env::current_exe().unwrap();
    deps.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name)
}
