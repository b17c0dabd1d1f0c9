//! `deliveries`: the delivery log as a table.

use std::process::ExitCode;

use clap::Args;
use futures_util::TryStreamExt as _;
use monite_webhooks::client::{ListQuery, WebhookDelivery};

use crate::failure::Failure;
use crate::options::EntityArgs;
use crate::output::Output;

#[derive(Debug, Args)]
pub(crate) struct DeliveriesArgs {
    #[command(flatten)]
    entity: EntityArgs,
    /// Only deliveries that failed.
    #[arg(long)]
    failed: bool,
    /// Only deliveries since this time: RFC 3339, Unix seconds, or an age (`30m`, `2h`, `7d`).
    #[arg(long, value_name = "T", value_parser = crate::time::parse_time)]
    since: Option<String>,
    /// Only deliveries of this event.
    #[arg(long, value_name = "ID")]
    event_id: Option<String>,
}

pub(crate) async fn run(args: &DeliveriesArgs, output: Output) -> Result<ExitCode, Failure> {
    let mut query = ListQuery::new();
    if let Some(since) = &args.since {
        query = query.created_since(since.clone());
    }
    if let Some(event_id) = &args.event_id {
        query = query.event_id(event_id.clone());
    }
    let client = crate::api::client()?;
    let mut deliveries: Vec<WebhookDelivery> = client
        .webhook_deliveries(args.entity.entity_id.clone())
        .list(query)
        .try_collect()
        .await?;
    if args.failed {
        deliveries.retain(|d| d.was_successful == Some(false));
    }
    let rows: Vec<_> = deliveries
        .iter()
        .map(|d| {
            serde_json::json!({
                "id": d.id,
                "event_id": d.event_id,
                "attempts": d.requests_made_count,
                "last_status": d.response_status_code,
                "successful": d.was_successful,
                "url": d.url,
            })
        })
        .collect();
    output.print(&rows, |_| print_table(&deliveries));
    Ok(ExitCode::SUCCESS)
}

fn print_table(deliveries: &[WebhookDelivery]) {
    println!(
        "{:<36}  {:>8}  {:>11}  {:<7}  URL",
        "EVENT", "ATTEMPTS", "LAST STATUS", "RESULT"
    );
    for d in deliveries {
        let status = d
            .response_status_code
            .map_or_else(|| "-".to_owned(), |s| s.to_string());
        let result = match d.was_successful {
            Some(true) => "ok",
            Some(false) => "failed",
            None => "pending",
        };
        println!(
            "{:<36}  {:>8}  {:>11}  {:<7}  {}",
            d.event_id, d.requests_made_count, status, result, d.url
        );
    }
    let failed = deliveries
        .iter()
        .filter(|d| d.was_successful == Some(false))
        .count();
    println!("{} deliveries, {failed} failed", deliveries.len());
}
