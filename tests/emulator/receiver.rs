//! A receiver for the emulator's deliveries, on a free loopback port: it verifies each
//! with the crate's own `Verifier` and the secrets it is given, keeps what it received,
//! and answers the status it is told (or holds its answer back).

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use monite_webhooks::{Secret, Verifier};
use serde_json::Value;

/// One delivery received: its body, and whether its signature verified.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) body: Value,
    pub(crate) verified: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Receiver {
    status: AtomicU16,
    delay_ms: AtomicU64,
    secrets: Mutex<Vec<Secret>>,
    received: Mutex<Vec<Received>>,
}

impl Receiver {
    /// Answers `status` from now on.
    pub(crate) fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Holds each answer back `delay`.
    pub(crate) fn delay(&self, delay: Duration) {
        self.delay_ms
            .store(u64::try_from(delay.as_millis()).unwrap(), Ordering::SeqCst);
    }

    /// Verifies with `secret` too.
    pub(crate) fn trust(&self, secret: &Secret) {
        self.secrets.lock().unwrap().push(secret.clone());
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let secrets: Vec<Secret> = receiver.secrets.lock().unwrap().clone();
    let verified = Verifier::with_secrets(secrets)
        .is_ok_and(|verifier| verifier.verify(&headers, &body).is_ok());
    receiver.received.lock().unwrap().push(Received {
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        verified,
    });
    let delay = receiver.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    StatusCode::from_u16(receiver.status.load(Ordering::SeqCst)).unwrap()
}

/// Starts a receiver answering `status`; its URL and its handle.
pub(crate) async fn start(status: u16) -> (String, Arc<Receiver>) {
    let receiver = Arc::new(Receiver::default());
    receiver.answer(status);
    let app = axum::Router::new()
        .route("/webhooks/monite", axum::routing::post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/webhooks/monite"), receiver)
}

/// A URL nothing listens on: connections to it are refused.
pub(crate) async fn nobody() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/webhooks/monite")
}
