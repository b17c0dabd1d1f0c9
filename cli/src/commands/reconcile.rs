//! `reconcile`: the library's reconciler over every entity (or those named), each event of
//! each window re-signed with the local secret and POSTed in order, as `replay` does; the
//! checkpoints in a state file, the last errors beside it (`<state>.errors`). A target that
//! does not acknowledge an event stops its entity's window, whose checkpoint then stays.
//! `reconcile status` prints the checkpoints, their lag and the last error per entity.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use monite_webhooks::jiff::Timestamp;
use monite_webhooks::reconcile::{
    CheckpointStore, CycleSummary, FileCheckpoints, MemoryCheckpoints, Reconciler,
};
use monite_webhooks::{Dispatcher, Event, Receiver, Unhandled, Verifier};
use serde::Serialize;

use crate::deliver;
use crate::failure::{self, Failure};
use crate::options::SecretArgs;
use crate::output::Output;
use crate::secrets;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct ReconcileArgs {
    #[command(subcommand)]
    status: Option<ReconcileStatus>,
    /// Where to POST the events (required to sweep).
    #[arg(long, value_name = "URL")]
    to: Option<String>,
    /// The checkpoint file, one line per entity.
    #[arg(long, value_name = "FILE", default_value = "monite-reconcile.state")]
    state: PathBuf,
    /// One cycle, then exit (the default).
    #[arg(long, conflicts_with = "every")]
    once: bool,
    /// A cycle every DURATION (`90s`, `5m`, `1h`), until interrupted.
    #[arg(long, value_name = "DURATION", value_parser = crate::time::parse_interval)]
    every: Option<Duration>,
    /// Where an entity without a checkpoint starts: an age or a time within the last 8 days
    /// (what the receiver remembers); 24 h ago by default.
    #[arg(long, value_name = "T", value_parser = parse_timestamp)]
    since: Option<Timestamp>,
    /// The least lookback before each checkpoint; 15 minutes by default.
    #[arg(long, value_name = "DURATION", value_parser = crate::time::parse_interval)]
    lookback: Option<Duration>,
    /// Requests per second to Monite, at most.
    #[arg(long, value_name = "N", default_value_t = 6.0)]
    max_rate: f64,
    /// Only this entity (repeatable); every entity of `GET /entities` otherwise.
    #[arg(long = "entity", value_name = "ID")]
    entities: Vec<String>,
    /// List what would be sent; send nothing, save no checkpoint.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    secrets: SecretArgs,
}

#[derive(Debug, Subcommand)]
enum ReconcileStatus {
    /// The checkpoints, their lag, and the last error per entity.
    Status {
        /// The checkpoint file.
        #[arg(long, value_name = "FILE", default_value = "monite-reconcile.state")]
        state: PathBuf,
    },
}

/// `--since`: a time as `parse_time` takes it, then as the reconciler's timestamp.
fn parse_timestamp(text: &str) -> Result<Timestamp, String> {
    let rfc3339 = crate::time::parse_time(text)?;
    rfc3339.parse().map_err(|e| format!("{e}"))
}

/// One cycle, as printed.
#[derive(Debug, Serialize)]
struct Cycle {
    swept: usize,
    failed: BTreeMap<String, String>,
    sent: usize,
    already_handled: usize,
    unparsable: usize,
    deep: bool,
    dry_run: bool,
}

/// One entity in `reconcile status`.
#[derive(Debug, Serialize)]
struct Standing {
    entity_id: String,
    checkpoint: String,
    lag_seconds: i64,
    last_error: Option<String>,
}

pub(crate) async fn run(args: ReconcileArgs, output: Output) -> Result<ExitCode, Failure> {
    if let Some(ReconcileStatus::Status { state }) = &args.status {
        return status(state, output).await;
    }
    let to = args
        .to
        .clone()
        .ok_or_else(|| Failure::usage("--to URL is required to reconcile"))?;
    deliver::check_url(&to, "--to")?;
    let (secret, _) = secrets::signing(&args.secrets)?;
    let verifying = secret.clone();
    let every = args.every;
    let client = crate::api::builder()?.max_rate(args.max_rate).build()?;
    let file = FileCheckpoints::open(&args.state)?;
    let http = deliver::http_client(Duration::from_secs(30))?;
    let dry_run = args.dry_run;
    let poster = move |event: Event, _: Unhandled| {
        let (http, secret, to) = (http.clone(), secret.clone(), to.clone());
        async move {
            let id = event.id().unwrap_or_default().to_owned();
            if dry_run {
                // With --json, stdout holds the cycle's document alone.
                if output.is_json() {
                    eprintln!("would send {} {id}", event.action());
                } else {
                    println!("would send {} {id}", event.action());
                }
                return Ok(());
            }
            let answer = deliver::post_signed(&http, &to, event.body(), &secret).await;
            if answer.ok() {
                Ok(())
            } else {
                Err(format!("{} {id} -> {}", event.action(), answer.describe()))
            }
        }
    };
    // The receiver's memory store keeps an event sent once per run; the target's own
    // store makes a repeat after a restart harmless.
    let receiver = Receiver::new(
        Verifier::new(verifying),
        Dispatcher::builder().fallback(poster).build(),
    );
    let mut builder = if dry_run {
        // Read the checkpoints, write none.
        let copy = MemoryCheckpoints::default();
        for (entity, at) in file.all().await? {
            copy.save(&entity, at).await?;
        }
        Reconciler::builder(client, receiver, copy)
    } else {
        Reconciler::builder(client, receiver, file)
    }
    // The target deduplicates with its own store; this one only spares a second POST
    // within a run.
    .allow_process_local_store();
    if let Some(since) = args.since {
        builder = builder.since_time(since);
    }
    if let Some(lookback) = args.lookback {
        builder = builder.lookback(lookback);
    }
    if !args.entities.is_empty() {
        builder = builder.entities(args.entities.clone());
    }
    if every.is_none() {
        // One run sweeps every entity; only cycles that repeat take the others in turn.
        builder = builder.cold_per_cycle(usize::MAX);
    }
    let reconciler = builder.build()?;
    let errors_path = errors_path(&args.state);
    loop {
        let cycle = reconciler.run_once().await?;
        if !dry_run {
            save_errors(&errors_path, &cycle)?;
        }
        let ok = print(&cycle, dry_run, output);
        let Some(every) = every else {
            return Ok(failure::outcome(ok));
        };
        tokio::time::sleep(every).await;
    }
}

fn print(cycle: &CycleSummary, dry_run: bool, output: Output) -> bool {
    let shown = Cycle {
        swept: cycle.swept,
        failed: cycle.failed.iter().cloned().collect(),
        sent: cycle.handled,
        already_handled: cycle.duplicates,
        unparsable: cycle.unparsable,
        deep: cycle.deep,
        dry_run,
    };
    output.print(&shown, |shown| {
        println!(
            "{} entities swept, {} events {}, {} already handled, {} unparsable, {} failed",
            shown.swept,
            shown.sent,
            if dry_run { "to send" } else { "sent" },
            shown.already_handled,
            shown.unparsable,
            shown.failed.len()
        );
        for (entity, error) in &shown.failed {
            eprintln!("error: entity {entity}: {error}");
        }
    });
    shown.failed.is_empty() && shown.unparsable == 0
}

async fn status(state: &Path, output: Output) -> Result<ExitCode, Failure> {
    let store = FileCheckpoints::open(state)?;
    let errors = load_errors(&errors_path(state));
    let now = Timestamp::now();
    let standings: Vec<Standing> = store
        .all()
        .await?
        .into_iter()
        .map(|(entity_id, at)| Standing {
            lag_seconds: now.duration_since(at).as_secs(),
            checkpoint: at.to_string(),
            last_error: errors.get(&entity_id).cloned(),
            entity_id,
        })
        .collect();
    output.print(&standings, |standings| {
        for s in standings {
            let error = s.last_error.as_deref().unwrap_or("-");
            println!(
                "{} {} lag {}s {error}",
                s.entity_id, s.checkpoint, s.lag_seconds
            );
        }
    });
    Ok(failure::outcome(
        standings.iter().all(|s| s.last_error.is_none()),
    ))
}

fn errors_path(state: &Path) -> PathBuf {
    let mut name = state.as_os_str().to_owned();
    name.push(".errors");
    PathBuf::from(name)
}

fn load_errors(path: &Path) -> BTreeMap<String, String> {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// The last cycle's errors, by entity.
fn save_errors(path: &Path, cycle: &CycleSummary) -> Result<(), Failure> {
    let errors: BTreeMap<&str, &str> = cycle
        .failed
        .iter()
        .map(|(entity, error)| (entity.as_str(), error.as_str()))
        .collect();
    let text = serde_json::to_vec_pretty(&errors).unwrap_or_default();
    std::fs::write(path, text)
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))
}
