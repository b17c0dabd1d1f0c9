//! Is it from Monite? The `Monite-Signature` header, secrets, the keyring of
//! per-subscription secrets, and the [`Verifier`] that puts them together.

mod diagnose;
pub(crate) mod hex;
mod keyring;
mod parse;
mod secret;
mod verifier;

pub use self::keyring::{Keyring, SubscriptionSecrets};
pub use self::parse::SignatureHeader;
#[cfg(fuzzing)]
pub(crate) use self::parse::parse_usual;
pub use self::secret::{KeyConvention, Secret};
pub use self::verifier::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_TOLERANCE, MAX_SIGNATURES, MAX_TOLERANCE, Verified, Verifier,
};
pub use crate::headers::{HeaderLookup, SIGNATURE_HEADER};
