//! `subscriptions enable` and `disable`: one subscription's status.

use std::process::ExitCode;

use clap::Args;
use monite_webhooks::client::Client;

use crate::failure::Failure;
use crate::output::Output;

/// The subscription to enable or disable.
#[derive(Debug, Args)]
pub(crate) struct SwitchArgs {
    /// The subscription's id.
    id: String,
}

/// Enables the subscription, or disables it when `enable` is false.
pub(crate) async fn run(
    client: &Client,
    args: &SwitchArgs,
    enable: bool,
    output: Output,
) -> Result<ExitCode, Failure> {
    let subscriptions = client.webhook_subscriptions();
    let (subscription, what) = if enable {
        (subscriptions.enable(&args.id).await?, "enabled")
    } else {
        (subscriptions.disable(&args.id).await?, "disabled")
    };
    output.print(&super::to_json(&subscription), |_| {
        println!(
            "{what} {} ({} -> {})",
            subscription.id, subscription.object_type, subscription.url
        );
    });
    Ok(ExitCode::SUCCESS)
}
