//! `monite-webhooks`: the whole webhook integration loop from a terminal, on the
//! `monite-webhooks` crate's public API.
//!
//! Results go to stdout (one JSON document with `--json`), progress and errors to stderr.
//! Exit codes: 0 success, 1 a negative answer (an invalid signature, a delivery that was not
//! acknowledged, an API call that failed), 2 a usage or configuration error.

mod api;
mod args;
mod catalog;
mod commands;
mod deliver;
mod diagnose;
mod failure;
mod json_format;
mod secrets;
mod time;

use std::process::ExitCode;

use clap::Parser as _;

use crate::args::{Cli, Command};
use crate::failure::Failure;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Every HTTP client of the tool, the library's included, uses this provider. An error
    // means one is installed already, which serves as well.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return Failure::usage(format!("cannot start the async runtime: {e}")).exit(),
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(failure) => failure.exit(),
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let json = cli.json;
    match cli.command {
        Command::Sign(args) => commands::sign::run(&args, json),
        Command::Verify(args) => commands::verify::run(&args, json),
        Command::Send(args) => commands::send::run(args, json).await,
        Command::Listen(args) => commands::listen::run(args, json).await,
        Command::SimulateRetries(args) => commands::simulate_retries::run(args, json).await,
        Command::Deliveries(args) => commands::deliveries::run(&args, json).await,
        Command::Replay(args) => commands::replay::run(args, json).await,
        Command::Subscriptions(args) => commands::subscriptions::run(args, json).await,
        Command::Inbox(args) => commands::inbox::run(args, json).await,
        Command::Reconcile(args) => commands::reconcile::run(args, json).await,
        Command::Watch(args) => commands::watch::run(&args, json).await,
    }
}
