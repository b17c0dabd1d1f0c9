//! `subscriptions`: Monite's webhook subscriptions through the API. Secrets Monite returns
//! (once) go to the keyring file, which receivers and the other commands read; they are
//! printed only with `--show-secret`. When the keyring file cannot be saved, the keyring
//! with the new secret goes to a fallback file (mode 0600) whose path is printed, so the
//! secret is never lost.

mod create;
mod delete;
mod enable;
mod ensure;
mod list;
mod regenerate;

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use monite_webhooks::Keyring;
use monite_webhooks::client::{SubscriptionWithSecret, WebhookSubscription};
use serde_json::json;

use crate::failure::Failure;
use crate::ops::keyring_rescue::{self, Rescued};
use crate::options::KeyringArgs;
use crate::output::Output;

#[derive(Debug, Args)]
pub(crate) struct SubscriptionsArgs {
    #[command(subcommand)]
    command: SubscriptionsCommand,
}

#[derive(Debug, Subcommand)]
enum SubscriptionsCommand {
    /// Every subscription, enabled or not, and whether the keyring file holds its secret.
    List(list::ListArgs),
    /// Create a subscription; its secret (returned only now) goes to the keyring file.
    Create(create::CreateArgs),
    /// One enabled subscription per object type for a URL, every secret in the keyring
    /// file: creates what is missing, enables what is disabled, and, with
    /// `--regenerate-missing`, regenerates the secret of any the keyring file does not hold.
    /// Reports duplicates, subscriptions for the URL of other object types, and object types
    /// Monite refuses (all left alone); exits 1 unless every one is ready.
    Ensure(ensure::EnsureArgs),
    /// Enable a subscription (Monite disables one after a week of failures).
    Enable(enable::SwitchArgs),
    /// Disable a subscription: Monite stops sending its events.
    Disable(enable::SwitchArgs),
    /// Replace a subscription's secret; the keyring file keeps the old one as previous.
    Regenerate(regenerate::RegenerateArgs),
    /// Delete a subscription, and its secrets from the keyring file.
    Delete(delete::DeleteArgs),
}

pub(crate) async fn run(args: SubscriptionsArgs, output: Output) -> Result<ExitCode, Failure> {
    let client = crate::api::client()?;
    match args.command {
        SubscriptionsCommand::List(args) => list::run(&client, &args, output).await,
        SubscriptionsCommand::Create(args) => create::run(&client, &args, output).await,
        SubscriptionsCommand::Ensure(args) => ensure::run(&client, &args, output).await,
        SubscriptionsCommand::Enable(args) => enable::run(&client, &args, true, output).await,
        SubscriptionsCommand::Disable(args) => enable::run(&client, &args, false, output).await,
        SubscriptionsCommand::Regenerate(args) => regenerate::run(&client, &args, output).await,
        SubscriptionsCommand::Delete(args) => delete::run(&client, &args, output).await,
    }
}

/// A subscription as JSON; never with a secret.
fn to_json(subscription: &WebhookSubscription) -> serde_json::Value {
    json!({
        "id": subscription.id,
        "object_type": subscription.object_type,
        "event_types": subscription.event_types,
        "status": subscription.status,
        "url": subscription.url,
    })
}

/// Saves the keyring after Monite returned `changed`'s new secret (`what` says how), and
/// reports it. If the file cannot be saved, the keyring goes to a fallback file, the report
/// says so, and the command fails.
fn save_and_report(
    keyring: &Keyring,
    path: &Path,
    changed: &SubscriptionWithSecret,
    what: &str,
    flags: &KeyringArgs,
    output: Output,
) -> Result<ExitCode, Failure> {
    match keyring_rescue::save(keyring, path, changed) {
        Ok(()) => {
            report_secret(changed, what, path, flags, output, None);
            Ok(ExitCode::SUCCESS)
        }
        Err(unsaved) => {
            report_secret(changed, what, path, flags, output, Some(&unsaved.rescued));
            Err(unsaved.failure)
        }
    }
}

fn report_secret(
    changed: &SubscriptionWithSecret,
    what: &str,
    path: &Path,
    flags: &KeyringArgs,
    output: Output,
    rescued: Option<&Rescued>,
) {
    let s = &changed.subscription;
    let mut report = to_json(s);
    report["keyring"] = json!(path.display().to_string());
    if let Some(rescued) = rescued {
        report["saved"] = json!(false);
        report["fallback"] = json!(rescued.file.as_ref().map(|f| f.display().to_string()));
    }
    if flags.show_secret {
        report["secret"] = json!(changed.secret.expose_text());
    }
    output.print(&report, |_| {
        let saved = rescued.map_or_else(
            || format!("secret saved to {}", path.display()),
            |rescued| {
                let fallback = rescued.file.as_ref().map_or_else(
                    || "nowhere (see stderr)".to_owned(),
                    |f| f.display().to_string(),
                );
                format!("secret NOT saved to {}, but to {fallback}", path.display())
            },
        );
        println!("{what} {} ({} -> {}); {saved}", s.id, s.object_type, s.url);
        if flags.show_secret {
            println!("secret: {}", changed.secret.expose_text());
        }
    });
}
