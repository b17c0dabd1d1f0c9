//! `Client::fetch` against the fake Monite over loopback HTTP: the four resolutions for
//! top-level, entity and nested objects, the headers of every read, one request for a
//! crowd, retries, and the lane ahead of a reconciliation sweep.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::time::Duration;

use http::StatusCode;
use monite_webhooks::client::fetch::Resolution;
use monite_webhooks::client::{Client, Environment};
use monite_webhooks::reconcile::{MemoryCheckpoints, Reconciler};
use monite_webhooks::{ErrorKind, Event};
use serde_json::json;
use support::client::{client, counting_receiver, fault};
use support::fake_monite::{self, CLIENT_ID, CLIENT_SECRET, ENTITY_ID};

const CREATED_AT: &str = "2024-03-04T20:06:48.593225+00:00";

fn event(action: &str, object_type: &str, object: serde_json::Value) -> Event {
    Event::parse(
        json!({
            "id": "f8130c42-6c0f-4b9d-81db-38c08712b8bc",
            "action": action,
            "object_type": object_type,

            "entity_id": ENTITY_ID,
            "webhook_subscription_id": "f3c64af7-4a2f-4ed2-8160-d66b6a8ac4ba",
            "description": action,
            "api_version": "2024-05-25",
            "created_at": CREATED_AT,
        })
        .as_object()
        .cloned()
        .map(|mut envelope| {
            envelope.insert("object".to_owned(), object);
            serde_json::Value::Object(envelope).to_string()
        })
        .unwrap(),
    )
    .unwrap()
}

fn payable(id: &str, updated_at: &str, status: &str) -> serde_json::Value {
    json!({"id": id, "status": status, "amount": 1200, "currency": "EUR",
        "created_at": "2024-03-01T00:00:00Z", "updated_at": updated_at})
}

#[tokio::test]
async fn a_payable_is_found_with_its_time_against_the_events() {
    let (addr, fake) = fake_monite::start().await;
    fake.put_object(
        "/payables/p1",
        Some(ENTITY_ID),
        payable("p1", "2024-03-04T20:00:00Z", "paid"),
    );
    let client = client(addr);
    let paid = event("payable.paid", "payable", json!({"id": "p1"}));
    let Resolution::Found {
        object,
        path,
        updated_at,
        newer_than_event,
        ..
    } = client.fetch(&paid).await.unwrap()
    else {
        panic!("not found")
    };
    assert_eq!(object["status"], "paid");
    assert_eq!(path, "/payables/p1");
    assert_eq!(updated_at.unwrap().to_string(), "2024-03-04T20:00:00Z");
    assert_eq!(newer_than_event, Some(false));
    // The object moves on after the event: the fetch says so.
    fake.change_object("/payables/p1", |p| {
        p["status"] = json!("canceled");
        p["updated_at"] = json!("2024-03-05T08:00:00Z");
    });
    let now = client.fetch(&paid).await.unwrap();
    assert_eq!(now.found().unwrap()["status"], "canceled");
    assert!(matches!(
        now,
        Resolution::Found {
            newer_than_event: Some(true),
            ..
        }
    ));
}

#[tokio::test]
async fn the_typed_fetch_deserializes_into_the_callers_type() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Payable {
        id: String,
        amount: u64,
    }
    let (addr, fake) = fake_monite::start().await;
    fake.put_object(
        "/payables/p1",
        Some(ENTITY_ID),
        payable("p1", "2024-03-05T00:00:00Z", "new"),
    );
    let client = client(addr);
    let created = event("payable.created", "payable", json!({"id": "p1"}));
    let found = client.fetch(&created).typed::<Payable>().await.unwrap();
    assert_eq!(
        found.into_found(),
        Some(Payable {
            id: "p1".into(),
            amount: 1200
        })
    );
    // An object that does not fit the type is an error, not a resolution.
    let wrong = client.fetch(&created).typed::<Vec<u8>>().await.unwrap_err();
    assert_eq!(wrong.kind(), ErrorKind::Api);
}

#[tokio::test]
async fn an_entity_is_read_without_the_entity_header() {
    let (addr, fake) = fake_monite::start().await;
    fake.put_object(
        &format!("/entities/{ENTITY_ID}"),
        None,
        json!({"id": ENTITY_ID, "type": "organization", "status": "active",
            "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-03-05T00:00:00Z"}),
    );
    let client = client(addr);
    let updated = event("entity.updated", "entity", json!({"id": ENTITY_ID}));
    let found = client.fetch(&updated).await.unwrap();
    assert_eq!(found.name(), "found");
    assert_eq!(
        found.path(),
        Some(format!("/entities/{ENTITY_ID}").as_str())
    );
    // Deleted by status, not by a 404.
    fake.change_object(&format!("/entities/{ENTITY_ID}"), |e| {
        e["status"] = json!("deleted");
    });
    let gone = client.fetch(&updated).await.unwrap();
    assert!(matches!(
        gone,
        Resolution::Gone { ref deleted_status, .. } if deleted_status.as_deref() == Some("deleted")
    ));
    let reads = fake.object_reads();
    assert_eq!(reads.len(), 2);
    assert!(reads.iter().all(|r| r.entity_id.is_none()), "{reads:?}");
}

#[tokio::test]
async fn a_deleted_object_is_gone_by_404_or_by_its_status() {
    let (addr, fake) = fake_monite::start().await;
    fake.put_object(
        "/payables/p1",
        Some(ENTITY_ID),
        payable("p1", "2024-03-05T00:00:00Z", "new"),
    );
    fake.put_object(
        "/receivables/r1",
        Some(ENTITY_ID),
        json!({"id": "r1", "type": "invoice", "status": "deleted",
            "updated_at": "2024-03-05T00:00:00Z"}),
    );
    let client = client(addr);
    fake.delete_object("/payables/p1");
    let deleted = event("payable.deleted", "payable", json!({"id": "p1"}));
    assert!(matches!(
        client.fetch(&deleted).await.unwrap(),
        Resolution::Gone { ref path, deleted_status: None, .. } if path == "/payables/p1"
    ));
    // The same 404 for an update event: gone too (what to do with it is the handler's).
    let updated = event("payable.updated", "payable", json!({"id": "p1"}));
    assert!(client.fetch(&updated).await.unwrap().is_gone());
    let receivable = event("receivable.updated", "receivable", json!({"id": "r1"}));
    assert!(client.fetch(&receivable).await.unwrap().is_gone());
}

#[tokio::test]
async fn a_nested_object_needs_its_parent_from_the_object_or_the_caller() {
    let (addr, fake) = fake_monite::start().await;
    fake.put_object(
        "/counterparts/c1/addresses/a1",
        Some(ENTITY_ID),
        json!({"id": "a1", "counterpart_id": "c1", "city": "Berlin"}),
    );
    let client = client(addr);
    let bare = event(
        "counterpart_address.update",
        "counterpart_address",
        json!({"id": "a1"}),
    );
    assert!(matches!(
        client.fetch(&bare).await.unwrap(),
        Resolution::NeedsParent {
            parent: "counterpart_id",
            ..
        }
    ));
    assert!(
        fake.object_reads().is_empty(),
        "no request without the parent"
    );
    let supplied = client.fetch(&bare).parent("c1").await.unwrap();
    assert_eq!(supplied.found().unwrap()["city"], "Berlin");
    assert_eq!(supplied.path(), Some("/counterparts/c1/addresses/a1"));
    // `updated_at` is not in the schema: neither time nor staleness is claimed.
    assert!(matches!(
        supplied,
        Resolution::Found {
            updated_at: None,
            newer_than_event: None,
            ..
        }
    ));
    let carried = event(
        "counterpart_address.update",
        "counterpart_address",
        json!({"id": "a1", "counterpart_id": "c1"}),
    );
    assert_eq!(client.fetch(&carried).await.unwrap().name(), "found");
    // Payable line items name their parent `payable_id`.
    let line_item = event(
        "payable.line_item.created",
        "payable.line_item",
        json!({"id": "l1"}),
    );
    assert!(matches!(
        client.fetch(&line_item).await.unwrap(),
        Resolution::NeedsParent {
            parent: "payable_id",
            ..
        }
    ));
}

#[tokio::test]
async fn types_without_a_get_and_unknown_types_have_no_endpoint() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    for (action, object_type) in [
        ("workflow.updated", "workflow"),
        ("invoice_batch.created", "invoice_batch"),
        ("payment.created", "payment"),
    ] {
        let e = event(action, object_type, json!({"id": "x1"}));
        assert_eq!(
            client.fetch(&e).await.unwrap(),
            Resolution::NoEndpoint,
            "{object_type}"
        );
    }
    assert_eq!(fake.requests(), 0);
}

#[tokio::test]
async fn every_fetch_sends_the_version_the_token_and_the_entity_where_it_belongs() {
    let (addr, fake) = fake_monite::start().await;
    fake.put_object(
        "/payables/p1",
        Some(ENTITY_ID),
        payable("p1", "2024-03-05T00:00:00Z", "new"),
    );
    fake.put_object(
        "/counterparts/c1",
        Some(ENTITY_ID),
        json!({"id": "c1", "updated_at": "2024-03-05T00:00:00Z"}),
    );
    fake.put_object(
        &format!("/entities/{ENTITY_ID}"),
        None,
        json!({"id": ENTITY_ID, "status": "active"}),
    );
    let client = client(addr);
    let events = [
        event("payable.created", "payable", json!({"id": "p1"})),
        event("counterpart.created", "counterpart", json!({"id": "c1"})),
        event("entity.updated", "entity", json!({"id": ENTITY_ID})),
        event("tag.deleted", "tag", json!({"id": "t1"})),
    ];
    for e in &events {
        client.fetch(e).await.unwrap();
    }
    let reads = fake.object_reads();
    assert_eq!(reads.len(), 4);
    for read in &reads {
        assert_eq!(read.version.as_deref(), Some("2024-05-25"), "{read:?}");
        assert!(read.bearer, "{read:?}");
        let expected = (!read.path.starts_with("/v1/entities/")).then_some(ENTITY_ID);
        assert_eq!(read.entity_id.as_deref(), expected, "{read:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_fetches_of_one_object_send_one_request() {
    let (addr, fake) = fake_monite::start().await;
    fake.put_object(
        "/payables/p1",
        Some(ENTITY_ID),
        payable("p1", "2024-03-05T00:00:00Z", "paid"),
    );
    fake.set_object_delay(Duration::from_millis(300));
    let client = client(addr);
    let paid = event("payable.paid", "payable", json!({"id": "p1"}));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let client = client.clone();
            let paid = paid.clone();
            tokio::spawn(async move { client.fetch(&paid).await.unwrap() })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().found().unwrap()["status"], "paid");
    }
    assert_eq!(fake.object_reads().len(), 1);
    // Once answered, nothing is kept: the next fetch asks again.
    client.fetch(&paid).await.unwrap();
    assert_eq!(fake.object_reads().len(), 2);
}

#[tokio::test]
async fn a_429_is_retried_and_a_401_renews_the_token_once() {
    let (addr, fake) = fake_monite::start().await;
    fake.put_object(
        "/payables/p1",
        Some(ENTITY_ID),
        payable("p1", "2024-03-05T00:00:00Z", "paid"),
    );
    let client = client(addr);
    let paid = event("payable.paid", "payable", json!({"id": "p1"}));
    fake.object_429_every(2);
    client.fetch(&paid).await.unwrap();
    assert_eq!(client.fetch(&paid).await.unwrap().name(), "found");
    let statuses: Vec<u16> = fake.object_reads().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 429, 200]);
    fake.object_429_every(0);
    fake.revoke_tokens();
    assert_eq!(client.fetch(&paid).await.unwrap().name(), "found");
    assert_eq!(fake.token_requests(), 2);
}

#[tokio::test]
async fn an_api_failure_is_an_error_not_a_resolution() {
    let (addr, fake) = fake_monite::start().await;
    let client = Client::builder(Environment::Custom(format!("http://{addr}/v1")))
        .credentials(CLIENT_ID, CLIENT_SECRET)
        .max_retries(1)
        .build()
        .unwrap();
    fake.inject(fault("/v1/payables", StatusCode::BAD_GATEWAY, None));
    fake.inject(fault("/v1/payables", StatusCode::BAD_GATEWAY, None));
    let paid = event("payable.paid", "payable", json!({"id": "p1"}));
    let failed = client.fetch(&paid).await.unwrap_err();
    assert_eq!(failed.kind(), ErrorKind::Api);
    assert_eq!(failed.api_status(), Some(StatusCode::BAD_GATEWAY));
    // A 403 for an update event is an error; for a delete event, the object is gone.
    fake.inject(fault("/v1/payables", StatusCode::FORBIDDEN, None));
    assert!(client.fetch(&paid).await.is_err());
    fake.inject(fault("/v1/payables", StatusCode::FORBIDDEN, None));
    let deleted = event("payable.deleted", "payable", json!({"id": "p1"}));
    assert!(client.fetch(&deleted).await.unwrap().is_gone());
}

/// A sweep of many entities at a low rate holds its next slot; a fetch asked for meanwhile
/// takes it and reaches Monite first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_goes_ahead_of_a_running_sweep() {
    let (addr, fake) = fake_monite::start().await;
    fake.add_entities(30);
    fake.put_object(
        "/payables/p1",
        Some(ENTITY_ID),
        payable("p1", "2024-03-05T00:00:00Z", "paid"),
    );
    let client = Client::builder(Environment::Custom(format!("http://{addr}/v1")))
        .credentials(CLIENT_ID, CLIENT_SECRET)
        .max_rate(4.0)
        .build()
        .unwrap();
    let runs = Default::default();
    let reconciler = Reconciler::builder(
        client.clone(),
        counting_receiver(&runs, None),
        MemoryCheckpoints::default(),
    )
    .cold_per_cycle(usize::MAX)
    .allow_process_local_store()
    .build()
    .unwrap();
    let sweep = tokio::spawn(async move { reconciler.run_once().await.unwrap() });
    // Once the sweep is listing events, its next listing waits a quarter second.
    let events_listed = |log: &[String]| log.iter().filter(|l| l.contains("/events")).count();
    while events_listed(&fake.request_log()) < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = fake.request_log().len();
    // Let the sweep take its next slot, then ask.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let paid = event("payable.paid", "payable", json!({"id": "p1"}));
    assert_eq!(client.fetch(&paid).await.unwrap().name(), "found");
    let log = fake.request_log();
    assert_eq!(log[before], "GET /v1/payables/p1", "{:?}", &log[before..]);
    sweep.abort();
}
