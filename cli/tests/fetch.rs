//! `fetch` against the library's fake Monite: each of the four resolutions as JSON, the
//! text form, and exit 1 when the API fails.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

mod common;

use crate::common::fake_monite::{self, ENTITY_ID};
use common::{body_file, run};
use serde_json::json;

fn env(addr: std::net::SocketAddr) -> Vec<(&'static str, String)> {
    vec![
        ("MONITE_CLIENT_ID", fake_monite::CLIENT_ID.to_owned()),
        (
            "MONITE_CLIENT_SECRET",
            fake_monite::CLIENT_SECRET.to_owned(),
        ),
        ("MONITE_ENVIRONMENT", format!("http://{addr}/v1")),
    ]
}

fn envelope(name: &str, action: &str, object_type: &str, object: serde_json::Value) -> String {
    let mut body = json!({
        "id": "f8130c42-6c0f-4b9d-81db-38c08712b8bc", "action": action,
        "object_type": object_type,  "entity_id": ENTITY_ID,
        "api_version": "2024-05-25", "created_at": "2024-03-04T20:06:48+00:00",
    });
    body["object"] = object;
    body_file(name, body.to_string().as_bytes())
        .to_string_lossy()
        .into_owned()
}

async fn fetch(args: &[&str], env: &[(&'static str, String)]) -> common::Run {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut all = vec!["fetch"];
    all.extend_from_slice(args);
    run(&all, &env).await
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_prints_each_resolution_and_exits_0() {
    let (addr, fake) = fake_monite::start().await;
    let env = env(addr);
    fake.put_object(
        "/payables/p1",
        Some(ENTITY_ID),
        json!({"id": "p1", "status": "paid", "updated_at": "2024-03-05T00:00:00Z"}),
    );
    let paid = envelope("paid", "payable.paid", "payable", json!({"id": "p1"}));
    let out = fetch(&[&paid, "--json"], &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    let found = out.json();
    assert_eq!(found["resolution"], "found");
    assert_eq!(found["object_type"], "payable");
    assert_eq!(found["path"], "/payables/p1");
    assert_eq!(found["object"]["status"], "paid");
    assert_eq!(found["updated_at"], "2024-03-05T00:00:00Z");
    assert_eq!(found["newer_than_event"], true);
    assert!(found["parent"].is_null());

    let text = fetch(&[&paid], &env).await;
    assert_eq!(text.code, 0, "{text:?}");
    assert!(
        text.stdout
            .starts_with("found: GET /payables/p1, updated 2024-03-05T00:00:00Z, after the event"),
        "{text:?}"
    );

    fake.delete_object("/payables/p1");
    let deleted = envelope("deleted", "payable.deleted", "payable", json!({"id": "p1"}));
    let gone = fetch(&[&deleted, "--json"], &env).await;
    assert_eq!(gone.code, 0, "{gone:?}");
    assert_eq!(gone.json()["resolution"], "gone");
    assert_eq!(gone.json()["path"], "/payables/p1");
    assert!(gone.json()["object"].is_null());

    let address = envelope(
        "address",
        "counterpart_address.update",
        "counterpart_address",
        json!({"id": "a1"}),
    );
    let needs = fetch(&[&address, "--json"], &env).await;
    assert_eq!(needs.code, 0, "{needs:?}");
    assert_eq!(needs.json()["resolution"], "needs_parent");
    assert_eq!(needs.json()["parent"], "counterpart_id");
    assert!(needs.json()["path"].is_null());
    fake.put_object(
        "/counterparts/c1/addresses/a1",
        Some(ENTITY_ID),
        json!({"id": "a1", "counterpart_id": "c1"}),
    );
    let given = fetch(&[&address, "--parent", "c1", "--json"], &env).await;
    assert_eq!(given.json()["resolution"], "found", "{given:?}");
    assert_eq!(given.json()["path"], "/counterparts/c1/addresses/a1");
    assert!(given.json()["updated_at"].is_null());
    assert!(given.json()["newer_than_event"].is_null());

    let unknown = envelope(
        "unknown",
        "invoice_batch.created",
        "invoice_batch",
        json!({"id": "x"}),
    );
    let none = fetch(&[&unknown, "--json"], &env).await;
    assert_eq!(none.code, 0, "{none:?}");
    assert_eq!(none.json()["resolution"], "no_endpoint");
    assert_eq!(none.json()["object_type"], "invoice_batch");
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_exits_1_when_the_api_fails() {
    let (addr, fake) = fake_monite::start().await;
    for _ in 0..4 {
        fake.inject(fake_monite::Fault::new(
            "/v1/payables",
            fake_monite::Effect::Refuse {
                status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                retry_after: None,
            },
        ));
    }
    let paid = envelope("failing", "payable.paid", "payable", json!({"id": "p1"}));
    let out = fetch(&[&paid], &env(addr)).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("500"), "{out:?}");
}
