//! Secrets keyed by webhook subscription, so one endpoint serves every subscription at the
//! cost of one.

use std::fmt;
use std::sync::LazyLock;

use memchr::memmem::{Finder, FinderRev};

use crate::error::{Error, ErrorKind, Result};

use super::secret::Secret;

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
                    "starts with `whsec_`, as a secret given without its `<subscription_id>=` \
                     does"
                        .to_owned(),
                ));
            }
            if secret.trim_start_matches('=').is_empty() {
                return Err(invalid(
                    "has no secret after its first `=` (a base64 secret given without its \
                     `<subscription_id>=`?)"
                        .to_owned(),
                ));
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
                    "the delivery names webhook subscription {}, whose secret this \
                     receiver does not hold ({} held); no signature was checked. Add it: \
                     `Keyring::with_subscription`, MONITE_WEBHOOK_SECRETS=<id>=<secret>, or \
                     the keyring file",
                    printable(&String::from_utf8_lossy(named)),
                    self.subscriptions.len()
                ),
            ),
            None => Error::new(
                ErrorKind::UnknownSubscription,
                "the delivery names no webhook subscription (a 2022 envelope?) and this \
                 receiver holds only per-subscription secrets; no signature was checked. \
                 Add an unkeyed secret (`Keyring::with_unkeyed`) for such deliveries",
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

/// How far from the end the field is looked for when the body does not end with it.
const TAIL: usize = 512;

const FIELD: &[u8] = b"\"webhook_subscription_id\"";

// Built once: building a finder costs more than searching a small envelope with it.
static FIND_LAST: LazyLock<FinderRev<'static>> = LazyLock::new(|| FinderRev::new(FIELD));
static FIND: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(FIELD));

/// The `webhook_subscription_id` a body names: a hint that picks which secrets to try,
/// read before verification, so it must cost next to nothing and never fail.
///
/// Monite writes the field last, after `object`, so the body's end is read first; then the
/// last occurrence of the key in the body's tail, then in the whole body (the last one
/// wins: a nested `object` comes before the envelope's own field). A value with escapes,
/// or one that is not a string, gives no hint.
pub(crate) fn subscription_hint(body: &[u8]) -> Option<&[u8]> {
    hint_at_end(body).or_else(|| hint_by_search(body))
}

/// The hint of a body that does not end with the field: the last occurrence of its key.
// Out of line: the searchers' state would otherwise be set up on every call.
#[inline(never)]
fn hint_by_search(body: &[u8]) -> Option<&[u8]> {
    let tail_start = body.len().saturating_sub(TAIL);
    let at = FIND_LAST
        .rfind(&body[tail_start..])
        .map(|at| tail_start + at)
        .or_else(|| FIND.find_iter(body).last())?;
    hint_after_key(body, at)
}

/// The hint when the body ends `"webhook_subscription_id":"<id>"}` (no whitespace, as
/// Monite sends it): read backwards from the end, without a search.
fn hint_at_end(body: &[u8]) -> Option<&[u8]> {
    let value_end = body.strip_suffix(b"\"}")?;
    // Monite's ids are UUIDs: look where one would open before searching for the quote.
    let open = match value_end.len().checked_sub(UUID_LEN + 1) {
        Some(at) if value_end[at] == b'"' => at,
        _ => memchr::memrchr(b'"', value_end)?,
    };
    let id = &value_end[open + 1..];
    let key = value_end[..open].strip_suffix(b":")?.strip_suffix(FIELD)?;
    // `\"webhook_subscription_id"` would be the end of some other string.
    (plain(id) && key.last() != Some(&b'\\')).then_some(id)
}

/// Whether a string's raw bytes hold no quote and no escape.
fn plain(text: &[u8]) -> bool {
    // Not `any`: a fold has no early exit, so it is read sixteen bytes at a time, and at a
    // UUID's fixed length without a loop.
    let special = |seen: bool, &b: &u8| seen | (b == b'"') | (b == b'\\');
    match <&[u8; UUID_LEN]>::try_from(text) {
        Ok(uuid) => !uuid.iter().fold(false, special),
        Err(_) => !text.iter().fold(false, special),
    }
}

/// The length of a UUID in text, as Monite's subscription ids are.
const UUID_LEN: usize = 36;

/// The string value of the key whose opening quote is at `at`.
fn hint_after_key(body: &[u8], at: usize) -> Option<&[u8]> {
    // `\"webhook_subscription_id"` would be the end of some other string.
    if at > 0 && body[at - 1] == b'\\' {
        return None;
    }
    let rest = body[at + FIELD.len()..].trim_ascii_start();
    let rest = rest.strip_prefix(b":")?.trim_ascii_start();
    let rest = rest.strip_prefix(b"\"")?;
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    if rest[end] != b'"' {
        return None;
    }
    // Compared byte for byte with the ids held, so it need not be checked as UTF-8.
    Some(&rest[..end])
}

/// The first eight bytes of an id as a big-endian number (zero-padded): ordered as the
/// ids are.
fn prefix(id: &[u8]) -> u64 {
    if let Some(eight) = id.first_chunk() {
        return u64::from_be_bytes(*eight);
    }
    let mut eight = [0; 8];
    eight[..id.len()].copy_from_slice(id);
    u64::from_be_bytes(eight)
}

/// Whether a held id is the one a body names.
fn same_id(held: &str, named: &[u8]) -> bool {
    // At a UUID's fixed length the comparison is inlined instead of calling `memcmp`.
    match (
        <&[u8; UUID_LEN]>::try_from(held.as_bytes()),
        <&[u8; UUID_LEN]>::try_from(named),
    ) {
        (Ok(held), Ok(named)) => held == named,
        _ => held.as_bytes() == named,
    }
}

/// Where each run of equal prefixes starts in the sorted prefixes, by a hash of the
/// prefix: one multiplication and, mostly, one probe find a delivery's subscription, where
/// a binary search of forty waits on six loads in a row.
#[derive(Clone, Default)]
struct PrefixIndex {
    // Open addressing, at most half full, probed in order: 0 is an empty slot, any other
    // value the position of the run's first prefix, plus one.
    slots: Box<[usize]>,
    // The slot count's power of two.
    bits: u32,
}

impl PrefixIndex {
    fn new(prefixes: &[u64]) -> Self {
        let runs = prefixes.chunk_by(|a, b| a == b).count();
        if runs == 0 {
            return Self::default();
        }
        let bits = (2 * runs).next_power_of_two().trailing_zeros();
        let mut index = Self {
            slots: vec![0; 1 << bits].into_boxed_slice(),
            bits,
        };
        let mut start = 0;
        for run in prefixes.chunk_by(|a, b| a == b) {
            let mut slot = index.home(run[0]);
            while index.slots[slot] != 0 {
                slot = index.next(slot);
            }
            index.slots[slot] = start + 1;
            start += run.len();
        }
        index
    }

    /// The position of the first of `prefixes` equal to `wanted`, if any.
    fn first(&self, prefixes: &[u64], wanted: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mut slot = self.home(wanted);
        // Ends: at least half the slots are empty.
        loop {
            let first = self.slots[slot].checked_sub(1)?;
            if prefixes[first] == wanted {
                return Some(first);
            }
            slot = self.next(slot);
        }
    }

    /// Fibonacci hashing: the top bits of the product depend on every bit of the prefix.
    fn home(&self, prefix: u64) -> usize {
        let top = prefix.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - self.bits.max(1));
        usize::try_from(top).unwrap_or(0) & (self.slots.len() - 1)
    }

    fn next(&self, slot: usize) -> usize {
        (slot + 1) & (self.slots.len() - 1)
    }
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
    fn the_hint_is_the_envelopes_own_field() {
        let monite = br#"{"id":"e","object":{"id":"o"},"object_type":"payable","webhook_subscription_id":"sub-1"}"#;
        assert_eq!(subscription_hint(monite), Some(&b"sub-1"[..]));
        // Spaces, another order, a nested field before the envelope's own: the last wins.
        let spaced = br#"{"object":{"webhook_subscription_id":"inner"}, "webhook_subscription_id" : "sub-2" , "id":"e"}"#;
        assert_eq!(subscription_hint(spaced), Some(&b"sub-2"[..]));
        // Far from the end, past the tail that is searched first.
        let far = format!(
            r#"{{"webhook_subscription_id":"sub-3","description":"{}"}}"#,
            "x".repeat(4 * TAIL)
        );
        assert_eq!(subscription_hint(far.as_bytes()), Some(&b"sub-3"[..]));
        for no_hint in [
            &br#"{"id":"e"}"#[..],
            br#"{"webhook_subscription_id":null}"#,
            br#"{"webhook_subscription_id":"a\"b"}"#,
            br#"{"description":"x\"webhook_subscription_id\":\"forged"}"#,
            br#"{"webhook_subscription_id":"unterminated"#,
            br#"{"webhook_subscription_id""#,
            b"",
            b"\"}",
        ] {
            assert_eq!(
                subscription_hint(no_hint),
                None,
                "{}",
                String::from_utf8_lossy(no_hint)
            );
        }
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

        /// The hint is the value of the key's last occurrence, however the body is cut.
        #[test]
        fn the_hint_is_the_last_occurrence_of_the_key(
            pieces in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(r#""webhook_subscription_id""#.to_owned()),
                    proptest::strategy::Just(":".to_owned()),
                    proptest::strategy::Just(" ".to_owned()),
                    proptest::strategy::Just("\"".to_owned()),
                    proptest::strategy::Just("\\".to_owned()),
                    proptest::strategy::Just("\"}".to_owned()),
                    "[0-9a-f-]{36}",
                    "[a-z,{}]{1,4}",
                ],
                0..16,
            ),
            // Mostly Monite's own ending, with an id near a UUID's length.
            ending in proptest::option::weighted(0.8, r#"[0-9a-f"\\-]{34,38}"#),
        ) {
            let mut body = pieces.concat();
            if let Some(id) = ending {
                body.push_str(&format!(r#""webhook_subscription_id":"{id}"}}"#));
            }
            let reference = FIND
                .find_iter(body.as_bytes())
                .last()
                .and_then(|at| hint_after_key(body.as_bytes(), at));
            proptest::prop_assert_eq!(subscription_hint(body.as_bytes()), reference, "{}", body);
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
