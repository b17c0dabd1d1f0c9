//! What the receiver answers: the precheck adapters make before reading a body, and the
//! status and response for a delivery's result.

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};

use super::{Outcome, Receiver};
use crate::error::{Error, Result};
use crate::headers::HeaderLookup;
use crate::observe;

impl Receiver {
    /// What adapters check before reading a body: the method, and a declared
    /// `Content-Length` over the limit (answered `413` without reading a byte).
    pub(crate) fn precheck<H: HeaderLookup + ?Sized>(
        &self,
        method: &str,
        headers: &H,
    ) -> Result<()> {
        let limit = self.inner.verifier.max_body_bytes();
        let declared = headers
            .header("content-length")
            .and_then(|value| std::str::from_utf8(value).ok()?.trim().parse::<u64>().ok());
        let checked = if method != Method::POST.as_str() {
            Err(Error::method_not_allowed(method))
        } else if declared.is_some_and(|length| length > limit as u64) {
            Err(Error::body_too_large(declared.unwrap_or_default(), limit))
        } else {
            Ok(())
        };
        checked.inspect_err(observe::rejected)
    }

    /// The status for a result of [`receive`](Self::receive).
    #[must_use]
    pub fn status(&self, result: &Result<Outcome>) -> StatusCode {
        match result {
            Ok(Outcome::Handled | Outcome::Duplicate) => StatusCode::OK,
            Ok(Outcome::Accepted) => StatusCode::ACCEPTED,
            Ok(Outcome::Unhandled(_)) => self.inner.unhandled_status,
            Err(error) => error.status(),
        }
    }

    /// The response to a delivery, counted in the metrics: what every adapter answers.
    /// (`response` alone does not count, for layers that only verify.)
    pub(crate) fn answer(&self, result: &Result<Outcome>) -> Response<Bytes> {
        let response = self.response(result);
        observe::delivered(result, response.status());
        response
    }

    /// The response for a result of [`receive`](Self::receive): its status and a short
    /// plain-text body that never says more than [`Error::public_message`].
    #[must_use]
    pub fn response(&self, result: &Result<Outcome>) -> Response<Bytes> {
        let status = self.status(result);
        let text = match result {
            Ok(Outcome::Handled) => "ok",
            Ok(Outcome::Duplicate) => "ok (already handled)",
            Ok(Outcome::Accepted) => "accepted",
            Ok(Outcome::Unhandled(_)) if status.is_success() => "ok (no handler)",
            Ok(Outcome::Unhandled(_)) => "no handler for this event",
            Err(error) => error.public_message(),
        };
        let mut response = Response::new(Bytes::from_static(text.as_bytes()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if status == StatusCode::METHOD_NOT_ALLOWED {
            headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}
