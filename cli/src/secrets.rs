//! Where the signing secrets come from: `--secret` and `--secret-file` flags, else the environment
//! (`MONITE_WEBHOOK_SECRETS`, `MONITE_WEBHOOK_SECRET`) and the keyring file. Each secret
//! carries a label that says where it came from; the label, never the secret, is printed.
//! Verification goes through the library's [`Keyring`]: a delivery naming a subscription is
//! checked against that subscription's secrets.

use std::path::{Path, PathBuf};

use monite_webhooks::signature::KeyConvention;
use monite_webhooks::{Keyring, Secret, Verifier};

use crate::failure::Failure;
use crate::options::SecretArgs;

/// `<subscription_id>=<whsec_...>,...`: one secret per subscription.
pub(crate) const SECRETS_VAR: &str = "MONITE_WEBHOOK_SECRETS";
/// `<whsec_...>[,<whsec_...>]`: secrets of no subscription in particular, current first.
pub(crate) const SECRET_VAR: &str = "MONITE_WEBHOOK_SECRET";
/// The keyring file's path.
pub(crate) const KEYRING_VAR: &str = "MONITE_WEBHOOK_KEYRING";
/// The keyring file used when neither `--keyring` nor `MONITE_WEBHOOK_KEYRING` names one.
pub(crate) const DEFAULT_KEYRING: &str = "monite-webhooks-keyring.json";

/// A secret's text with where it came from. `Debug` is redacted.
#[derive(Clone)]
pub(crate) struct NamedSecret {
    /// Where it came from, such as `--secret #2` or `subscription f3c6...`.
    pub(crate) label: String,
    /// The subscription it belongs to, when known.
    pub(crate) subscription_id: Option<String>,
    text: String,
    /// The convention the keyring file gives it; else the command line's.
    convention: Option<KeyConvention>,
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
            convention: None,
        }
    }

    fn of_subscription(id: &str, label: String, text: &str) -> Self {
        Self {
            label,
            subscription_id: Some(id.to_owned()),
            text: text.to_owned(),
            convention: None,
        }
    }

    /// The library's secret, read with its own convention or `convention`, and labeled.
    pub(crate) fn secret(&self, convention: KeyConvention) -> Result<Secret, Failure> {
        Secret::with_convention(&self.text, self.convention.unwrap_or(convention))
            .map(|secret| secret.labeled(self.label.clone()))
            .map_err(|e| Failure::usage(format!("secret {}: {e}", self.label)))
    }

    /// The secret under both conventions, where the text has both readings.
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

/// The keyring file's path: `--keyring`, else `MONITE_WEBHOOK_KEYRING`, else
/// `monite-webhooks-keyring.json` in the current directory.
pub(crate) fn keyring_path(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| variable(KEYRING_VAR).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_KEYRING))
}

/// The keyring file, or an empty keyring if there is none yet at the default path.
pub(crate) fn load_keyring(path: &Path, must_exist: bool) -> Result<Keyring, Failure> {
    if !must_exist && !path.exists() {
        return Ok(Keyring::new());
    }
    Keyring::load(path).map_err(|e| Failure::usage(e.to_string()))
}

/// Every configured secret, current ones first; an error if there is none.
pub(crate) fn resolve(args: &SecretArgs) -> Result<Vec<NamedSecret>, Failure> {
    let mut found = from_flags(args)?;
    if found.is_empty() {
        found = from_environment()?;
        // A keyring file named explicitly must exist; the default one may not.
        let explicit = args.keyring.is_some() || variable(KEYRING_VAR).is_some();
        let path = keyring_path(args.keyring.as_deref());
        found.extend(from_keyring(&load_keyring(&path, explicit)?, Some(&path)));
    }
    if let Some(id) = &args.subscription_id
        && !has_flags(args)
    {
        found.retain(|s| s.subscription_id.as_deref() == Some(id.as_str()));
        if found.is_empty() {
            return Err(Failure::usage(format!(
                "no secret for subscription {id}: add `{id}=whsec_...` to {SECRETS_VAR}, \
                 keep it in the keyring file, or pass --secret"
            )));
        }
    }
    if found.is_empty() {
        return Err(Failure::usage(format!(
            "no signing secret: pass --secret, set {SECRET_VAR} or {SECRETS_VAR}, or keep a \
             keyring file ({DEFAULT_KEYRING}, --keyring or {KEYRING_VAR})"
        )));
    }
    Ok(found)
}

/// A verifier for `secrets`: per subscription through a [`Keyring`], the others unkeyed.
pub(crate) fn verifier(
    secrets: &[NamedSecret],
    convention: KeyConvention,
) -> Result<Verifier, Failure> {
    let mut keyring = Keyring::new();
    // Current secrets come first; insert the previous one, then rotate to the current.
    for named in secrets.iter().rev() {
        let secret = named.secret(convention)?;
        match &named.subscription_id {
            Some(id) if keyring.contains(id) => keyring.rotate(id.clone(), secret),
            Some(id) => keyring.insert(id.clone(), secret),
            None => {}
        }
    }
    for named in secrets.iter().filter(|s| s.subscription_id.is_none()) {
        keyring.push_unkeyed(named.secret(convention)?);
    }
    Ok(Verifier::from_keyring(keyring))
}

/// The one secret to sign with: the first flag, the chosen subscription's, the only one
/// configured, or the current (first) entry of `MONITE_WEBHOOK_SECRET`.
pub(crate) fn signing(args: &SecretArgs) -> Result<(Secret, Option<String>), Failure> {
    let found = resolve(args)?;
    let subscriptions = found
        .iter()
        .filter_map(|s| s.subscription_id.as_deref())
        .collect::<std::collections::BTreeSet<_>>();
    let chosen = if has_flags(args) || args.subscription_id.is_some() || subscriptions.len() <= 1 {
        &found[0]
    } else if let Some(unkeyed) = found.iter().find(|s| s.subscription_id.is_none()) {
        unkeyed
    } else {
        return Err(Failure::usage(format!(
            "secrets of {} subscriptions are configured: choose the one to sign with by \
             --subscription-id",
            subscriptions.len()
        )));
    };
    let subscription = args
        .subscription_id
        .clone()
        .or_else(|| chosen.subscription_id.clone());
    Ok((chosen.secret(args.convention.into())?, subscription))
}

/// Whether secrets were given on the command line (`--secret` or `--secret-file`).
fn has_flags(args: &SecretArgs) -> bool {
    !args.secrets.is_empty() || !args.secret_files.is_empty()
}

/// The secrets of `--secret`, then those of each `--secret-file`.
fn from_flags(args: &SecretArgs) -> Result<Vec<NamedSecret>, Failure> {
    let mut found: Vec<NamedSecret> = args
        .secrets
        .iter()
        .enumerate()
        .map(|(i, text)| NamedSecret::new(format!("--secret #{}", i + 1), text.clone()))
        .collect();
    if args.secret_files.iter().filter(|p| is_stdin(p)).count() > 1 {
        return Err(Failure::usage(
            "--secret-file - is given twice: stdin is read once",
        ));
    }
    for path in &args.secret_files {
        let lines = read_secret_file(path, "--secret-file")?;
        let name = describe(path);
        found.extend(
            lines
                .into_iter()
                .enumerate()
                .map(|(i, text)| NamedSecret::new(format!("{name} #{}", i + 1), text)),
        );
    }
    Ok(found)
}

/// Refuses `--secret-file -` together with a body read from stdin (`-`).
pub(crate) fn check_stdin(args: &SecretArgs, body: &Path) -> Result<(), Failure> {
    if is_stdin(body) && args.secret_files.iter().any(|p| is_stdin(p)) {
        return Err(Failure::usage(
            "the body and --secret-file both read stdin (`-`): give one of them as a file",
        ));
    }
    Ok(())
}

/// The one secret of a file such as `--forward-secret-file`: its first non-blank line.
pub(crate) fn secret_from_file(path: &Path, flag: &str) -> Result<NamedSecret, Failure> {
    let first = read_secret_file(path, flag)?.swap_remove(0);
    Ok(NamedSecret::new(
        format!("{flag} {}", describe(path)),
        first,
    ))
}

fn is_stdin(path: &Path) -> bool {
    path == Path::new("-")
}

/// How a secret file is named in labels and messages.
fn describe(path: &Path) -> String {
    if is_stdin(path) {
        "stdin".to_owned()
    } else {
        path.display().to_string()
    }
}

/// The non-blank lines of a secret file (`-`: stdin), each trimmed; an error if there is
/// none. Messages name the file, never its contents.
fn read_secret_file(path: &Path, flag: &str) -> Result<Vec<String>, Failure> {
    let text = if is_stdin(path) {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| Failure::usage(format!("{flag}: cannot read stdin: {e}")))?;
        text
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("{flag}: cannot read {}: {e}", path.display())))?
    };
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if lines.is_empty() {
        return Err(Failure::usage(format!(
            "{flag}: {} holds no secret",
            describe(path)
        )));
    }
    Ok(lines)
}

fn from_environment() -> Result<Vec<NamedSecret>, Failure> {
    let mut found = match variable(SECRETS_VAR) {
        Some(value) => {
            let pairs = Keyring::parse_pairs(&value)
                .map_err(|e| Failure::usage(format!("{SECRETS_VAR}: {e}")))?;
            from_keyring(&pairs, None)
        }
        None => Vec::new(),
    };
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

/// The secrets `keyring` holds, with the labels it gives them, current ones first. Those of
/// a keyring `file` keep the convention the file gives them, and its unkeyed ones are
/// labeled with its path; those of `MONITE_WEBHOOK_SECRETS` (`None`) follow `--convention`.
fn from_keyring(keyring: &Keyring, file: Option<&Path>) -> Vec<NamedSecret> {
    let mut found = Vec::new();
    for (id, held) in keyring.subscriptions() {
        for secret in held.as_slice() {
            let label = secret.label().unwrap_or(id).to_owned();
            let mut named = NamedSecret::of_subscription(id, label, secret.expose_text());
            named.convention = file.map(|_| secret.convention());
            found.push(named);
        }
    }
    if let Some(path) = file {
        found.extend(keyring.unkeyed().iter().enumerate().map(|(i, secret)| {
            NamedSecret::new(
                format!("{} unkeyed #{}", path.display(), i + 1),
                secret.expose_text(),
            )
        }));
    }
    found
}

fn variable(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
