//! The emulator's throughput: events recorded per second, and delivered (POSTed, signed,
//! verified by the receiver, acknowledged) per second, to a bare receiver on loopback that
//! verifies each delivery with the crate's `Verifier`.
//!
//! ```sh
//! cargo run --release --example emulator_load --features emulator -- 20000
//! ```

#![allow(
    clippy::print_stdout,
    clippy::cast_precision_loss,
    reason = "the example prints its figures on stdout, as rates"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use monite_webhooks::client::{Client, Environment, NewSubscription};
use monite_webhooks::testing::Emulator;
use monite_webhooks::{ObjectType, Verifier};

struct Receiver {
    verifier: std::sync::OnceLock<Verifier>,
    verified: AtomicUsize,
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    match receiver.verifier.get().map(|v| v.verify(&headers, &body)) {
        Some(Ok(_)) => {
            receiver.verified.fetch_add(1, Ordering::Relaxed);
            StatusCode::OK
        }
        _ => StatusCode::UNAUTHORIZED,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: usize = std::env::args().nth(1).map_or(Ok(10_000), |n| n.parse())?;
    let receiver = Arc::new(Receiver {
        verifier: std::sync::OnceLock::new(),
        verified: AtomicUsize::new(0),
    });
    let app = axum::Router::new()
        .route("/webhooks/monite", axum::routing::post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/webhooks/monite", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let emulator = Emulator::builder().rate_limit(None).start().await?;
    let client = Client::builder(Environment::Custom(emulator.base_url()))
        .credentials(emulator.client_id(), emulator.client_secret())
        .build()?;
    let created = client
        .webhook_subscriptions()
        .create(&NewSubscription::new(ObjectType::Payable, &url))
        .await?;
    let _ = receiver.verifier.set(Verifier::new(created.secret));

    let started = Instant::now();
    for _ in 0..events {
        emulator.trigger("payable.paid", "load-entity", None)?;
    }
    let recorded = started.elapsed();
    while receiver.verified.load(Ordering::Relaxed) < events {
        if started.elapsed() > Duration::from_secs(600) {
            return Err("not every event was delivered within 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let delivered = started.elapsed();
    let ledger = emulator.ledger();
    let acknowledged = ledger.events.iter().filter(|e| e.acknowledged).count();
    let attempts: usize = ledger.events.iter().map(|e| e.attempts.len()).sum();
    println!(
        "{events} events: recorded in {:.3} s ({:.0}/s); recorded and delivered in {:.3} s ({:.0}/s); \
         {acknowledged} acknowledged, {attempts} attempts",
        recorded.as_secs_f64(),
        events as f64 / recorded.as_secs_f64(),
        delivered.as_secs_f64(),
        events as f64 / delivered.as_secs_f64(),
    );
    emulator.shutdown().await;
    Ok(())
}
