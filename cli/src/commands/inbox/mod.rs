//! `inbox`: the durable inbox in PostgreSQL, for an operator.

mod list;
mod pause;
mod purge;
mod requeue;
mod retry;
mod show;
mod status;

use std::process::ExitCode;

use clap::{Args, Subcommand};
use monite_webhooks::PostgresStore;
use monite_webhooks::inbox::{InboxEvent, PostgresInbox};

use crate::failure::Failure;
use crate::options::DatabaseArgs;
use crate::output::Output;

#[derive(Debug, Args)]
pub(crate) struct InboxArgs {
    #[command(flatten)]
    database: DatabaseArgs,

    #[command(subcommand)]
    command: InboxCommand,
}

#[derive(Debug, Subcommand)]
enum InboxCommand {
    /// Events by state, and the age of the oldest pending one.
    Status,
    /// The newest events, in one state if given.
    List(list::ListArgs),
    /// One event, with its body.
    Show(show::ShowArgs),
    /// Make one done or dead event pending again, with a fresh set of attempts.
    Retry(retry::RetryArgs),
    /// Make every matching event pending again, below live events: dead ones unless
    /// `--state` says otherwise. Prints the matching events by state first; only counts
    /// with `--dry-run`. Also `replay`, its older name.
    #[command(visible_alias = "replay")]
    Requeue(requeue::RequeueArgs),
    /// Delete dead events received before an age.
    Purge(purge::PurgeArgs),
    /// Stop every worker of the namespace, in every process, from claiming; accepting
    /// goes on.
    Pause,
    /// Let the workers claim again after `pause`.
    Resume,
}

pub(crate) async fn run(args: InboxArgs, output: Output) -> Result<ExitCode, Failure> {
    let namespace = &args.database.namespace;
    let store = PostgresStore::connect(&args.database.database_url, namespace).await?;
    let inbox = PostgresInbox::new(&store);
    match args.command {
        InboxCommand::Status => status::run(&inbox, output).await,
        InboxCommand::List(args) => list::run(&inbox, &args, output).await,
        InboxCommand::Show(args) => show::run(&inbox, &args, output).await,
        InboxCommand::Retry(args) => retry::run(&inbox, &args, output).await,
        InboxCommand::Requeue(args) => requeue::run(&inbox, &args, output).await,
        InboxCommand::Purge(args) => purge::run(&inbox, &args, output).await,
        InboxCommand::Pause => pause::run(&inbox, namespace, true, output).await,
        InboxCommand::Resume => pause::run(&inbox, namespace, false, output).await,
    }
}

/// One event on one line, as `list` and `show` print it.
fn print_row(event: &InboxEvent) {
    println!(
        "{:>8}  {:<8} {:>3}  {:.3}  {:<32} {}",
        event.id,
        event.state.as_str(),
        event.attempt,
        event.received_at,
        event.action(),
        event.event_id.as_deref().unwrap_or("-"),
    );
}
