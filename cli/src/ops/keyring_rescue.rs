//! Saving a keyring that holds a secret Monite returned only once, and rescuing it when
//! the keyring file cannot take it: a fallback file (mode 0600), else stderr.

use std::path::{Path, PathBuf};

use monite_webhooks::Keyring;
use monite_webhooks::client::SubscriptionWithSecret;

use crate::failure::Failure;

/// Where a keyring that could not be saved went instead.
#[derive(Debug)]
pub(crate) struct Rescued {
    /// The fallback file, if one could be written.
    pub(crate) file: Option<PathBuf>,
    /// The sentence for the error line.
    said: String,
}

impl std::fmt::Display for Rescued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.said)
    }
}

/// A keyring with a new secret that its file did not take.
#[derive(Debug)]
pub(crate) struct Unsaved {
    pub(crate) rescued: Rescued,
    /// The command's failure, which names the subscription, the save's error and the rescue.
    pub(crate) failure: Failure,
}

/// Saves `keyring` to `path` after Monite returned `changed`'s new secret. If the file
/// cannot be saved, the keyring goes to a fallback file (see [`rescue`]).
pub(crate) fn save(
    keyring: &Keyring,
    path: &Path,
    changed: &SubscriptionWithSecret,
) -> Result<(), Unsaved> {
    let Err(e) = keyring.save(path) else {
        return Ok(());
    };
    let id = &changed.subscription.id;
    let rescued = rescue(
        keyring,
        path,
        &[(id.clone(), changed.secret.expose_text().to_owned())],
    );
    let failure = Failure::negative(format!(
        "subscription {id} has a new secret, but {e}; {rescued}"
    ));
    Err(Unsaved { rescued, failure })
}

/// Writes `keyring`, which `path` could not take, to a fallback file (mode 0600): beside
/// `path`, else in the temporary directory. If neither can be written, the `fresh` secrets
/// (those obtained by this run, which exist nowhere else) are printed on stderr as the last
/// resort: after a create or a regenerate, Monite will not give them again.
pub(crate) fn rescue(keyring: &Keyring, path: &Path, fresh: &[(String, String)]) -> Rescued {
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
pub(crate) fn fresh_since(before: &Keyring, now: &Keyring) -> Vec<(String, String)> {
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
