//! `subscriptions`: Monite's webhook subscriptions through the API.

use std::process::ExitCode;

use futures_util::TryStreamExt as _;
use monite_webhooks::client::{ListQuery, SubscriptionStatus, WebhookSubscription};

use crate::args::{SubscriptionId, SubscriptionsArgs, SubscriptionsCommand};
use crate::failure::Failure;

pub(crate) async fn run(args: SubscriptionsArgs, json: bool) -> Result<ExitCode, Failure> {
    let client = crate::api::client()?;
    let subscriptions = client.webhook_subscriptions();
    match args.command {
        SubscriptionsCommand::List => {
            let all: Vec<WebhookSubscription> =
                subscriptions.list(ListQuery::new()).try_collect().await?;
            print_list(&all, json);
        }
        SubscriptionsCommand::Enable(SubscriptionId { id }) => {
            print_one(&subscriptions.enable(&id).await?, "enabled", json);
        }
        SubscriptionsCommand::Disable(SubscriptionId { id }) => {
            print_one(&subscriptions.disable(&id).await?, "disabled", json);
        }
        SubscriptionsCommand::Delete(SubscriptionId { id }) => {
            subscriptions.delete(&id).await?;
            if json {
                super::print_json(&serde_json::json!({"id": id, "deleted": true}));
            } else {
                println!("deleted {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A subscription as JSON; never with a secret.
pub(crate) fn to_json(subscription: &WebhookSubscription) -> serde_json::Value {
    serde_json::json!({
        "id": subscription.id,
        "object_type": subscription.object_type,
        "event_types": subscription.event_types,
        "status": subscription.status,
        "url": subscription.url,
    })
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

fn print_list(all: &[WebhookSubscription], json: bool) {
    if json {
        super::print_json(&all.iter().map(to_json).collect::<Vec<_>>());
        return;
    }
    println!(
        "{:<36}  {:<28}  {:<8}  {:<20}  URL",
        "ID", "OBJECT TYPE", "STATUS", "EVENTS"
    );
    for s in all {
        println!(
            "{:<36}  {:<28}  {:<8}  {:<20}  {}",
            s.id,
            s.object_type.to_string(),
            s.status.to_string(),
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

fn print_one(subscription: &WebhookSubscription, what: &str, json: bool) {
    if json {
        super::print_json(&to_json(subscription));
    } else {
        println!(
            "{what} {} ({} -> {})",
            subscription.id, subscription.object_type, subscription.url
        );
    }
}
