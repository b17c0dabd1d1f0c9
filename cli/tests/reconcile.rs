//! `reconcile` against the library's fake Monite: every entity's events POSTed, signed,
//! each once; checkpoints in the state file; `reconcile status`; and a process killed
//! (SIGKILL) between pages, then run again, missing nothing and saving no checkpoint
//! ahead of what was sent.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use crate::common::fake_monite;
use common::{SECRET, run};
use monite_webhooks::jiff::{SignedDuration, Timestamp};

fn env(addr: std::net::SocketAddr) -> Vec<(&'static str, String)> {
    vec![
        ("MONITE_CLIENT_ID", fake_monite::CLIENT_ID.to_owned()),
        (
            "MONITE_CLIENT_SECRET",
            fake_monite::CLIENT_SECRET.to_owned(),
        ),
        ("MONITE_ENVIRONMENT", format!("http://{addr}/v1")),
        ("MONITE_WEBHOOK_SECRET", SECRET.to_owned()),
    ]
}

async fn run_env(args: &[&str], env: &[(&'static str, String)]) -> common::Run {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run(args, &env).await
}

fn ago(seconds: i64) -> String {
    (Timestamp::now() - SignedDuration::from_secs(seconds)).to_string()
}

fn state_file(name: &str) -> String {
    let path = std::env::temp_dir().join(format!("cli-reconcile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn reconcile_sends_every_entitys_events_once_and_keeps_checkpoints() {
    let (addr, fake) = fake_monite::start().await;
    let entities = fake.add_entities(3);
    let mut ids = Vec::new();
    for (i, entity) in entities.iter().enumerate() {
        for j in 0..3 {
            ids.push(fake.commit_event(entity, Some(&ago(600 - (i * 10 + j) as i64))));
        }
    }
    let receiver = common::receiver(SECRET).await;
    let state = state_file("once");
    let env = env(addr);
    let url = receiver.url();
    let args = [
        "reconcile",
        "--to",
        &url,
        "--state",
        &state,
        "--once",
        "--max-rate",
        "20",
    ];
    let out = run_env(&[&args[..], &["--json"]].concat(), &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    let cycle = out.json();
    assert_eq!(cycle["swept"], 3);
    assert_eq!(cycle["sent"], 9);
    let mut seen: Vec<String> = receiver.seen().iter().map(|s| s.id.clone()).collect();
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids, "each event once");

    // Again: the window overlaps the last one; the receiver's store sees repeats.
    let out = run_env(&args, &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(receiver.seen().len(), 9);

    let out = run_env(&["reconcile", "status", "--state", &state, "--json"], &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let standings = out.json();
    assert_eq!(standings.as_array().unwrap().len(), 3);
    for standing in standings.as_array().unwrap() {
        let lag = standing["lag_seconds"].as_i64().unwrap();
        assert!(
            lag >= 30,
            "a checkpoint ahead of Monite's time less 30 s: {standing}"
        );
        assert!(standing["last_error"].is_null());
    }

    // A target that refuses: exit 1, the entity's error in the status.
    let refusing = common::receiver(SECRET).await;
    *refusing.fail_first.lock().unwrap() = 1_000;
    let other = state_file("refused");
    let url = refusing.url();
    let out = run_env(
        &[
            "reconcile",
            "--to",
            &url,
            "--state",
            &other,
            "--entity",
            &entities[0],
            "--max-rate",
            "20",
        ],
        &env,
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    let out = run_env(&["reconcile", "status", "--state", &other], &[]).await;
    assert_eq!(out.stdout, "", "no checkpoint was saved: {out:?}");
}

/// SIGKILL between pages, then a rerun: every event reaches the target once (its store
/// takes the repeats), and no checkpoint was saved for the unfinished window.
#[tokio::test(flavor = "multi_thread")]
async fn a_reconcile_killed_between_pages_loses_nothing_on_rerun() {
    let (addr, fake) = fake_monite::start().await;
    let entity = fake.add_entities(1).remove(0);
    let mut ids: Vec<String> = (0..500)
        .map(|i| fake.commit_event(&entity, Some(&ago(3_000 - i))))
        .collect();
    let receiver = common::receiver(SECRET).await;
    let state = state_file("killed");
    let url = receiver.url();
    let mut command = common::command();
    command.args([
        "reconcile",
        "--to",
        &url,
        "--state",
        &state,
        "--once",
        "--max-rate",
        "2",
    ]);
    for (name, value) in env(addr) {
        command.env(name, value);
    }
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = command.spawn().unwrap();
    // At 2 requests a second, pages of 100 arrive half a second apart: kill after the
    // first page was handled and before the last.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while receiver.seen().len() < 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first page never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let sent_before = receiver.seen().len();
    assert!(
        sent_before < 500,
        "killed too late to test anything: {sent_before}"
    );
    let checkpoints = std::fs::read_to_string(&state).unwrap_or_default();
    assert!(
        !checkpoints.contains(&entity),
        "a checkpoint ahead of what was sent"
    );

    let env = env(addr);
    let out = run_env(
        &[
            "reconcile",
            "--to",
            &url,
            "--state",
            &state,
            "--once",
            "--max-rate",
            "20",
            "--json",
        ],
        &env,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let mut counts: HashMap<String, usize> = HashMap::new();
    for seen in receiver.seen() {
        *counts.entry(seen.id).or_default() += 1;
    }
    ids.sort();
    let mut got: Vec<String> = counts.keys().cloned().collect();
    got.sort();
    assert_eq!(got, ids, "an event was missed");
    assert!(
        counts.values().all(|n| *n == 1),
        "an event was handled twice"
    );
    assert!(std::fs::read_to_string(&state).unwrap().contains(&entity));
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_prints_disabled_subscriptions_and_reenables_them() {
    let (addr, fake) = fake_monite::start().await;
    let id = fake.seed("payable", "https://example.com/hook", "disabled");
    fake.seed("receivable", "https://example.com/hook", "enabled");
    let env = env(addr);
    let out = run_env(&["watch", "--once"], &env).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, format!("{id} payable disabled\n"));
    let out = run_env(&["watch", "--once", "--reenable", "--json"], &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json()[0]["reenabled"], true);
    assert_eq!(fake.subscriptions()[0]["status"], "enabled");
    let out = run_env(&["watch"], &env).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_sends_nothing_and_saves_no_checkpoint() {
    let (addr, fake) = fake_monite::start().await;
    let entity = fake.add_entities(1).remove(0);
    let id = fake.commit_event(&entity, Some(&ago(120)));
    let receiver = common::receiver(SECRET).await;
    let state = state_file("dry");
    let url = receiver.url();
    let env = env(addr);
    let out = run_env(
        &[
            "reconcile",
            "--to",
            &url,
            "--state",
            &state,
            "--dry-run",
            "--since",
            "1h",
        ],
        &env,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("would send payable.created {id}")),
        "{out:?}"
    );
    assert_eq!(
        *receiver.requests.lock().unwrap(),
        0,
        "a dry run sent something"
    );
    assert!(
        std::fs::read_to_string(&state)
            .unwrap_or_default()
            .is_empty()
    );
    // `--since` before the event's time leaves it out.
    let out = run_env(
        &[
            "reconcile",
            "--to",
            &url,
            "--state",
            &state,
            "--dry-run",
            "--since",
            "1m",
            "--json",
        ],
        &env,
    )
    .await;
    assert_eq!(out.json()["sent"], 0, "{out:?}");
}
