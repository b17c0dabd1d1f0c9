//! The whole loop, as the guide "Test the whole loop" tells it: the receiver down for a
//! simulated week, the subscription disabled, re-enabled by the crate's watchdog, every
//! recorded event handled once after the reconciler's deep sweep, and the events of the
//! disabled interval reported lost.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use monite_webhooks::client::{Client, Environment, NewSubscription};
use monite_webhooks::reconcile::{MemoryCheckpoints, Reconciler};
use monite_webhooks::testing::Emulator;
use monite_webhooks::watchdog::{Report, Watchdog};
use monite_webhooks::{Dispatcher, Event, ObjectType, Receiver, Verifier};

const ENTITY: &str = "c381e88f-7019-4f06-9fbb-3bab8d88348a";

/// The partner's service: the crate's receiver behind an axum route, down (`503`, the
/// receiver never called) while `down` is set.
struct Service {
    receiver: std::sync::OnceLock<Receiver>,
    down: AtomicBool,
}

async fn deliver(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if service.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let mut request = http::Request::new(body);
    *request.method_mut() = http::Method::POST;
    *request.headers_mut() = headers;
    let receiver = service.receiver.get().unwrap();
    StatusCode::from_u16(receiver.handle(request).await.status().as_u16()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_week_down_is_recovered_except_the_disabled_interval_which_is_reported_lost() {
    let monite = Emulator::builder().start().await.unwrap();
    let client = Client::builder(Environment::Custom(monite.base_url()))
        .credentials(monite.client_id(), monite.client_secret())
        .build()
        .unwrap();

    let service = Arc::new(Service {
        receiver: std::sync::OnceLock::new(),
        down: AtomicBool::new(true),
    });
    let app = axum::Router::new()
        .route("/webhooks/monite", axum::routing::post(deliver))
        .with_state(service.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/monite", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let subscription = client
        .webhook_subscriptions()
        .create(&NewSubscription::new(ObjectType::Payable, &url))
        .await
        .unwrap();

    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let counted = runs.clone();
    let dispatcher = Dispatcher::builder()
        .fallback(move |event: Event, _| {
            let runs = counted.clone();
            async move {
                *runs
                    .lock()
                    .unwrap()
                    .entry(event.id().unwrap().to_owned())
                    .or_default() += 1;
                Ok::<(), std::io::Error>(())
            }
        })
        .build();
    let receiver = Receiver::new(Verifier::new(subscription.secret.clone()), dispatcher);
    let _ = service.receiver.set(receiver.clone());
    let reconciler = Reconciler::builder(client.clone(), receiver, MemoryCheckpoints::default())
        .allow_process_local_store()
        .build()
        .unwrap();
    let reports: Arc<Mutex<Vec<Report>>> = Arc::default();
    let seen = reports.clone();
    let watchdog = Watchdog::builder(client.clone())
        .reenable(true)
        .deep_sweep_with(reconciler.clone())
        .on_report(move |report| seen.lock().unwrap().push(report.clone()))
        .build()
        .unwrap();
    // The watchdog sees the subscription enabled before the outage.
    watchdog.run_once().await.unwrap();

    // Down: three events recorded, retried for a week, then the subscription disabled.
    let recorded_early: Vec<String> = (0..3)
        .map(|_| {
            monite
                .trigger("payable.paid", ENTITY, None)
                .unwrap()
                .event()
                .unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    monite
        .advance(Duration::from_secs(7 * 24 * 3600 + 60))
        .await;
    assert_eq!(monite.ledger().subscriptions[0].status, "disabled");
    // Two events while it is disabled: Monite does not record them.
    for _ in 0..2 {
        assert!(
            monite
                .trigger("payable.paid", ENTITY, None)
                .unwrap()
                .event()
                .is_none()
        );
    }
    monite.advance(Duration::from_secs(3600)).await;

    // Back up: the watchdog re-enables and asks for a deep sweep, which runs every
    // recorded event through the receiver.
    service.down.store(false, Ordering::SeqCst);
    let check = watchdog.run_once().await.unwrap();
    assert_eq!(
        check.reenabled,
        std::slice::from_ref(&subscription.subscription.id)
    );
    reconciler.run_once().await.unwrap();
    let after = monite.trigger("payable.paid", ENTITY, None).unwrap();
    monite.deliver_due().await;

    let ledger = monite.ledger();
    let recorded: Vec<&str> = ledger
        .events
        .iter()
        .filter(|e| e.recorded)
        .map(|e| e.id.as_str())
        .collect();
    let lost: Vec<&str> = ledger
        .events
        .iter()
        .filter(|e| !e.recorded)
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(recorded.len(), 4);
    assert_eq!(lost.len(), 2);
    assert!(
        recorded[..3]
            .iter()
            .zip(&recorded_early)
            .all(|(a, b)| a == b)
    );
    assert_eq!(recorded[3], after.event().unwrap()["id"].as_str().unwrap());
    let runs = runs.lock().unwrap().clone();
    for id in &recorded {
        assert_eq!(runs.get(*id), Some(&1), "{id}: {runs:?}");
    }
    for id in &lost {
        assert!(!runs.contains_key(*id));
    }
    assert_eq!(runs.len(), 4);
    // The lost interval is reported: from before the outage to the re-enabling.
    let reports = reports.lock().unwrap().clone();
    let lost_interval = reports.iter().find_map(|r| match r {
        Report::SubscriptionReenabled {
            lost_from,
            lost_until,
            ..
        } => Some((*lost_from, *lost_until)),
        _ => None,
    });
    let (Some(from), until) = lost_interval.expect("no re-enabling reported") else {
        panic!("the interval has no start: {reports:?}");
    };
    assert!(
        until.duration_since(from) >= monite_webhooks::jiff::SignedDuration::from_hours(7 * 24)
    );
}
