//! Signing secrets, which never print.

use std::fmt;

use base64::{DecodeError, Engine as _};
use hmac::{KeyInit, Mac as _};

use crate::error::{Error, ErrorKind, Result};

/// HMAC-SHA256, keyed: holding this rather than the key means no request redoes the key
/// schedule, it only clones the keyed state.
pub(crate) type HmacSha256 = hmac::Hmac<sha2::Sha256>;

const WHSEC_PREFIX: &str = "whsec_";

/// How the secret string Monite returned becomes the HMAC key.
///
/// Monite's documentation does not show this step, so both readings of a `whsec_…` string
/// are offered. When a signature fails under one convention but would pass under the other,
/// the verifier's error says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum KeyConvention {
    /// The secret string's bytes exactly as given, `whsec_` included (Stripe's convention,
    /// whose header format Monite's copies). The default.
    #[default]
    Raw,
    /// Base64 of what follows `whsec_` (the Standard Webhooks / Svix convention).
    WhsecBase64,
}

impl KeyConvention {
    /// The name used in diagnostics.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::WhsecBase64 => "whsec_base64",
        }
    }
}

impl fmt::Display for KeyConvention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A webhook subscription's signing secret, as `POST /webhook_subscriptions` returned it.
///
/// `Debug` is redacted and there is no `Display`: a secret cannot reach a log by accident.
///
/// ```
/// use monite_webhooks::Secret;
///
/// let secret = Secret::new("whsec_Iw3mrExampleOnly")?.labeled("subscription 8f2c");
/// assert_eq!(
///     format!("{secret:?}"),
///     r#"Secret { label: Some("subscription 8f2c"), convention: Raw, key: "[redacted]" }"#
/// );
/// # Ok::<(), monite_webhooks::Error>(())
/// ```
#[derive(Clone)]
pub struct Secret {
    mac: HmacSha256,
    // Keyed the way the other convention would key it, kept only to explain failures.
    alternate_mac: Option<HmacSha256>,
    convention: KeyConvention,
    label: Option<Box<str>>,
    // Kept to be written to a keyring file or a secret store; only `expose_text` gives it.
    text: Box<str>,
}

impl Secret {
    /// A secret used as its bytes exactly as given ([`KeyConvention::Raw`], the default).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidSecret`] if the string is empty or has leading or trailing
    /// whitespace (usually a newline copied along with it).
    pub fn new(secret: impl AsRef<str>) -> Result<Self> {
        Self::with_convention(secret, KeyConvention::Raw)
    }

    /// A secret read as base64 of what follows `whsec_` ([`KeyConvention::WhsecBase64`]).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidSecret`] if the string is empty, padded with whitespace, or what
    /// follows `whsec_` is not standard base64 of at least one byte.
    pub fn whsec_base64(secret: impl AsRef<str>) -> Result<Self> {
        Self::with_convention(secret, KeyConvention::WhsecBase64)
    }

    /// A secret read with the given convention.
    ///
    /// # Errors
    /// As [`Secret::new`] and [`Secret::whsec_base64`].
    pub fn with_convention(secret: impl AsRef<str>, convention: KeyConvention) -> Result<Self> {
        let text = secret.as_ref();
        if text.is_empty() {
            return Err(Error::new(ErrorKind::InvalidSecret, "the secret is empty"));
        }
        if text.trim() != text {
            return Err(Error::new(
                ErrorKind::InvalidSecret,
                "the secret has leading or trailing whitespace",
            ));
        }
        let raw = text.as_bytes();
        let (mac, alternate_mac) = match convention {
            KeyConvention::Raw => (
                keyed(raw)?,
                decode_whsec_base64(text).ok().and_then(|k| keyed(&k).ok()),
            ),
            KeyConvention::WhsecBase64 => (keyed(&decode_whsec_base64(text)?)?, keyed(raw).ok()),
        };
        Ok(Self {
            mac,
            alternate_mac,
            convention,
            label: None,
            text: text.into(),
        })
    }

    /// Attaches a label, such as the subscription id, that verification reports back when
    /// this secret matched (so you know when an old secret can be retired).
    #[must_use]
    pub fn labeled(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into().into_boxed_str());
        self
    }

    /// The label given with [`Secret::labeled`].
    #[must_use]
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// The secret's text, exactly as given: for writing it to your secret store or a
    /// keyring file, never for a log. The one way to read it back; nothing else prints it.
    #[must_use]
    pub fn expose_text(&self) -> &str {
        &self.text
    }

    /// The key convention this secret was read with.
    #[must_use]
    pub fn convention(&self) -> KeyConvention {
        self.convention
    }

    /// The keyed HMAC state, ready to take `t.body`.
    pub(crate) fn mac(&self) -> &HmacSha256 {
        &self.mac
    }

    /// The state the other [`KeyConvention`] would give, if the text has such a reading.
    pub(crate) fn alternate_mac(&self) -> Option<&HmacSha256> {
        self.alternate_mac.as_ref()
    }

    /// The HMAC-SHA256 tag of `t.body`, as Monite computes it.
    pub(crate) fn tag(&self, timestamp: &[u8], body: &[u8]) -> [u8; 32] {
        signed_payload_mac(&self.mac, timestamp, body)
            .finalize()
            .into_bytes()
            .into()
    }
}

/// `mac` fed with the signed payload: the timestamp text as sent, `.`, the raw body.
// Inlined so that the state is built where it is used rather than moved there.
#[inline]
pub(crate) fn signed_payload_mac(mac: &HmacSha256, timestamp: &[u8], body: &[u8]) -> HmacSha256 {
    let mut mac = mac.clone();
    mac.update(timestamp);
    mac.update(b".");
    mac.update(body);
    mac
}

fn keyed(key: &[u8]) -> Result<HmacSha256> {
    // HMAC takes keys of any length, so this only fails if that ever changes.
    HmacSha256::new_from_slice(key).map_err(|e| {
        Error::new(ErrorKind::InvalidSecret, "the key was refused by HMAC").with_source(e)
    })
}

fn decode_whsec_base64(text: &str) -> Result<Box<[u8]>> {
    let encoded = text.strip_prefix(WHSEC_PREFIX).unwrap_or(text);
    // Not `with_source`: base64's error names the offending byte and where it is, a piece
    // of the secret. Only the kind of fault is said.
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| {
            let why = match e {
                DecodeError::InvalidByte(..) => "a character outside its alphabet",
                DecodeError::InvalidLength(_) => "a length it cannot have",
                DecodeError::InvalidLastSymbol(..) => "a last character with stray bits",
                DecodeError::InvalidPadding => "missing or extra `=` padding",
            };
            Error::new(
                ErrorKind::InvalidSecret,
                format!("what follows `whsec_` is not valid standard base64 ({why})"),
            )
        })?;
    if key.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidSecret,
            "the secret decodes to an empty key",
        ));
    }
    Ok(key.into_boxed_slice())
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("label", &self.label)
            .field("convention", &self.convention)
            .field("key", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_padded_secrets_are_rejected() {
        for bad in ["", " whsec_abc", "whsec_abc\n"] {
            let err = Secret::new(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidSecret, "{bad:?}");
        }
        assert_eq!(
            Secret::whsec_base64("whsec_").unwrap_err().kind(),
            ErrorKind::InvalidSecret
        );
        assert_eq!(
            Secret::whsec_base64("whsec_!!!").unwrap_err().kind(),
            ErrorKind::InvalidSecret
        );
    }

    fn tag_with_key(key: &[u8]) -> [u8; 32] {
        let mac = HmacSha256::new_from_slice(key).unwrap();
        signed_payload_mac(&mac, b"1", b"{}")
            .finalize()
            .into_bytes()
            .into()
    }

    fn alternate_tag(secret: &Secret) -> Option<[u8; 32]> {
        let mac = secret.alternate_mac()?;
        Some(
            signed_payload_mac(mac, b"1", b"{}")
                .finalize()
                .into_bytes()
                .into(),
        )
    }

    #[test]
    fn conventions_derive_the_documented_keys() {
        let raw = Secret::new("whsec_aGVsbG8=").unwrap();
        assert_eq!(raw.tag(b"1", b"{}"), tag_with_key(b"whsec_aGVsbG8="));
        assert_eq!(alternate_tag(&raw), Some(tag_with_key(b"hello")));

        let decoded = Secret::whsec_base64("whsec_aGVsbG8=").unwrap();
        assert_eq!(decoded.tag(b"1", b"{}"), tag_with_key(b"hello"));
        assert_eq!(
            alternate_tag(&decoded),
            Some(tag_with_key(b"whsec_aGVsbG8="))
        );

        // A raw secret that is not base64 simply has no alternate reading.
        assert!(
            Secret::new("not base64!")
                .unwrap()
                .alternate_mac()
                .is_none()
        );
    }

    #[test]
    fn debug_never_prints_the_key() {
        let secret = Secret::new("whsec_supersecretvalue").unwrap();
        let printed = format!("{secret:?} {secret:#?}");
        assert!(!printed.contains("supersecret"), "{printed}");
        assert!(printed.contains("[redacted]"));
    }
}
