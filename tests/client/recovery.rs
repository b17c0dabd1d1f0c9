//! Recovering missed events through a receiver, against a local fake of Monite's API
//! (testkit/src/fake_monite.rs): each event handled once, resuming from the last completed
//! page, events held in flight, and events that do not parse.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use monite_webhooks::testing::signed_request;
use monite_webhooks::{Dispatcher, ErrorKind, Event, ObjectType, Receiver, Secret, Verifier};

use support::client::{client, counting_receiver, fault};
use support::fake_monite::{self, ENTITY_ID};

const SUBSCRIPTION: &str = "f3c64af7-4a2f-4ed2-8160-d66b6a8ac4ba";

#[tokio::test]
async fn recovery_runs_each_event_once_even_when_some_were_delivered() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    let runs = Arc::default();
    let receiver = counting_receiver(&runs, None);
    let secret = monite_webhooks::Secret::new("whsec_recovery").unwrap();

    // Three of the seven events arrived as webhooks before the listener went down.
    for event in &fake.events()[..3] {
        let mut delivered = event.clone();
        delivered["webhook_subscription_id"] = serde_json::json!(SUBSCRIPTION);
        let response = receiver
            .handle(signed_request(&secret, delivered.to_string()))
            .await;
        assert_eq!(response.status(), 200);
    }

    let mut reports = Vec::new();
    let progress = client
        .recover_missed_events(&receiver, ENTITY_ID)
        .as_subscription(SUBSCRIPTION)
        .page_size(3)
        .on_progress(|p| reports.push(p.clone()))
        .run()
        .await
        .unwrap();
    assert_eq!(
        (progress.events, progress.handled, progress.duplicates),
        (7, 4, 3)
    );
    assert_eq!(progress.pages, 3);
    assert_eq!(reports.len(), 3);
    assert!(reports[0].resume_from.is_some() && reports[2].resume_from.is_none());
    let runs = runs.lock().unwrap();
    assert_eq!(runs.len(), 7);
    assert!(runs.values().all(|n| *n == 1), "{runs:?}");
}

#[tokio::test]
async fn recovery_resumes_from_the_last_completed_page() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    let runs = Arc::default();
    // Pages of two: [0, 1], [2, 3], [4, 5], [6]. Event 5 fails after event 4 was handled.
    let failing = fake.events()[5]["id"].as_str().unwrap().to_owned();
    let receiver = counting_receiver(&runs, Some(failing.clone()));

    let last_checkpoint = Mutex::new(None);
    let error = client
        .recover_missed_events(&receiver, ENTITY_ID)
        .page_size(2)
        .on_progress(|p| *last_checkpoint.lock().unwrap() = p.resume_from.clone())
        .run()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Handler);
    assert!(
        error.to_string().contains("resume with resume_from"),
        "{error}"
    );
    let checkpoint = last_checkpoint.lock().unwrap().clone().unwrap();

    // Monite fails too, once, on the way: retried.
    fake.inject(fault("/v1/events", StatusCode::SERVICE_UNAVAILABLE, None));
    let progress = client
        .recover_missed_events(&receiver, ENTITY_ID)
        .resume_from(checkpoint)
        .run()
        .await
        .unwrap();
    // Resumed at the page of events 4 and 5: 4 is a duplicate now, 5 and 6 run.
    assert_eq!((progress.handled, progress.duplicates), (2, 1));
    let runs = runs.lock().unwrap();
    assert_eq!(runs.len(), 7);
    for (id, count) in runs.iter() {
        let expected = if *id == failing { 2 } else { 1 };
        assert_eq!(*count, expected, "{id}");
    }
}

/// A receiver on a `MemoryStore` in which `held` events are claimed, as by a delivery that
/// died mid-handler: the claim stays until `lease` runs out.
async fn receiver_with_held_claims(
    runs: &Arc<Mutex<HashMap<String, usize>>>,
    held: &[&str],
    lease: Duration,
) -> Receiver {
    use monite_webhooks::idempotency::{Claim, ClaimToken};
    use monite_webhooks::{Idempotency, IdempotencyStore as _, MemoryStore};

    let store = MemoryStore::new();
    for id in held {
        let claim = store
            .claim(&format!("evt:{id}"), &ClaimToken::new(), lease)
            .await
            .unwrap();
        assert_eq!(claim, Claim::Acquired);
    }
    let runs = runs.clone();
    let dispatcher = Dispatcher::builder()
        .fallback(move |event: Event, _| {
            let runs = runs.clone();
            async move {
                let id = event.id().unwrap_or_default().to_owned();
                *runs.lock().unwrap().entry(id).or_default() += 1;
                Ok::<(), std::io::Error>(())
            }
        })
        .build();
    Receiver::builder(
        Verifier::new(Secret::new("whsec_recovery").unwrap()),
        dispatcher,
    )
    .idempotency(Idempotency::new(store))
    .build()
}

/// An event a dead delivery holds "in flight" is never skipped: past the wait, the run stops
/// with an error naming it and the token of its page, and the resumed run handles it.
#[tokio::test]
async fn recovery_stops_at_an_event_held_in_flight_past_the_wait() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    let ids: Vec<String> = fake
        .events()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    // Pages of two: [0, 1], [2, 3], ... Event 3 is held for two seconds.
    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let receiver = receiver_with_held_claims(&runs, &[&ids[3]], Duration::from_secs(2)).await;

    let checkpoints = Mutex::new(Vec::new());
    let started = Instant::now();
    let error = client
        .recover_missed_events(&receiver, ENTITY_ID)
        .page_size(2)
        .in_flight_wait(Duration::from_millis(300))
        .on_progress(|p| checkpoints.lock().unwrap().push(p.resume_from.clone()))
        .run()
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited past the wait"
    );
    assert_eq!(error.kind(), ErrorKind::InFlight);
    let message = error.to_string();
    assert!(message.contains(&ids[3]), "{message}");
    // Only the first page was done: the resume token is the one before the held event's.
    let checkpoints = checkpoints.lock().unwrap().clone();
    assert_eq!(checkpoints.len(), 1, "{checkpoints:?}");
    let token = checkpoints[0].clone().unwrap();
    assert!(
        message.contains(&format!("resume_from({token:?})")),
        "{message}"
    );
    assert!(!runs.lock().unwrap().contains_key(&ids[3]));

    // Once the lease has run out, the resumed run handles it, and every event ran once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let progress = client
        .recover_missed_events(&receiver, ENTITY_ID)
        .resume_from(token)
        .in_flight_wait(Duration::ZERO)
        .run()
        .await
        .unwrap();
    assert_eq!(progress.in_flight, 0);
    let runs = runs.lock().unwrap();
    assert_eq!(runs.len(), 7, "{runs:?}");
    assert!(runs.values().all(|n| *n == 1), "{runs:?}");
}

/// Within the wait, an event held in flight is retried with back-off until its claim runs
/// out, and handled in the same run.
#[tokio::test]
async fn recovery_retries_an_event_held_in_flight_until_its_lease_runs_out() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    let ids: Vec<String> = fake
        .events()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    // Two on the first page of three.
    let held = [ids[1].as_str(), ids[2].as_str()];
    let receiver = receiver_with_held_claims(&runs, &held, Duration::from_millis(1200)).await;

    let progress = client
        .recover_missed_events(&receiver, ENTITY_ID)
        .page_size(3)
        .in_flight_wait(Duration::from_secs(20))
        .run()
        .await
        .unwrap();
    assert_eq!(progress.handled, 7, "{progress}");
    // Both were found in flight, waited for, and handled.
    assert_eq!(progress.in_flight, 2, "{progress}");
    assert_eq!(progress.resume_from, None);
    let runs = runs.lock().unwrap();
    assert_eq!(runs.len(), 7, "{runs:?}");
    assert!(runs.values().all(|n| *n == 1), "{runs:?}");
}

/// Dispatches `raw` as Monite would deliver it through `subscription`.
async fn deliver(receiver: &Receiver, event: &serde_json::Value, subscription: &str) {
    let secret = Secret::new("whsec_recovery").unwrap();
    let mut delivered = event.clone();
    delivered["webhook_subscription_id"] = serde_json::json!(subscription);
    let response = receiver
        .handle(signed_request(&secret, delivered.to_string()))
        .await;
    assert_eq!(response.status(), 200);
}

/// The reproduction: one subscription per object type, three events delivered, then
/// a recovery over those three and four missed ones.
#[tokio::test]
async fn recovery_after_deliveries_from_three_subscriptions_runs_each_handler_once() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let count = |runs: &Arc<Mutex<HashMap<String, usize>>>| {
        let runs = runs.clone();
        move |event: Event| {
            let runs = runs.clone();
            async move {
                let key = format!("{}:{}", event.object_type(), event.id().unwrap());
                *runs.lock().unwrap().entry(key).or_default() += 1;
            }
        }
    };
    let dispatcher = Dispatcher::builder()
        .on_object(ObjectType::Payable, count(&runs))
        .on_object(ObjectType::Counterpart, count(&runs))
        .on_object(ObjectType::Entity, count(&runs))
        .build();
    let receiver = Receiver::new(
        Verifier::new(Secret::new("whsec_recovery").unwrap()),
        dispatcher,
    );
    // Events 0 (counterpart), 1 (payable) and 3 (entity), each through its object type's
    // subscription.
    let events = fake.events();
    let delivered = [
        (0, "f3c64af7-4a2f-4ed2-8160-000000000001"),
        (1, "f3c64af7-4a2f-4ed2-8160-000000000002"),
        (3, "f3c64af7-4a2f-4ed2-8160-000000000003"),
    ];
    for (index, subscription) in delivered {
        deliver(&receiver, &events[index], subscription).await;
    }
    assert_eq!(runs.lock().unwrap().len(), 3);

    let progress = client
        .recover_missed_events(&receiver, ENTITY_ID)
        .run()
        .await
        .unwrap();
    // Seven events: three already handled, three handled now (2, 4 and 6), and the
    // receivable (5) has no handler.
    assert_eq!(progress.events, 7);
    assert_eq!(
        (progress.duplicates, progress.handled, progress.unhandled),
        (3, 3, 1)
    );
    let runs = runs.lock().unwrap();
    assert_eq!(runs.len(), 6, "{runs:?}");
    assert!(runs.values().all(|n| *n == 1), "{runs:?}");
}

#[tokio::test]
async fn recovery_reports_an_unparsable_event_and_goes_on() {
    // Event 3 has lost its `action` and `object_type`: no parser can route it.
    let poison_id = "0b7e6a9c-1d2e-4f50-9a8b-000000000003";
    let (addr, _fake) = fake_monite::start_with(|fake| {
        let event = &mut fake.events[3];
        let object = event.as_object_mut().unwrap();
        object.remove("action");
        object.remove("object_type");
    })
    .await;
    let client = client(addr);
    let runs = Arc::default();
    let receiver = counting_receiver(&runs, None);

    let mut reports = Vec::new();
    let progress = client
        .recover_missed_events(&receiver, ENTITY_ID)
        .page_size(2)
        .on_progress(|p| reports.push(p.clone()))
        .run()
        .await
        .unwrap();
    assert_eq!((progress.events, progress.handled), (6, 6));
    assert_eq!(progress.unparsable.len(), 1);
    assert_eq!(progress.unparsable[0].id.as_deref(), Some(poison_id));
    assert!(
        progress.unparsable[0].error.contains("action"),
        "{:?}",
        progress.unparsable
    );
    // Reported with the page it was on, and in the summary.
    assert!(reports[0].unparsable.is_empty() && reports[1].unparsable.len() == 1);
    assert!(progress.to_string().contains(poison_id), "{progress}");
    assert_eq!(runs.lock().unwrap().len(), 6);

    // Or stop there, if asked.
    let error = client
        .recover_missed_events(&receiver, ENTITY_ID)
        .page_size(2)
        .stop_on_unparsable()
        .run()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotAnEnvelope);
    assert!(
        error.to_string().contains("resume with resume_from"),
        "{error}"
    );
}
