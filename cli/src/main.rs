//! `monite-webhooks`: the whole webhook integration loop from a terminal, on the
//! `monite-webhooks` crate's public API.
//!
//! Results go to stdout (one JSON document with `--json`), progress and errors to stderr.
//! Exit codes: 0 success, 1 a negative answer (an invalid signature, a delivery that was not
//! acknowledged, an API call that failed), 2 a usage or configuration error.

mod api;
mod catalog;
mod commands;
mod deliver;
mod diagnose;
mod failure;
mod json_format;
mod ops;
mod options;
mod output;
mod secrets;
mod time;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::{
    deliveries, emulate, fetch, inbox, listen, reconcile, replay, send, sign, simulate_retries,
    subscriptions, verify, watch,
};
use crate::failure::Failure;
use crate::options::GlobalArgs;

/// Sign, verify, send, receive and replay Monite webhooks.
///
/// Secrets come from `--secret-file` (or `--secret`), else `MONITE_WEBHOOK_SECRETS`
/// (`<subscription_id>=<whsec_...>,...`), `MONITE_WEBHOOK_SECRET` (comma-separated, current
/// first) and the keyring file (`--keyring`, `MONITE_WEBHOOK_KEYRING`, or
/// `monite-webhooks-keyring.json` here), which `subscriptions` writes. They are never
/// printed. API credentials come from `MONITE_CLIENT_ID`, `MONITE_CLIENT_SECRET` and
/// `MONITE_ENVIRONMENT` (`sandbox` by default, `eu`, `na`, or a base URL).
#[derive(Debug, Parser)]
#[command(name = "monite-webhooks", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the `Monite-Signature` value for a body.
    Sign(sign::SignArgs),
    /// Check a `Monite-Signature` value against a body, and explain a mismatch.
    Verify(verify::VerifyArgs),
    /// POST a realistic signed event of any documented type to a URL.
    Send(send::SendArgs),
    /// Receive deliveries locally: print each verified event, explain each rejection.
    Listen(listen::ListenArgs),
    /// Deliver one event on Monite's retry schedule, compressed, until it is acknowledged.
    SimulateRetries(simulate_retries::SimulateRetriesArgs),
    /// The delivery log (`GET /webhook_deliveries`) as a table.
    Deliveries(deliveries::DeliveriesArgs),
    /// Fetch the object one event envelope is about (a file, or stdin) and print what was
    /// found: the object, gone, a parent id needed, or no endpoint.
    Fetch(fetch::FetchArgs),
    /// Re-send events from `GET /events` to a URL, signed with the local secret, in order.
    Replay(replay::ReplayArgs),
    /// Webhook subscriptions: list, create, ensure, enable, disable, regenerate, delete.
    Subscriptions(subscriptions::SubscriptionsArgs),
    /// Sweep every entity's events and POST those in each window, signed, in order;
    /// `reconcile status` prints the checkpoints.
    Reconcile(reconcile::ReconcileArgs),
    /// Print each disabled subscription, and re-enable it with `--reenable`.
    Watch(watch::WatchArgs),
    /// The durable inbox in PostgreSQL: status, list, show, retry, requeue, purge.
    Inbox(inbox::InboxArgs),
    /// A local Monite that retries, disables and recovers like the real one; `emulate
    /// trigger` asks it for events.
    Emulate(emulate::EmulateArgs),
}

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
    let output = cli.global.output();
    match cli.command {
        Command::Sign(args) => sign::run(&args, output),
        Command::Verify(args) => verify::run(&args, output),
        Command::Send(args) => send::run(args, output).await,
        Command::Listen(args) => listen::run(args, output).await,
        Command::SimulateRetries(args) => simulate_retries::run(args, output).await,
        Command::Deliveries(args) => deliveries::run(&args, output).await,
        Command::Fetch(args) => fetch::run(args, output).await,
        Command::Replay(args) => replay::run(args, output).await,
        Command::Subscriptions(args) => subscriptions::run(args, output).await,
        Command::Inbox(args) => inbox::run(args, output).await,
        Command::Reconcile(args) => reconcile::run(args, output).await,
        Command::Watch(args) => watch::run(&args, output).await,
        Command::Emulate(args) => emulate::run(args, output).await,
    }
}
