//! Reading a keyring from `MONITE_WEBHOOK_*` text: [`Keyring::parse_pairs`] and
//! [`Keyring::from_env`].

use super::{Keyring, looks_like_secret};
use crate::error::{Error, ErrorKind, Result};
use crate::signature::secret::Secret;

impl Keyring {
    /// Reads `<subscription_id>=<secret>` pairs separated by commas, the form of
    /// `MONITE_WEBHOOK_SECRETS`. Whitespace around pairs and around `=` is ignored; a
    /// subscription named twice keeps both secrets, the later one as current (a rotation).
    ///
    /// ```
    /// use monite_webhooks::Keyring;
    ///
    /// let keyring = Keyring::parse_pairs("sub-a=whsec_a, sub-b=whsec_b")?;
    /// assert_eq!(keyring.len(), 2);
    /// assert!(keyring.contains("sub-b"));
    /// # Ok::<(), monite_webhooks::Error>(())
    /// ```
    ///
    /// A pair is split at its first `=`, so a secret given without its id (`whsec_abc==`)
    /// would read as a subscription whose id is the secret: a pair whose id starts with
    /// `whsec_`, or whose secret is nothing but `=` (base64 padding), is refused instead.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidSecret`] for a pair without `=`, an empty subscription id, an id
    /// that looks like a secret, or a secret [`Secret::new`] refuses. The message names the
    /// pair's position only: neither its id (which may be a misplaced secret) nor its secret.
    pub fn parse_pairs(text: &str) -> Result<Self> {
        let mut keyring = Self::new();
        for (position, pair) in text.split(',').map(str::trim).enumerate() {
            if pair.is_empty() {
                continue;
            }
            let invalid = |why: String| {
                Error::new(
                    ErrorKind::InvalidSecret,
                    format!("subscription secret pair {} {why}", position + 1),
                )
            };
            let Some((id, secret)) = pair.split_once('=') else {
                return Err(invalid(
                    "is not `<subscription_id>=<secret>`: it has no `=`".to_owned(),
                ));
            };
            let (id, secret) = (id.trim(), secret.trim());
            if id.is_empty() {
                return Err(invalid("has an empty subscription id".to_owned()));
            }
            if looks_like_secret(id) {
                return Err(invalid(
                    "starts with `whsec_` instead of `<subscription_id>=`".to_owned(),
                ));
            }
            if secret.trim_start_matches('=').is_empty() {
                return Err(invalid("has no secret after its first `=`".to_owned()));
            }
            let secret =
                Secret::new(secret).map_err(|e| invalid(format!("has an unusable secret: {e}")))?;
            keyring.rotate(id, secret);
        }
        Ok(keyring)
    }

    /// The secrets the environment configures, as the example servers and the
    /// `monite-webhooks` command-line tool read them; empty when none is set:
    ///
    /// - `MONITE_WEBHOOK_KEYRING`: the path of a keyring file ([`Keyring::load`]);
    /// - `MONITE_WEBHOOK_SECRETS`: `<subscription_id>=<secret>` pairs, comma-separated
    ///   ([`Keyring::parse_pairs`]), added to the file's. For a subscription in both, the
    ///   variable's secrets are [rotated](Self::rotate) in after the file's, and a
    ///   subscription holds two at most: named once, its secret there is current and the
    ///   file's current secret is kept as the previous one (the file's previous one is
    ///   dropped); named twice, the later is current, the earlier previous, and neither of
    ///   the file's secrets is kept;
    /// - `MONITE_WEBHOOK_SECRET`: secrets for any subscription, comma-separated (unkeyed),
    ///   labeled `MONITE_WEBHOOK_SECRET[0]`, `[1]`… Empty entries (`"a,b,"`) are skipped,
    ///   as [`Keyring::parse_pairs`] and the command-line tool skip them.
    ///
    /// # Errors
    /// As [`Keyring::load`] and [`Keyring::parse_pairs`], and
    /// [`ErrorKind::InvalidSecret`] for an unusable `MONITE_WEBHOOK_SECRET` entry, naming
    /// the variable and position, never the secret.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Keyring::from_env`], reading the variables through `lookup`.
    fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut keyring = match var("MONITE_WEBHOOK_KEYRING") {
            Some(path) => Self::load(path.trim())?,
            None => Self::new(),
        };
        if let Some(pairs) = var("MONITE_WEBHOOK_SECRETS") {
            for (id, held) in Self::parse_pairs(&pairs)?.subscriptions {
                for secret in held.secrets.into_iter().rev() {
                    keyring.rotate(id.clone(), secret);
                }
            }
        }
        if let Some(secrets) = var("MONITE_WEBHOOK_SECRET") {
            // Empty entries (`a,b,`) are skipped, as `parse_pairs` and the command-line tool
            // skip them, and are not counted in the labels' numbers.
            let entries = secrets.split(',').map(str::trim).filter(|t| !t.is_empty());
            for (position, text) in entries.enumerate() {
                let secret = Secret::new(text).map_err(|e| {
                    Error::new(
                        ErrorKind::InvalidSecret,
                        format!("MONITE_WEBHOOK_SECRET, secret {}: {e}", position + 1),
                    )
                })?;
                keyring.push_unkeyed(secret.labeled(format!("MONITE_WEBHOOK_SECRET[{position}]")));
            }
        }
        Ok(keyring)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> Secret {
        Secret::new(text).unwrap()
    }

    #[test]
    fn pairs_are_read_and_errors_never_show_a_secret() {
        let keyring = Keyring::parse_pairs(" b = whsec_b ,a=whsec_a,, b=whsec_b2").unwrap();
        let ids: Vec<_> = keyring.subscriptions().map(|(id, _)| id).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(
            keyring.get("b").unwrap().current().expose_text(),
            "whsec_b2"
        );
        for (text, says) in [
            ("a=whsec_a,whsec_nokey", "pair 2"),
            ("=whsec_x", "empty subscription id"),
            ("a=", "pair 1 has no secret"),
        ] {
            let err = Keyring::parse_pairs(text).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidSecret);
            let message = err.to_string();
            assert!(message.contains(says), "{message}");
            assert!(!message.contains("whsec_"), "a secret leaked: {message}");
        }
        let debug = format!("{keyring:?}");
        assert!(!debug.contains("whsec_"), "{debug}");
    }

    /// A lookup of the variables `set`, as [`Keyring::from_vars`] takes it.
    fn vars(set: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let set: std::collections::HashMap<String, String> = set
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        move |name| set.get(name).cloned()
    }

    fn texts(secrets: &[Secret]) -> Vec<&str> {
        secrets.iter().map(Secret::expose_text).collect()
    }

    #[test]
    fn empty_entries_of_monite_webhook_secret_are_skipped() {
        for value in [
            "whsec_a,whsec_b,",
            " , whsec_a,, whsec_b , ",
            ",whsec_a,whsec_b",
        ] {
            let keyring = Keyring::from_vars(vars(&[("MONITE_WEBHOOK_SECRET", value)]))
                .unwrap_or_else(|e| panic!("{value:?}: {e}"));
            assert_eq!(
                texts(keyring.unkeyed()),
                ["whsec_a", "whsec_b"],
                "{value:?}"
            );
            // Numbered as the command-line tool numbers them: empty entries do not count.
            let labels: Vec<_> = keyring.unkeyed().iter().map(Secret::label).collect();
            assert_eq!(
                labels,
                [
                    Some("MONITE_WEBHOOK_SECRET[0]"),
                    Some("MONITE_WEBHOOK_SECRET[1]")
                ],
                "{value:?}"
            );
        }
        let none = Keyring::from_vars(vars(&[("MONITE_WEBHOOK_SECRET", " , ")])).unwrap();
        assert!(none.is_empty());
    }

    /// What `from_env`'s documentation says of a subscription in both the file and
    /// `MONITE_WEBHOOK_SECRETS`.
    #[test]
    fn monite_webhook_secrets_rotate_in_over_the_files_secrets() {
        let dir = std::env::temp_dir().join(format!("monite-from-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("keyring.json");
        let mut saved = Keyring::new()
            .with_subscription("s", secret("whsec_file_old"))
            .with_subscription("t", secret("whsec_t_file"));
        saved.rotate("s", secret("whsec_file_new"));
        saved.save(&file).unwrap();
        let file = file.to_str().unwrap();

        for (pairs, s, t) in [
            // One secret: it is current, the file's current one is kept as the previous.
            (
                "s=whsec_env",
                ["whsec_env", "whsec_file_new"],
                vec!["whsec_t_file"],
            ),
            // Two: the later is current, the earlier previous; the file's are both gone.
            (
                "s=whsec_env_1, s=whsec_env_2",
                ["whsec_env_2", "whsec_env_1"],
                vec!["whsec_t_file"],
            ),
            (
                "t=whsec_t_env",
                ["whsec_file_new", "whsec_file_old"],
                vec!["whsec_t_env", "whsec_t_file"],
            ),
        ] {
            let keyring = Keyring::from_vars(vars(&[
                ("MONITE_WEBHOOK_KEYRING", file),
                ("MONITE_WEBHOOK_SECRETS", pairs),
            ]))
            .unwrap();
            assert_eq!(texts(keyring.get("s").unwrap().as_slice()), s, "{pairs}");
            assert_eq!(texts(keyring.get("t").unwrap().as_slice()), t, "{pairs}");
        }
    }
}
