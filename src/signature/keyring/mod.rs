//! Secrets keyed by webhook subscription, so one endpoint serves every subscription at the
//! cost of one.

mod env;
mod file;
mod hint;
mod index;

use std::fmt;

use self::hint::{same_id, subscription_hint};
use self::index::{PrefixIndex, prefix};
use super::secret::Secret;
use crate::error::{Error, ErrorKind, Result};

/// The most secrets one subscription holds: its current one and, during a rotation, the
/// previous one.
const SECRETS_PER_SUBSCRIPTION: usize = 2;

/// The secrets of every webhook subscription one endpoint serves, keyed by subscription id.
///
/// Monite creates one subscription per object type, each with its own secret, and names
/// it in every delivery (`webhook_subscription_id`). A [`Verifier`](crate::Verifier) built
/// [`from_keyring`](crate::Verifier::from_keyring) reads that id from the body (a hint:
/// the HMAC decides) and checks the signature against that subscription's secrets only, so
/// forty subscriptions cost what one does, and a delivery naming a subscription the keyring
/// does not hold is refused with no HMAC at all.
///
/// Secrets that belong to no subscription in particular ("unkeyed") are tried for
/// envelopes that name none (the 2022 generation), and for those naming a subscription the
/// keyring does not hold, if there are any.
///
/// ```
/// use monite_webhooks::{Keyring, Secret, Verifier};
///
/// let keyring = Keyring::new()
///     .with_subscription("3f9c1a52-payables", Secret::new("whsec_payables")?)
///     .with_subscription("b7d2e013-counterparts", Secret::new("whsec_counterparts")?);
/// let verifier = Verifier::from_keyring(keyring);
/// # let _ = verifier;
/// # Ok::<(), monite_webhooks::Error>(())
/// ```
///
/// A keyring can also be read from `MONITE_WEBHOOK_SECRETS`-style text
/// ([`Keyring::parse_pairs`]) or from a keyring file ([`Keyring::load`]).
#[derive(Clone, Default)]
pub struct Keyring {
    // Sorted by id, so that ids sharing a prefix are neighbours.
    subscriptions: Vec<(Box<str>, SubscriptionSecrets)>,
    // Derived from `subscriptions` by `reindex`: the first eight bytes of each id as a
    // big-endian number, in the same order, and where each prefix's run starts, hashed. A
    // delivery's id is found in one probe, mostly, and one full comparison.
    prefixes: Vec<u64>,
    index: PrefixIndex,
    unkeyed: Vec<Secret>,
}

/// One subscription's secrets: the current one first, then the previous one during a
/// rotation.
#[derive(Clone)]
pub struct SubscriptionSecrets {
    // Never empty; at most `SECRETS_PER_SUBSCRIPTION`, newest first.
    secrets: Vec<Secret>,
}

impl SubscriptionSecrets {
    /// The secret Monite signs with now.
    #[must_use]
    pub fn current(&self) -> &Secret {
        &self.secrets[0]
    }

    /// The secret it signed with before the last rotation, while it is kept.
    #[must_use]
    pub fn previous(&self) -> Option<&Secret> {
        self.secrets.get(1)
    }

    /// Every secret held, newest first: the order they are tried in.
    #[must_use]
    pub fn as_slice(&self) -> &[Secret] {
        &self.secrets
    }
}

impl Keyring {
    /// An empty keyring.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `subscription_id`'s secret, replacing any it held. The secret is labeled with
    /// the subscription id, unless it already has a label, so logs say which one matched.
    #[must_use]
    pub fn with_subscription(mut self, subscription_id: impl Into<String>, secret: Secret) -> Self {
        self.insert(subscription_id, secret);
        self
    }

    /// Adds a secret tried for deliveries that name no subscription the keyring holds.
    #[must_use]
    pub fn with_unkeyed(mut self, secret: Secret) -> Self {
        self.unkeyed.push(secret);
        self
    }

    /// Sets `subscription_id`'s secret, replacing any it held (its previous one too).
    pub fn insert(&mut self, subscription_id: impl Into<String>, secret: Secret) {
        let id = subscription_id.into();
        let held = SubscriptionSecrets {
            secrets: vec![label(secret, &id, "")],
        };
        match self.position(&id) {
            Ok(at) => self.subscriptions[at].1 = held,
            Err(at) => {
                self.subscriptions.insert(at, (id.into_boxed_str(), held));
                self.reindex();
            }
        }
    }

    /// Where the subscription named by `id` (the body's bytes, not yet known to be UTF-8)
    /// is held.
    fn find(&self, id: &[u8]) -> Option<usize> {
        let wanted = prefix(id);
        let mut at = self.index.first(&self.prefixes, wanted)?;
        while self.prefixes.get(at) == Some(&wanted) {
            if same_id(&self.subscriptions[at].0, id) {
                return Some(at);
            }
            at += 1;
        }
        None
    }

    /// Rebuilds the lookup state from the subscriptions, after one was added or removed.
    fn reindex(&mut self) {
        self.prefixes = self
            .subscriptions
            .iter()
            .map(|(id, _)| prefix(id.as_bytes()))
            .collect();
        self.index = PrefixIndex::new(&self.prefixes);
    }

    fn position(&self, subscription_id: &str) -> Result<usize, usize> {
        self.subscriptions
            .binary_search_by(|(id, _)| (**id).cmp(subscription_id))
    }

    /// Makes `secret` the current secret of `subscription_id` and keeps the one it
    /// replaces as the previous one, so deliveries signed before the rotation still
    /// verify; an older previous secret is dropped.
    ///
    /// Monite invalidates the old secret as soon as it makes a new one: only deliveries
    /// already signed with it (a retry of a failed delivery re-signs with the new secret)
    /// need the previous one. Keep it for a few minutes, then
    /// [`forget_previous`](Self::forget_previous).
    pub fn rotate(&mut self, subscription_id: impl Into<String>, secret: Secret) {
        let id = subscription_id.into();
        let secret = label(secret, &id, "");
        match self
            .position(&id)
            .ok()
            .map(|at| &mut self.subscriptions[at].1)
        {
            Some(held) => {
                let previous = held.secrets.swap_remove(0);
                held.secrets.clear();
                held.secrets.push(secret);
                held.secrets.push(relabel_previous(previous, &id));
                debug_assert!(held.secrets.len() <= SECRETS_PER_SUBSCRIPTION);
            }
            None => self.insert(id, secret),
        }
    }

    /// Drops `subscription_id`'s previous secret, once the rotation is over; answers
    /// whether there was one.
    pub fn forget_previous(&mut self, subscription_id: &str) -> bool {
        let Ok(at) = self.position(subscription_id) else {
            return false;
        };
        let held = &mut self.subscriptions[at].1;
        let had_previous = held.secrets.len() > 1;
        held.secrets.truncate(1);
        had_previous
    }

    /// Removes a subscription (deleted at Monite); answers whether the keyring held it.
    pub fn remove(&mut self, subscription_id: &str) -> bool {
        self.position(subscription_id)
            .map(|at| {
                self.subscriptions.remove(at);
                self.reindex();
            })
            .is_ok()
    }

    /// Adds a secret tried for deliveries that name no subscription the keyring holds.
    pub fn push_unkeyed(&mut self, secret: Secret) {
        self.unkeyed.push(secret);
    }

    /// The secrets of `subscription_id`.
    #[must_use]
    pub fn get(&self, subscription_id: &str) -> Option<&SubscriptionSecrets> {
        self.find(subscription_id.as_bytes())
            .map(|at| &self.subscriptions[at].1)
    }

    /// Whether `subscription_id` is held.
    #[must_use]
    pub fn contains(&self, subscription_id: &str) -> bool {
        self.find(subscription_id.as_bytes()).is_some()
    }

    /// The subscriptions held, by id.
    pub fn subscriptions(&self) -> impl Iterator<Item = (&str, &SubscriptionSecrets)> {
        self.subscriptions.iter().map(|(id, held)| (&**id, held))
    }

    /// The secrets that belong to no subscription, in the order they are tried.
    #[must_use]
    pub fn unkeyed(&self) -> &[Secret] {
        &self.unkeyed
    }

    /// How many subscriptions are held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.subscriptions.len()
    }

    /// Whether the keyring holds no secret at all, keyed or not.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.subscriptions.is_empty() && self.unkeyed.is_empty()
    }

    /// The subscription id a delivery names, and the secrets to try for it.
    ///
    /// With no subscription held, every delivery is checked against the unkeyed secrets
    /// and the body is not read at all.
    pub(crate) fn candidates(&self, body: &[u8]) -> Result<Candidates<'_>> {
        if self.subscriptions.is_empty() {
            return Ok(Candidates {
                subscription: None,
                secrets: &self.unkeyed,
            });
        }
        let named = subscription_hint(body);
        if let Some(at) = named.and_then(|named| self.find(named)) {
            let (id, held) = &self.subscriptions[at];
            return Ok(Candidates {
                subscription: Some(id),
                secrets: held.as_slice(),
            });
        }
        if !self.unkeyed.is_empty() {
            return Ok(Candidates {
                subscription: None,
                secrets: &self.unkeyed,
            });
        }
        Err(self.unknown_subscription(named))
    }

    // Out of line: the error's text would otherwise weigh on every request's call.
    #[cold]
    fn unknown_subscription(&self, named: Option<&[u8]>) -> Error {
        match named {
            Some(named) => Error::new(
                ErrorKind::UnknownSubscription,
                format!(
                    "the delivery names webhook subscription {}, whose secret is not held \
                     ({} held)",
                    printable(&String::from_utf8_lossy(named)),
                    self.subscriptions.len()
                ),
            ),
            None => Error::new(
                ErrorKind::UnknownSubscription,
                "the delivery names no webhook subscription and no unkeyed secret is held",
            ),
        }
    }
}

/// What [`Keyring::candidates`] found.
pub(crate) struct Candidates<'k> {
    /// The subscription the delivery named, if the keyring holds it.
    pub(crate) subscription: Option<&'k str>,
    pub(crate) secrets: &'k [Secret],
}

/// Whether a subscription id is more likely a misplaced secret: it is printed in labels,
/// logs and error messages, so such an id is refused rather than kept.
pub(crate) fn looks_like_secret(id: &str) -> bool {
    id.get(..WHSEC_PREFIX.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(WHSEC_PREFIX))
}

const WHSEC_PREFIX: &str = "whsec_";

/// Labels an unlabeled secret with its subscription, for logs.
fn label(secret: Secret, id: &str, suffix: &str) -> Secret {
    if secret.label().is_some() {
        secret
    } else {
        secret.labeled(format!("subscription {id}{suffix}"))
    }
}

fn relabel_previous(secret: Secret, id: &str) -> Secret {
    match secret.label() {
        Some(label) if label == format!("subscription {id}") => {
            secret.labeled(format!("subscription {id} (previous)"))
        }
        _ => label(secret, id, " (previous)"),
    }
}

/// At most this much of a hostile id goes into a log line.
fn printable(id: &str) -> String {
    id.chars().take(64).flat_map(char::escape_debug).collect()
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field(
                "subscriptions",
                &self
                    .subscriptions
                    .iter()
                    .map(|(id, held)| (id, held))
                    .collect::<Vec<_>>(),
            )
            .field("unkeyed", &self.unkeyed)
            .finish()
    }
}

impl fmt::Debug for SubscriptionSecrets {
    // `Secret`'s own `Debug` is redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.secrets).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> Secret {
        Secret::new(text).unwrap()
    }

    #[test]
    fn a_subscription_holds_its_current_and_previous_secret() {
        let mut keyring = Keyring::new().with_subscription("sub", secret("whsec_1"));
        keyring.rotate("sub", secret("whsec_2"));
        keyring.rotate("sub", secret("whsec_3"));
        let held = keyring.get("sub").unwrap();
        assert_eq!(held.current().expose_text(), "whsec_3");
        assert_eq!(held.previous().unwrap().expose_text(), "whsec_2");
        assert_eq!(held.as_slice().len(), SECRETS_PER_SUBSCRIPTION);
        assert_eq!(held.current().label(), Some("subscription sub"));
        assert_eq!(
            held.previous().unwrap().label(),
            Some("subscription sub (previous)")
        );
        assert!(keyring.forget_previous("sub"));
        assert!(!keyring.forget_previous("sub"));
        assert!(keyring.remove("sub"));
        assert!(keyring.is_empty());
    }

    #[test]
    fn ids_sharing_a_prefix_or_shorter_than_it_are_told_apart() {
        let ids = [
            "a",
            "ab",
            "abcdefgh",
            "abcdefgh-1",
            "abcdefgh-2",
            "abcdefgi",
            "b",
        ];
        let keyring = ids.iter().rev().fold(Keyring::new(), |keyring, id| {
            keyring.with_subscription(*id, secret(&format!("whsec_{id}")))
        });
        for id in ids {
            let held = keyring.get(id).unwrap();
            assert_eq!(held.current().expose_text(), format!("whsec_{id}"));
        }
        for absent in ["", "abc", "abcdefgh-", "abcdefgh-3", "c"] {
            assert!(!keyring.contains(absent), "{absent}");
        }
        let mut keyring = keyring;
        assert!(keyring.remove("abcdefgh-1"));
        assert!(keyring.contains("abcdefgh-2") && !keyring.contains("abcdefgh-1"));
    }

    proptest::proptest! {
        /// The prefix index finds exactly the ids a plain set holds, through inserts and
        /// removals, with ids that share prefixes, are shorter than one, or collide.
        #[test]
        fn lookups_agree_with_a_set(
            steps in proptest::collection::vec(("[ab]{0,10}|[0-9a-f-]{36}", proptest::bool::ANY), 0..60),
            probes in proptest::collection::vec("[ab]{0,10}", 0..20),
        ) {
            let mut keyring = Keyring::new();
            let mut model = std::collections::BTreeSet::new();
            for (id, add) in &steps {
                if *add {
                    keyring.insert(id.clone(), secret("whsec_x"));
                    model.insert(id.clone());
                } else {
                    proptest::prop_assert_eq!(keyring.remove(id), model.remove(id));
                }
            }
            for id in steps.iter().map(|(id, _)| id).chain(&probes) {
                proptest::prop_assert_eq!(keyring.contains(id), model.contains(id), "{}", id);
            }
        }
    }

    #[test]
    fn candidates_follow_the_named_subscription() {
        let keyring = Keyring::new()
            .with_subscription("sub-a", secret("whsec_a"))
            .with_subscription("sub-b", secret("whsec_b"));
        let body = br#"{"id":"e","webhook_subscription_id":"sub-b"}"#;
        let found = keyring.candidates(body).unwrap();
        assert_eq!(found.subscription, Some("sub-b"));
        assert_eq!(found.secrets.len(), 1);

        let unknown = br#"{"id":"e","webhook_subscription_id":"sub-z"}"#;
        let err = keyring.candidates(unknown).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::UnknownSubscription);
        assert!(err.to_string().contains("sub-z"), "{err}");
        let err = keyring.candidates(br#"{"object_id":"o"}"#).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::UnknownSubscription);

        // With an unkeyed secret, those go to it instead.
        let mixed = keyring.with_unkeyed(secret("whsec_u"));
        for body in [&unknown[..], br#"{"object_id":"o"}"#] {
            let found = mixed.candidates(body).unwrap();
            assert_eq!(found.subscription, None);
            assert_eq!(found.secrets[0].expose_text(), "whsec_u");
        }
    }
}
