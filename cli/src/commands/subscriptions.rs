//! `subscriptions`: Monite's webhook subscriptions through the API. Secrets Monite returns
//! (once) go to the keyring file, which receivers and the other commands read; they are
//! printed only with `--show-secret`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use futures_util::TryStreamExt as _;
use monite_webhooks::client::{
    ListQuery, NewSubscription, SubscriptionStatus, SubscriptionWithSecret, WebhookSubscription,
};
use monite_webhooks::{EventType, Keyring, ObjectType};
use serde_json::json;

use crate::args::{
    CreateArgs, EnsureArgs, KeyringArgs, SubscriptionId, SubscriptionIdWithKeyring,
    SubscriptionsArgs, SubscriptionsCommand,
};
use crate::failure::Failure;
use crate::secrets;

pub(crate) async fn run(args: SubscriptionsArgs, json: bool) -> Result<ExitCode, Failure> {
    let client = crate::api::client()?;
    let subscriptions = client.webhook_subscriptions();
    match args.command {
        SubscriptionsCommand::List(keyring) => {
            let all: Vec<WebhookSubscription> =
                subscriptions.list(ListQuery::new()).try_collect().await?;
            let path = secrets::keyring_path(keyring.keyring.as_deref());
            let held = secrets::load_keyring(&path, keyring.keyring.is_some())?;
            print_list(&all, &held, json);
        }
        SubscriptionsCommand::Create(create) => {
            let (path, mut keyring) = open(&create.keyring)?;
            let new = new_subscription(&create)?;
            let created = subscriptions.create(&new).await?;
            keyring.insert(created.subscription.id.clone(), created.secret.clone());
            save(&keyring, &path, &created)?;
            report_secret(&created, "created", &path, &create.keyring, json);
        }
        SubscriptionsCommand::Ensure(ensure) => {
            return self::ensure(&client, &ensure, json).await;
        }
        SubscriptionsCommand::Enable(SubscriptionId { id }) => {
            print_one(&subscriptions.enable(&id).await?, "enabled", json);
        }
        SubscriptionsCommand::Disable(SubscriptionId { id }) => {
            print_one(&subscriptions.disable(&id).await?, "disabled", json);
        }
        SubscriptionsCommand::Regenerate(SubscriptionIdWithKeyring { id, keyring: flags }) => {
            let (path, mut keyring) = open(&flags)?;
            let regenerated = subscriptions.regenerate_secret(&id).await?;
            // Deliveries already signed with the old secret may still arrive: keep it as
            // the previous one.
            keyring.rotate(id, regenerated.secret.clone());
            save(&keyring, &path, &regenerated)?;
            report_secret(
                &regenerated,
                "regenerated the secret of",
                &path,
                &flags,
                json,
            );
        }
        SubscriptionsCommand::Delete(SubscriptionIdWithKeyring { id, keyring: flags }) => {
            subscriptions.delete(&id).await?;
            let path = secrets::keyring_path(flags.keyring.as_deref());
            let mut keyring = secrets::load_keyring(&path, false)?;
            let forgotten = keyring.remove(&id);
            if forgotten {
                keyring
                    .save(&path)
                    .map_err(|e| Failure::negative(format!("deleted {id}, but {e}")))?;
            }
            if json {
                super::print_json(
                    &json!({"id": id, "deleted": true, "removed_from_keyring": forgotten}),
                );
            } else if forgotten {
                println!("deleted {id}, and its secrets from {}", path.display());
            } else {
                println!("deleted {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `ensure` did to one object type.
#[derive(Debug, serde::Serialize)]
struct Ensured {
    object_type: String,
    id: String,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

async fn ensure(
    client: &monite_webhooks::client::Client,
    args: &EnsureArgs,
    json: bool,
) -> Result<ExitCode, Failure> {
    let object_types: Vec<String> = if args.object_types.is_empty() {
        let mut all: Vec<String> = crate::catalog::documented()
            .into_iter()
            .map(|p| p.object_type)
            .collect();
        all.dedup();
        all
    } else {
        args.object_types.clone()
    };
    let (path, mut keyring) = open(&args.keyring)?;
    let subscriptions = client.webhook_subscriptions();
    let existing: Vec<WebhookSubscription> =
        subscriptions.list(ListQuery::new()).try_collect().await?;
    let mut report = Vec::new();
    for object_type in &object_types {
        let parsed = ObjectType::from(object_type.as_str());
        let found = existing
            .iter()
            .find(|s| s.url == args.url && s.object_type == parsed);
        let (id, mut action, fresh) = match found {
            None => {
                let created = subscriptions
                    .create(&NewSubscription::new(parsed.clone(), args.url.clone()))
                    .await?;
                let id = created.subscription.id.clone();
                keyring.insert(id.clone(), created.secret.clone());
                (id, "created", Some(created))
            }
            Some(subscription) if !keyring.contains(&subscription.id) => {
                // Monite returns a secret only when it makes one: without it nothing can
                // verify this subscription's deliveries, so make a new one.
                let regenerated = subscriptions.regenerate_secret(&subscription.id).await?;
                keyring.insert(subscription.id.clone(), regenerated.secret.clone());
                (
                    subscription.id.clone(),
                    "secret regenerated (not in the keyring)",
                    Some(regenerated),
                )
            }
            Some(subscription) => (subscription.id.clone(), "kept", None),
        };
        if found.is_some_and(|s| s.status == SubscriptionStatus::Disabled) {
            subscriptions.enable(&id).await?;
            action = if action == "kept" {
                "enabled"
            } else {
                "enabled, secret regenerated"
            };
        }
        // Saved after each change, so a failure part-way loses no secret.
        if let Some(fresh) = &fresh {
            save(&keyring, &path, fresh)?;
        }
        let secret = fresh
            .filter(|_| args.keyring.show_secret)
            .map(|f| f.secret.expose_text().to_owned());
        if !json {
            println!("{object_type:<28}  {id:<36}  {action}");
            if let Some(secret) = &secret {
                println!("{:<28}  secret: {secret}", "");
            }
        }
        report.push(Ensured {
            object_type: object_type.clone(),
            id,
            action,
            secret,
        });
    }
    if json {
        super::print_json(&json!({
            "url": args.url,
            "keyring": path.display().to_string(),
            "subscriptions": report,
        }));
    } else {
        let changed = report.iter().filter(|r| r.action != "kept").count();
        println!(
            "{} object types: {changed} changed; secrets in {}",
            report.len(),
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn new_subscription(args: &CreateArgs) -> Result<NewSubscription, Failure> {
    let new = NewSubscription::new(
        ObjectType::from(args.object_type.as_str()),
        args.url.clone(),
    );
    if args.events.is_empty() {
        return Ok(new);
    }
    Ok(new.event_types(args.events.iter().map(|e| EventType::from(e.as_str()))))
}

/// The keyring file named (which must then exist if named explicitly), or a new one.
fn open(flags: &KeyringArgs) -> Result<(PathBuf, Keyring), Failure> {
    let path = secrets::keyring_path(flags.keyring.as_deref());
    let keyring = secrets::load_keyring(&path, false)?;
    Ok((path, keyring))
}

fn save(keyring: &Keyring, path: &Path, changed: &SubscriptionWithSecret) -> Result<(), Failure> {
    keyring.save(path).map_err(|e| {
        Failure::negative(format!(
            "subscription {} has a new secret, but {e}; regenerate it once the file is writable",
            changed.subscription.id
        ))
    })
}

fn report_secret(
    changed: &SubscriptionWithSecret,
    what: &str,
    path: &Path,
    flags: &KeyringArgs,
    json: bool,
) {
    let s = &changed.subscription;
    if json {
        let mut value = to_json(s);
        value["keyring"] = json!(path.display().to_string());
        if flags.show_secret {
            value["secret"] = json!(changed.secret.expose_text());
        }
        super::print_json(&value);
        return;
    }
    println!(
        "{what} {} ({} -> {}); secret saved to {}",
        s.id,
        s.object_type,
        s.url,
        path.display()
    );
    if flags.show_secret {
        println!("secret: {}", changed.secret.expose_text());
    }
}

/// A subscription as JSON; never with a secret.
pub(crate) fn to_json(subscription: &WebhookSubscription) -> serde_json::Value {
    json!({
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

fn print_list(all: &[WebhookSubscription], keyring: &Keyring, json: bool) {
    if json {
        let rows: Vec<_> = all
            .iter()
            .map(|s| {
                let mut row = to_json(s);
                row["secret_in_keyring"] = json!(keyring.contains(&s.id));
                row
            })
            .collect();
        super::print_json(&rows);
        return;
    }
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
