//! `inbox replay`: every matching event pending again, below live events.

use std::process::ExitCode;

use clap::Args;
use monite_webhooks::inbox::{PostgresInbox, ReplayFilter};

use crate::failure::Failure;
use crate::output::Output;

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// Received at or after (RFC 3339, a date, Unix seconds, or an age such as 2h).
    #[arg(long, value_parser = crate::time::parse_time)]
    since: Option<String>,
    /// Received before.
    #[arg(long, value_parser = crate::time::parse_time)]
    until: Option<String>,
    /// Of this object type (`payable`).
    #[arg(long)]
    object_type: Option<String>,
    /// Of this event (`payable.created`).
    #[arg(long)]
    event: Option<String>,
    /// In this state: `dead` (the default), `done` (their handlers run again),
    /// `pending`, or `all` (every state but running).
    #[arg(long, default_value = "dead", value_parser = ["dead", "done", "pending", "all"])]
    state: String,
    /// Only count what would be replayed.
    #[arg(long)]
    dry_run: bool,
}

pub(crate) async fn run(
    inbox: &PostgresInbox,
    args: &ReplayArgs,
    output: Output,
) -> Result<ExitCode, Failure> {
    let state = &args.state;
    let dry_run = args.dry_run;
    let mut filter = ReplayFilter::default();
    filter.since.clone_from(&args.since);
    filter.until.clone_from(&args.until);
    filter.object_type.clone_from(&args.object_type);
    filter.event.clone_from(&args.event);
    // Every state first, so that the operator sees what the state filter leaves
    // out (done events run their handlers again when replayed).
    let by_state = inbox.replay_counts(&filter).await?;
    eprintln!(
        "matching events by state: {} dead, {} done, {} pending; replaying {}",
        by_state.dead,
        by_state.done,
        by_state.pending,
        if state == "all" {
            "all of them".to_owned()
        } else {
            format!("the {state} ones")
        },
    );
    filter.state = (state != "all").then(|| state.clone());
    // The count first: what a replay would take, then (unless a dry run) the replay.
    let matching = inbox.replay(&filter, true).await?;
    let replayed = if dry_run {
        0
    } else {
        // A batch at a time, each committed: progress on stderr, results on stdout.
        inbox
            .replay_with_progress(&filter, |progress| {
                eprintln!(
                    "replayed {} of {matching} (through row {})",
                    progress.replayed, progress.through_id
                );
            })
            .await?
    };
    let report = serde_json::json!({
        "matching": matching,
        "replayed": replayed,
        "dry_run": dry_run,
        "state": state,
        "by_state": by_state,
    });
    output.print(&report, |_| {
        if dry_run {
            println!("{matching} events would be replayed");
        } else {
            println!("{matching} events matched; {replayed} replayed, below live events");
        }
    });
    Ok(ExitCode::SUCCESS)
}
