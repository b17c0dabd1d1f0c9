//! Where the signing secrets come from: `--secret` flags, else the environment
//! (`MONITE_WEBHOOK_SECRETS`, `MONITE_WEBHOOK_SECRET`). Each secret carries a label that
//! says where it came from; the label, never the secret, is what gets printed.

use monite_webhooks::{KeyConvention, Secret};

use crate::args::SecretArgs;
use crate::failure::Failure;

/// `<subscription_id>=<whsec_...>,...`: one secret per subscription.
pub(crate) const SECRETS_VAR: &str = "MONITE_WEBHOOK_SECRETS";
/// `<whsec_...>[,<whsec_...>]`: one subscription's secrets, the current one first.
pub(crate) const SECRET_VAR: &str = "MONITE_WEBHOOK_SECRET";

/// A secret's text with where it came from. `Debug` is redacted.
#[derive(Clone)]
pub(crate) struct NamedSecret {
    /// Where it came from, such as `--secret #2` or `subscription f3c6...`.
    pub(crate) label: String,
    /// The subscription it belongs to, when known.
    pub(crate) subscription_id: Option<String>,
    text: String,
}

impl std::fmt::Debug for NamedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedSecret")
            .field("label", &self.label)
            .field("subscription_id", &self.subscription_id)
            .finish_non_exhaustive()
    }
}

impl NamedSecret {
    pub(crate) fn new(label: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            subscription_id: None,
            text: text.into(),
        }
    }

    /// The library's secret, read with `convention` and labeled.
    pub(crate) fn secret(&self, convention: KeyConvention) -> Result<Secret, Failure> {
        Secret::with_convention(&self.text, convention)
            .map(|secret| secret.labeled(self.label.clone()))
            .map_err(|e| Failure::usage(format!("secret {}: {e}", self.label)))
    }

    /// The secret under the other convention too, where the text has that reading.
    pub(crate) fn readings(&self) -> Vec<(KeyConvention, Secret)> {
        [KeyConvention::Raw, KeyConvention::WhsecBase64]
            .into_iter()
            .filter_map(|convention| {
                let secret = Secret::with_convention(&self.text, convention).ok()?;
                Some((convention, secret))
            })
            .collect()
    }
}

/// Every configured secret, flags first; an error if there is none.
pub(crate) fn resolve(args: &SecretArgs) -> Result<Vec<NamedSecret>, Failure> {
    let mut found = from_flags(&args.secrets);
    if found.is_empty() {
        found = from_environment()?;
    }
    if let Some(id) = &args.subscription_id
        && args.secrets.is_empty()
    {
        found.retain(|s| s.subscription_id.as_deref() == Some(id.as_str()));
        if found.is_empty() {
            return Err(Failure::usage(format!(
                "no secret for subscription {id}: add `{id}=whsec_...` to {SECRETS_VAR}, or pass --secret"
            )));
        }
    }
    if found.is_empty() {
        return Err(Failure::usage(format!(
            "no signing secret: pass --secret, or set {SECRET_VAR} or {SECRETS_VAR}"
        )));
    }
    Ok(found)
}

/// The one secret to sign with: the first flag, the chosen subscription's, the only one
/// configured, or the current (first) entry of `MONITE_WEBHOOK_SECRET`.
pub(crate) fn signing(args: &SecretArgs) -> Result<(Secret, Option<String>), Failure> {
    let found = resolve(args)?;
    let chosen = if !args.secrets.is_empty() || args.subscription_id.is_some() || found.len() == 1 {
        &found[0]
    } else if let Some(single) = found.iter().find(|s| s.subscription_id.is_none()) {
        single
    } else {
        return Err(Failure::usage(format!(
            "{} secrets are configured: choose the one to sign with by --subscription-id",
            found.len()
        )));
    };
    let subscription = args
        .subscription_id
        .clone()
        .or_else(|| chosen.subscription_id.clone());
    Ok((chosen.secret(args.convention.into())?, subscription))
}

fn from_flags(flags: &[String]) -> Vec<NamedSecret> {
    flags
        .iter()
        .enumerate()
        .map(|(i, text)| NamedSecret::new(format!("--secret #{}", i + 1), text.clone()))
        .collect()
}

fn from_environment() -> Result<Vec<NamedSecret>, Failure> {
    let mut found = Vec::new();
    if let Some(value) = variable(SECRETS_VAR) {
        for (i, entry) in value.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let Some((id, text)) = entry.split_once('=') else {
                return Err(Failure::usage(format!(
                    "{SECRETS_VAR} entry {} is not `<subscription_id>=<secret>`",
                    i + 1
                )));
            };
            let id = id.trim();
            let mut secret = NamedSecret::new(format!("subscription {id}"), text.trim());
            secret.subscription_id = Some(id.to_owned());
            found.push(secret);
        }
    }
    if let Some(value) = variable(SECRET_VAR) {
        found.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .enumerate()
                .map(|(i, text)| NamedSecret::new(format!("{SECRET_VAR}[{i}]"), text)),
        );
    }
    Ok(found)
}

fn variable(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
