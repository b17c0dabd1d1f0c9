//! `inbox purge`: dead events received before an age, deleted.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use monite_webhooks::inbox::PostgresInbox;

use crate::failure::Failure;
use crate::output::Output;

#[derive(Debug, Args)]
pub(crate) struct PurgeArgs {
    /// Dead events (the only ones purged by hand; done rows keep the dedup keys).
    #[arg(long, required = true)]
    dead: bool,
    /// Received more than this long ago (`90s`, `30m`, `2h`, `7d`, `2w`).
    #[arg(long, value_parser = crate::time::parse_age_arg)]
    older_than: Duration,
}

pub(crate) async fn run(
    inbox: &PostgresInbox,
    args: &PurgeArgs,
    output: Output,
) -> Result<ExitCode, Failure> {
    debug_assert!(args.dead, "clap requires --dead");
    let purged = inbox.purge_dead(args.older_than).await?;
    let report = serde_json::json!({ "purged": purged });
    output.print(&report, |_| println!("{purged} dead events purged"));
    Ok(ExitCode::SUCCESS)
}
