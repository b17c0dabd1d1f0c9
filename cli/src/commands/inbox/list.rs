//! `inbox list`: the newest events, in one state if given.

use std::process::ExitCode;

use clap::Args;
use monite_webhooks::inbox::{InboxState, PostgresInbox};

use crate::failure::Failure;
use crate::output::Output;

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// `pending`, `running`, `done` or `dead`.
    #[arg(long)]
    state: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    limit: i64,
}

pub(crate) async fn run(
    inbox: &PostgresInbox,
    args: &ListArgs,
    output: Output,
) -> Result<ExitCode, Failure> {
    let state = args.state.as_deref().map(InboxState::from);
    let events = inbox.list(state.as_ref(), args.limit).await?;
    output.print(&events, |events| events.iter().for_each(super::print_row));
    Ok(ExitCode::SUCCESS)
}
