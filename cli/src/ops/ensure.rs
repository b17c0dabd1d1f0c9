//! `subscriptions ensure`'s work: the plan, the check before regenerating secrets, and the
//! library's `ensure_with` saving the keyring after each secret Monite returns.

use std::path::{Path, PathBuf};

use futures_util::TryStreamExt as _;
use monite_webhooks::client::{
    Client, EnsureSummary, ListQuery, SubscriptionPlan, WebhookSubscription,
};
use monite_webhooks::{Keyring, ObjectType};

use crate::failure::Failure;
use crate::ops::keyring_rescue;
use crate::secrets;

/// What `ensure` is asked to do, as the command line said it.
#[derive(Debug)]
pub(crate) struct EnsureOptions<'a> {
    pub(crate) url: &'a str,
    /// Every object type Monite's API accepts when empty.
    pub(crate) object_types: &'a [String],
    pub(crate) regenerate_missing: bool,
    pub(crate) keyring_path: PathBuf,
}

/// What `ensure` did, and the keyring it left (saved to `keyring_path`).
#[derive(Debug)]
pub(crate) struct Ensured {
    pub(crate) report: EnsureSummary,
    pub(crate) keyring: Keyring,
    pub(crate) keyring_path: PathBuf,
}

/// Runs the plan. If the keyring file cannot be saved, the keyring is rescued (see
/// [`keyring_rescue::rescue`]) and the run fails.
pub(crate) async fn ensure(
    client: &Client,
    options: EnsureOptions<'_>,
) -> Result<Ensured, Failure> {
    let plan = if options.object_types.is_empty() {
        SubscriptionPlan::every_object_type(options.url.to_owned())
    } else {
        SubscriptionPlan::new(
            options.url.to_owned(),
            options
                .object_types
                .iter()
                .map(|t| ObjectType::from(t.as_str())),
        )
    }
    .regenerate_missing_secrets(options.regenerate_missing);
    let path = options.keyring_path;
    let existed = path.exists();
    let mut keyring = secrets::load_keyring(&path, false)?;
    if options.regenerate_missing {
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
    match result {
        Ok(report) => Ok(Ensured {
            report,
            keyring,
            keyring_path: path,
        }),
        Err(error) if save_failed => {
            let fresh = keyring_rescue::fresh_since(&loaded, &keyring);
            let rescued = keyring_rescue::rescue(&keyring, &path, &fresh);
            Err(Failure::negative(format!("{error}; {rescued}")))
        }
        Err(error) => Err(error.into()),
    }
}

/// Before an `ensure --regenerate-missing`: the secrets it would invalidate are counted and
/// printed (stderr), and the run is refused if the keyring file did not exist or holds no
/// secret of the URL's subscriptions: regenerating then would most likely invalidate the
/// secrets every receiver holds, because this is the wrong file.
async fn check_regeneration(
    client: &Client,
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
