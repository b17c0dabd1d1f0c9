//! Helpers for tests, local tools and replaying events: what Monite would send, signed
//! with a secret you hold; with the `emulator` feature, a local Monite ([`Emulator`]).

use crate::clock::unix_now;
use crate::signature::Secret;
use crate::signature::hex;

/// The `Monite-Signature` value Monite would send for `body` signed with `secret` at
/// `timestamp` (Unix seconds): `t=<timestamp>,v1=<hex HMAC-SHA256 of "t.body">`.
///
/// For tests, local tools and replaying events; see also [`signed_request`].
///
/// ```
/// use monite_webhooks::Secret;
/// use monite_webhooks::testing::sign;
///
/// let secret = Secret::new("whsec_test")?;
/// let header = sign(&secret, 1_713_773_722, br#"{"id":"..."}"#);
/// assert!(header.starts_with("t=1713773722,v1="));
/// # Ok::<(), monite_webhooks::Error>(())
/// ```
#[must_use]
pub fn sign(secret: &Secret, timestamp: u64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let tag = secret.tag(timestamp.as_bytes(), body);
    let mut header = String::with_capacity(timestamp.len() + 70);
    header.push_str("t=");
    header.push_str(&timestamp);
    header.push_str(",v1=");
    hex::encode_into(&tag, &mut header);
    header
}

/// A complete signed delivery, as Monite would POST it now: `POST /webhooks/monite` with
/// `Content-Type: application/json` and a `Monite-Signature` header for the current time.
///
/// ```
/// use monite_webhooks::Secret;
/// use monite_webhooks::testing::signed_request;
///
/// let request = signed_request(&Secret::new("whsec_test")?, r#"{"id":"..."}"#);
/// assert!(request.headers().contains_key("monite-signature"));
/// # Ok::<(), monite_webhooks::Error>(())
/// ```
#[must_use]
pub fn signed_request(
    secret: &Secret,
    body: impl Into<bytes::Bytes>,
) -> http::Request<bytes::Bytes> {
    signed_request_at(secret, body, unix_now())
}

/// As [`signed_request`], signed at `timestamp` (Unix seconds).
#[must_use]
pub fn signed_request_at(
    secret: &Secret,
    body: impl Into<bytes::Bytes>,
    timestamp: u64,
) -> http::Request<bytes::Bytes> {
    let body = body.into();
    let mut request = http::Request::new(bytes::Bytes::new());
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = http::Uri::from_static("/webhooks/monite");
    let headers = request.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    // A hex digest and a number are always a valid header value.
    if let Ok(value) = http::HeaderValue::try_from(sign(secret, timestamp, &body)) {
        headers.insert(crate::headers::SIGNATURE_HEADER, value);
    }
    *request.body_mut() = body;
    request
}

#[cfg(feature = "emulator")]
pub mod emulator;
#[cfg(feature = "emulator")]
pub use self::emulator::Emulator;
