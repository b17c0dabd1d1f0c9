//! The commands that call Monite's API, against the library's fake Monite: `deliveries`,
//! `replay` and `subscriptions`.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

mod common;

use crate::common::fake_monite;
use common::{SECRET, run};

/// The environment that points the binary at the fake.
fn env(addr: std::net::SocketAddr) -> Vec<(&'static str, String)> {
    vec![
        ("MONITE_CLIENT_ID", fake_monite::CLIENT_ID.to_owned()),
        (
            "MONITE_CLIENT_SECRET",
            fake_monite::CLIENT_SECRET.to_owned(),
        ),
        ("MONITE_ENVIRONMENT", format!("http://{addr}/v1")),
        ("MONITE_ENTITY_ID", fake_monite::ENTITY_ID.to_owned()),
        ("MONITE_WEBHOOK_SECRET", SECRET.to_owned()),
    ]
}

async fn run_env(args: &[&str], env: &[(&'static str, String)]) -> common::Run {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run(args, &env).await
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_lists_the_log_as_a_table_and_as_json() {
    let (addr, fake) = fake_monite::start().await;
    let env = env(addr);
    let out = run_env(&["deliveries"], &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("EVENT")
            && lines[0].contains("ATTEMPTS")
            && lines[0].contains("LAST STATUS"),
        "{out:?}"
    );
    assert_eq!(lines.len(), 1 + 4 + 1, "{out:?}");
    assert!(
        lines[2].contains("0b7e6a9c-1d2e-4f50-9a8b-000000000001")
            && lines[2].contains("503")
            && lines[2].contains("failed"),
        "{out:?}"
    );
    assert_eq!(*lines.last().unwrap(), "4 deliveries, 2 failed");

    let out = run_env(&["deliveries", "--failed", "--json"], &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    let rows = out.json();
    let ids: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "0b7e6a9c-1d2e-4f50-9a8b-000000000001",
            "0b7e6a9c-1d2e-4f50-9a8b-000000000003"
        ]
    );
    assert_eq!(rows[0]["attempts"], 9);
    assert_eq!(rows[0]["last_status"], 503);

    // No credentials: one line, exit 2. Wrong ones: Monite's refusal, exit 1.
    let out = run(&["deliveries", "--entity-id", "e"], &[]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.starts_with("error: MONITE_CLIENT_ID is not set"),
        "{out:?}"
    );
    let mut wrong = env.clone();
    wrong[1].1 = "not-the-secret".to_owned();
    let out = run_env(&["deliveries"], &wrong).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(!out.stderr.contains("not-the-secret"), "{out:?}");
    drop(fake);
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_posts_events_in_order_re_signed() {
    let (addr, fake) = fake_monite::start().await;
    let receiver = common::receiver(SECRET).await;
    let env = env(addr);
    let url = receiver.url();
    let out = run_env(
        &["replay", "--since", "2024-01-01", "--to", &url, "--json"],
        &env,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let summary = out.json();
    assert_eq!(summary["events"], 7);
    assert_eq!(summary["acknowledged"], 7);
    assert_eq!(summary["completed"], true);
    let expected: Vec<String> = fake
        .events()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let got: Vec<String> = receiver.seen().iter().map(|s| s.id.clone()).collect();
    assert_eq!(got, expected, "in order, each once");

    // One object type, and a time window.
    let receiver = common::receiver(SECRET).await;
    let out = run_env(
        &[
            "replay",
            "--since",
            "2024-05-02",
            "--until",
            "2024-05-04T23:59:59Z",
            "--object-type",
            "payable",
            "--to",
            &receiver.url(),
        ],
        &env,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let actions: Vec<String> = receiver.seen().iter().map(|s| s.action.clone()).collect();
    assert_eq!(
        actions,
        ["payable.created", "payable.submitted_for_approval"]
    );
    assert!(out.stdout.contains("2 events: 2 replayed"), "{out:?}");

    // Only what the delivery log shows as failed.
    let receiver = common::receiver(SECRET).await;
    let out = run_env(
        &[
            "replay",
            "--since",
            "2024-01-01",
            "--failed-only",
            "--to",
            &receiver.url(),
            "--json",
        ],
        &env,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let ids: Vec<String> = receiver.seen().iter().map(|s| s.id.clone()).collect();
    assert_eq!(
        ids,
        [
            "0b7e6a9c-1d2e-4f50-9a8b-000000000001",
            "0b7e6a9c-1d2e-4f50-9a8b-000000000003"
        ]
    );
    assert_eq!(out.json()["skipped"], 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_replay_resumes_from_the_page_it_printed() {
    let (addr, fake) = fake_monite::start().await;
    let receiver = common::receiver(SECRET).await;
    let env = env(addr);
    let url = receiver.url();
    let ids: Vec<String> = fake
        .events()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    // The fifth event fails once: pages of two, so pages 1 and 2 are done.
    receiver.fail_ids.lock().unwrap().insert(ids[4].clone());
    let out = run_env(
        &[
            "replay",
            "--since",
            "2024-01-01",
            "--page-size",
            "2",
            "--to",
            &url,
            "--json",
        ],
        &env,
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    let summary = out.json();
    assert_eq!(summary["completed"], false);
    assert_eq!(summary["pages"], 2);
    assert_eq!(summary["acknowledged"], 4);
    assert!(
        summary["stopped"].as_str().unwrap().contains("-> 500"),
        "{summary}"
    );
    let token = summary["resume_from"].as_str().unwrap().to_owned();

    let out = run_env(&["replay", "--resume-from", &token, "--to", &url], &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("3 events: 3 replayed") && out.stdout.contains("done"),
        "{out:?}"
    );
    let got: Vec<String> = receiver.seen().iter().map(|s| s.id.clone()).collect();
    assert_eq!(got, ids, "every event once, in order, across the two runs");

    // Text mode says how to resume, on one line.
    let receiver = common::receiver(SECRET).await;
    receiver.fail_ids.lock().unwrap().insert(ids[2].clone());
    let out = run_env(
        &[
            "replay",
            "--since",
            "2024-01-01",
            "--page-size",
            "2",
            "--to",
            &receiver.url(),
        ],
        &env,
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    let last = out.stderr.lines().last().unwrap();
    assert!(
        last.starts_with("error: replay stopped at ")
            && last.contains("resume with --resume-from "),
        "{out:?}"
    );
}

/// The fake's secrets all start so; no output may contain one unless asked.
/// An event the parser refuses cannot be replayed: it is counted and named, the others are
/// replayed, and the replay exits 1 rather than reporting "done".
#[tokio::test(flavor = "multi_thread")]
async fn replay_counts_and_names_unparsable_events_and_exits_1() {
    let poison = "0b7e6a9c-1d2e-4f50-9a8b-000000000003";
    let (addr, _fake) = fake_monite::start_with(|fake| {
        let object = fake.events[3].as_object_mut().unwrap();
        object.remove("action");
        object.remove("object_type");
    })
    .await;
    let env = env(addr);
    let receiver = common::receiver(SECRET).await;
    let url = receiver.url();
    let out = run_env(
        &[
            "replay",
            "--since",
            "2024-01-01",
            "--page-size",
            "2",
            "--to",
            &url,
            "--json",
        ],
        &env,
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    let summary = out.json();
    assert_eq!(summary["acknowledged"], 6, "{summary}");
    assert_eq!(summary["unparsable"], 1, "{summary}");
    assert_eq!(summary["unparsable_events"][0]["id"], poison, "{summary}");
    assert_eq!(receiver.seen().len(), 6);

    let receiver = common::receiver(SECRET).await;
    let url = receiver.url();
    let out = run_env(&["replay", "--since", "2024-01-01", "--to", &url], &env).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("1 unparsable (not replayed)"),
        "{out:?}"
    );
    assert!(!out.stdout.contains("done"), "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("event {poison} could not be parsed")),
        "{out:?}"
    );
}

const FAKE_SECRET_PREFIX: &str = monite_webhooks::testing::emulator::SECRET_PREFIX;

fn keyring_path(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("monite-webhooks-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keyring.json");
    let _ = std::fs::remove_file(&path);
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_keep_secrets_in_the_keyring_file_and_never_print_them() {
    use monite_webhooks::Keyring;

    let (addr, _fake) = fake_monite::start().await;
    let path = keyring_path("subscriptions");
    let mut env = env(addr);
    env.retain(|(name, _)| *name != "MONITE_WEBHOOK_SECRET");
    env.push(("MONITE_WEBHOOK_KEYRING", path.display().to_string()));

    let out = run_env(
        &[
            "subscriptions",
            "create",
            "--object-type",
            "payable",
            "--url",
            "https://example.com/hooks",
            "--json",
        ],
        &env,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        !out.stdout.contains(FAKE_SECRET_PREFIX) && !out.stderr.contains(FAKE_SECRET_PREFIX),
        "{out:?}"
    );
    let id = out.json()["id"].as_str().unwrap().to_owned();
    let keyring = Keyring::load(&path).unwrap();
    let secret = keyring.get(&id).unwrap().current().expose_text().to_owned();
    assert!(secret.starts_with(FAKE_SECRET_PREFIX));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    let out = run_env(&["subscriptions", "list"], &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains(&id) && l.contains("held")),
        "{out:?}"
    );

    // The other commands read the keyring file: sign with it, and listen verifies with it.
    let body = common::body_file("keyring-sign", b"{}");
    let out = run_env(
        &[
            "sign",
            "--subscription-id",
            &id,
            "--timestamp",
            "5",
            body.to_str().unwrap(),
        ],
        &env,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let expected =
        monite_webhooks::testing::sign(&monite_webhooks::Secret::new(&secret).unwrap(), 5, b"{}");
    assert_eq!(out.stdout.trim(), expected);
    let listen = {
        let mut command = common::command();
        command.env("MONITE_WEBHOOK_KEYRING", &path);
        common::Listening::spawn(command, &["--json"])
    };
    let out = run_env(&["send", "payable.paid", "--to", &listen.url], &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    let line: serde_json::Value = serde_json::from_str(&listen.next_line()).unwrap();
    assert_eq!(line["outcome"], "routed");
    assert_eq!(line["webhook_subscription_id"], id.as_str());
    assert_eq!(line["secret"], format!("subscription {id}"));
    assert!(!line.to_string().contains(FAKE_SECRET_PREFIX));

    // Regenerating keeps the old secret as the previous one; --show-secret prints the new.
    let out = run_env(&["subscriptions", "regenerate", &id, "--show-secret"], &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    let keyring = Keyring::load(&path).unwrap();
    let held = keyring.get(&id).unwrap();
    assert_eq!(held.previous().unwrap().expose_text(), secret);
    let new = held.current().expose_text();
    assert_ne!(new, secret);
    assert!(out.stdout.contains(&format!("secret: {new}")), "{out:?}");

    let out = run_env(&["subscriptions", "delete", &id], &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("and its secrets from"), "{out:?}");
    assert!(!Keyring::load(&path).unwrap().contains(&id));
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_ensure_creates_enables_and_recovers_lost_secrets() {
    use monite_webhooks::Keyring;

    let (addr, _fake) = fake_monite::start().await;
    let path = keyring_path("ensure");
    let mut env = env(addr);
    env.push(("MONITE_WEBHOOK_KEYRING", path.display().to_string()));
    let url = "https://example.com/monite";
    let ensure = [
        "subscriptions",
        "ensure",
        "--url",
        url,
        "--object-type",
        "payable",
        "--object-type",
        "counterpart",
        "--json",
    ];

    let out = run_env(&ensure, &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    let json = out.json();
    assert_eq!(actions(&json), ["created", "created"]);
    assert!(!out.stdout.contains(FAKE_SECRET_PREFIX), "{out:?}");
    let payable = json["subscriptions"][0]["id"].as_str().unwrap().to_owned();
    let counterpart = json["subscriptions"][1]["id"].as_str().unwrap().to_owned();
    assert_eq!(Keyring::load(&path).unwrap().len(), 2);

    let out = run_env(&ensure, &env).await;
    assert_eq!(actions(&out.json()), ["kept", "kept"]);

    // One disabled at Monite, one whose secret was lost.
    let out = run_env(&["subscriptions", "disable", &payable], &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    let mut keyring = Keyring::load(&path).unwrap();
    keyring.remove(&counterpart);
    keyring.save(&path).unwrap();
    let mut regenerate = ensure[..ensure.len() - 1].to_vec();
    regenerate.push("--regenerate-missing");
    let out = run_env(&regenerate, &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "regenerating 1 secret(s) the keyring file does not hold ({counterpart})"
        )),
        "{out:?}"
    );
    // The text is the library's report, one line per object type, then a summary.
    assert!(
        out.stdout
            .contains(&format!("payable ({payable}): re-enabled; secret held")),
        "{out:?}"
    );
    assert!(
        out.stdout.contains(&format!(
            "counterpart ({counterpart}): secret regenerated into the keyring"
        )),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("2 object types: 2 changed, 2 ready"),
        "{out:?}"
    );
    assert!(Keyring::load(&path).unwrap().contains(&counterpart));
    let out = run_env(&["subscriptions", "list", "--json"], &env).await;
    assert!(
        out.json()
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "enabled" && s["secret_in_keyring"] == true)
    );
}

/// The `action` of each entry of an `ensure --json` answer.
fn actions(json: &serde_json::Value) -> Vec<String> {
    json["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_ensure_keeps_its_secrets_and_the_next_run_completes() {
    use axum::http::StatusCode;
    use fake_monite::Effect;
    use monite_webhooks::Keyring;

    let (addr, fake) = fake_monite::start().await;
    let path = keyring_path("ensure-interrupted");
    let mut env = env(addr);
    env.push(("MONITE_WEBHOOK_KEYRING", path.display().to_string()));
    let ensure = [
        "subscriptions",
        "ensure",
        "--url",
        "https://example.com/monite",
        "--object-type",
        "payable",
        "--object-type",
        "counterpart",
        "--object-type",
        "receivable",
        "--json",
    ];

    // The second create fails with a 503 Monite did not act on: the run stops there, one
    // line on stderr, and the keyring file holds the first secret.
    fake.inject_on_create(
        2,
        Effect::Refuse {
            status: StatusCode::SERVICE_UNAVAILABLE,
            retry_after: None,
        },
    );
    let out = run_env(&ensure, &env).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(
        out.stderr.contains("counterpart") && out.stderr.contains("run it again"),
        "{out:?}"
    );
    let created = fake.subscriptions();
    assert_eq!(created.len(), 1);
    let payable = created[0]["id"].as_str().unwrap().to_owned();
    let saved = Keyring::load(&path).unwrap();
    assert_eq!(saved.len(), 1);
    assert!(saved.contains(&payable));

    // The next run keeps the first and creates the other two: three subscriptions, each
    // once, every secret in the file; --show-secret prints the two new ones.
    let mut show = ensure.to_vec();
    show.push("--show-secret");
    let out = run_env(&show, &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    let json = out.json();
    assert_eq!(json["complete"], true);
    assert_eq!(actions(&json), ["kept", "created", "created"]);
    assert_eq!(json["subscriptions"][0]["id"], payable.as_str());
    let all = fake.subscriptions();
    assert_eq!(all.len(), 3, "no duplicate");
    let saved = Keyring::load(&path).unwrap();
    let entries = json["subscriptions"].as_array().unwrap();
    assert!(entries[0].get("secret").is_none(), "{json}");
    for entry in &entries[1..] {
        let held = saved.get(entry["id"].as_str().unwrap()).unwrap();
        assert_eq!(entry["secret"], held.current().expose_text());
    }
    assert!(
        all.iter()
            .all(|s| saved.contains(s["id"].as_str().unwrap()))
    );

    // A lost secret with --no-regenerate: reported, not ready (exit 1), the file unchanged.
    let mut keyring = saved;
    keyring.remove(&payable);
    keyring.save(&path).unwrap();
    let mut no_regenerate = ensure.to_vec();
    no_regenerate.push("--no-regenerate");
    let out = run_env(&no_regenerate, &env).await;
    assert_eq!(out.code, 1, "{out:?}");
    let json = out.json();
    assert_eq!(json["complete"], false);
    assert_eq!(actions(&json), ["secret not held", "kept", "kept"]);
    assert_eq!(json["subscriptions"][0]["secret_status"], "not_held");
    assert_eq!(json["subscriptions"][0]["ready"], false);
    assert!(!Keyring::load(&path).unwrap().contains(&payable));
}

#[tokio::test(flavor = "multi_thread")]
async fn ensure_finds_a_lost_create_and_reports_what_it_leaves_alone() {
    use axum::http::StatusCode;
    use fake_monite::Effect;
    use monite_webhooks::Keyring;

    let (addr, fake) = fake_monite::start().await;
    let path = keyring_path("ensure-reports");
    let mut env = env(addr);
    env.push(("MONITE_WEBHOOK_KEYRING", path.display().to_string()));
    let url = "https://example.com/monite";
    // Two counterpart subscriptions made elsewhere (secrets not held), and one for an
    // object type the plan does not name.
    let counterpart = fake.seed("counterpart", url, "enabled");
    let duplicate = fake.seed("counterpart", url, "enabled");
    let receivable = fake.seed("receivable", url, "enabled");
    // The payable create is carried out, but a gateway answers 504.
    fake.inject_on_create(1, Effect::AfterCommit(StatusCode::GATEWAY_TIMEOUT));
    let ensure = [
        "subscriptions",
        "ensure",
        "--url",
        url,
        "--object-type",
        "payable",
        "--object-type",
        "counterpart",
        // In Monite's events tables, but not an object type its API subscribes to.
        "--object-type",
        "payable_line_item",
        "--json",
    ];
    let out = run_env(&ensure, &env).await;
    assert_eq!(out.code, 1, "{out:?}");
    let json = out.json();
    assert_eq!(json["complete"], false);
    let entries = &json["subscriptions"];

    // Not created twice: found by listing again; its secret, lost with the answer, is not
    // held (and not regenerated without --regenerate-missing).
    let payables: Vec<String> = fake
        .subscriptions()
        .iter()
        .filter(|s| s["object_type"] == "payable")
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(payables.len(), 1, "no duplicate");
    assert_eq!(entries[0]["id"], payables[0].as_str());
    assert!(entries[0]["create_answer_lost"].is_string(), "{json}");
    assert_eq!(entries[0]["secret_status"], "not_held");
    assert_eq!(entries[0]["ready"], false);

    // The duplicate is reported and left alone.
    assert_eq!(entries[1]["id"], counterpart.as_str());
    assert_eq!(entries[1]["duplicates"], serde_json::json!([duplicate]));
    assert_eq!(entries[1]["secret_status"], "not_held");
    assert_eq!(fake.regenerations(), 0);

    // The refused object type: no subscription, the run went on past it.
    assert_eq!(entries[2]["action"], "refused");
    assert!(entries[2]["id"].is_null());
    assert!(entries[2]["refused"].is_string(), "{json}");
    assert_eq!(entries[2]["ready"], false);

    assert_eq!(json["unplanned"][0]["id"], receivable.as_str());
    // No secret was obtained, so no keyring file was written.
    assert!(!path.exists());

    // The same in text: nothing changes the second time, and what is left is said.
    let out = run_env(&ensure[..ensure.len() - 1], &env).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("duplicates left alone: {duplicate}")),
        "{out:?}"
    );
    assert!(
        out.stdout.contains(&format!(
            "receivable ({receivable}): not in the plan, left alone"
        )),
        "{out:?}"
    );
    assert!(out.stdout.contains("refused by Monite"), "{out:?}");
    assert!(
        out.stdout.contains("3 object types: 0 changed, 0 ready"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .starts_with("error: not ready: payable, counterpart, payable_line_item"),
        "{out:?}"
    );
    assert!(out.stderr.contains("--regenerate-missing"), "{out:?}");

    // Once the keyring holds one of the URL's secrets, --regenerate-missing replaces the
    // two not held, and says so first.
    let out = run_env(&["subscriptions", "regenerate", &receivable], &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    let mut regenerate = ensure.to_vec();
    regenerate.push("--regenerate-missing");
    let out = run_env(&regenerate, &env).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("regenerating 2 secret(s)"), "{out:?}");
    let entries = &out.json()["subscriptions"];
    assert_eq!(entries[0]["secret_status"], "regenerated");
    assert_eq!(entries[0]["ready"], true);
    assert_eq!(entries[1]["secret_status"], "regenerated");
    assert_eq!(entries[1]["ready"], true);
    let saved = Keyring::load(&path).unwrap();
    assert!(saved.contains(&payables[0]) && saved.contains(&counterpart));
    assert!(!saved.contains(&duplicate));
    assert_eq!(fake.subscriptions().len(), 4);
}

/// `ensure` never invalidates secrets by surprise: only `--regenerate-missing` regenerates,
/// it says how many first, and it refuses when the keyring file looks like the wrong one.
#[tokio::test(flavor = "multi_thread")]
async fn ensure_regenerates_only_when_asked_and_never_with_the_wrong_keyring() {
    use monite_webhooks::{Keyring, Secret};

    let (addr, fake) = fake_monite::start().await;
    let path = keyring_path("ensure-regenerate");
    let mut env = env(addr);
    env.push(("MONITE_WEBHOOK_KEYRING", path.display().to_string()));
    let url = "https://example.com/monite";
    // Production's subscriptions, whose secrets the receivers hold (not this file).
    let payable = fake.seed("payable", url, "enabled");
    let counterpart = fake.seed("counterpart", url, "enabled");
    let ensure = [
        "subscriptions",
        "ensure",
        "--url",
        url,
        "--object-type",
        "payable",
        "--object-type",
        "counterpart",
    ];

    // By default: nothing regenerated, both reported not held, exit 1 with a hint.
    let out = run_env(&ensure, &env).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(fake.regenerations(), 0, "{out:?}");
    assert!(out.stdout.contains("secret NOT held"), "{out:?}");
    assert!(out.stderr.contains("2 secret(s) not held"), "{out:?}");
    assert!(out.stderr.contains("--regenerate-missing"), "{out:?}");
    assert!(!path.exists());

    // Asked to regenerate with no keyring file (the wrong directory): refused, nothing done.
    let mut regenerate = ensure.to_vec();
    regenerate.push("--regenerate-missing");
    let out = run_env(&regenerate, &env).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("refusing to regenerate: 2 secret(s) would be invalidated")
            && out.stderr.contains("does not exist"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains(&payable) && out.stderr.contains(&counterpart),
        "{out:?}"
    );
    assert_eq!(fake.regenerations(), 0);

    // A keyring file that holds secrets, but none of this URL's subscriptions: refused too.
    let other = Keyring::new().with_subscription(
        "0e0e0000-4a2f-4ed2-8160-000000000099",
        Secret::new("whsec_fake_other_endpoint").unwrap(),
    );
    other.save(&path).unwrap();
    let out = run_env(&regenerate, &env).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("holds no secret of the 2 subscription(s)"),
        "{out:?}"
    );
    assert_eq!(fake.regenerations(), 0);

    // The right file, holding the payable secret: the count is printed, then one secret
    // (the counterpart's) is regenerated.
    let mut held = other;
    held.insert(
        payable.clone(),
        Secret::new("whsec_fake_payable_held").unwrap(),
    );
    held.save(&path).unwrap();
    let out = run_env(&regenerate, &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "regenerating 1 secret(s) the keyring file does not hold ({counterpart})"
        )),
        "{out:?}"
    );
    assert_eq!(fake.regenerations(), 1);
    assert!(Keyring::load(&path).unwrap().contains(&counterpart));

    // --no-regenerate is still accepted (and is the default); with --regenerate-missing it
    // is a usage error.
    let mut no_regenerate = ensure.to_vec();
    no_regenerate.push("--no-regenerate");
    let out = run_env(&no_regenerate, &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    no_regenerate.push("--regenerate-missing");
    let out = run_env(&no_regenerate, &env).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(fake.regenerations(), 1);
}

/// A directory for `TMPDIR` of the binary, so a fallback file is found (and not left in
/// the system's).
fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "monite-webhooks-cli-{}-{name}-tmp",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The one fallback keyring file in `dir`, named in `stderr`; checks it is private.
fn rescued(dir: &std::path::Path, stderr: &str) -> monite_webhooks::Keyring {
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".rescued-"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?} {stderr}");
    let file = &files[0];
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let keyring = monite_webhooks::Keyring::load(file).unwrap();
    std::fs::remove_file(file).unwrap();
    keyring
}

/// When the keyring file cannot be saved, a secret Monite returned (once) is not lost: the
/// keyring with it goes to a private fallback file, and the error says where.
#[tokio::test(flavor = "multi_thread")]
async fn a_secret_is_never_lost_when_the_keyring_cannot_be_saved() {
    let (addr, fake) = fake_monite::start().await;
    let tmp = temp_dir("rescue");
    // In a directory that does not exist: neither the file nor a fallback beside it can
    // be written, so the fallback goes to the temporary directory.
    let missing = keyring_path("rescue").parent().unwrap().join("no-such-dir");
    let path = missing.join("keyring.json");
    let mut env = env(addr);
    env.retain(|(name, _)| *name != "MONITE_WEBHOOK_SECRET");
    env.push(("MONITE_WEBHOOK_KEYRING", path.display().to_string()));
    env.push(("TMPDIR", tmp.display().to_string()));

    let out = run_env(
        &[
            "subscriptions",
            "create",
            "--object-type",
            "payable",
            "--url",
            "https://example.com/h",
        ],
        &env,
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        !out.stdout.contains(FAKE_SECRET_PREFIX) && !out.stderr.contains(FAKE_SECRET_PREFIX),
        "{out:?}"
    );
    let keyring = rescued(&tmp, &out.stderr);
    let id = fake.subscriptions()[0]["id"].as_str().unwrap().to_owned();
    assert!(out.stderr.contains(&id), "{out:?}");
    assert!(
        keyring
            .get(&id)
            .unwrap()
            .current()
            .expose_text()
            .starts_with(FAKE_SECRET_PREFIX)
    );

    // Regenerating: the new secret is rescued too, and --show-secret still prints it.
    let out = run_env(
        &[
            "subscriptions",
            "regenerate",
            &id,
            "--show-secret",
            "--json",
        ],
        &env,
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    let json = out.json();
    assert_eq!(json["saved"], false, "{json}");
    let keyring = rescued(&tmp, &out.stderr);
    let secret = keyring.get(&id).unwrap().current().expose_text().to_owned();
    assert_eq!(json["secret"], secret.as_str());
    assert!(
        json["fallback"].as_str().unwrap().contains(".rescued-"),
        "{json}"
    );

    // ensure: the run stops at the first secret it cannot save, which is rescued.
    let out = run_env(
        &[
            "subscriptions",
            "ensure",
            "--url",
            "https://example.com/e",
            "--object-type",
            "tag",
        ],
        &env,
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        !out.stdout.contains(FAKE_SECRET_PREFIX) && !out.stderr.contains(FAKE_SECRET_PREFIX),
        "{out:?}"
    );
    let keyring = rescued(&tmp, &out.stderr);
    let tag = fake
        .subscriptions()
        .iter()
        .find(|s| s["object_type"] == "tag")
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .unwrap();
    assert!(keyring.contains(&tag), "{out:?}");
    assert!(!missing.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_list_enable_disable_delete() {
    let (addr, fake) = fake_monite::start().await;
    let env = env(addr);
    let id = fake.seed("payable", "https://example.com/hooks", "enabled");

    let out = run_env(&["subscriptions", "list"], &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&id)
            && out.stdout.contains("payable")
            && out.stdout.contains("enabled"),
        "{out:?}"
    );
    assert!(
        out.stdout.ends_with("1 subscriptions, 0 disabled\n"),
        "{out:?}"
    );

    let out = run_env(&["subscriptions", "disable", &id, "--json"], &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json()["status"], "disabled");
    let out = run_env(&["subscriptions", "list", "--json"], &env).await;
    assert_eq!(out.json()[0]["status"], "disabled");
    let out = run_env(&["subscriptions", "enable", &id], &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with(&format!("enabled {id}")), "{out:?}");

    let out = run_env(&["subscriptions", "delete", &id], &env).await;
    assert_eq!(out.code, 0, "{out:?}");
    let out = run_env(&["subscriptions", "delete", &id], &env).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(out.stderr.contains("not found"), "{out:?}");
    let out = run_env(&["subscriptions", "list", "--json"], &env).await;
    assert_eq!(out.json(), serde_json::json!([]));
}
