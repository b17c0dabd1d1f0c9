//! `subscriptions ensure`: one enabled subscription per object type for a URL, every secret
//! in the keyring file; the work is `ops::ensure`, this prints what it did.

use std::process::ExitCode;

use clap::Args;
use monite_webhooks::Keyring;
use monite_webhooks::client::{Client, Ensured, SecretStatus};
use serde_json::json;

use crate::failure::Failure;
use crate::ops::ensure::{self as ops, EnsureOptions};
use crate::options::KeyringArgs;
use crate::output::Output;

#[derive(Debug, Args)]
pub(crate) struct EnsureArgs {
    /// Where Monite sends the events (public HTTPS).
    #[arg(long, value_name = "URL")]
    url: String,
    /// These object types (repeat it); by default every one Monite's API accepts.
    #[arg(long = "object-type", value_name = "O")]
    object_types: Vec<String>,
    /// Regenerate the secret of a subscription the keyring file does not hold. Monite
    /// invalidates the old secret at once, so every receiver still holding it refuses
    /// deliveries: the count is printed first, and it is refused when the keyring file does
    /// not exist or holds no secret of the URL's subscriptions (the wrong file, most likely).
    #[arg(long, conflicts_with = "no_regenerate")]
    regenerate_missing: bool,
    /// Leave a subscription whose secret the keyring file does not hold as it is (reported
    /// as not ready). The default now; accepted for scripts that pass it.
    #[arg(long)]
    no_regenerate: bool,
    #[command(flatten)]
    keyring: KeyringArgs,
}

/// What `ensure` found and did for one object type, as `--json` prints it.
#[derive(Debug, serde::Serialize)]
struct EnsuredJson {
    object_type: String,
    /// `None` when Monite refused to create it.
    id: Option<String>,
    action: &'static str,
    /// `enabled` or `disabled` now; `None` without a subscription.
    status: Option<String>,
    secret_status: &'static str,
    ready: bool,
    duplicates: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    create_answer_lost: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

pub(crate) async fn run(
    client: &Client,
    args: &EnsureArgs,
    output: Output,
) -> Result<ExitCode, Failure> {
    let options = EnsureOptions {
        url: &args.url,
        object_types: &args.object_types,
        regenerate_missing: args.regenerate_missing,
        keyring_path: args.keyring.path(),
    };
    let ops::Ensured {
        report,
        keyring,
        keyring_path: path,
    } = ops::ensure(client, options).await?;
    let show = args.keyring.show_secret;
    let entries: Vec<EnsuredJson> = report
        .subscriptions
        .iter()
        .map(|entry| EnsuredJson {
            object_type: entry.object_type.to_string(),
            id: entry.subscription.as_ref().map(|s| s.id.clone()),
            action: action(entry),
            status: entry.subscription.as_ref().map(|s| s.status.to_string()),
            secret_status: secret_status(entry.secret),
            ready: entry.is_ready(),
            duplicates: entry.duplicates.iter().map(|s| s.id.clone()).collect(),
            create_answer_lost: entry.create_answer_lost.as_ref().map(ToString::to_string),
            refused: entry.refused.as_ref().map(ToString::to_string),
            secret: fresh_secret(entry, &keyring)
                .filter(|_| show)
                .map(str::to_owned),
        })
        .collect();
    let unplanned: Vec<serde_json::Value> = report.unplanned.iter().map(super::to_json).collect();
    let document = json!({
        "url": args.url,
        "keyring": path.display().to_string(),
        "complete": report.is_complete(),
        "subscriptions": entries,
        "unplanned": unplanned,
    });
    output.print(&document, |_| {
        print!("{report}");
        if show {
            for entry in &report.subscriptions {
                if let (Some(secret), Some(s)) =
                    (fresh_secret(entry, &keyring), &entry.subscription)
                {
                    println!("secret of {} ({}): {secret}", s.id, entry.object_type);
                }
            }
        }
        let changed = report.subscriptions.iter().filter(|e| e.changed()).count();
        let ready = report.subscriptions.iter().filter(|e| e.is_ready()).count();
        println!(
            "{} object types: {changed} changed, {ready} ready; secrets in {}",
            report.subscriptions.len(),
            path.display()
        );
    });
    if report.is_complete() {
        return Ok(ExitCode::SUCCESS);
    }
    let not_ready: Vec<String> = report
        .subscriptions
        .iter()
        .filter(|e| !e.is_ready())
        .map(|e| e.object_type.to_string())
        .collect();
    let not_held = report.secrets_not_held().count();
    let hint = if not_held > 0 && !args.regenerate_missing {
        format!(
            "; {not_held} secret(s) not held: add them to the keyring file, or pass \
             --regenerate-missing to regenerate them (which invalidates the old ones)"
        )
    } else {
        String::new()
    };
    output.text_error_line(format_args!(
        "error: not ready: {} (see above; running again will not help until that changes){hint}",
        not_ready.join(", ")
    ));
    Ok(crate::failure::outcome(false))
}

/// The old `action` words, kept for scripts that read them.
fn action(entry: &Ensured) -> &'static str {
    let regenerated = entry.secret == SecretStatus::Regenerated;
    if entry.refused.is_some() && entry.subscription.is_none() {
        "refused"
    } else if entry.created {
        "created"
    } else if entry.reenabled && regenerated {
        "enabled, secret regenerated"
    } else if entry.reenabled {
        "enabled"
    } else if regenerated {
        "secret regenerated (not in the keyring)"
    } else if entry.refused.is_some() {
        "refused"
    } else if matches!(entry.secret, SecretStatus::NotHeld | SecretStatus::Unkeyed) {
        "secret not held"
    } else {
        "kept"
    }
}

fn secret_status(status: SecretStatus) -> &'static str {
    match status {
        SecretStatus::Held => "held",
        SecretStatus::Issued => "issued",
        SecretStatus::Regenerated => "regenerated",
        SecretStatus::NotHeld => "not_held",
        SecretStatus::Unkeyed => "unkeyed",
        SecretStatus::NoSubscription => "no_subscription",
        _ => "unknown",
    }
}

/// The secret Monite returned for `entry` in this run, from the keyring (where the library
/// put it); `None` for one the keyring already held.
fn fresh_secret<'k>(entry: &Ensured, keyring: &'k Keyring) -> Option<&'k str> {
    if !matches!(
        entry.secret,
        SecretStatus::Issued | SecretStatus::Regenerated
    ) {
        return None;
    }
    let id = &entry.subscription.as_ref()?.id;
    Some(keyring.get(id)?.current().expose_text())
}
