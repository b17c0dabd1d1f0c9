//! Setting up one endpoint's subscriptions with their secrets in a keyring, against a local
//! fake of Monite's API (testkit/src/fake_monite.rs): `ensure` over many pages, failures in
//! the middle of a run, and rotation.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::collections::HashMap;

use http::StatusCode;
use monite_webhooks::client::{Ensured, NewSubscription, SecretStatus, SubscriptionPlan};
use monite_webhooks::testing::signed_request;
use monite_webhooks::{ErrorKind, EventType, Keyring, ObjectType, Secret, Verifier};

use support::client::client;
use support::fake_monite::{self, Effect};
use support::openapi::openapi;

const HOOK_URL: &str = "https://example.com/webhooks/monite";

/// A delivery naming subscription `id`, signed with `secret` now.
fn delivery_from(id: &str, secret: &Secret) -> http::Request<bytes::Bytes> {
    let body = serde_json::json!({"id": "f8130c42-0000-4000-8000-000000000001",
        "object_type": "payable", "action": "payable.created",
        "object": {"id": "587fd280"}, "webhook_subscription_id": id});
    signed_request(secret, body.to_string())
}

fn verifies(keyring: &Keyring, request: &http::Request<bytes::Bytes>) -> Result<(), ErrorKind> {
    Verifier::from_keyring(keyring.clone())
        .verify(request.headers(), request.body())
        .map(drop)
        .map_err(|e| e.kind())
}

/// The subscriptions the fake holds for `url`, by object type.
fn at_fake(fake: &fake_monite::Fake, url: &str) -> HashMap<String, Vec<serde_json::Value>> {
    let mut by_type: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for subscription in fake.subscriptions() {
        if subscription["url"] == url {
            let object_type = subscription["object_type"].as_str().unwrap().to_owned();
            by_type.entry(object_type).or_default().push(subscription);
        }
    }
    by_type
}

/// A keyring file of its own for one test.
struct KeyringFile(std::path::PathBuf);

impl KeyringFile {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "monite-webhooks-{}-{name}.json",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        Self(path)
    }
}

impl Drop for KeyringFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn every_object_type_is_what_the_api_takes() {
    let root = openapi();
    let accepted: Vec<&str> = root["components"]["schemas"]["WebhookObjectType"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let plan = SubscriptionPlan::every_object_type(HOOK_URL);
    let planned: Vec<&str> = plan.object_types().map(ObjectType::as_str).collect();
    assert_eq!(planned, accepted);
    assert!(plan.object_types().all(ObjectType::is_known));
}

#[tokio::test]
async fn ensure_sets_up_every_object_type_over_many_pages_and_a_second_run_changes_nothing() {
    let (addr, fake) = fake_monite::start().await;
    // Four to a page: the fifty subscriptions below take thirteen pages.
    fake.set_page_size_cap(Some(4));
    let client = client(addr);
    let subscriptions = client.webhook_subscriptions();
    let every = SubscriptionPlan::every_object_type(HOOK_URL);
    let object_types: Vec<ObjectType> = every.object_types().cloned().collect();

    // 20 subscriptions whose secrets the keyring holds, 5 of them disabled by Monite.
    let mut keyring = Keyring::new();
    let mut held = Vec::new();
    for object_type in &object_types[..20] {
        let created = subscriptions
            .create(&NewSubscription::new(object_type.clone(), HOOK_URL))
            .await
            .unwrap();
        keyring.insert(created.subscription.id.clone(), created.secret);
        held.push(created.subscription.id);
    }
    for id in &held[..5] {
        fake.set_status(id, "disabled");
    }
    // 5 whose secrets it does not hold (made by another tool), 2 disabled; a duplicate of
    // a held one; one of an object type this crate does not know, for the same URL; and 8
    // for another URL.
    let mut not_held = Vec::new();
    for (n, object_type) in object_types[20..25].iter().enumerate() {
        let status = if n < 2 { "disabled" } else { "enabled" };
        not_held.push(fake.seed(object_type.as_str(), HOOK_URL, status));
    }
    let duplicate = fake.seed(object_types[7].as_str(), HOOK_URL, "enabled");
    let unplanned = fake.seed("invoice_batch", HOOK_URL, "enabled");
    for object_type in &object_types[..8] {
        fake.seed(
            object_type.as_str(),
            "https://other.example.com/hooks",
            "disabled",
        );
    }
    assert_eq!(fake.subscriptions().len(), 35);

    let before = fake.requests();
    let report = subscriptions.ensure(&every, &mut keyring).await.unwrap();
    println!("{report}");
    // Nine pages of four, 17 creates, 7 enables; nothing else.
    assert_eq!(fake.requests() - before, 9 + 17 + 7);
    assert_eq!(report.subscriptions.len(), 42);
    let created: Vec<&ObjectType> = report.created().map(|e| &e.object_type).collect();
    assert_eq!(created, object_types[25..].iter().collect::<Vec<_>>());
    let mut reenabled: Vec<&str> = report
        .reenabled()
        .map(|e| e.subscription.as_ref().unwrap().id.as_str())
        .collect();
    reenabled.sort_unstable();
    let mut expected: Vec<&str> = held[..5]
        .iter()
        .chain(&not_held[..2])
        .map(String::as_str)
        .collect();
    expected.sort_unstable();
    assert_eq!(reenabled, expected);
    let missing: Vec<&str> = report
        .secrets_not_held()
        .map(|e| e.subscription.as_ref().unwrap().id.as_str())
        .collect();
    assert_eq!(missing, not_held);
    assert!(
        report
            .secrets_not_held()
            .all(|e| e.secret == SecretStatus::NotHeld)
    );
    let with_duplicate = &report.subscriptions[7];
    assert_eq!(with_duplicate.subscription.as_ref().unwrap().id, held[7]);
    assert_eq!(with_duplicate.duplicates.len(), 1);
    assert_eq!(with_duplicate.duplicates[0].id, duplicate);
    assert_eq!(report.unplanned.len(), 1);
    assert_eq!(report.unplanned[0].id, unplanned);
    assert!(report.changed());
    assert!(!report.is_complete(), "five secrets are not held");
    assert_eq!(report.refused().count(), 0);

    // At Monite: one subscription per object type (plus the duplicate), all enabled; the
    // other URL's untouched.
    let now = at_fake(&fake, HOOK_URL);
    assert_eq!(now.len(), 43);
    for object_type in &object_types {
        let expected = if *object_type == object_types[7] {
            2
        } else {
            1
        };
        let these = &now[object_type.as_str()];
        assert_eq!(these.len(), expected, "{object_type}");
        assert!(
            these.iter().all(|s| s["status"] == "enabled"),
            "{object_type}"
        );
    }
    let other = at_fake(&fake, "https://other.example.com/hooks");
    assert!(other.values().flatten().all(|s| s["status"] == "disabled"));
    // The keyring holds the 20 it had and the 17 created, each verifying its deliveries.
    assert_eq!(keyring.len(), 37);
    for entry in report.created() {
        let id = &entry.subscription.as_ref().unwrap().id;
        assert_eq!(entry.secret, SecretStatus::Issued);
        let secret = keyring.get(id).unwrap().current().clone();
        assert_eq!(verifies(&keyring, &delivery_from(id, &secret)), Ok(()));
    }

    // A second run changes nothing, creates nothing.
    let count = fake.subscriptions().len();
    let again = subscriptions.ensure(&every, &mut keyring).await.unwrap();
    assert!(!again.changed(), "{again}");
    assert_eq!(fake.subscriptions().len(), count);
    assert_eq!(keyring.len(), 37);
    assert_eq!(again.secrets_not_held().count(), 5);

    // Asked to, it regenerates the five missing secrets; then the setup is complete.
    let regenerate = every.clone().regenerate_missing_secrets(true);
    let regenerated = subscriptions
        .ensure(&regenerate, &mut keyring)
        .await
        .unwrap();
    let ids: Vec<&str> = regenerated
        .subscriptions
        .iter()
        .filter(|e| e.secret == SecretStatus::Regenerated)
        .map(|e| e.subscription.as_ref().unwrap().id.as_str())
        .collect();
    assert_eq!(ids, not_held);
    assert!(regenerated.is_complete(), "{regenerated}");
    assert_eq!(keyring.len(), 42);
    let last = subscriptions
        .ensure(&regenerate, &mut keyring)
        .await
        .unwrap();
    assert!(!last.changed() && last.is_complete(), "{last}");
    assert_eq!(fake.subscriptions().len(), count);
}

#[tokio::test]
async fn a_failure_in_the_middle_of_ensure_loses_no_secret_and_a_second_run_finishes() {
    let (addr, fake) = fake_monite::start().await;
    fake.set_page_size_cap(Some(3));
    let client = client(addr);
    let subscriptions = client.webhook_subscriptions();
    let plan = SubscriptionPlan::new(
        HOOK_URL,
        SubscriptionPlan::every_object_type(HOOK_URL)
            .object_types()
            .take(10)
            .cloned(),
    );
    let file = KeyringFile::new("ensure-failure");
    let save = |keyring: &Keyring| keyring.save(&file.0);

    // The fourth create fails with a 503 Monite did not act on: the run stops there, and
    // the keyring file holds the three secrets obtained before.
    fake.inject_on_create(
        4,
        Effect::Refuse {
            status: StatusCode::SERVICE_UNAVAILABLE,
            retry_after: None,
        },
    );
    let mut keyring = Keyring::new();
    let error = subscriptions
        .ensure_with(&plan, &mut keyring, save)
        .await
        .unwrap_err();
    assert_eq!(error.api_status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(error.to_string().contains("run it again"), "{error}");
    assert_eq!(fake.subscriptions().len(), 3);
    let saved = Keyring::load(&file.0).unwrap();
    assert_eq!(saved.len(), 3);
    for subscription in fake.subscriptions() {
        assert!(saved.contains(subscription["id"].as_str().unwrap()));
    }

    // The process restarts from the file. This time the second create is carried out but
    // its answer is lost (a gateway's 504), and the fifth one's connection is cut after
    // its 201: neither is sent again; each is found by listing again, its secret not held.
    let mut keyring = Keyring::load(&file.0).unwrap();
    fake.inject_on_create(2, Effect::AfterCommit(StatusCode::GATEWAY_TIMEOUT));
    fake.inject_on_create(5, Effect::ResetAfterHeaders);
    let report = subscriptions
        .ensure_with(&plan, &mut keyring, save)
        .await
        .unwrap();
    println!("{report}");
    let lost: Vec<&Ensured> = report
        .subscriptions
        .iter()
        .filter(|e| e.create_answer_lost.is_some())
        .collect();
    assert_eq!(lost.len(), 2, "{report}");
    assert!(
        lost.iter()
            .all(|e| e.secret == SecretStatus::NotHeld && !e.created)
    );
    assert_eq!(report.created().count(), 5);
    assert_eq!(fake.subscriptions().len(), 10, "no duplicate");
    assert!(at_fake(&fake, HOOK_URL).values().all(|s| s.len() == 1));
    assert_eq!(Keyring::load(&file.0).unwrap().len(), 8);

    // A run that may regenerate completes the setup; the file holds all ten.
    let plan = plan.regenerate_missing_secrets(true);
    let report = subscriptions
        .ensure_with(&plan, &mut keyring, save)
        .await
        .unwrap();
    assert!(report.is_complete(), "{report}");
    let saved = Keyring::load(&file.0).unwrap();
    assert_eq!(saved.len(), 10);
    for subscription in fake.subscriptions() {
        let id = subscription["id"].as_str().unwrap();
        let secret = saved.get(id).unwrap().current().clone();
        assert_eq!(verifies(&saved, &delivery_from(id, &secret)), Ok(()));
    }
    assert_eq!(fake.subscriptions().len(), 10);
}

#[tokio::test]
async fn a_keyring_that_cannot_be_saved_stops_the_run_at_once() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    let plan = SubscriptionPlan::new(HOOK_URL, [ObjectType::Payable, ObjectType::Counterpart]);
    let mut keyring = Keyring::new();
    let error = client
        .webhook_subscriptions()
        .ensure_with(&plan, &mut keyring, |keyring| {
            keyring.save("/nonexistent-directory/keyring.json")
        })
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::KeyringFile);
    assert!(error.to_string().contains("not saved"), "{error}");
    // One subscription was created, and its secret is in the keyring in memory.
    assert_eq!(fake.subscriptions().len(), 1);
    assert_eq!(keyring.len(), 1);
}

#[tokio::test]
async fn a_refused_object_type_is_reported_and_the_run_goes_on() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    let subscriptions = client.webhook_subscriptions();
    // `payable_line_item` is the events table's spelling; the API takes only
    // `payable.line_item`.
    let plan = SubscriptionPlan::new(HOOK_URL, [ObjectType::PayableLineItem, ObjectType::Payable]);
    let mut keyring = Keyring::new();
    // It can run on a spawned task.
    fn assert_send<T: Send>(_: &T) {}
    let run = subscriptions.ensure(&plan, &mut keyring);
    assert_send(&run);
    let report = run.await.unwrap();
    let refused = report.subscriptions[0].refused.as_ref().unwrap();
    assert_eq!(refused.api_status(), Some(StatusCode::UNPROCESSABLE_ENTITY));
    assert_eq!(report.subscriptions[0].secret, SecretStatus::NoSubscription);
    assert!(report.subscriptions[1].is_ready());
    assert!(!report.is_complete());
    assert_eq!(fake.subscriptions().len(), 1);

    // Event types named in the plan are brought into line, once.
    let plan = SubscriptionPlan::new(HOOK_URL, [ObjectType::Payable])
        .event_types(ObjectType::Payable, [EventType::Paid, EventType::Approved]);
    let report = subscriptions.ensure(&plan, &mut keyring).await.unwrap();
    assert!(report.subscriptions[0].event_types_updated);
    assert_eq!(
        report.subscriptions[0]
            .subscription
            .as_ref()
            .unwrap()
            .event_types,
        [EventType::Paid, EventType::Approved]
    );
    let plan = SubscriptionPlan::new(HOOK_URL, [ObjectType::Payable])
        .event_types(ObjectType::Payable, [EventType::Approved, EventType::Paid]);
    assert!(
        !subscriptions
            .ensure(&plan, &mut keyring)
            .await
            .unwrap()
            .changed()
    );
}

#[tokio::test]
async fn rotation_keeps_the_old_secret_beside_the_new_one_until_forgotten() {
    let (addr, _fake) = fake_monite::start().await;
    let client = client(addr);
    let subscriptions = client.webhook_subscriptions();
    let mut keyring = Keyring::new();
    let report = subscriptions
        .ensure(
            &SubscriptionPlan::new(HOOK_URL, [ObjectType::Payable]),
            &mut keyring,
        )
        .await
        .unwrap();
    let id = report.subscriptions[0]
        .subscription
        .as_ref()
        .unwrap()
        .id
        .clone();
    let old = keyring.get(&id).unwrap().current().clone();
    // A delivery Monite signed just before the rotation, still in flight.
    let in_flight = delivery_from(&id, &old);

    let rotated = subscriptions
        .rotate_secret(&id, &mut keyring)
        .await
        .unwrap();
    let held = keyring.get(&id).unwrap();
    assert_eq!(held.current().expose_text(), rotated.secret.expose_text());
    assert_eq!(held.previous().unwrap().expose_text(), old.expose_text());
    assert_ne!(old.expose_text(), rotated.secret.expose_text());
    let after = delivery_from(&id, &rotated.secret);
    assert_eq!(verifies(&keyring, &in_flight), Ok(()));
    assert_eq!(verifies(&keyring, &after), Ok(()));

    // Once the rotation is over, the old secret is refused.
    assert!(keyring.forget_previous(&id));
    assert_eq!(
        verifies(&keyring, &in_flight),
        Err(ErrorKind::SignatureMismatch)
    );
    assert_eq!(verifies(&keyring, &after), Ok(()));
}
