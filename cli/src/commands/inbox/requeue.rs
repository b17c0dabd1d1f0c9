//! `inbox requeue` (once `inbox replay`, still its alias): every matching event pending
//! again, below live events.

use std::process::ExitCode;

use clap::Args;
use monite_webhooks::inbox::{InboxState, PostgresInbox, RequeueFilter};
use monite_webhooks::jiff::Timestamp;
use monite_webhooks::{EventType, ObjectType};

use crate::failure::Failure;
use crate::output::Output;

#[derive(Debug, Args)]
pub(crate) struct RequeueArgs {
    /// Received at or after (RFC 3339, a date, Unix seconds, or an age such as 2h).
    #[arg(long, value_parser = crate::time::parse_timestamp)]
    since: Option<Timestamp>,
    /// Received before.
    #[arg(long, value_parser = crate::time::parse_timestamp)]
    until: Option<Timestamp>,
    /// Of this object type (`payable`).
    #[arg(long)]
    object_type: Option<String>,
    /// Of this event (`payable.created`, or `created` for every object type's).
    #[arg(long)]
    event: Option<String>,
    /// In this state: `dead` (the default), `done` (their handlers run again),
    /// `pending`, or `all` (every state but running).
    #[arg(long, default_value = "dead", value_parser = ["dead", "done", "pending", "all"])]
    state: String,
    /// Only count what would be requeued.
    #[arg(long)]
    dry_run: bool,
}

/// `--event` as an event type, and the object type its prefix names, if any
/// (`payable.created` is `created` of `payable`).
fn split_event(event: &str) -> (Option<ObjectType>, EventType) {
    let prefixed = ObjectType::KNOWN
        .iter()
        .filter_map(|known| {
            let rest = event.strip_prefix(known.as_str())?.strip_prefix('.')?;
            Some((known, rest))
        })
        .max_by_key(|(known, _)| known.as_str().len());
    match prefixed {
        Some((known, rest)) => (Some(known.clone()), EventType::from(rest)),
        None => (None, EventType::from(event)),
    }
}

fn filter_of(args: &RequeueArgs) -> Result<RequeueFilter, Failure> {
    let mut filter = RequeueFilter::default();
    filter.since = args.since;
    filter.until = args.until;
    filter.object_type = args.object_type.as_deref().map(ObjectType::from);
    if let Some(event) = &args.event {
        let (object_type, event_type) = split_event(event);
        match (&filter.object_type, object_type) {
            (Some(given), Some(named)) if *given != named => {
                return Err(Failure::usage(format!(
                    "--event {event} is not an event of --object-type {given}"
                )));
            }
            (None, named) => filter.object_type = named,
            _ => {}
        }
        filter.event = Some(event_type);
    }
    Ok(filter)
}

pub(crate) async fn run(
    inbox: &PostgresInbox,
    args: &RequeueArgs,
    output: Output,
) -> Result<ExitCode, Failure> {
    let state = &args.state;
    let dry_run = args.dry_run;
    let mut filter = filter_of(args)?;
    // Every state first, so that the operator sees what the state filter leaves
    // out (done events run their handlers again when requeued).
    let by_state = inbox.requeue_counts(&filter).await?;
    eprintln!(
        "matching events by state: {} dead, {} done, {} pending; requeuing {}",
        by_state.dead,
        by_state.done,
        by_state.pending,
        if state == "all" {
            "all of them".to_owned()
        } else {
            format!("the {state} ones")
        },
    );
    filter.state = (state != "all").then(|| InboxState::from(state.as_str()));
    // The count first: what a requeue would take, then (unless a dry run) the requeue.
    let matching = inbox.requeue(&filter, true).await?;
    let requeued = if dry_run {
        0
    } else {
        // A batch at a time, each committed: progress on stderr, results on stdout.
        inbox
            .requeue_with_progress(&filter, |progress| {
                eprintln!(
                    "requeued {} of {matching} (through row {})",
                    progress.requeued, progress.through_id
                );
            })
            .await?
    };
    // `replayed` is kept for the scripts of `inbox replay`: the same count as `requeued`.
    let report = serde_json::json!({
        "matching": matching,
        "requeued": requeued,
        "replayed": requeued,
        "dry_run": dry_run,
        "state": state,
        "by_state": by_state,
    });
    output.print(&report, |_| {
        if dry_run {
            println!("{matching} events would be requeued");
        } else {
            println!("{matching} events matched; {requeued} requeued, below live events");
        }
    });
    Ok(ExitCode::SUCCESS)
}
