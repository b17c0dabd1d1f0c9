//! One request and its retries: what it is, whether it may be sent again, one try plus
//! retries with back-off that never repeat what may have acted, and reading the answer.

use std::fmt::{self, Write as _};
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde::Deserialize;

use super::Client;
use super::rate::{MAX_RETRY_AFTER, http_date};
use crate::error::{Error, ErrorKind, Result};

/// Text that never prints.
pub(super) struct Redacted(pub(super) String);

/// Whether sending a request a second time could do twice what it did once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Replay {
    /// Repeating it changes nothing: reads, updates to given values, deletes, enable and
    /// disable, a token. Retried on 429, 5xx and transport failures.
    Safe,
    /// Each time it may make something new (a subscription, a secret). Retried only where
    /// Monite certainly did not act: the connection was never made, or a 429 said when to
    /// come back.
    OnlyIfUnreceived,
}

/// One API request, kept whole so that it can be sent again.
pub(super) struct Request<'a> {
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) entity_id: Option<&'a str>,
    pub(super) query: Vec<(&'static str, String)>,
    pub(super) body: Option<Bytes>,
    pub(super) replay: Replay,
    /// Whether it goes ahead of the ordinary lane of the rate budget (a fetch for a live
    /// event, not a sweep's listing).
    pub(super) ahead: bool,
}

impl<'a> Request<'a> {
    /// A request whose replay policy follows its method: `POST` only if unreceived.
    pub(super) fn new(method: Method, path: String) -> Self {
        let replay = if method == Method::POST {
            Replay::OnlyIfUnreceived
        } else {
            Replay::Safe
        };
        Self {
            method,
            path,
            entity_id: None,
            query: Vec::new(),
            body: None,
            replay,
            ahead: false,
        }
    }

    /// Sent ahead of the ordinary lane of the rate budget.
    pub(super) fn ahead(mut self) -> Self {
        self.ahead = true;
        self
    }

    /// A `POST` whose repetition changes nothing (enable, disable, a token).
    pub(super) fn replay_safe(mut self) -> Self {
        self.replay = Replay::Safe;
        self
    }

    pub(super) fn entity(mut self, entity_id: &'a str) -> Self {
        self.entity_id = Some(entity_id);
        self
    }

    pub(super) fn query(mut self, query: Vec<(&'static str, String)>) -> Self {
        self.query = query;
        self
    }

    pub(super) fn json(mut self, body: &impl serde::Serialize) -> Self {
        // Our own request types always serialize.
        self.body = serde_json::to_vec(body).ok().map(Bytes::from);
        self
    }
}

/// `METHOD /path`, for error messages.
impl fmt::Display for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// `id` as one path segment: percent-encoded, so that `../x`, `a?b` or `a#b` stay inside
/// it. URL parsers resolve `.` and `..` even encoded, so those are refused.
pub(super) fn segment(id: &str) -> Result<String> {
    if id.is_empty() || id.bytes().all(|b| b == b'.') {
        return Err(Error::new(
            ErrorKind::Misconfigured,
            format!("{id:?} is not an id that can be a path segment"),
        ));
    }
    let mut encoded = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    Ok(encoded)
}

/// How an attempt failed.
enum Failure {
    /// An answer other than 2xx, with its body (empty if it could not be read).
    Status {
        status: StatusCode,
        retry_after: Option<Duration>,
        body: Bytes,
    },
    /// A 2xx whose body could not be read: Monite acted.
    CutOff {
        status: StatusCode,
        error: reqwest::Error,
    },
    /// No answer; Monite never saw the request if the connection was never made
    /// (`error.is_connect()`).
    Transport { error: reqwest::Error },
}

impl Client {
    /// Sends `request`, retrying at most `max_retries` times with back-off (honouring
    /// `Retry-After`) where its [`Replay`] policy allows.
    pub(super) async fn attempt(
        &self,
        request: &Request<'_>,
        token: Option<&Redacted>,
    ) -> Result<Bytes> {
        let mut retries = 0;
        // Whether an earlier attempt may have done what the request asks.
        let mut may_have_acted = false;
        loop {
            self.take_slot(request.ahead).await?;
            let failure = match self.build(request, token).send().await {
                Err(error) if error.is_builder() => return Err(transport(request, error)),
                Err(error) => Failure::Transport { error },
                Ok(response) => {
                    let status = response.status();
                    let now = self.inner.timer.now();
                    self.note_date(response.headers(), now);
                    let seen = self
                        .inner
                        .budget
                        .observe(now, status.as_u16(), response.headers());
                    if let Some(hold) = seen.hold {
                        self.hold_every_caller(hold).await;
                    }
                    let retry_after = seen.retry_after;
                    match response.bytes().await {
                        Ok(body) if status.is_success() => return Ok(body),
                        Ok(body) => Failure::Status {
                            status,
                            retry_after,
                            body,
                        },
                        Err(error) if status.is_success() => Failure::CutOff { status, error },
                        Err(_) => Failure::Status {
                            status,
                            retry_after,
                            body: Bytes::new(),
                        },
                    }
                }
            };
            // A DELETE retried after an attempt that may have deleted: 404 is the success.
            if let Failure::Status { status, .. } = &failure
                && *status == StatusCode::NOT_FOUND
                && request.method == Method::DELETE
                && may_have_acted
            {
                return Ok(Bytes::new());
            }
            let unreceived = match &failure {
                Failure::Transport { error } => error.is_connect(),
                Failure::Status {
                    status,
                    retry_after,
                    ..
                } => *status == StatusCode::TOO_MANY_REQUESTS && retry_after.is_some(),
                Failure::CutOff { .. } => false,
            };
            let retryable = match &failure {
                // A wait longer than `MAX_RETRY_AFTER` is reported, not slept through.
                Failure::Status {
                    retry_after: Some(wait),
                    ..
                } if *wait > MAX_RETRY_AFTER => false,
                Failure::Status { status, .. } => {
                    *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
                }
                Failure::CutOff { .. } | Failure::Transport { .. } => true,
            };
            let allowed = request.replay == Replay::Safe || unreceived;
            if !retryable || !allowed || retries >= self.inner.max_retries {
                return Err(match failure {
                    Failure::Status { status, body, .. } => api_error(request, status, &body),
                    Failure::CutOff { status, error } => cut_off(request, status, error),
                    Failure::Transport { error } => transport(request, error),
                });
            }
            may_have_acted |= !unreceived;
            let wait = match &failure {
                Failure::Status {
                    retry_after: Some(wait),
                    ..
                } => *wait,
                _ => backoff(retries + 1),
            };
            retries += 1;
            self.inner.timer.sleep(wait).await;
        }
    }

    /// Waits for a slot of the rate budget, in the lane ahead or the ordinary one (where a
    /// request ahead may move the slot back while it waits); then, with a fleet, for a slot
    /// of the fleet's budget in the same lane.
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] if the fleet's store fails: the request is not sent.
    async fn take_slot(&self, ahead: bool) -> Result<()> {
        let budget = &self.inner.budget;
        let timer = &self.inner.timer;
        let lane = if ahead { "live" } else { "background" };
        let mut waited = Duration::ZERO;
        if ahead {
            let wait = budget.reserve_ahead(timer.now());
            if !wait.is_zero() {
                timer.sleep(wait).await;
                waited = wait;
            }
        } else {
            let started = timer.now();
            let (ticket, mut wait) = budget.reserve_queued(started);
            while !wait.is_zero() {
                timer.sleep(wait).await;
                wait = budget.recheck(ticket, timer.now());
            }
            waited = timer.now().saturating_duration_since(started);
        }
        #[cfg(any(feature = "postgres", feature = "redis"))]
        if let Some(shared) = &self.inner.shared {
            use crate::fleet::Lane;
            let lane = if ahead { Lane::Live } else { Lane::Background };
            let sleep = |wait| timer.sleep(wait);
            match shared.take(lane, &sleep).await {
                Ok(wait) => waited += wait,
                Err(e) => {
                    crate::observe::budget::drawn(lane.label(), waited, false);
                    return Err(e);
                }
            }
        }
        crate::observe::budget::drawn(lane, waited, true);
        Ok(())
    }

    /// A hold this answer set: counted, and with a fleet, shared with every replica. If the
    /// store cannot be told, this process still holds; the others learn it from their own
    /// `429`s.
    async fn hold_every_caller(&self, hold: super::rate::Hold) {
        crate::observe::budget::held(hold.rate_limited);
        #[cfg(any(feature = "postgres", feature = "redis"))]
        if let Some(shared) = &self.inner.shared
            && let Err(e) = shared.hold(hold.wait).await
        {
            crate::observe::budget::hold_not_shared(&e);
        }
    }

    /// Keeps Monite's `Date`, the clock sweep windows are measured on.
    fn note_date(&self, headers: &reqwest::header::HeaderMap, now: std::time::Instant) {
        let date = headers
            .get(http::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(http_date);
        let Some(date) = date else { return };
        // `Date` has whole seconds: a date up to a second behind the running estimate is
        // that estimate truncated, and keeping the estimate keeps Monite's time monotonic.
        if let Some(estimate) = self.monite_now()
            && date <= estimate
            && estimate.duration_since(date) < jiff::SignedDuration::from_secs(1)
        {
            return;
        }
        *self
            .inner
            .monite_clock
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((date, now));
    }

    fn build(&self, request: &Request<'_>, token: Option<&Redacted>) -> reqwest::RequestBuilder {
        let mut builder = self
            .inner
            .http
            .request(
                request.method.clone(),
                format!("{}{}", self.inner.base_url, request.path),
            )
            .header("X-Monite-Version", &self.inner.api_version);
        if let Some(token) = token {
            builder = builder.bearer_auth(&token.0);
        }
        if let Some(entity_id) = request.entity_id {
            builder = builder.header("X-Monite-Entity-Id", entity_id);
        }
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        if let Some(body) = &request.body {
            builder = builder
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        builder
    }
}

/// Parses an answer; `what` (a request, a listing's path) is only formatted on failure.
pub(super) fn parse<'a, T: Deserialize<'a>>(what: impl fmt::Display, body: &'a [u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        Error::new(
            ErrorKind::Api,
            format!("{what}: Monite's answer did not have the documented shape: {e}"),
        )
        .with_source(e)
    })
}

/// Monite's error bodies: `{"error": {"message"}}`, or a 422's `{"detail": [{"msg"}]}`.
fn api_error(request: &Request<'_>, status: StatusCode, body: &[u8]) -> Error {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: Option<Message>,
        detail: Option<Vec<Detail>>,
    }
    #[derive(Deserialize)]
    struct Message {
        message: String,
    }
    #[derive(Deserialize)]
    struct Detail {
        msg: String,
        #[serde(default)]
        loc: Vec<serde_json::Value>,
    }
    let message = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody {
            error: Some(error), ..
        }) => error.message,
        Ok(ErrorBody {
            detail: Some(details),
            ..
        }) => details
            .iter()
            .map(|d| {
                let at: Vec<String> = d
                    .loc
                    .iter()
                    .map(|l| l.to_string().trim_matches('"').to_owned())
                    .collect();
                format!("{}: {}", at.join("."), d.msg)
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    };
    let mut text = format!("{request} answered {status}: {message}");
    if request.replay == Replay::OnlyIfUnreceived && status.is_server_error() {
        let _ = write!(text, " {MAY_HAVE_ACTED}");
    }
    Error::new(ErrorKind::Api, text).with_api(status, message)
}

const MAY_HAVE_ACTED: &str = "(Monite may have acted on it, so it was not sent again)";

fn transport(request: &Request<'_>, error: reqwest::Error) -> Error {
    let mut text = format!("{request} could not reach Monite: {error}");
    if request.replay == Replay::OnlyIfUnreceived && !error.is_connect() && !error.is_builder() {
        let _ = write!(text, " {MAY_HAVE_ACTED}");
    }
    Error::new(ErrorKind::Transport, text).with_source(error)
}

fn cut_off(request: &Request<'_>, status: StatusCode, error: reqwest::Error) -> Error {
    Error::new(
        ErrorKind::Transport,
        format!(
            "{request}: Monite answered {status} and acted, but the answer was cut off: \
             {error}"
        ),
    )
    .with_source(error)
}

/// Exponential back-off from 250 ms, capped at 8 s, with full jitter so that many clients
/// retrying together spread out.
fn backoff(attempt: u32) -> Duration {
    let ceiling = Duration::from_millis(250)
        .saturating_mul(1 << attempt.min(5))
        .min(Duration::from_secs(8));
    let jitter = RandomState::new().hash_one(attempt) % 1000;
    ceiling.mul_f64(0.5 + jitter as f64 / 2000.0)
}
