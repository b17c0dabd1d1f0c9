//! Verifying a delivery's `Monite-Signature` against one or more secrets.

use std::fmt;
use std::time::Duration;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::Mac as _;

use crate::error::{Error, ErrorKind, Result};
use crate::headers::{HeaderLookup, SIGNATURE_HEADER};
use crate::secret::{HmacSha256, KeyConvention, Secret, signed_payload_mac};
use crate::signature::{self, SignatureHeader};

/// The default timestamp tolerance: 300 seconds, in both directions.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// The largest timestamp tolerance [`Verifier::with_tolerance`] sets: one day. Larger
/// values are clamped to it, so no tolerance turns the replay check off; only
/// [`Verifier::dangerously_skip_timestamp_check`] does.
pub const MAX_TOLERANCE: Duration = Duration::from_secs(24 * 60 * 60);

/// The default body limit: 256 KiB. Monite's envelopes are well under 1 KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// Checks that a delivery was signed by Monite with one of your secrets, recently.
///
/// A request is valid if any `v1` signature in its header matches any configured secret and
/// its timestamp is within the tolerance of now. Comparison is constant-time (`hmac`'s
/// `verify_slice`), the body is taken as raw bytes (it need not be UTF-8), and the body limit
/// is checked before any HMAC work.
///
/// ```
/// use monite_webhooks::{sign, Secret, Verifier};
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
    secrets: Vec<Secret>,
    tolerance_secs: Option<u64>,
    max_body_bytes: usize,
}

/// What a successful verification found.
#[derive(Debug, Clone, Copy)]
pub struct Verified<'v> {
    timestamp: u64,
    secret_index: usize,
    secret: &'v Secret,
}

impl Verified<'_> {
    /// The signed Unix timestamp, in seconds.
    #[must_use]
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// The secret that matched; its [`label`](Secret::label) tells which one it was.
    #[must_use]
    pub fn secret(&self) -> &Secret {
        self.secret
    }

    /// The position of the matching secret, in the order they were added.
    #[must_use]
    pub fn secret_index(&self) -> usize {
        self.secret_index
    }
}

impl Verifier {
    /// A verifier for one secret, with the default tolerance and body limit.
    #[must_use]
    pub fn new(secret: Secret) -> Self {
        Self {
            secrets: vec![secret],
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

    /// Also accepts signatures made with `secret`: for rotation, or one URL serving several
    /// subscriptions. Secrets are tried in the order they were added.
    #[must_use]
    pub fn with_secret(mut self, secret: Secret) -> Self {
        self.secrets.push(secret);
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

    /// The configured secrets, in the order they are tried.
    #[must_use]
    pub fn secrets(&self) -> &[Secret] {
        &self.secrets
    }

    /// Verifies `body` against the `Monite-Signature` header in `headers`, now.
    ///
    /// # Errors
    /// [`ErrorKind::BodyTooLarge`], [`ErrorKind::MissingSignature`],
    /// [`ErrorKind::MalformedSignature`], [`ErrorKind::TimestampTooOld`],
    /// [`ErrorKind::TimestampInFuture`] or [`ErrorKind::SignatureMismatch`]; the error's
    /// `Display` says exactly why, for your logs.
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
        let (timestamp, matched) = match signature::parse_usual(raw) {
            Some((timestamp, text, tag)) => {
                self.check_timestamp(timestamp, now)?;
                (
                    timestamp,
                    self.first_match(text, body, || std::iter::once(tag)),
                )
            }
            None => {
                let header = SignatureHeader::parse(raw)?;
                self.check_timestamp(header.timestamp(), now)?;
                let text = header.timestamp_text();
                (
                    header.timestamp(),
                    self.first_match(text, body, || header.signatures()),
                )
            }
        };
        match matched {
            Some((secret_index, secret)) => Ok(Verified {
                timestamp,
                secret_index,
                secret,
            }),
            None => Err(self.mismatch(&SignatureHeader::parse(raw)?, body)),
        }
    }

    /// The first secret whose MAC of `t.body` matches any of the tags.
    fn first_match<I: Iterator<Item = [u8; 32]>>(
        &self,
        timestamp_text: &[u8],
        body: &[u8],
        tags: impl Fn() -> I,
    ) -> Option<(usize, &Secret)> {
        self.secrets.iter().enumerate().find(|(_, secret)| {
            matches_any(
                signed_payload_mac(secret.mac(), timestamp_text, body),
                tags(),
            )
        })
    }

    fn check_timestamp(&self, timestamp: u64, now: u64) -> Result<()> {
        let Some(tolerance) = self.tolerance_secs else {
            return Ok(());
        };
        // `abs_diff` cannot overflow, whatever the sender put in `t`.
        let skew = timestamp.abs_diff(now);
        if skew <= tolerance {
            return Ok(());
        }
        let (kind, direction) = if timestamp < now {
            (ErrorKind::TimestampTooOld, "older than")
        } else {
            (ErrorKind::TimestampInFuture, "ahead of")
        };
        Err(Error::new(
            kind,
            format!(
                "signature timestamp {timestamp} is {skew} s {direction} this server's clock \
                 ({now}); the tolerance is {tolerance} s. A replayed or queued delivery, \
                 or a server clock that is off"
            ),
        ))
    }

    /// Explains a mismatch as well as can be told without leaking anything to the caller.
    fn mismatch(&self, header: &SignatureHeader<'_>, body: &[u8]) -> Error {
        if header.signatures().next().is_none() {
            return Error::new(
                ErrorKind::SignatureMismatch,
                "no `v1` value in the Monite-Signature header is 64 hex digits",
            );
        }
        let count = self.secrets.len();
        let other_convention = self.secrets.iter().find_map(|secret| {
            let mac = signed_payload_mac(secret.alternate_mac()?, header.timestamp_text(), body);
            matches_any(mac, header.signatures()).then_some(secret)
        });
        let message = match other_convention {
            Some(secret) => {
                let (other, constructor) = match secret.convention() {
                    KeyConvention::Raw => (KeyConvention::WhsecBase64, "Secret::whsec_base64"),
                    _ => (KeyConvention::Raw, "Secret::new"),
                };
                format!(
                    "no `v1` signature matched any of {count} secret(s) under their key \
                     convention, but one matched secret {} under the `{other}` convention: \
                     build that secret with `{constructor}`",
                    describe(secret)
                )
            }
            None => format!(
                "no `v1` signature matched any of {count} secret(s). Check that the secret \
                 belongs to this subscription and environment (sandbox and production \
                 differ, and regenerating a secret invalidates the old one at once), and \
                 that the body is passed on exactly as received, not parsed and re-serialised"
            ),
        };
        Error::new(ErrorKind::SignatureMismatch, message)
    }
}

/// Whether `mac` matches any of `tags`, compared in constant time by `verify_slice`. The
/// state is cloned only when another tag follows: the usual single tag costs no copy.
fn matches_any(mac: HmacSha256, tags: impl Iterator<Item = [u8; 32]>) -> bool {
    let mut tags = tags.peekable();
    while let Some(tag) = tags.next() {
        if tags.peek().is_none() {
            return mac.verify_slice(&tag).is_ok();
        }
        if mac.clone().verify_slice(&tag).is_ok() {
            return true;
        }
    }
    false
}

fn describe(secret: &Secret) -> String {
    secret
        .label()
        .map_or_else(|| "(unlabeled)".to_owned(), |label| format!("{label:?}"))
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("secrets", &self.secrets)
            .field("tolerance_secs", &self.tolerance_secs)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

/// Now, in Unix seconds (0 if the system clock is before 1970).
///
/// On Linux, from the coarse real-time clock: the kernel's last tick, a few milliseconds
/// behind at most, read five times faster than the precise clock. The tolerance is in
/// whole seconds, so nothing finer is needed.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn unix_now() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    u64::try_from(now.tv_sec).unwrap_or(0)
}

/// Now, in Unix seconds (0 if the system clock is before 1970).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign;

    const NOW: u64 = 1_713_773_729;

    fn headers(value: &str) -> [(&'static str, String); 1] {
        [("Monite-Signature", value.to_owned())]
    }

    #[test]
    fn the_clock_agrees_with_the_system_clock() {
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        // The coarse clock lags by a tick at most; a second boundary may fall between.
        assert!(unix_now().abs_diff(system) <= 1);
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
    fn mismatch_names_the_convention_that_would_have_matched() {
        let text = "whsec_aGVsbG8gd29ybGQ=";
        let signer = Secret::whsec_base64(text).unwrap();
        let value = sign(&signer, NOW, b"{}");
        let verifier = Verifier::new(Secret::new(text).unwrap().labeled("sub"));
        let err = verifier
            .verify_at(&headers(&value), b"{}", NOW)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::SignatureMismatch);
        let message = err.to_string();
        assert!(message.contains("`whsec_base64` convention"), "{message}");
        assert!(message.contains("Secret::whsec_base64"), "{message}");
        assert!(!message.contains(text), "the secret leaked: {message}");
    }

    #[test]
    fn an_empty_secret_list_is_an_error() {
        let err = Verifier::with_secrets([]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSecret);
    }
}
