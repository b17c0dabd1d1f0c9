//! Sending a request with the bearer token: the token, then one attempt with its retries,
//! renewing the token once on 401.

use bytes::Bytes;
use http::StatusCode;

use super::Client;
use super::request::{Request, parse};
use crate::error::Result;

impl Client {
    /// Sends a request with the bearer token and returns the body of a 2xx answer. A 401
    /// gets one fresh token (it may have been revoked or have expired early); Monite did not
    /// act on a request it refused as unauthorized, so this holds for every request.
    pub(super) async fn send(&self, request: &Request<'_>) -> Result<Bytes> {
        let mut renewed = false;
        loop {
            let token = self.token().await?;
            match self.attempt(request, Some(&token)).await {
                Err(e)
                    if e.api_status() == Some(StatusCode::UNAUTHORIZED)
                        && !renewed
                        && self.inner.auth.can_refresh() =>
                {
                    renewed = true;
                    self.forget_token(&token).await;
                }
                answer => return answer,
            }
        }
    }

    /// Sends a request and parses the answer as `T`.
    pub(super) async fn send_parsed<T: serde::de::DeserializeOwned>(
        &self,
        request: &Request<'_>,
    ) -> Result<T> {
        let body = self.send(request).await?;
        parse(request, &body)
    }
}
