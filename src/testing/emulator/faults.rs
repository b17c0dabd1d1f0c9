//! Faults a test injects into the emulator's API: refusals, failures after the fact, a
//! connection reset, any answer in place of the real one.

use http::StatusCode;

/// What to do to the next API request whose path starts with a prefix (`/v1/events`).
///
/// ```
/// use http::StatusCode;
/// use monite_webhooks::testing::emulator::{Effect, Fault};
///
/// let fault = Fault::new(
///     "/v1/webhook_subscriptions",
///     Effect::Refuse { status: StatusCode::SERVICE_UNAVAILABLE, retry_after: Some(1) },
/// );
/// assert_eq!(fault.path_prefix(), "/v1/webhook_subscriptions");
/// ```
#[derive(Clone, Debug)]
pub struct Fault {
    path_prefix: String,
    effect: Effect,
}

impl Fault {
    /// `effect` on the next request whose path (`/v1` included) starts with `path_prefix`.
    #[must_use]
    pub fn new(path_prefix: impl Into<String>, effect: Effect) -> Self {
        Self {
            path_prefix: path_prefix.into(),
            effect,
        }
    }

    /// The start of the paths it applies to.
    #[must_use]
    pub fn path_prefix(&self) -> &str {
        &self.path_prefix
    }

    /// What the emulator does instead of answering as usual.
    #[must_use]
    pub fn effect(&self) -> &Effect {
        &self.effect
    }

    pub(super) fn into_effect(self) -> Effect {
        self.effect
    }
}

/// What an injected fault does to a request.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Effect {
    /// Answer this status (an error body) without carrying the request out.
    Refuse {
        /// The status answered.
        status: StatusCode,
        /// A `Retry-After` header, in seconds.
        retry_after: Option<u64>,
    },
    /// Carry the request out, then answer this status instead (a gateway timing out).
    AfterCommit(StatusCode),
    /// Carry the request out, send its status, headers and half its body, then reset the
    /// connection.
    ResetAfterHeaders,
    /// Answer this status and JSON text without carrying the request out.
    Answer(StatusCode, String),
}

/// What one object read (`GET` of an object's path) sent, and what it was answered.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectRead {
    /// The path, `/v1` included.
    pub path: String,
    /// `X-Monite-Entity-Id`, if sent.
    pub entity_id: Option<String>,
    /// `X-Monite-Version`, if sent.
    pub version: Option<String>,
    /// Whether it carried a bearer token.
    pub bearer: bool,
    /// The status answered.
    pub status: u16,
}
