//! Deliveries as Monite makes them: signed, retried at Monite's offsets on the emulated
//! clock, the subscription disabled after a week of failures, nothing recorded while it is
//! disabled; every attempt in the delivery log.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use std::time::Duration;

use futures_util::TryStreamExt as _;
use monite_webhooks::client::{Client, Environment, ListQuery, NewSubscription};
use monite_webhooks::testing::Emulator;
use monite_webhooks::testing::emulator::Triggered;
use monite_webhooks::{EventType, ObjectType};

use super::receiver;

const ENTITY: &str = "c381e88f-7019-4f06-9fbb-3bab8d88348a";
const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

fn client(emulator: &Emulator) -> Client {
    Client::builder(Environment::Custom(emulator.base_url()))
        .credentials(emulator.client_id(), emulator.client_secret())
        .build()
        .unwrap()
}

/// Monite's documented offsets from the first attempt, in seconds: 2, 5, 10, 15, 30
/// minutes, 1, 2, 4, 8 hours apart, then 8 hours apart for as long as the week lasts.
fn documented_offsets() -> Vec<i64> {
    let mut offsets = vec![0];
    let mut at = 0;
    for minutes in [2, 5, 10, 15, 30, 60, 120, 240, 480] {
        at += minutes * 60;
        offsets.push(at);
    }
    while at + 8 * 3600 < 7 * 24 * 3600 {
        at += 8 * 3600;
        offsets.push(at);
    }
    offsets
}

#[tokio::test]
async fn a_failing_receiver_is_retried_at_monites_offsets_then_disabled_after_a_week() {
    let emulator = Emulator::builder().start().await.unwrap();
    let client = client(&emulator);
    let (url, receiver) = receiver::start(503).await;
    let created = client
        .webhook_subscriptions()
        .create(&NewSubscription::new(ObjectType::Payable, &url))
        .await
        .unwrap();
    receiver.trust(&created.secret);

    let Triggered::Recorded(event) = emulator.trigger("payable.paid", ENTITY, None).unwrap() else {
        panic!("an enabled subscription covers payable.paid");
    };
    // A minute short of the week: every attempt made, the subscription still enabled.
    emulator.advance(WEEK - Duration::from_secs(60)).await;
    let ledger = emulator.ledger();
    assert_eq!(ledger.subscriptions[0].status, "enabled");
    emulator.advance(Duration::from_secs(120)).await;

    let ledger = emulator.ledger();
    let offsets: Vec<i64> = ledger.events[0]
        .attempts
        .iter()
        .map(|a| a.offset_seconds)
        .collect();
    assert_eq!(offsets, documented_offsets());
    assert_eq!(offsets.len(), 28);
    assert!(
        ledger.events[0]
            .attempts
            .iter()
            .all(|a| a.status == Some(503))
    );
    assert!(!ledger.events[0].acknowledged);
    assert_eq!(ledger.subscriptions[0].status, "disabled");
    let status = client
        .webhook_subscriptions()
        .get(&created.subscription.id)
        .await
        .unwrap()
        .status;
    assert_eq!(status.as_str(), "disabled");

    // Every attempt reached the receiver, signed with the subscription's secret.
    let received = receiver.received();
    assert_eq!(received.len(), 28);
    assert!(
        received
            .iter()
            .all(|r| r.verified && r.body["id"] == event["id"])
    );
    assert_eq!(
        received[0].body["webhook_subscription_id"],
        created.subscription.id.as_str()
    );

    // The delivery log counts them.
    let log: Vec<_> = client
        .webhook_deliveries(ENTITY)
        .list(ListQuery::new())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].event_id, event["id"].as_str().unwrap());
    assert_eq!(log[0].requests_made_count, 28);
    assert_eq!(log[0].response_status_code, Some(503));
    assert_eq!(log[0].was_successful, Some(false));
}

#[tokio::test]
async fn while_disabled_nothing_is_recorded_and_after_enabling_events_flow_again() {
    let emulator = Emulator::builder().start().await.unwrap();
    let client = client(&emulator);
    let (url, receiver) = receiver::start(200).await;
    let created = client
        .webhook_subscriptions()
        .create(&NewSubscription::new(ObjectType::Payable, &url))
        .await
        .unwrap();
    receiver.trust(&created.secret);
    let id = &created.subscription.id;
    client.webhook_subscriptions().disable(id).await.unwrap();

    let lost = emulator.trigger("payable.paid", ENTITY, None).unwrap();
    let Triggered::NotRecorded(reason) = lost else {
        panic!("recorded while disabled: {lost:?}");
    };
    assert!(reason.contains("payable.paid"), "{reason}");
    emulator.advance(WEEK).await;
    assert!(receiver.received().is_empty());
    let events: Vec<_> = client
        .events(ENTITY)
        .list(ListQuery::new())
        .try_collect()
        .await
        .unwrap();
    assert!(events.is_empty(), "{events:?}");

    client.webhook_subscriptions().enable(id).await.unwrap();
    let kept = emulator.trigger("payable.paid", ENTITY, None).unwrap();
    emulator.deliver_due().await;
    let events: Vec<_> = client
        .events(ENTITY)
        .list(ListQuery::new())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].id().unwrap(),
        kept.event().unwrap()["id"].as_str().unwrap()
    );
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert!(received[0].verified);

    let ledger = emulator.ledger();
    assert_eq!(
        ledger
            .events
            .iter()
            .map(|e| (e.recorded, e.acknowledged))
            .collect::<Vec<_>>(),
        [(false, false), (true, true)]
    );
}

#[tokio::test]
async fn a_refused_connection_and_a_timeout_are_failed_attempts_retried_on_schedule() {
    let emulator = Emulator::builder()
        .delivery_timeout(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let client = client(&emulator);
    let down = receiver::nobody().await;
    let (slow_url, slow) = receiver::start(200).await;
    slow.delay(Duration::from_secs(5));
    for (object_type, url) in [
        (ObjectType::Payable, &down),
        (ObjectType::Receivable, &slow_url),
    ] {
        let created = client
            .webhook_subscriptions()
            .create(&NewSubscription::new(object_type, url))
            .await
            .unwrap();
        slow.trust(&created.secret);
    }
    emulator.trigger("payable.paid", ENTITY, None).unwrap();
    emulator.trigger("receivable.issued", ENTITY, None).unwrap();
    emulator.deliver_due().await;
    slow.delay(Duration::ZERO);
    emulator.advance(Duration::from_secs(120)).await;

    let ledger = emulator.ledger();
    let refused = &ledger.events[0];
    assert_eq!(
        refused
            .attempts
            .iter()
            .map(|a| a.status)
            .collect::<Vec<_>>(),
        [None, None]
    );
    assert!(!refused.acknowledged);
    let timed_out = &ledger.events[1];
    assert_eq!(
        timed_out
            .attempts
            .iter()
            .map(|a| (a.offset_seconds, a.status))
            .collect::<Vec<_>>(),
        [(0, None), (120, Some(200))]
    );
    assert!(timed_out.acknowledged);
}

#[tokio::test]
async fn an_event_goes_to_each_subscription_of_its_object_type_and_event_types() {
    let emulator = Emulator::builder().start().await.unwrap();
    let client = client(&emulator);
    let (url, receiver) = receiver::start(200).await;
    let subscriptions = client.webhook_subscriptions();
    let all = subscriptions
        .create(&NewSubscription::new(ObjectType::Payable, &url))
        .await
        .unwrap();
    let paid_only = subscriptions
        .create(
            &NewSubscription::new(ObjectType::Payable, &url)
                .event_types([EventType::from("payable.paid")]),
        )
        .await
        .unwrap();
    subscriptions
        .create(&NewSubscription::new(ObjectType::Counterpart, &url))
        .await
        .unwrap();
    receiver.trust(&all.secret);
    receiver.trust(&paid_only.secret);

    emulator.trigger("payable.paid", ENTITY, None).unwrap();
    emulator.trigger("payable.created", ENTITY, None).unwrap();
    emulator.deliver_due().await;

    let mut got: Vec<(String, String)> = receiver
        .received()
        .iter()
        .map(|r| {
            assert!(r.verified);
            (
                r.body["action"].as_str().unwrap().to_owned(),
                r.body["webhook_subscription_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    got.sort();
    let mut want = vec![
        ("payable.created".to_owned(), all.subscription.id.clone()),
        ("payable.paid".to_owned(), all.subscription.id.clone()),
        ("payable.paid".to_owned(), paid_only.subscription.id.clone()),
    ];
    want.sort();
    assert_eq!(got, want);
}
