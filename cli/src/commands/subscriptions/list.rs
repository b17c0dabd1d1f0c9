//! `subscriptions list`: every subscription, and whether the keyring file holds its secret.

use std::process::ExitCode;

use clap::Args;
use futures_util::TryStreamExt as _;
use monite_webhooks::Keyring;
use monite_webhooks::client::{Client, ListQuery, SubscriptionStatus, WebhookSubscription};
use serde_json::json;

use crate::failure::Failure;
use crate::options::KeyringArgs;
use crate::output::Output;

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    keyring: KeyringArgs,
}

pub(crate) async fn run(
    client: &Client,
    args: &ListArgs,
    output: Output,
) -> Result<ExitCode, Failure> {
    let all: Vec<WebhookSubscription> = client
        .webhook_subscriptions()
        .list(ListQuery::new())
        .try_collect()
        .await?;
    // A keyring file named on the command line must exist; the default one may not yet.
    let (_, held) = args.keyring.open(args.keyring.keyring.is_some())?;
    let rows: Vec<_> = all
        .iter()
        .map(|s| {
            let mut row = super::to_json(s);
            row["secret_in_keyring"] = json!(held.contains(&s.id));
            row
        })
        .collect();
    output.print(&rows, |_| print_table(&all, &held));
    Ok(ExitCode::SUCCESS)
}

fn print_table(all: &[WebhookSubscription], keyring: &Keyring) {
    println!(
        "{:<36}  {:<28}  {:<8}  {:<7}  {:<20}  URL",
        "ID", "OBJECT TYPE", "STATUS", "SECRET", "EVENTS"
    );
    for s in all {
        let secret = if keyring.contains(&s.id) {
            "held"
        } else {
            "missing"
        };
        println!(
            "{:<36}  {:<28}  {:<8}  {:<7}  {:<20}  {}",
            s.id,
            s.object_type.to_string(),
            s.status.to_string(),
            secret,
            events(s),
            s.url
        );
    }
    let disabled = all
        .iter()
        .filter(|s| s.status == SubscriptionStatus::Disabled)
        .count();
    println!("{} subscriptions, {disabled} disabled", all.len());
}

fn events(subscription: &WebhookSubscription) -> String {
    if subscription.event_types.is_empty() {
        return "all".to_owned();
    }
    subscription
        .event_types
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
