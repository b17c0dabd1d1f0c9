//! `send`: a realistic signed event, POSTed as Monite would.

use std::process::ExitCode;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde::Serialize;

use crate::args::SendArgs;
use crate::catalog::{self, EnvelopeIds, Pair};
use crate::deliver::{self, Answer};
use crate::failure::{self, Failure};
use crate::secrets;

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

pub(crate) async fn run(args: SendArgs, json: bool) -> Result<ExitCode, Failure> {
    if args.list {
        return Ok(list(json));
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
        if !json {
            let repeat = if args.repeat > 1 {
                format!(" #{}", result.attempt)
            } else {
                String::new()
            };
            println!(
                "{}{repeat} {} -> {} ({} ms)",
                result.action,
                result.id.as_deref().unwrap_or("-"),
                result.answer.describe(),
                result.answer.millis
            );
        }
        sent.push(result);
    }
    let acknowledged = sent.iter().filter(|s| s.ok).count();
    let all_ok = acknowledged == sent.len();
    if json {
        super::print_json(&serde_json::json!({
            "to": to,
            "sent": sent.len(),
            "acknowledged": acknowledged,
            "deliveries": sent,
        }));
    } else if sent.len() > 1 {
        println!(
            "{} deliveries to {to}: {acknowledged} acknowledged (2xx), {} not",
            sent.len(),
            sent.len() - acknowledged
        );
    }
    Ok(failure::outcome(all_ok))
}

/// The `id` of a JSON body, if it has one.
fn event_id(body: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned))
}

fn list(json: bool) -> ExitCode {
    let pairs = catalog::documented();
    if json {
        let actions: Vec<_> = pairs
            .iter()
            .map(|p| serde_json::json!({"action": p.action(), "object_type": p.object_type, "event": p.event}))
            .collect();
        super::print_json(&actions);
    } else {
        for pair in &pairs {
            println!("{}", pair.action());
        }
    }
    ExitCode::SUCCESS
}
