//! Recovers the events a listener missed, through the same handlers and idempotency store
//! the receiver uses, against the real sandbox (or any environment).
//!
//! ```sh
//! MONITE_CLIENT_ID=... MONITE_CLIENT_SECRET=... MONITE_ENTITY_ID=... \
//! MONITE_RECOVER_SINCE=2024-05-01T00:00:00Z \
//!     cargo run --example recover_missed_events --features client
//! ```
//!
//! Optional: `MONITE_ENVIRONMENT` (`sandbox`, the default, `eu`, `na`, or a base URL),
//! `MONITE_RECOVER_RESUME` (a token an interrupted run printed). Prints one JSON line per
//! recovered event on stdout and progress on stderr.

#![allow(
    clippy::print_stdout,
    reason = "the example reports recovered events on stdout"
)]

use monite_webhooks::client::{Client, Environment};
use monite_webhooks::{Dispatcher, Event, Receiver, Secret, Unhandled, Verifier};

#[path = "common/event_line.rs"]
mod event_line;
use event_line::print_handled;

fn required(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let environment = match std::env::var("MONITE_ENVIRONMENT").as_deref() {
        Ok("eu") => Environment::Eu,
        Ok("na") => Environment::Na,
        Ok(url) if url.starts_with("http") => Environment::Custom(url.to_owned()),
        _ => Environment::Sandbox,
    };
    let client = Client::builder(environment)
        .credentials(
            required("MONITE_CLIENT_ID")?,
            required("MONITE_CLIENT_SECRET")?,
        )
        .build()?;

    // The same dispatcher (and, in a real service, the same idempotency store) as the
    // receiver's. Recovery does not verify signatures: the events come from Monite's API.
    let dispatcher = Dispatcher::builder()
        .fallback(|event: Event, _: Unhandled| async move { print_handled(&event) })
        .build();
    let unused_secret = Secret::new("whsec_recovery_does_not_verify")?;
    let receiver = Receiver::new(Verifier::new(unused_secret), dispatcher);

    let mut recovery = client
        .recover_missed_events(&receiver, required("MONITE_ENTITY_ID")?)
        .since(required("MONITE_RECOVER_SINCE")?)
        .on_progress(|progress| {
            eprintln!("{progress}");
            if let Some(token) = &progress.resume_from {
                eprintln!("  to resume: MONITE_RECOVER_RESUME={token}");
            }
        });
    if let Ok(token) = std::env::var("MONITE_RECOVER_RESUME") {
        recovery = recovery.resume_from(token);
    }
    let done = recovery.run().await?;
    // Events the parser refused were not dispatched: the summary names each, with why.
    eprintln!("done: {done}");
    Ok(())
}
