//! Verifying a delivery's `Monite-Signature` against one or more secrets.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hmac::Mac as _;
use subtle::ConstantTimeEq as _;

use super::keyring::Keyring;
use super::parse::{self, SignatureHeader};
use super::secret::{HmacSha256, Secret, signed_payload_mac};
use crate::clock::unix_now;
use crate::error::{Error, ErrorKind, Result};
use crate::headers::{HeaderLookup, SIGNATURE_HEADER};

/// The default timestamp tolerance: 300 seconds, in both directions.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// The largest timestamp tolerance [`Verifier::with_tolerance`] sets: one day. Larger
/// values are clamped to it, so no tolerance turns the replay check off; only
/// [`Verifier::dangerously_skip_timestamp_check`] does.
pub const MAX_TOLERANCE: Duration = Duration::from_secs(24 * 60 * 60);

/// The default body limit: 256 KiB. Monite's envelopes are well under 1 KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// How many `v1` values of one header are compared; any further ones are ignored. Monite
/// sends one; a handful covers a signer mid-rotation, and the cap keeps a forged header
/// of thousands of values from costing thousands of comparisons.
pub const MAX_SIGNATURES: usize = 8;

/// Checks that a delivery was signed by Monite with one of your secrets, recently.
///
/// A request is valid if a `v1` signature in its header matches one of the secrets it may
/// be signed with, and its timestamp is within the tolerance of now. The body limit is
/// checked before anything else, the timestamp before any HMAC, and tags are compared in
/// constant time. The body is taken as raw bytes (it need not be UTF-8).
///
/// Which secrets are tried: with plain secrets ([`new`](Self::new),
/// [`with_secret`](Self::with_secret)), each of them; with a [`Keyring`] of
/// per-subscription secrets ([`from_keyring`](Self::from_keyring)), only those of the
/// subscription the body names. Either way a delivery costs one HMAC over the body per
/// secret tried, and a forged one no more.
///
/// ```
/// use monite_webhooks::{Secret, Verifier};
/// use monite_webhooks::testing::sign;
///
/// let secret = Secret::new("whsec_current")?.labeled("sub 1, 2026 secret");
/// let verifier = Verifier::new(secret.clone())
///     // Keep accepting the previous secret while deliveries signed with it drain.
///     .with_secret(Secret::new("whsec_previous")?.labeled("sub 1, 2025 secret"));
///
/// let body = br#"{"id":"..."}"#;
/// let headers = [("Monite-Signature", sign(&secret, 1_713_773_722, body))];
/// let verified = verifier.verify_at(&headers, body, 1_713_773_729)?;
/// assert_eq!(verified.secret().label(), Some("sub 1, 2026 secret"));
/// # Ok::<(), monite_webhooks::Error>(())
/// ```
#[derive(Clone)]
pub struct Verifier {
    pub(super) keyring: Arc<Keyring>,
    tolerance_secs: Option<u64>,
    max_body_bytes: usize,
}

/// What a successful verification found.
#[derive(Debug, Clone, Copy)]
pub struct Verified<'v> {
    timestamp: u64,
    secret_index: usize,
    secret: &'v Secret,
    subscription_id: Option<&'v str>,
}

impl<'v> Verified<'v> {
    /// The signed Unix timestamp, in seconds.
    #[must_use]
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// The secret that matched; its [`label`](Secret::label) tells which one it was.
    #[must_use]
    pub fn secret(&self) -> &'v Secret {
        self.secret
    }

    /// The position of the matching secret among those tried: for a subscription in a
    /// [`Keyring`], 0 for its current secret and 1 for the previous one; otherwise the
    /// order the secrets were added in.
    #[must_use]
    pub fn secret_index(&self) -> usize {
        self.secret_index
    }

    /// The keyring subscription whose secret matched; `None` when an unkeyed secret did.
    #[must_use]
    pub fn subscription_id(&self) -> Option<&'v str> {
        self.subscription_id
    }
}

impl Verifier {
    /// A verifier for one secret, with the default tolerance and body limit.
    #[must_use]
    pub fn new(secret: Secret) -> Self {
        Self::from_keyring(Keyring::new().with_unkeyed(secret))
    }

    /// A verifier for the secrets of every subscription in `keyring`: each delivery is
    /// checked against the secrets of the subscription it names only.
    #[must_use]
    pub fn from_keyring(keyring: Keyring) -> Self {
        Self {
            keyring: Arc::new(keyring),
            tolerance_secs: Some(DEFAULT_TOLERANCE.as_secs()),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// A verifier accepting any of `secrets`, tried in order.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidSecret`] if `secrets` is empty.
    pub fn with_secrets(secrets: impl IntoIterator<Item = Secret>) -> Result<Self> {
        let mut secrets = secrets.into_iter();
        let first = secrets
            .next()
            .ok_or_else(|| Error::new(ErrorKind::InvalidSecret, "no secret was given"))?;
        Ok(secrets.fold(Self::new(first), Self::with_secret))
    }

    /// Also accepts signatures made with `secret`, for any subscription: for rotation, or a
    /// few subscriptions sharing one URL. Such secrets are tried in the order they were
    /// added; with more than a few subscriptions, prefer a [`Keyring`].
    #[must_use]
    pub fn with_secret(mut self, secret: Secret) -> Self {
        Arc::make_mut(&mut self.keyring).push_unkeyed(secret);
        self
    }

    /// Accepts timestamps at most `tolerance` away from now, in either direction.
    /// Defaults to [`DEFAULT_TOLERANCE`] (300 s). Whole seconds; fractions are dropped.
    /// At most [`MAX_TOLERANCE`] (one day): a larger value is clamped to it.
    #[must_use]
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance_secs = Some(tolerance.min(MAX_TOLERANCE).as_secs());
        self
    }

    /// Accepts signatures of any age, which lets anyone who captured one delivery replay it
    /// forever. Only for replaying stored deliveries; never on a public endpoint.
    #[must_use]
    pub fn dangerously_skip_timestamp_check(mut self) -> Self {
        self.tolerance_secs = None;
        self
    }

    /// Refuses bodies larger than `bytes` before any HMAC work.
    /// Defaults to [`DEFAULT_MAX_BODY_BYTES`] (256 KiB).
    #[must_use]
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// The body limit in bytes; adapters stop reading a body once it is passed.
    #[must_use]
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// The timestamp tolerance, or `None` if the check was turned off.
    #[must_use]
    pub fn tolerance(&self) -> Option<Duration> {
        self.tolerance_secs.map(Duration::from_secs)
    }

    /// The secrets that belong to no subscription, in the order they are tried.
    #[must_use]
    pub fn secrets(&self) -> &[Secret] {
        self.keyring.unkeyed()
    }

    /// Every secret this verifier holds, by subscription.
    #[must_use]
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Verifies `body` against the `Monite-Signature` header in `headers`, now.
    ///
    /// # Errors
    /// [`ErrorKind::BodyTooLarge`], [`ErrorKind::MissingSignature`],
    /// [`ErrorKind::MalformedSignature`], [`ErrorKind::TimestampTooOld`],
    /// [`ErrorKind::TimestampInFuture`], [`ErrorKind::UnknownSubscription`] or
    /// [`ErrorKind::SignatureMismatch`]; the error's `Display` says why, for your logs.
    pub fn verify<H: HeaderLookup + ?Sized>(
        &self,
        headers: &H,
        body: &[u8],
    ) -> Result<Verified<'_>> {
        self.verify_at(headers, body, unix_now())
    }

    /// As [`verify`](Self::verify), with the clock read as `now` (Unix seconds): for tests,
    /// and for checking a queued delivery against the time it was received.
    ///
    /// # Errors
    /// As [`verify`](Self::verify).
    pub fn verify_at<H: HeaderLookup + ?Sized>(
        &self,
        headers: &H,
        body: &[u8],
        now: u64,
    ) -> Result<Verified<'_>> {
        if body.len() > self.max_body_bytes {
            return Err(Error::body_too_large(body.len(), self.max_body_bytes));
        }
        let raw = headers.header(SIGNATURE_HEADER).ok_or_else(|| {
            Error::new(
                ErrorKind::MissingSignature,
                "the request has no Monite-Signature header",
            )
        })?;
        // Monite's own shape takes the short way; anything else is read in full.
        match parse::parse_usual(raw) {
            Some((timestamp, text, tag)) => self.check(timestamp, text, &[tag], body, now),
            None => {
                let header = SignatureHeader::parse(raw)?;
                let tags = read_tags(&header);
                let text = header.timestamp_text();
                self.check(header.timestamp(), text, tags.as_slice(), body, now)
            }
        }
    }

    /// The checks after parsing: the timestamp first, then the secrets the body's
    /// subscription may be signed with, each against `tags`.
    #[inline]
    fn check(
        &self,
        timestamp: u64,
        timestamp_text: &[u8],
        tags: &[[u8; 32]],
        body: &[u8],
        now: u64,
    ) -> Result<Verified<'_>> {
        self.check_timestamp(timestamp, now)?;
        let candidates = self.keyring.candidates(body)?;
        match first_match(candidates.secrets, timestamp_text, body, tags) {
            Some((secret_index, secret)) => Ok(Verified {
                timestamp,
                secret_index,
                secret,
                subscription_id: candidates.subscription,
            }),
            None => Err(mismatch(
                !tags.is_empty(),
                candidates.secrets.len(),
                candidates.subscription,
            )),
        }
    }

    fn check_timestamp(&self, timestamp: u64, now: u64) -> Result<()> {
        let Some(tolerance) = self.tolerance_secs else {
            return Ok(());
        };
        // `abs_diff` cannot overflow, whatever the sender put in `t`.
        if timestamp.abs_diff(now) <= tolerance {
            return Ok(());
        }
        Err(stale(timestamp, now, tolerance))
    }
}

/// Why a timestamp is outside the tolerance.
#[cold]
fn stale(timestamp: u64, now: u64, tolerance: u64) -> Error {
    let skew = timestamp.abs_diff(now);
    let (kind, direction) = if timestamp < now {
        (ErrorKind::TimestampTooOld, "older than")
    } else {
        (ErrorKind::TimestampInFuture, "ahead of")
    };
    Error::new(
        kind,
        format!(
            "signature timestamp {timestamp} is {skew} s {direction} this server's clock \
             ({now}), beyond the {tolerance} s tolerance"
        ),
    )
}

/// The well-formed `v1` tags of a header, at most [`MAX_SIGNATURES`], on the stack.
pub(super) fn read_tags(header: &SignatureHeader<'_>) -> Tags {
    let mut tags = Tags::default();
    for tag in header.signatures().take(MAX_SIGNATURES) {
        tags.slots[tags.len] = tag;
        tags.len += 1;
    }
    tags
}

#[derive(Default)]
pub(super) struct Tags {
    slots: [[u8; 32]; MAX_SIGNATURES],
    len: usize,
}

impl Tags {
    pub(super) fn as_slice(&self) -> &[[u8; 32]] {
        &self.slots[..self.len]
    }
}

/// The first of `secrets` whose MAC of `t.body` matches one of `tags`: one HMAC over the
/// body per secret, and one finalisation.
fn first_match<'k>(
    secrets: &'k [Secret],
    timestamp_text: &[u8],
    body: &[u8],
    tags: &[[u8; 32]],
) -> Option<(usize, &'k Secret)> {
    if tags.is_empty() {
        return None;
    }
    secrets.iter().enumerate().find(|(_, secret)| {
        matches_any(signed_payload_mac(secret.mac(), timestamp_text, body), tags)
    })
}

/// Whether `mac`, finalised once, equals any of `tags`. Each comparison is constant-time,
/// and all of them run, so the time says nothing about which tag came close.
pub(super) fn matches_any(mac: HmacSha256, tags: &[[u8; 32]]) -> bool {
    let expected = halves(&mac.finalize().into_bytes().into());
    tags.iter()
        .map(|tag| expected.ct_eq(&halves(tag)))
        .reduce(|any, matched| any | matched)
        .is_some_and(bool::from)
}

/// A tag as two 128-bit halves: `subtle` then compares two numbers instead of 32 bytes,
/// and each of its steps is an optimisation barrier behind a call (32 of them cost a tenth
/// of a 400-byte verification).
fn halves(tag: &[u8; 32]) -> [u128; 2] {
    let (low, high) = tag.split_at(16);
    let half = |bytes: &[u8]| {
        let mut sixteen = [0; 16];
        sixteen.copy_from_slice(bytes);
        u128::from_ne_bytes(sixteen)
    };
    [half(low), half(high)]
}

/// A cheap explanation of a mismatch: nothing here may cost an HMAC, since forged
/// requests take this path. [`Verifier::diagnose_at`] goes further.
fn mismatch(usable_tags: bool, tried: usize, subscription: Option<&str>) -> Error {
    if !usable_tags {
        return Error::new(
            ErrorKind::SignatureMismatch,
            "no `v1` value in the Monite-Signature header is 64 hex digits",
        );
    }
    let whose = subscription.map_or_else(
        || format!("any of the {tried} secret(s) held for any subscription"),
        |id| format!("the {tried} secret(s) of subscription {id}, named by the body"),
    );
    Error::new(
        ErrorKind::SignatureMismatch,
        format!("no `v1` signature matched {whose}"),
    )
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("keyring", &self.keyring)
            .field("tolerance_secs", &self.tolerance_secs)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sign;

    const NOW: u64 = 1_713_773_729;

    fn headers(value: &str) -> [(&'static str, String); 1] {
        [("Monite-Signature", value.to_owned())]
    }

    #[test]
    fn reports_which_secret_matched() {
        let old = Secret::new("whsec_old").unwrap().labeled("old");
        let new = Secret::new("whsec_new").unwrap().labeled("new");
        let verifier = Verifier::with_secrets([new, old.clone()]).unwrap();
        let value = sign(&old, NOW, b"{}");
        let verified = verifier.verify_at(&headers(&value), b"{}", NOW).unwrap();
        assert_eq!(verified.secret_index(), 1);
        assert_eq!(verified.secret().label(), Some("old"));
        assert_eq!(verified.timestamp(), NOW);
    }

    #[test]
    fn tolerance_is_symmetric_inclusive_and_overflow_safe() {
        let secret = Secret::new("whsec_x").unwrap();
        let verifier = Verifier::new(secret.clone());
        for (t, expected) in [
            (NOW - 300, None),
            (NOW + 300, None),
            (NOW - 301, Some(ErrorKind::TimestampTooOld)),
            (NOW + 301, Some(ErrorKind::TimestampInFuture)),
            (0, Some(ErrorKind::TimestampTooOld)),
            (u64::MAX, Some(ErrorKind::TimestampInFuture)),
        ] {
            let value = sign(&secret, t, b"{}");
            let got = verifier.verify_at(&headers(&value), b"{}", NOW).err();
            assert_eq!(got.map(|e| e.kind()), expected, "t={t}");
        }
        let value = sign(&secret, 0, b"{}");
        let lenient = verifier.clone().dangerously_skip_timestamp_check();
        assert!(lenient.verify_at(&headers(&value), b"{}", NOW).is_ok());
        assert!(lenient.tolerance().is_none());
    }

    #[test]
    fn no_tolerance_turns_the_timestamp_check_off() {
        let secret = Secret::new("whsec_x").unwrap();
        let verifier = Verifier::new(secret.clone()).with_tolerance(Duration::MAX);
        assert_eq!(verifier.tolerance(), Some(MAX_TOLERANCE));
        let day = MAX_TOLERANCE.as_secs();
        let within = sign(&secret, NOW - day, b"{}");
        assert!(verifier.verify_at(&headers(&within), b"{}", NOW).is_ok());
        for t in [NOW - day - 1, 0] {
            let value = sign(&secret, t, b"{}");
            let err = verifier
                .verify_at(&headers(&value), b"{}", NOW)
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::TimestampTooOld, "t={t}");
        }
    }

    #[test]
    fn body_limit_is_checked_before_the_header() {
        let verifier = Verifier::new(Secret::new("whsec_x").unwrap()).with_max_body_bytes(4);
        let no_headers: [(&str, &str); 0] = [];
        let err = verifier.verify_at(&no_headers, b"12345", NOW).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BodyTooLarge);
        let err = verifier.verify_at(&no_headers, b"1234", NOW).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingSignature);
    }

    #[test]
    fn a_keyring_checks_the_named_subscription_only() {
        let keyring = (0..40).fold(Keyring::new(), |keyring, i| {
            keyring.with_subscription(
                format!("sub-{i:02}"),
                Secret::new(format!("whsec_{i}")).unwrap(),
            )
        });
        let verifier = Verifier::from_keyring(keyring);
        let body = br#"{"id":"e","object_type":"tag","action":"tag.created","webhook_subscription_id":"sub-39"}"#;
        let signer = verifier.keyring().get("sub-39").unwrap().current().clone();
        let value = sign(&signer, NOW, body);
        let verified = verifier.verify_at(&headers(&value), body, NOW).unwrap();
        assert_eq!(verified.subscription_id(), Some("sub-39"));
        assert_eq!(verified.secret_index(), 0);

        // Signed by another subscription's secret: refused, and the diagnosis says whose.
        let other = verifier.keyring().get("sub-07").unwrap().current().clone();
        let value = sign(&other, NOW, body);
        let err = verifier.verify_at(&headers(&value), body, NOW).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::SignatureMismatch);
        assert!(err.to_string().contains("subscription sub-39"), "{err}");
        let explained = verifier
            .diagnose_at(&headers(&value), body, NOW)
            .unwrap_err();
        assert!(
            explained.to_string().contains("subscription sub-07"),
            "{explained}"
        );

        let unknown = br#"{"id":"e","webhook_subscription_id":"sub-99"}"#;
        let value = sign(&signer, NOW, unknown);
        let err = verifier
            .verify_at(&headers(&value), unknown, NOW)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownSubscription);
        assert_eq!(err.status(), http::StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn at_most_max_signatures_v1_values_are_compared() {
        let secret = Secret::new("whsec_x").unwrap();
        let verifier = Verifier::new(secret.clone());
        let good = sign(&secret, NOW, b"{}");
        let good_tag = good.split("v1=").nth(1).unwrap();
        let decoys = |n: usize| vec![format!("v1={}", "0".repeat(64)); n].join(",");
        let within = format!("t={NOW},{},v1={good_tag}", decoys(MAX_SIGNATURES - 1));
        assert!(verifier.verify_at(&headers(&within), b"{}", NOW).is_ok());
        let past = format!("t={NOW},{},v1={good_tag}", decoys(MAX_SIGNATURES));
        let err = verifier.verify_at(&headers(&past), b"{}", NOW).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::SignatureMismatch);
    }

    #[test]
    fn an_empty_secret_list_is_an_error() {
        let err = Verifier::with_secrets([]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSecret);
    }
}
