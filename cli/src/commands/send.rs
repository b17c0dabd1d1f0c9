//! `send`: a realistic signed event, POSTed as Monite would.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use futures_util::StreamExt as _;
use serde::Serialize;

use crate::catalog::{self, EnvelopeIds, Pair};
use crate::deliver::{self, Answer};
use crate::failure::{self, Failure};
use crate::options::SecretArgs;
use crate::output::Output;
use crate::secrets;

#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// The event, as `OBJECT_TYPE.EVENT` (`counterpart.created`,
    /// `entity.onboarding_requirements.updated`); see `--list`.
    #[arg(value_name = "OBJECT_TYPE.EVENT", required_unless_present_any = ["all", "list", "body_file"])]
    event: Option<String>,
    /// Send every documented event, one after the other.
    #[arg(long, conflicts_with_all = ["event", "body_file"])]
    all: bool,
    /// Print the documented events and exit.
    #[arg(long, conflicts_with_all = ["event", "all", "body_file"])]
    list: bool,
    /// Send this body instead of a generated envelope.
    #[arg(long, value_name = "FILE")]
    body_file: Option<PathBuf>,
    /// Where to POST.
    #[arg(long, value_name = "URL", required_unless_present = "list")]
    to: Option<String>,
    #[command(flatten)]
    secrets: SecretArgs,
    /// Deliver the same event this many times in all (same id, freshly signed each time).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// How many deliveries are in flight at once.
    #[arg(long, value_name = "C", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,
    /// The envelope's `entity_id`; random by default.
    #[arg(long, value_name = "ID")]
    entity_id: Option<String>,
    /// Also send events the catalog does not document.
    #[arg(long)]
    allow_undocumented: bool,
}

/// One delivery, as reported.
#[derive(Debug, Serialize)]
struct Sent {
    action: String,
    id: Option<String>,
    attempt: u32,
    ok: bool,
    #[serde(flatten)]
    answer: Answer,
}

pub(crate) async fn run(args: SendArgs, output: Output) -> Result<ExitCode, Failure> {
    if args.list {
        return Ok(list(output));
    }
    let to = args.to.clone().unwrap_or_default();
    deliver::check_url(&to, "--to")?;
    let (secret, subscription_id) = secrets::signing(&args.secrets)?;
    let ids = EnvelopeIds {
        entity_id: args.entity_id.clone(),
        webhook_subscription_id: subscription_id,
    };
    // (the action or file sent, its event id, the body)
    let bodies: Vec<(String, Option<String>, String)> = if let Some(path) = &args.body_file {
        let body = String::from_utf8(super::read_body(path)?)
            .map_err(|_| Failure::usage(format!("{} is not UTF-8", path.display())))?;
        vec![(path.display().to_string(), event_id(&body), body)]
    } else {
        let pairs = if args.all {
            catalog::documented()
        } else {
            let event = args.event.as_deref().unwrap_or_default();
            vec![catalog::find(event, args.allow_undocumented)?]
        };
        pairs
            .iter()
            .map(|pair: &Pair| {
                let body = catalog::envelope(pair, &ids);
                (pair.action(), event_id(&body), body)
            })
            .collect()
    };

    let http = deliver::http_client(Duration::from_secs(30))?;
    let jobs = bodies.iter().flat_map(|(action, id, body)| {
        (1..=args.repeat).map(move |attempt| (action.as_str(), id, body.as_str(), attempt))
    });
    let concurrency = usize::try_from(args.concurrency).unwrap_or(1);
    let mut results = futures_util::stream::iter(jobs)
        .map(|(action, id, body, attempt)| {
            let (http, secret, to) = (&http, &secret, &to);
            async move {
                let answer = deliver::post_signed(http, to, body.as_bytes(), secret).await;
                Sent {
                    action: action.to_owned(),
                    id: id.clone(),
                    attempt,
                    ok: answer.ok(),
                    answer,
                }
            }
        })
        .buffer_unordered(concurrency);

    let mut sent = Vec::new();
    while let Some(result) = results.next().await {
        let repeat = if args.repeat > 1 {
            format!(" #{}", result.attempt)
        } else {
            String::new()
        };
        output.text_line(format_args!(
            "{}{repeat} {} -> {} ({} ms)",
            result.action,
            result.id.as_deref().unwrap_or("-"),
            result.answer.describe(),
            result.answer.millis
        ));
        sent.push(result);
    }
    let acknowledged = sent.iter().filter(|s| s.ok).count();
    let all_ok = acknowledged == sent.len();
    let report = serde_json::json!({
        "to": to,
        "sent": sent.len(),
        "acknowledged": acknowledged,
        "deliveries": sent,
    });
    output.print(&report, |_| {
        if sent.len() > 1 {
            println!(
                "{} deliveries to {to}: {acknowledged} acknowledged (2xx), {} not",
                sent.len(),
                sent.len() - acknowledged
            );
        }
    });
    Ok(failure::outcome(all_ok))
}

/// The `id` of a JSON body, if it has one.
fn event_id(body: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned))
}

fn list(output: Output) -> ExitCode {
    let pairs = catalog::documented();
    let actions: Vec<_> = pairs
        .iter()
        .map(|p| serde_json::json!({"action": p.action(), "object_type": p.object_type, "event": p.event}))
        .collect();
    output.print(&actions, |_| {
        for pair in &pairs {
            println!("{}", pair.action());
        }
    });
    ExitCode::SUCCESS
}
