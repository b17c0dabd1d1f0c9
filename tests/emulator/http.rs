//! JSON over the library's reqwest (built without reqwest's `json` feature).

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use serde_json::Value;

/// A request with a JSON body.
pub(crate) trait JsonBody {
    fn json_body(self, body: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, body: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(body.to_string())
    }
}

/// The answer's body as JSON (`null` when it is not JSON).
pub(crate) async fn json_of(answer: reqwest::Response) -> Value {
    let bytes = answer.bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// A bare HTTP client. reqwest's TLS needs a process-wide provider without its aws-lc-rs
/// default: the library's own (*ring*).
pub(crate) fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
