//! Verifying that a delivery was signed by Monite: the `Monite-Signature` header, secrets,
//! the keyring of per-subscription secrets, and the verifier that puts them together.

mod header;
pub(crate) mod hex;
mod keyring;
mod keyring_file;
mod secret;
mod verifier;

#[cfg(fuzzing)]
pub(crate) use self::header::parse_usual;
pub use self::header::{SignatureHeader, sign, signed_request, signed_request_at};
pub use self::keyring::{Keyring, SubscriptionSecrets};
pub use self::secret::{KeyConvention, Secret};
pub(crate) use self::verifier::unix_now;
pub use self::verifier::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_TOLERANCE, MAX_SIGNATURES, MAX_TOLERANCE, Verified, Verifier,
};
