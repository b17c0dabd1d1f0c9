//! Explaining a refused signature as far as can be told, at the cost of more HMACs than
//! verification ever spends: [`Verifier::diagnose_at`].

use super::parse::SignatureHeader;
use super::secret::{KeyConvention, Secret, signed_payload_mac};
use super::verifier::{Verified, Verifier, matches_any, read_tags};
use crate::error::{Error, ErrorKind, Result};
use crate::headers::{HeaderLookup, SIGNATURE_HEADER};

impl Verifier {
    /// As [`verify_at`](Self::verify_at), but a mismatch is explained as far as can be
    /// told: whether a secret matches under the other [`KeyConvention`], or whether a
    /// secret of another subscription in the keyring signed the body.
    ///
    /// This costs up to two HMACs over the body per secret held, which is why
    /// verification never does it: call it for logs and tools, never for every request.
    /// The receiver calls it (at most once a second) when the `tracing` feature logs a
    /// refused delivery.
    ///
    /// # Errors
    /// As [`verify`](Self::verify), with a fuller message for a mismatch: what matched
    /// instead, or what to check. Unlike other errors' `Display`, this one carries advice,
    /// since it is written for a log line read without the [`ErrorKind`] docs.
    pub fn diagnose_at<H: HeaderLookup + ?Sized>(
        &self,
        headers: &H,
        body: &[u8],
        now: u64,
    ) -> Result<Verified<'_>> {
        let error = match self.verify_at(headers, body, now) {
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::SignatureMismatch | ErrorKind::UnknownSubscription
                ) =>
            {
                error
            }
            verified => return verified,
        };
        let Some(header) = headers
            .header(SIGNATURE_HEADER)
            .and_then(|raw| SignatureHeader::parse(raw).ok())
        else {
            return Err(error);
        };
        let tags = read_tags(&header);
        let text = header.timestamp_text();
        let every_secret = self
            .keyring
            .subscriptions()
            .flat_map(|(id, held)| held.as_slice().iter().map(move |s| (Some(id), s)))
            .chain(self.keyring.unkeyed().iter().map(|s| (None, s)));
        let mut found = None;
        for (subscription, secret) in every_secret {
            if matches_any(
                signed_payload_mac(secret.mac(), text, body),
                tags.as_slice(),
            ) {
                found = Some(format!(
                    "{error}. The signature does match secret {} of {}: the body names \
                     another subscription than the one that signed it, or none",
                    describe(secret),
                    subscription.map_or_else(
                        || "no subscription".to_owned(),
                        |id| format!("subscription {id}")
                    ),
                ));
                break;
            }
            let alternate = secret.alternate_mac().is_some_and(|mac| {
                matches_any(signed_payload_mac(mac, text, body), tags.as_slice())
            });
            if alternate {
                let (other, constructor) = match secret.convention() {
                    KeyConvention::Raw => (KeyConvention::WhsecBase64, "Secret::whsec_base64"),
                    _ => (KeyConvention::Raw, "Secret::new"),
                };
                found = Some(format!(
                    "{error}. The signature matches secret {} under the `{other}` key \
                     convention: build that secret with `{constructor}`",
                    describe(secret)
                ));
                break;
            }
        }
        if found.is_none() && !tags.as_slice().is_empty() {
            found = Some(format!("{error}. {}", unexplained(error.kind())));
        }
        Err(match found {
            Some(message) => Error::new(error.kind(), message),
            None => error,
        })
    }
}

/// What to check when no secret held, under either convention, signed the body: the
/// advice of the kind's docs, for a log line read without them.
fn unexplained(kind: ErrorKind) -> &'static str {
    if kind == ErrorKind::UnknownSubscription {
        "No secret held signed the body either: add that subscription's secret \
         (`Keyring::with_subscription`, MONITE_WEBHOOK_SECRETS=<id>=<secret>, or the keyring \
         file), or an unkeyed one for deliveries that name none"
    } else {
        "No secret held signed the body under either key convention: check that the secret \
         belongs to this subscription and environment (sandbox and production differ, and \
         regenerating a secret invalidates the old one at once), and that the body is passed \
         on exactly as received, not parsed and re-serialised"
    }
}

fn describe(secret: &Secret) -> String {
    secret
        .label()
        .map_or_else(|| "(unlabeled)".to_owned(), |label| format!("{label:?}"))
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
    fn mismatch_names_the_convention_that_would_have_matched() {
        let text = "whsec_aGVsbG8gd29ybGQ=";
        let signer = Secret::whsec_base64(text).unwrap();
        let value = sign(&signer, NOW, b"{}");
        let verifier = Verifier::new(Secret::new(text).unwrap().labeled("sub"));
        let cheap = verifier
            .verify_at(&headers(&value), b"{}", NOW)
            .unwrap_err();
        assert_eq!(cheap.kind(), ErrorKind::SignatureMismatch);
        assert!(!cheap.to_string().contains("convention:"), "{cheap}");
        let err = verifier
            .diagnose_at(&headers(&value), b"{}", NOW)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::SignatureMismatch);
        let message = err.to_string();
        assert!(
            message.contains("`whsec_base64` key convention"),
            "{message}"
        );
        assert!(message.contains("Secret::whsec_base64"), "{message}");
        assert!(!message.contains(text), "the secret leaked: {message}");
    }
}
