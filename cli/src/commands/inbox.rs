//! `inbox`: the durable inbox in PostgreSQL, for an operator.

use std::process::ExitCode;

use monite_webhooks::PostgresStore;
use monite_webhooks::inbox::{InboxEvent, PostgresInbox, ReplayFilter};

use crate::args::{InboxArgs, InboxCommand};
use crate::failure::Failure;

pub(crate) async fn run(args: InboxArgs, json: bool) -> Result<ExitCode, Failure> {
    let store = PostgresStore::connect(&args.database_url, &args.namespace).await?;
    let inbox = PostgresInbox::new(&store);
    match args.command {
        InboxCommand::Status => {
            let status = inbox.status().await?;
            if json {
                super::print_json(&status);
            } else {
                println!(
                    "pending {}  retrying {}  running {}  done {}  dead {}",
                    status.pending, status.retrying, status.running, status.done, status.dead
                );
                if let Some(age) = status.oldest_pending_seconds {
                    println!("oldest pending: {age} s");
                }
            }
        }
        InboxCommand::List { state, limit } => {
            let events = inbox.list(state.as_deref(), limit).await?;
            if json {
                super::print_json(&events);
            } else {
                for event in &events {
                    print_row(event);
                }
            }
        }
        InboxCommand::Show { id } => {
            let Some((event, body)) = inbox.show(id).await? else {
                return Err(Failure::negative(format!("no inbox event {id}")));
            };
            if json {
                super::print_json(&serde_json::json!({ "event": event, "body": body }));
            } else {
                print_row(&event);
                if let Some(error) = &event.last_error {
                    println!("last error: {error}");
                }
                println!("{body}");
            }
        }
        InboxCommand::Retry { id } => {
            let retried = inbox.retry(id).await?;
            if json {
                super::print_json(&serde_json::json!({ "id": id, "retried": retried }));
            } else if retried {
                println!("event {id} is pending again");
            }
            if !retried {
                return Err(Failure::negative(format!(
                    "no inbox event {id} that is not running"
                )));
            }
        }
        InboxCommand::Replay {
            since,
            until,
            object_type,
            event,
            state,
            dry_run,
        } => {
            let mut filter = ReplayFilter::default();
            filter.since = since
                .map(|t| crate::time::parse_time(&t, "--since"))
                .transpose()?;
            filter.until = until
                .map(|t| crate::time::parse_time(&t, "--until"))
                .transpose()?;
            filter.object_type = object_type;
            filter.event = event;
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
            if json {
                super::print_json(&serde_json::json!({
                    "matching": matching,
                    "replayed": replayed,
                    "dry_run": dry_run,
                    "state": state,
                    "by_state": by_state,
                }));
            } else if dry_run {
                println!("{matching} events would be replayed");
            } else {
                println!("{matching} events matched; {replayed} replayed, below live events");
            }
        }
        InboxCommand::Purge { dead, older_than } => {
            let age = crate::time::parse_age(older_than.trim()).ok_or_else(|| {
                Failure::usage(format!(
                    "--older-than {older_than:?} is not an age such as 30m, 2h or 7d"
                ))
            })?;
            debug_assert!(dead, "clap requires --dead");
            let purged = inbox.purge_dead(age).await?;
            if json {
                super::print_json(&serde_json::json!({ "purged": purged }));
            } else {
                println!("{purged} dead events purged");
            }
        }
        InboxCommand::Pause => {
            inbox.pause().await?;
            if json {
                super::print_json(&serde_json::json!({ "paused": true }));
            } else {
                println!(
                    "paused: no worker of {} claims until `inbox resume`",
                    args.namespace
                );
            }
        }
        InboxCommand::Resume => {
            inbox.resume().await?;
            if json {
                super::print_json(&serde_json::json!({ "paused": false }));
            } else {
                println!("resumed: workers of {} claim again", args.namespace);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_row(event: &InboxEvent) {
    println!(
        "{:>8}  {:<8} {:>3}  {}  {:<32} {}",
        event.id,
        event.state,
        event.attempt,
        event.received_at,
        event.event,
        event.event_id.as_deref().unwrap_or("-"),
    );
}
