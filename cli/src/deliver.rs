//! POSTing a body signed as Monite signs it, and what came back.

use std::time::{Duration, Instant};

use monite_webhooks::Secret;
use monite_webhooks::signature::SIGNATURE_HEADER;
use monite_webhooks::testing::sign;
use serde::Serialize;

use crate::failure::Failure;

/// The longest answer body kept for printing.
const ANSWER_LIMIT: usize = 200;

/// An HTTP client for deliveries: no redirects (Monite follows none), a timeout.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, Failure> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .user_agent(concat!("monite-webhooks-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Failure::usage(format!("cannot build the HTTP client: {e}")))
}

/// What a delivery attempt got back.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Answer {
    /// The HTTP status, if the receiver answered.
    pub(crate) status: Option<u16>,
    /// The answer's body (cut short), or why there was no answer.
    pub(crate) answer: String,
    /// How long the attempt took, in milliseconds.
    pub(crate) millis: u64,
}

impl Answer {
    /// Whether the receiver acknowledged the event (`2xx`).
    pub(crate) fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// `200 "ok"` or `no answer: connection refused`.
    pub(crate) fn describe(&self) -> String {
        match self.status {
            Some(status) => format!("{status} {:?}", self.answer),
            None => format!("no answer: {}", self.answer),
        }
    }
}

/// POSTs `body` to `url` signed with `secret` now, as Monite delivers.
pub(crate) async fn post_signed(
    http: &reqwest::Client,
    url: &str,
    body: &[u8],
    secret: &Secret,
) -> Answer {
    let signature = sign(secret, crate::time::unix_now(), body);
    post(http, url, body, &signature).await
}

/// POSTs `body` to `url` with this `Monite-Signature` value.
pub(crate) async fn post(
    http: &reqwest::Client,
    url: &str,
    body: &[u8],
    signature: &str,
) -> Answer {
    let started = Instant::now();
    let sent = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature)
        .body(body.to_vec())
        .send()
        .await;
    let (status, answer) = match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            (Some(status), shorten(text.trim()))
        }
        Err(e) => (None, transport_reason(&e)),
    };
    Answer {
        status,
        answer,
        millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

fn shorten(text: &str) -> String {
    if text.len() <= ANSWER_LIMIT {
        return text.to_owned();
    }
    let mut end = ANSWER_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// The innermost cause of a transport failure: "connection refused", not reqwest's wrapper.
fn transport_reason(error: &reqwest::Error) -> String {
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        reason = inner.to_string();
        source = inner.source();
    }
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    reason
}

/// Checks that `url` is an absolute http(s) URL, for a clear error before any request.
pub(crate) fn check_url(url: &str, flag: &str) -> Result<(), Failure> {
    match reqwest::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(()),
        _ => Err(Failure::usage(format!(
            "{flag} {url:?} is not an http:// or https:// URL"
        ))),
    }
}
