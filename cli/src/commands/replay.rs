//! `replay`: events from `GET /events`, re-signed with the local secret and POSTed in order,
//! through the library's recovery (which pages through the events and says where to
//! resume). A replay stops at the first event the target does not acknowledge. An event the
//! parser refuses cannot be signed as an event and is not sent: it is counted, named on
//! stderr, and makes the replay exit 1, after the others were replayed.

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::Args;
use futures_util::TryStreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use monite_webhooks::client::ListQuery;
use monite_webhooks::{Dispatcher, Event, ObjectType, Receiver, Unhandled, Verifier};
use serde::Serialize;

use crate::deliver;
use crate::failure::{self, Failure};
use crate::options::{EntityArgs, SecretArgs};
use crate::output::Output;
use crate::secrets;

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    #[command(flatten)]
    entity: EntityArgs,
    /// Events created since this time: RFC 3339, Unix seconds, or an age (`30m`, `2h`, `7d`).
    #[arg(long, value_name = "T", required_unless_present = "resume_from", value_parser = crate::time::parse_time)]
    since: Option<String>,
    /// Events created until this time (same forms).
    #[arg(long, value_name = "T", value_parser = crate::time::parse_time)]
    until: Option<String>,
    /// Only this object type.
    #[arg(long, value_name = "O")]
    object_type: Option<String>,
    /// Where to POST them.
    #[arg(long, value_name = "URL")]
    to: String,
    #[command(flatten)]
    secrets: SecretArgs,
    /// Continue a stopped replay from the page it printed.
    #[arg(long, value_name = "TOKEN")]
    resume_from: Option<String>,
    /// Only events whose delivery the delivery log shows as failed.
    #[arg(long)]
    failed_only: bool,
    /// Events per page; a replay resumes at page boundaries.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u8).range(1..=100))]
    page_size: u8,
}

/// How far a replay got.
#[derive(Debug, Default, Clone, Serialize)]
struct Summary {
    /// Events read from `GET /events`.
    events: usize,
    /// Events POSTed and acknowledged.
    acknowledged: usize,
    /// Events left out by `--failed-only`.
    skipped: usize,
    /// Events the parser refused, which were not replayed.
    unparsable: usize,
    /// Those events: each one's `id` (if readable) and why it was refused.
    unparsable_events: Vec<Unparsable>,
    /// Pages finished.
    pages: usize,
    /// Whether every page was replayed.
    completed: bool,
    /// What to pass to `--resume-from` to go on, when stopped after a page.
    resume_from: Option<String>,
    /// Why the replay stopped early.
    stopped: Option<String>,
}

/// An event the parser refused.
#[derive(Debug, Clone, Serialize)]
struct Unparsable {
    id: Option<String>,
    error: String,
}

impl Summary {
    fn set_unparsable(&mut self, refused: &[monite_webhooks::client::UnparsableEvent]) {
        self.unparsable = refused.len();
        self.unparsable_events = refused
            .iter()
            .map(|e| Unparsable {
                id: e.id.clone(),
                error: e.error.clone(),
            })
            .collect();
    }
}

pub(crate) async fn run(args: ReplayArgs, output: Output) -> Result<ExitCode, Failure> {
    deliver::check_url(&args.to, "--to")?;
    let (secret, _) = secrets::signing(&args.secrets)?;
    let client = crate::api::client()?;
    let entity_id = args.entity.entity_id.clone();

    let only: Option<HashSet<String>> = if args.failed_only {
        // The whole log: filtering it by time would rest on deliveries' own creation times,
        // which the delivery resource does not show.
        let query = ListQuery::new();
        let failed: HashSet<String> = client
            .webhook_deliveries(entity_id.clone())
            .list(query)
            .try_filter(|d| std::future::ready(d.was_successful == Some(false)))
            .map_ok(|d| d.event_id)
            .try_collect()
            .await?;
        Some(failed)
    } else {
        None
    };

    let summary = Arc::new(Mutex::new(Summary {
        resume_from: args.resume_from.clone(),
        ..Summary::default()
    }));
    let progress = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {pos} events replayed {wide_msg}") {
        progress.set_style(style);
    }
    progress.enable_steady_tick(Duration::from_millis(120));

    let http = deliver::http_client(Duration::from_secs(30))?;
    let poster = {
        let (summary, progress, to) = (summary.clone(), progress.clone(), args.to.clone());
        let (only, secret) = (Arc::new(only), secret.clone());
        move |event: Event, _: Unhandled| {
            let (summary, progress, to, only) =
                (summary.clone(), progress.clone(), to.clone(), only.clone());
            let (http, secret) = (http.clone(), secret.clone());
            async move {
                let id = event.id().unwrap_or_default().to_owned();
                lock(&summary).events += 1;
                if only.as_ref().as_ref().is_some_and(|ids| !ids.contains(&id)) {
                    lock(&summary).skipped += 1;
                    return Ok(());
                }
                progress.set_message(format!("{} {id}", event.action()));
                let answer = deliver::post_signed(&http, &to, event.body(), &secret).await;
                if !answer.ok() {
                    let why = format!("{} {id} -> {}", event.action(), answer.describe());
                    lock(&summary).stopped = Some(why.clone());
                    return Err(why);
                }
                lock(&summary).acknowledged += 1;
                progress.inc(1);
                Ok(())
            }
        }
    };
    // The receiver only dispatches: every event reaches the poster, with no idempotency
    // store, so a replay sends every event again.
    let receiver = Receiver::builder(
        Verifier::new(secret),
        Dispatcher::builder().fallback(poster).build(),
    )
    .without_idempotency()
    .build();
    let mut recovery = client
        .recover_missed_events(&receiver, entity_id)
        .page_size(args.page_size)
        .on_progress({
            let summary = summary.clone();
            move |report| {
                let mut summary = lock(&summary);
                summary.pages += 1;
                summary.resume_from.clone_from(&report.resume_from);
                summary.set_unparsable(&report.unparsable);
            }
        });
    if let Some(token) = &args.resume_from {
        recovery = recovery.resume_from(token.clone());
    } else {
        if let Some(since) = &args.since {
            recovery = recovery.since(since.clone());
        }
        if let Some(until) = &args.until {
            recovery = recovery.until(until.clone());
        }
        if let Some(object_type) = &args.object_type {
            recovery = recovery.object_type(&ObjectType::from(object_type.as_str()));
        }
    }
    let result = recovery.run().await;
    progress.finish_and_clear();
    let mut summary = lock(&summary).clone();
    if let Ok(progress) = &result {
        summary.set_unparsable(&progress.unparsable);
    }
    summary.completed = result.is_ok();
    if result.is_ok() {
        summary.resume_from = None;
    } else if summary.stopped.is_none() {
        summary.stopped = result.as_ref().err().map(ToString::to_string);
    }
    output.print(&summary, |summary| {
        let unparsable = if summary.unparsable == 0 {
            String::new()
        } else {
            format!(", {} unparsable (not replayed)", summary.unparsable)
        };
        println!(
            "{} events: {} replayed to {}, {} skipped{unparsable}, {} pages{}",
            summary.events,
            summary.acknowledged,
            args.to,
            summary.skipped,
            summary.pages,
            if summary.completed && summary.unparsable == 0 {
                ", done"
            } else {
                ""
            }
        );
    });
    for refused in &summary.unparsable_events {
        output.text_error_line(format_args!(
            "error: event {} could not be parsed, so it was not replayed: {}",
            refused.id.as_deref().unwrap_or("(no id)"),
            refused.error
        ));
    }
    if summary.completed {
        return Ok(failure::outcome(summary.unparsable == 0));
    }
    let resume = summary.resume_from.as_deref().map_or_else(
        || "run it again with the same options".to_owned(),
        |token| format!("resume with --resume-from {token}"),
    );
    let why = summary.stopped.unwrap_or_default();
    output.text_error_line(format_args!("error: replay stopped at {why}; {resume}"));
    Ok(failure::outcome(false))
}

fn lock(summary: &Mutex<Summary>) -> std::sync::MutexGuard<'_, Summary> {
    summary.lock().unwrap_or_else(PoisonError::into_inner)
}
