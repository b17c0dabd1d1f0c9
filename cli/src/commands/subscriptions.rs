//! `subscriptions`: Monite's webhook subscriptions through the API. Secrets Monite returns
//! (once) go to the keyring file, which receivers and the other commands read; they are
//! printed only with `--show-secret`. When the keyring file cannot be saved, the keyring
//! with the new secret goes to a fallback file (mode 0600) whose path is printed, so the
//! secret is never lost.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use futures_util::TryStreamExt as _;
use monite_webhooks::client::{
    Ensured, ListQuery, NewSubscription, SecretStatus, SubscriptionPlan, SubscriptionStatus,
    SubscriptionWithSecret, WebhookSubscription,
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
            let (_, held) = open(&keyring, keyring.keyring.is_some())?;
            print_list(&all, &held, json);
        }
        SubscriptionsCommand::Create(create) => {
            let (path, mut keyring) = open(&create.keyring, false)?;
            let new = new_subscription(&create)?;
            let created = subscriptions.create(&new).await?;
            keyring.insert(created.subscription.id.clone(), created.secret.clone());
            save_and_report(&keyring, &path, &created, "created", &create.keyring, json)?;
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
            let (path, mut keyring) = open(&flags, false)?;
            // The new secret goes into the keyring beside the old one, kept as previous:
            // deliveries already signed with it may still arrive.
            let regenerated = subscriptions.rotate_secret(&id, &mut keyring).await?;
            save_and_report(
                &keyring,
                &path,
                &regenerated,
                "regenerated the secret of",
                &flags,
                json,
            )?;
        }
        SubscriptionsCommand::Delete(SubscriptionIdWithKeyring { id, keyring: flags }) => {
            subscriptions.delete(&id).await?;
            let (path, mut keyring) = open(&flags, false)?;
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

async fn ensure(
    client: &monite_webhooks::client::Client,
    args: &EnsureArgs,
    json: bool,
) -> Result<ExitCode, Failure> {
    let plan = if args.object_types.is_empty() {
        SubscriptionPlan::every_object_type(args.url.clone())
    } else {
        SubscriptionPlan::new(
            args.url.clone(),
            args.object_types
                .iter()
                .map(|t| ObjectType::from(t.as_str())),
        )
    }
    .regenerate_missing_secrets(args.regenerate_missing);
    let path = secrets::keyring_path(args.keyring.keyring.as_deref());
    let existed = path.exists();
    let (path, mut keyring) = open(&args.keyring, false)?;
    if args.regenerate_missing {
        check_regeneration(client, &plan, &keyring, &path, existed).await?;
    }
    let loaded = keyring.clone();
    // Saved by the library after each secret Monite returns, so a run that stops part-way
    // loses none; if saving fails, the keyring in memory goes to a fallback file.
    let mut save_failed = false;
    let result = client
        .webhook_subscriptions()
        .ensure_with(&plan, &mut keyring, |k| {
            let saved = k.save(&path);
            save_failed |= saved.is_err();
            saved
        })
        .await;
    let report = match result {
        Ok(report) => report,
        Err(error) if save_failed => {
            let fresh = fresh_since(&loaded, &keyring);
            let rescued = rescue(&keyring, &path, &fresh);
            return Err(Failure::negative(format!("{error}; {rescued}")));
        }
        Err(error) => return Err(error.into()),
    };
    let show = args.keyring.show_secret;
    if json {
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
        let unplanned: Vec<serde_json::Value> = report.unplanned.iter().map(to_json).collect();
        super::print_json(&json!({
            "url": args.url,
            "keyring": path.display().to_string(),
            "complete": report.is_complete(),
            "subscriptions": entries,
            "unplanned": unplanned,
        }));
    } else {
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
    }
    if report.is_complete() {
        return Ok(ExitCode::SUCCESS);
    }
    if !json {
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
        eprintln!(
            "error: not ready: {} (see above; running again will not help until that changes){hint}",
            not_ready.join(", ")
        );
    }
    Ok(crate::failure::outcome(false))
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

/// The keyring file's path and contents; an empty keyring if there is no file yet, unless
/// it `must_exist`.
fn open(flags: &KeyringArgs, must_exist: bool) -> Result<(PathBuf, Keyring), Failure> {
    let path = secrets::keyring_path(flags.keyring.as_deref());
    let keyring = secrets::load_keyring(&path, must_exist)?;
    Ok((path, keyring))
}

/// Before an `ensure --regenerate-missing`: the secrets it would invalidate are counted and
/// printed (stderr), and the run is refused if the keyring file did not exist or holds no
/// secret of the URL's subscriptions: regenerating then would most likely invalidate the
/// secrets every receiver holds, because this is the wrong file.
async fn check_regeneration(
    client: &monite_webhooks::client::Client,
    plan: &SubscriptionPlan,
    keyring: &Keyring,
    path: &Path,
    existed: bool,
) -> Result<(), Failure> {
    let for_url: Vec<WebhookSubscription> = client
        .webhook_subscriptions()
        .list(ListQuery::new().limit(100))
        .try_filter(|s| std::future::ready(s.url == plan.url()))
        .try_collect()
        .await?;
    // As `ensure` does: per planned object type, a subscription is regenerated when none of
    // those for the URL is held, and then only the first listed.
    let doomed: Vec<&str> = plan
        .object_types()
        .filter_map(|object_type| {
            let mut found = for_url.iter().filter(|s| s.object_type == *object_type);
            let first = found.clone().next()?;
            (!found.any(|s| keyring.contains(&s.id))).then_some(first.id.as_str())
        })
        .collect();
    if doomed.is_empty() {
        return Ok(());
    }
    let n = doomed.len();
    let ids = doomed.join(", ");
    let why = if !existed {
        Some(format!(
            "the keyring file {} does not exist",
            path.display()
        ))
    } else if !for_url.iter().any(|s| keyring.contains(&s.id)) {
        Some(format!(
            "the keyring file {} holds no secret of the {} subscription(s) for {}",
            path.display(),
            for_url.len(),
            plan.url()
        ))
    } else {
        None
    };
    if let Some(why) = why {
        return Err(Failure::usage(format!(
            "refusing to regenerate: {n} secret(s) would be invalidated ({ids}), but {why}, so \
             it is most likely not the keyring the receivers use (check --keyring, \
             MONITE_WEBHOOK_KEYRING and the working directory). Nothing was changed. To \
             regenerate deliberately, run `monite-webhooks subscriptions regenerate <id>` for \
             each"
        )));
    }
    eprintln!(
        "regenerating {n} secret(s) the keyring file does not hold ({ids}): Monite invalidates \
         the old ones at once, and receivers still holding them refuse deliveries until they \
         get {}",
        path.display()
    );
    Ok(())
}

/// Saves the keyring after Monite returned `changed`'s new secret, and reports it. If the
/// file cannot be saved, the keyring goes to a fallback file (see [`rescue`]), the report
/// says so, and the command fails.
fn save_and_report(
    keyring: &Keyring,
    path: &Path,
    changed: &SubscriptionWithSecret,
    what: &str,
    flags: &KeyringArgs,
    json: bool,
) -> Result<(), Failure> {
    let Err(e) = keyring.save(path) else {
        report_secret(changed, what, path, flags, json, None);
        return Ok(());
    };
    let id = &changed.subscription.id;
    let rescued = rescue(
        keyring,
        path,
        &[(id.clone(), changed.secret.expose_text().to_owned())],
    );
    report_secret(changed, what, path, flags, json, Some(&rescued));
    Err(Failure::negative(format!(
        "subscription {id} has a new secret, but {e}; {rescued}"
    )))
}

/// Where a keyring that could not be saved went instead.
struct Rescued {
    /// The fallback file, if one could be written.
    file: Option<PathBuf>,
    /// The sentence for the error line.
    said: String,
}

impl std::fmt::Display for Rescued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.said)
    }
}

/// Writes `keyring`, which `path` could not take, to a fallback file (mode 0600): beside
/// `path`, else in the temporary directory. If neither can be written, the `fresh` secrets
/// (those obtained by this run, which exist nowhere else) are printed on stderr as the last
/// resort: after a create or a regenerate, Monite will not give them again.
fn rescue(keyring: &Keyring, path: &Path, fresh: &[(String, String)]) -> Rescued {
    let name = format!(
        "{}.rescued-{}-{}.json",
        path.file_stem()
            .map_or_else(|| "monite-webhooks-keyring".into(), |s| s.to_string_lossy()),
        crate::time::unix_now(),
        std::process::id()
    );
    let beside = path.parent().map(|dir| dir.join(&name));
    let candidates = beside.into_iter().chain([std::env::temp_dir().join(&name)]);
    let mut failures = Vec::new();
    for candidate in candidates {
        match keyring.save(&candidate) {
            Ok(()) => {
                let said = format!(
                    "the keyring with the new secret was saved to {} (mode 0600) instead: move \
                     it to {} (or pass --keyring {})",
                    candidate.display(),
                    path.display(),
                    candidate.display()
                );
                return Rescued {
                    file: Some(candidate),
                    said,
                };
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    for (id, secret) in fresh {
        eprintln!("secret of subscription {id}, saved nowhere, shown once: {secret}");
    }
    Rescued {
        file: None,
        said: format!(
            "no fallback file could be written either ({}), so the new secret(s) were printed \
             above on stderr: keep them now",
            failures.join("; ")
        ),
    }
}

/// The secrets `now` holds that `before` did not: those Monite returned in this run.
fn fresh_since(before: &Keyring, now: &Keyring) -> Vec<(String, String)> {
    let mut fresh: Vec<(String, String)> = now
        .subscriptions()
        .filter(|(id, held)| {
            before
                .get(id)
                .is_none_or(|old| old.current().expose_text() != held.current().expose_text())
        })
        .map(|(id, held)| (id.to_owned(), held.current().expose_text().to_owned()))
        .collect();
    let known: Vec<&str> = before.unkeyed().iter().map(|s| s.expose_text()).collect();
    fresh.extend(
        now.unkeyed()
            .iter()
            .filter(|s| !known.contains(&s.expose_text()))
            .map(|s| ("(unknown id)".to_owned(), s.expose_text().to_owned())),
    );
    fresh
}

fn report_secret(
    changed: &SubscriptionWithSecret,
    what: &str,
    path: &Path,
    flags: &KeyringArgs,
    json: bool,
    rescued: Option<&Rescued>,
) {
    let s = &changed.subscription;
    if json {
        let mut value = to_json(s);
        value["keyring"] = json!(path.display().to_string());
        if let Some(rescued) = rescued {
            value["saved"] = json!(false);
            value["fallback"] = json!(rescued.file.as_ref().map(|f| f.display().to_string()));
        }
        if flags.show_secret {
            value["secret"] = json!(changed.secret.expose_text());
        }
        super::print_json(&value);
        return;
    }
    if let Some(rescued) = rescued {
        let fallback = rescued.file.as_ref().map_or_else(
            || "nowhere (see stderr)".to_owned(),
            |f| f.display().to_string(),
        );
        println!(
            "{what} {} ({} -> {}); secret NOT saved to {}, but to {fallback}",
            s.id,
            s.object_type,
            s.url,
            path.display()
        );
        if flags.show_secret {
            println!("secret: {}", changed.secret.expose_text());
        }
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
