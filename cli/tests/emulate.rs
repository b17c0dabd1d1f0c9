//! `emulate`: a local Monite run as a process, printing its base URL, serving Monite's API,
//! taking events from `emulate trigger`, and stopping on SIGTERM.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;

use common::run;

#[path = "../../tests/emulator/http.rs"]
mod http;
use http::{JsonBody as _, json_of};
use serde_json::{Value, json};

#[tokio::test]
async fn emulate_serves_takes_triggered_events_and_stops_on_sigterm() {
    let mut child = common::command()
        .args([
            "emulate",
            "--addr",
            "127.0.0.1:0",
            "--client-id",
            "id-1",
            "--client-secret",
            "s-1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut base = String::new();
    stdout.read_line(&mut base).unwrap();
    let base = base.trim().to_owned();
    assert!(
        base.starts_with("http://127.0.0.1:") && base.ends_with("/v1"),
        "{base:?}"
    );

    // Its API takes only the credentials given.
    let http = http::client();
    let token = |secret: &'static str| {
        http.post(format!("{base}/auth/token"))
            .header("x-monite-version", "2024-05-25")
            .json_body(&json!({"grant_type": "client_credentials", "client_id": "id-1", "client_secret": secret}))
            .send()
    };
    assert_eq!(token("wrong").await.unwrap().status(), 401);
    let answer: Value = json_of(token("s-1").await.unwrap()).await;
    let bearer = answer["access_token"].as_str().unwrap().to_owned();

    // No subscription: the event is not recorded, and the command says so (exit 1).
    let lost = run(
        &[
            "--json",
            "emulate",
            "trigger",
            "payable.paid",
            "--emulator",
            &base,
        ],
        &[],
    )
    .await;
    assert_eq!(lost.code, 1, "{lost:?}");
    assert_eq!(lost.json()["not_recorded"], 1);

    let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/webhooks/monite", nobody.local_addr().unwrap());
    drop(nobody);
    let created = http
        .post(format!("{base}/webhook_subscriptions"))
        .bearer_auth(&bearer)
        .header("x-monite-version", "2024-05-25")
        .json_body(&json!({"object_type": "payable", "url": url}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    let kept = run(
        &[
            "emulate",
            "trigger",
            "payable.paid",
            "--entity",
            "e-1",
            "--count",
            "3",
            "--emulator",
            &base,
        ],
        &[],
    )
    .await;
    assert_eq!(kept.code, 0, "{kept:?}");
    assert_eq!(
        kept.stdout
            .lines()
            .filter(|l| l.starts_with("recorded "))
            .count(),
        3,
        "{kept:?}"
    );

    let root = base.trim_end_matches("/v1");
    let ledger: Value = http
        .get(format!("{root}/_emulator/ledger"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    let recorded: Vec<(bool, &str)> = ledger["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["recorded"].as_bool().unwrap(),
                e["entity_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(recorded.len(), 4);
    assert_eq!(&recorded[1..], [(true, "e-1"); 3]);

    let refused = run(&["emulate", "trigger", "nodot", "--emulator", &base], &[]).await;
    assert_eq!(refused.code, 2, "{refused:?}");

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
