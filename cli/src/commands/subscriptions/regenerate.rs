//! `subscriptions regenerate`: a new secret for a subscription; the keyring file keeps the
//! old one as previous.

use std::process::ExitCode;

use clap::Args;
use monite_webhooks::client::Client;

use crate::failure::Failure;
use crate::options::KeyringArgs;
use crate::output::Output;

#[derive(Debug, Args)]
pub(crate) struct RegenerateArgs {
    /// The subscription's id.
    id: String,
    #[command(flatten)]
    keyring: KeyringArgs,
}

pub(crate) async fn run(
    client: &Client,
    args: &RegenerateArgs,
    output: Output,
) -> Result<ExitCode, Failure> {
    let (path, mut keyring) = args.keyring.open(false)?;
    // The new secret goes into the keyring beside the old one, kept as previous:
    // deliveries already signed with it may still arrive.
    let regenerated = client
        .webhook_subscriptions()
        .rotate_secret(&args.id, &mut keyring)
        .await?;
    super::save_and_report(
        &keyring,
        &path,
        &regenerated,
        "regenerated the secret of",
        &args.keyring,
        output,
    )
}
