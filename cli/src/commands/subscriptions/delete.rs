//! `subscriptions delete`: a subscription, and its secrets from the keyring file.

use std::process::ExitCode;

use clap::Args;
use monite_webhooks::client::Client;
use serde_json::json;

use crate::failure::Failure;
use crate::options::KeyringArgs;
use crate::output::Output;

#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    /// The subscription's id.
    id: String,
    #[command(flatten)]
    keyring: KeyringArgs,
}

pub(crate) async fn run(
    client: &Client,
    args: &DeleteArgs,
    output: Output,
) -> Result<ExitCode, Failure> {
    let id = &args.id;
    client.webhook_subscriptions().delete(id).await?;
    let (path, mut keyring) = args.keyring.open(false)?;
    let forgotten = keyring.remove(id);
    if forgotten {
        keyring
            .save(&path)
            .map_err(|e| Failure::negative(format!("deleted {id}, but {e}")))?;
    }
    let report = json!({"id": id, "deleted": true, "removed_from_keyring": forgotten});
    output.print(&report, |_| {
        if forgotten {
            println!("deleted {id}, and its secrets from {}", path.display());
        } else {
            println!("deleted {id}");
        }
    });
    Ok(ExitCode::SUCCESS)
}
