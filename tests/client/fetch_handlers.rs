//! Handlers that receive the fetched object (`DispatcherBuilder::on_fetched`,
//! `Client::fetched`), in the receiver and in the inbox workers, against the fake Monite:
//! found and gone objects, the unresolvable ones reported through the failure hooks and
//! never retried, and one request for a crowd.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use monite_webhooks::client::{Client, Resolution};
use monite_webhooks::testing::signed_request;
use monite_webhooks::{
    Dispatcher, ErrorKind, Event, EventType, ObjectType, Receiver, Secret, Verifier,
};
use serde_json::json;
use support::client::client;
use support::fake_monite::{self, ENTITY_ID};

const SECRET: &str = "whsec_fetched_handlers";

fn body(id: &str, action: &str, object_type: &str, object: serde_json::Value) -> String {
    let mut envelope = json!({
        "id": id, "action": action, "object_type": object_type,
        "entity_id": ENTITY_ID, "webhook_subscription_id": "f3c64af7-4a2f-4ed2-8160-d66b6a8ac4ba",
        "api_version": "2024-05-25", "created_at": "2024-03-04T20:06:48+00:00",
    });
    envelope["object"] = object;
    envelope.to_string()
}

/// What the handlers saw, and what the failure hook heard.
#[derive(Default)]
struct Seen {
    handled: Mutex<Vec<(String, &'static str)>>,
    failures: Mutex<Vec<(String, ErrorKind)>>,
}

fn dispatcher(client: &Client, seen: &Arc<Seen>) -> Dispatcher {
    let record = |seen: &Arc<Seen>| {
        let seen = Arc::clone(seen);
        move |event: Event, resolution: Resolution| {
            let seen = Arc::clone(&seen);
            async move {
                seen.handled
                    .lock()
                    .unwrap()
                    .push((event.action().to_owned(), resolution.name()));
            }
        }
    };
    Dispatcher::builder()
        .on_fetched(client, ObjectType::Payable, EventType::Paid, record(seen))
        .on_fetched(
            client,
            ObjectType::Payable,
            EventType::Updated,
            record(seen),
        )
        .on_fetched(
            client,
            ObjectType::Payable,
            EventType::Deleted,
            record(seen),
        )
        .on_fetched(
            client,
            ObjectType::CounterpartAddress,
            EventType::Update,
            record(seen),
        )
        .on(
            ObjectType::CounterpartAddress,
            EventType::Created,
            client
                .fetched(record(seen))
                .parent_of(|_event: &Event| Some("c1".to_owned())),
        )
        .build()
}

fn receiver(client: &Client, seen: &Arc<Seen>) -> Receiver {
    let hook = Arc::clone(seen);
    Receiver::builder(
        Verifier::new(Secret::new(SECRET).unwrap()),
        dispatcher(client, seen),
    )
    .on_failure(move |event, error| {
        hook.failures
            .lock()
            .unwrap()
            .push((event.action().to_owned(), error.kind()));
    })
    .build()
}

async fn deliver(receiver: &Receiver, body: &str) -> u16 {
    let secret = Secret::new(SECRET).unwrap();
    receiver
        .handle(signed_request(&secret, body.to_owned()))
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_receiver_hands_handlers_the_object_and_reports_what_cannot_be_resolved() {
    let (addr, fake) = fake_monite::start().await;
    fake.put_object(
        "/payables/p1",
        Some(ENTITY_ID),
        json!({"id": "p1", "status": "paid", "updated_at": "2024-03-05T00:00:00Z"}),
    );
    fake.put_object(
        "/counterparts/c1/addresses/a1",
        Some(ENTITY_ID),
        json!({"id": "a1", "counterpart_id": "c1"}),
    );
    let client = client(addr);
    let seen = Arc::new(Seen::default());
    let receiver = receiver(&client, &seen);

    // Found: the handler runs with the object.
    let paid = body("e1", "payable.paid", "payable", json!({"id": "p1"}));
    assert_eq!(deliver(&receiver, &paid).await, 200);

    // Gone for a delete event: the expected answer, handed to the handler.
    fake.delete_object("/payables/p1");
    let deleted = body("e2", "payable.deleted", "payable", json!({"id": "p1"}));
    assert_eq!(deliver(&receiver, &deleted).await, 200);

    // Gone for an update event: no handler run, the failure hook hears it, Monite is told
    // 200 (its retries could not change it), and a retry is a duplicate, not a new failure.
    let updated = body("e3", "payable.updated", "payable", json!({"id": "p1"}));
    assert_eq!(deliver(&receiver, &updated).await, 200);
    assert_eq!(deliver(&receiver, &updated).await, 200);

    // Needs a parent: reported likewise without a resolver; with one, found.
    let address = body(
        "e4",
        "counterpart_address.update",
        "counterpart_address",
        json!({"id": "a1"}),
    );
    assert_eq!(deliver(&receiver, &address).await, 200);
    let created = body(
        "e5",
        "counterpart_address.created",
        "counterpart_address",
        json!({"id": "a1"}),
    );
    assert_eq!(deliver(&receiver, &created).await, 200);

    assert_eq!(
        *seen.handled.lock().unwrap(),
        [
            ("payable.paid".to_owned(), "found"),
            ("payable.deleted".to_owned(), "gone"),
            ("counterpart_address.created".to_owned(), "found"),
        ]
    );
    assert_eq!(
        *seen.failures.lock().unwrap(),
        [
            ("payable.updated".to_owned(), ErrorKind::Unresolvable),
            (
                "counterpart_address.update".to_owned(),
                ErrorKind::Unresolvable
            ),
        ]
    );
    // Both were fetched once each: the unresolvable update was not retried.
    let reads: Vec<String> = fake.object_reads().into_iter().map(|r| r.path).collect();
    assert_eq!(
        reads,
        [
            "/v1/payables/p1",
            "/v1/payables/p1",
            "/v1/payables/p1",
            "/v1/counterparts/c1/addresses/a1",
        ]
    );
}

#[tokio::test]
async fn an_api_failure_is_an_ordinary_failure_retried_by_monite() {
    let (addr, fake) = fake_monite::start().await;
    let client = Client::builder(monite_webhooks::client::Environment::Custom(format!(
        "http://{addr}/v1"
    )))
    .credentials(fake_monite::CLIENT_ID, fake_monite::CLIENT_SECRET)
    .max_retries(0)
    .build()
    .unwrap();
    fake.inject(support::client::fault(
        "/v1/payables",
        http::StatusCode::SERVICE_UNAVAILABLE,
        None,
    ));
    let seen = Arc::new(Seen::default());
    let receiver = receiver(&client, &seen);
    let paid = body("e1", "payable.paid", "payable", json!({"id": "p1"}));
    assert_eq!(deliver(&receiver, &paid).await, 500);
    assert_eq!(
        *seen.failures.lock().unwrap(),
        [("payable.paid".to_owned(), ErrorKind::Handler)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_handlers_fetching_one_object_send_one_request() {
    let (addr, fake) = fake_monite::start().await;
    fake.put_object(
        "/payables/p1",
        Some(ENTITY_ID),
        json!({"id": "p1", "status": "paid", "updated_at": "2024-03-05T00:00:00Z"}),
    );
    fake.set_object_delay(Duration::from_millis(300));
    let client = client(addr);
    let seen = Arc::new(Seen::default());
    let receiver = receiver(&client, &seen);
    let deliveries: Vec<_> = (0..100)
        .map(|i| {
            let receiver = receiver.clone();
            let paid = body(
                &format!("e{i}"),
                "payable.paid",
                "payable",
                json!({"id": "p1"}),
            );
            tokio::spawn(async move { deliver(&receiver, &paid).await })
        })
        .collect();
    for delivery in deliveries {
        assert_eq!(delivery.await.unwrap(), 200);
    }
    assert_eq!(seen.handled.lock().unwrap().len(), 100);
    assert_eq!(fake.object_reads().len(), 1);
}

#[test]
#[should_panic(expected = "Monite has no GET for workflow objects")]
fn registering_a_type_without_a_get_is_a_wiring_mistake() {
    let client = Client::builder(monite_webhooks::client::Environment::Sandbox)
        .token("t")
        .build()
        .unwrap();
    let _ = Dispatcher::builder().on_fetched(
        &client,
        ObjectType::Workflow,
        EventType::Updated,
        |_: Event, _: Resolution| async {},
    );
}

/// The inbox workers: a deleted object for a delete event is done; for an update event the
/// failure hook hears it and the event is dead at once, never retried.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn inbox_workers_bury_what_cannot_be_resolved_at_once() {
    use monite_webhooks::inbox::{InboxState, MemoryInbox, RetrySchedule, Workers};

    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    let seen = Arc::new(Seen::default());
    let inbox = MemoryInbox::new();
    let accepting =
        Receiver::inbox_builder(Verifier::new(Secret::new(SECRET).unwrap()), inbox.clone()).build();
    for (id, action) in [("e1", "payable.deleted"), ("e2", "payable.updated")] {
        let event = Event::parse(body(id, action, "payable", json!({"id": "p1"}))).unwrap();
        accepting.receive_event(event).await.unwrap();
    }
    let hook = Arc::clone(&seen);
    let workers = Workers::builder(inbox.clone(), dispatcher(&client, &seen))
        .on_failure(move |event, error| {
            hook.failures
                .lock()
                .unwrap()
                .push((event.action().to_owned(), error.kind()));
        })
        .poll_interval(Duration::from_millis(10))
        .retry(RetrySchedule::new([Duration::ZERO], 5).with_jitter(|d| d))
        .start()
        .unwrap();
    for _ in 0..500 {
        let counts = inbox.status();
        if counts.done == Some(1) && counts.dead == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    workers.shutdown().await;
    assert_eq!(
        *seen.handled.lock().unwrap(),
        [("payable.deleted".to_owned(), "gone")]
    );
    assert_eq!(
        *seen.failures.lock().unwrap(),
        [("payable.updated".to_owned(), ErrorKind::Unresolvable)]
    );
    let dead = inbox.list(Some(&InboxState::Dead), 10);
    assert_eq!(dead.len(), 1);
    // One attempt, not five: the schedule's retries were not spent on it.
    assert_eq!(fake.object_reads().len(), 2);
}
