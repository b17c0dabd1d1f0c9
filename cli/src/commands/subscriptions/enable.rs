//! `subscriptions enable` and `disable`: one subscription's status.

use std::process::ExitCode;

use clap::Args;
use monite_webhooks::client::{Client, WebhookSubscription};

use crate::failure::Failure;
use crate::output::Output;

/// The subscription to enable or disable.
#[derive(Debug, Args)]
pub(crate) struct SwitchArgs {
    /// The subscription's id.
    id: String,
}

pub(crate) async fn enable(
    client: &Client,
    args: &SwitchArgs,
    output: Output,
) -> Result<ExitCode, Failure> {
    let enabled = client.webhook_subscriptions().enable(&args.id).await?;
    print(&enabled, "enabled", output);
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn disable(
    client: &Client,
    args: &SwitchArgs,
    output: Output,
) -> Result<ExitCode, Failure> {
    let disabled = client.webhook_subscriptions().disable(&args.id).await?;
    print(&disabled, "disabled", output);
    Ok(ExitCode::SUCCESS)
}

fn print(subscription: &WebhookSubscription, what: &str, output: Output) {
    output.print(&super::to_json(subscription), |_| {
        println!(
            "{what} {} ({} -> {})",
            subscription.id, subscription.object_type, subscription.url
        );
    });
}
