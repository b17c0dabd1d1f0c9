//! The control endpoints (`/_emulator/*`) against hostile input: a `400` with a reason,
//! never a panic, and the emulator serving on afterwards.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use monite_webhooks::testing::Emulator;

use super::http::json_of;
use serde_json::{Value, json};

async fn post(http: &reqwest::Client, url: &str, body: &[u8]) -> (u16, Value) {
    let answer = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, json_of(answer).await)
}

#[tokio::test]
async fn hostile_input_to_the_control_endpoints_is_a_400_never_a_panic() {
    let emulator = Emulator::builder().start().await.unwrap();
    let root = emulator.base_url().trim_end_matches("/v1").to_owned();
    let http = super::http::client();
    let long = "a".repeat(100_000);
    let common: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"not json".to_vec(),
        b"[1, 2]".to_vec(),
        b"null".to_vec(),
        b"\"text\"".to_vec(),
        b"{\"a\":".to_vec(),
        vec![0xff, 0xfe, 0x00],
        format!("{{\"x\": \"{long}\"}}").into_bytes(),
        "[".repeat(10_000).into_bytes(),
    ];
    let events: Vec<Value> = vec![
        json!({}),
        json!({"action": 7}),
        json!({"action": ""}),
        json!({"action": "nodot"}),
        json!({"action": ".paid"}),
        json!({"action": "payable.paid\n"}),
        json!({"action": "pay able.paid"}),
        json!({"action": long}),
        json!({"action": "payable.paid", "entity_id": 5}),
        json!({"action": "payable.paid", "entity_id": ""}),
        json!({"action": "payable.paid", "entity_id": "e\u{0}"}),
        json!({"action": "payable.paid", "object": "p1"}),
        json!({"action": "payable.paid", "object": [1]}),
        json!({"action": "payable.paid", "object": {"id": 12}}),
        json!({"action": "payable.paid", "object": {"id": "../../etc"}}),
    ];
    let clocks: Vec<Value> = vec![
        json!({}),
        json!({"advance_seconds": "60"}),
        json!({"advance_seconds": -1}),
        json!({"advance_seconds": 1e300}),
        json!({"advance_seconds": u64::MAX}),
        json!({"advance_seconds": null}),
    ];
    let entities: Vec<Value> = vec![json!({"id": 5}), json!({"id": ""}), json!({"id": "a b"})];
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    for path in [
        "/_emulator/events",
        "/_emulator/clock",
        "/_emulator/entities",
    ] {
        for body in &common {
            if path == "/_emulator/entities" && body.is_empty() {
                continue; // an empty body asks for a new entity
            }
            cases.push((path, body.clone()));
        }
    }
    cases.extend(
        events
            .iter()
            .map(|b| ("/_emulator/events", b.to_string().into_bytes())),
    );
    cases.extend(
        clocks
            .iter()
            .map(|b| ("/_emulator/clock", b.to_string().into_bytes())),
    );
    cases.extend(
        entities
            .iter()
            .map(|b| ("/_emulator/entities", b.to_string().into_bytes())),
    );

    for (path, body) in &cases {
        let (status, answer) = post(&http, &format!("{root}{path}"), body).await;
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        assert_eq!(status, 400, "{path} {shown}: {answer}");
        assert!(
            answer["error"]["message"].is_string(),
            "{path} {shown}: {answer}"
        );
    }

    // Still serving: a valid event with no subscription is answered, not recorded.
    let (status, answer) = post(
        &http,
        &format!("{root}/_emulator/events"),
        br#"{"action": "payable.paid"}"#,
    )
    .await;
    assert_eq!(
        (status, &answer["recorded"]),
        (200, &json!(false)),
        "{answer}"
    );
    let ledger: Value = http
        .get(format!("{root}/_emulator/ledger"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    assert_eq!(ledger["events"].as_array().unwrap().len(), 1);
    assert_eq!(ledger["events"][0]["recorded"], false);
}

#[tokio::test]
async fn the_control_endpoints_record_events_move_the_clock_and_tell_the_ledger() {
    let emulator = Emulator::builder().start().await.unwrap();
    let root = emulator.base_url().trim_end_matches("/v1").to_owned();
    let http = super::http::client();
    let down = super::receiver::nobody().await;
    let subscription = emulator.add_subscription("payable", &down, true);

    let (status, event) = post(
        &http,
        &format!("{root}/_emulator/events"),
        br#"{"action": "payable.paid", "entity_id": "e1", "object": {"id": "p1", "amount": 3}}"#,
    )
    .await;
    assert_eq!(status, 201, "{event}");
    assert_eq!(
        (
            &event["action"],
            &event["entity_id"],
            &event["object"],
            &event["object_type"]
        ),
        (
            &json!("payable.paid"),
            &json!("e1"),
            &json!({"id": "p1"}),
            &json!("payable")
        )
    );
    let before = emulator.now();
    let (status, now) = post(
        &http,
        &format!("{root}/_emulator/clock"),
        br#"{"advance_seconds": 3600}"#,
    )
    .await;
    assert_eq!(status, 200, "{now}");
    let moved = now["now"]
        .as_str()
        .unwrap()
        .parse::<monite_webhooks::jiff::Timestamp>()
        .unwrap();
    assert!(
        moved.duration_since(before).as_secs() >= 3600,
        "{before} {moved}"
    );
    let (status, entity) = post(
        &http,
        &format!("{root}/_emulator/entities"),
        br#"{"id": "e2"}"#,
    )
    .await;
    assert_eq!((status, &entity["id"]), (201, &json!("e2")));

    let ledger: Value = http
        .get(format!("{root}/_emulator/ledger"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    assert_eq!(ledger["events"][0]["id"], event["id"]);
    assert_eq!(ledger["events"][0]["recorded"], true);
    assert_eq!(ledger["events"][0]["acknowledged"], false);
    // Refused at once, then 2, 7, 17 and 32 minutes after: the attempts within the hour.
    let offsets: Vec<i64> = ledger["events"][0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["offset_seconds"].as_i64().unwrap())
        .collect();
    assert_eq!(offsets, [0, 120, 420, 1020, 1920]);
    assert_eq!(
        ledger["subscriptions"][0],
        json!({"id": subscription, "object_type": "payable", "status": "enabled"})
    );
}
