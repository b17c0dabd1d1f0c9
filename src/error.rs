//! The crate's one error type.

use std::borrow::Cow;
use std::fmt;

use http::StatusCode;

/// A boxed error, as handlers and stores return it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result<T, monite_webhooks::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a delivery was refused or failed.
///
/// `Display` gives the precise reason, meant for your logs. [`Error::public_message`] gives
/// the short, generic text that is safe to send back to the caller, and [`Error::status`]
/// the HTTP status the receiver answers with.
pub struct Error {
    // Boxed so that `Result<T, Error>` stays one pointer wide on the hot path.
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: Cow<'static, str>,
    source: Option<BoxError>,
    // What Monite's API answered, for client errors.
    api: Option<(StatusCode, Box<str>)>,
}

/// What kind of failure an [`Error`] is.
///
/// New kinds may be added as the crate learns about new failures, hence `#[non_exhaustive]`:
/// match the ones you care about and keep a `_` arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A secret could not be used: empty, padded with whitespace, or not valid base64 for
    /// the `whsec_` base64 convention. Raised when the secret is built, never per request.
    ///
    /// Usually means a secret copied with its newline, or a `MONITE_WEBHOOK_SECRETS` pair
    /// missing its `<subscription_id>=`; fix by pasting the secret exactly as Monite gave it.
    InvalidSecret,
    /// The request has no `Monite-Signature` header. `400`.
    MissingSignature,
    /// The `Monite-Signature` header is not of the form `t=<unix>,v1=<hex>`. `400`.
    MalformedSignature,
    /// No `v1` signature matches any configured secret. `401`.
    ///
    /// Usually means a secret of another subscription or environment (sandbox and production
    /// differ; regenerating a secret invalidates the old one at once), or a body parsed and
    /// re-serialised before verification; fix by passing the body on exactly as received,
    /// and ask [`Verifier::diagnose_at`](crate::Verifier::diagnose_at) which secret matches.
    SignatureMismatch,
    /// The delivery names a webhook subscription whose secret the [`Keyring`](crate::Keyring)
    /// does not hold (and there is no unkeyed secret to try); no HMAC was computed. `401`.
    ///
    /// Usually means a subscription created after the keyring was loaded, or a 2022 envelope
    /// that names none; fix by adding its secret (`Keyring::with_subscription`,
    /// `MONITE_WEBHOOK_SECRETS=<id>=<secret>` or the keyring file), or an unkeyed secret
    /// (`Keyring::with_unkeyed`) for deliveries that name no subscription.
    UnknownSubscription,
    /// The signature matched one webhook subscription's secret, but the envelope names
    /// another subscription (or none): one subscription's secret cannot vouch for another's
    /// events. `401`.
    SubscriptionMismatch,
    /// The signed timestamp is older than the tolerance allows. `401`.
    ///
    /// Usually means a replayed or long-queued delivery, or a server clock that is ahead;
    /// fix by synchronising the clock (NTP), or by a wider
    /// [`Verifier::with_tolerance`](crate::Verifier::with_tolerance) if deliveries queue.
    TimestampTooOld,
    /// The signed timestamp is further in the future than the tolerance allows. `401`.
    ///
    /// Usually means this server's clock is behind; fix by synchronising it (NTP).
    TimestampInFuture,
    /// The body is larger than the configured limit; refused before any HMAC work. `413`.
    BodyTooLarge,
    /// The signature is valid but the body is not a Monite event envelope. `400`.
    NotAnEnvelope,
    /// The request is not a `POST`. `405`.
    ///
    /// Usually means a probe or a browser; Monite delivers with `POST` only.
    MethodNotAllowed,
    /// The request body could not be read (the connection failed mid-way). `400`.
    UnreadableBody,
    /// The receiver is wired up wrongly, such as an extractor with no receiver to use. `500`.
    ///
    /// Usually means a missing piece of setup; fix by what the message names: actix's
    /// `VerifiedEvent` needs `App::new().app_data(receiver)`, a `Client` needs
    /// `ClientBuilder::credentials` or `::token`, a store namespace is 1 to 64 ASCII letters,
    /// digits, `_`, `-` or `.`, and a table prefix is letters, digits and `_` with at most
    /// one dot after a schema name.
    Misconfigured,
    /// A handler returned an error, or the task running it was dropped (the runtime shut
    /// down); Monite will retry. `500`.
    ///
    /// Usually means a dependency of the handler failed (its error is the
    /// [`source`](std::error::Error::source)); nothing to fix here if it is transient.
    Handler,
    /// A handler panicked; the panic was caught and Monite will retry. `500`.
    HandlerPanicked,
    /// Another delivery of the same event is being handled right now; Monite will retry,
    /// and nothing is lost if that other delivery fails. `409`.
    ///
    /// From `client::Recovery`, it names the events still held after the
    /// wait: a delivery that died holds its claim until its lease runs out (5 minutes by
    /// default), so fix by running the recovery again after that.
    InFlight,
    /// The idempotency store could not be reached, so no handler ran; Monite will retry.
    /// `503`.
    ///
    /// Usually means Redis or PostgreSQL is down or unreachable from here; fix the store,
    /// as nothing was handled and Monite's retries deliver the events again.
    StoreUnavailable,
    /// Monite's API answered with an error (see [`Error::api_status`] and
    /// [`Error::api_message`]), after retries where retrying made sense. `502` if it ever
    /// reaches a receiver's answer.
    ///
    /// A listing Monite would never end (a pagination token given twice, empty pages in a
    /// row) is stopped with this kind too. A create that failed with a 5xx "may have acted":
    /// it was not sent again, so list the subscriptions before repeating it.
    Api,
    /// Monite's API could not be reached, after retries. `502` likewise.
    ///
    /// A create whose answer was lost "may have acted": list the subscriptions before
    /// repeating it.
    Transport,
    /// A keyring file could not be read, parsed or written. `500` if it ever reaches a
    /// receiver's answer.
    ///
    /// An id that starts with `whsec_` usually means a secret pasted in the id's place; a
    /// format this version does not read means the file was written by a newer one.
    KeyringFile,
    /// The reconciler's checkpoints could not be read, parsed or written. `500` if it ever
    /// reaches a receiver's answer.
    ///
    /// A checkpoint is never ahead of what was handled, so after fixing the store the next
    /// sweep starts where the last saved one left off.
    Checkpoints,
    /// A handler said the event can never be handled: it failed with
    /// `dispatch::Unresolvable`, such as a handler
    /// registered with `on_fetched` whose object is gone although the event is not a
    /// delete, or needs a parent id nobody supplied. Retrying cannot change it, so the
    /// receiver reports it through `on_failure` and answers `200` (the event is done),
    /// and the inbox workers report it and make the event `dead` at once (kept for a
    /// requeue once the cause is fixed), instead of a week of retries.
    Unresolvable,
}

impl ErrorKind {
    /// The HTTP status a receiver answers with for this kind (protocol section 5).
    #[must_use]
    pub const fn status(self) -> StatusCode {
        match self {
            Self::MissingSignature
            | Self::MalformedSignature
            | Self::NotAnEnvelope
            | Self::UnreadableBody => StatusCode::BAD_REQUEST,
            Self::SignatureMismatch
            | Self::UnknownSubscription
            | Self::SubscriptionMismatch
            | Self::TimestampTooOld
            | Self::TimestampInFuture => StatusCode::UNAUTHORIZED,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::InFlight => StatusCode::CONFLICT,
            Self::Unresolvable => StatusCode::OK,
            Self::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Api | Self::Transport => StatusCode::BAD_GATEWAY,
            Self::InvalidSecret
            | Self::KeyringFile
            | Self::Checkpoints
            | Self::Handler
            | Self::HandlerPanicked
            | Self::Misconfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable `snake_case` name for this kind: the `reason` label of the rejection
    /// counter (feature `metrics`), and a field for your logs.
    ///
    /// `bad_signature` against `stale_timestamp` is what an operator alerts on after a key
    /// rotation: the first climbs when a secret is wrong, the second when a clock is.
    #[must_use]
    pub const fn reason(self) -> &'static str {
        match self {
            Self::InvalidSecret => "invalid_secret",
            Self::KeyringFile => "keyring_file",
            Self::Checkpoints => "checkpoints",
            Self::MissingSignature => "missing_signature",
            Self::MalformedSignature => "malformed_signature",
            Self::SignatureMismatch => "bad_signature",
            Self::UnknownSubscription => "unknown_subscription",
            Self::SubscriptionMismatch => "subscription_mismatch",
            Self::TimestampTooOld => "stale_timestamp",
            Self::TimestampInFuture => "future_timestamp",
            Self::BodyTooLarge => "body_too_large",
            Self::NotAnEnvelope => "not_an_envelope",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UnreadableBody => "unreadable_body",
            Self::Misconfigured => "misconfigured",
            Self::Handler => "handler_error",
            Self::HandlerPanicked => "handler_panicked",
            Self::InFlight => "in_flight",
            Self::StoreUnavailable => "store_unavailable",
            Self::Api => "api_error",
            Self::Transport => "transport_error",
            Self::Unresolvable => "unresolvable",
        }
    }

    /// A short reason that is safe to send to an unauthenticated caller.
    ///
    /// It never says which signature check failed (stale and mismatched signatures read the
    /// same) and never contains secrets or expected signatures.
    #[must_use]
    pub const fn public_message(self) -> &'static str {
        match self {
            Self::MissingSignature | Self::MalformedSignature => {
                "missing or malformed Monite-Signature header"
            }
            Self::SignatureMismatch
            | Self::UnknownSubscription
            | Self::SubscriptionMismatch
            | Self::TimestampTooOld
            | Self::TimestampInFuture => "invalid signature",
            Self::BodyTooLarge => "payload too large",
            Self::NotAnEnvelope => "not a Monite event",
            Self::MethodNotAllowed => "method not allowed",
            Self::UnreadableBody => "request body could not be read",
            Self::InFlight => "event is being handled; retry later",
            Self::StoreUnavailable => "temporarily unavailable; retry later",
            Self::Api | Self::Transport => "an upstream call failed; retry later",
            Self::Unresolvable => "acknowledged; the event cannot be handled",
            Self::InvalidSecret
            | Self::KeyringFile
            | Self::Checkpoints
            | Self::Handler
            | Self::HandlerPanicked
            | Self::Misconfigured => "event could not be handled",
        }
    }
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                source: None,
                api: None,
            }),
        }
    }

    pub(crate) fn body_too_large(length: impl fmt::Display, limit: usize) -> Self {
        Self::new(
            ErrorKind::BodyTooLarge,
            format!("body of {length} bytes is over the {limit}-byte limit"),
        )
    }

    pub(crate) fn method_not_allowed(method: &str) -> Self {
        Self::new(
            ErrorKind::MethodNotAllowed,
            format!("{method} is not allowed, only POST"),
        )
    }

    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    pub(crate) fn with_api(mut self, status: StatusCode, message: String) -> Self {
        self.inner.api = Some((status, message.into_boxed_str()));
        self
    }

    /// Says what was being done when this error happened.
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    pub(crate) fn context(mut self, doing: &str) -> Self {
        self.inner.message = format!("{doing}: {}", self.inner.message).into();
        self
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// What kind of failure this is.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The HTTP status a receiver answers with.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.inner.kind.status()
    }

    /// The short reason to put in a response body; see [`ErrorKind::public_message`].
    #[must_use]
    pub fn public_message(&self) -> &'static str {
        self.inner.kind.public_message()
    }

    /// The status Monite's API answered with, for [`ErrorKind::Api`] errors.
    #[must_use]
    pub fn api_status(&self) -> Option<StatusCode> {
        self.inner.api.as_ref().map(|(status, _)| *status)
    }

    /// The message Monite's API gave (for a 422, each invalid field and why), for
    /// [`ErrorKind::Api`] errors.
    #[must_use]
    pub fn api_message(&self) -> Option<&str> {
        self.inner.api.as_ref().map(|(_, message)| &**message)
    }

    /// Whether Monite should retry this delivery (the failure was ours, not the request's).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.status().is_server_error() || self.status() == StatusCode::CONFLICT
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Error");
        s.field("kind", &self.inner.kind)
            .field("message", &self.inner.message);
        if let Some(source) = &self.inner.source {
            s.field("source", source);
        }
        s.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
