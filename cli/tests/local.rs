//! The commands that need no Monite API: `sign`, `verify`, `send`, `listen` and
//! `simulate-retries`, run as the binary against receivers on loopback.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

mod common;

use std::collections::BTreeSet;

use common::{FORWARD_SECRET, OTHER_SECRET, SECRET, body_file, run};
use monite_webhooks::Secret;
use monite_webhooks::testing::sign;

const BODY: &[u8] = br#"{"id": "0b7e6a9c-1d2e-4f50-9a8b-000000000000", "action": "counterpart.created", "object_type": "counterpart", "object": {"id": "5e1f"}}"#;
const T: u64 = 1_714_557_600;

#[tokio::test(flavor = "multi_thread")]
async fn sign_prints_what_the_library_computes() {
    let file = body_file("sign", BODY);
    let path = file.to_str().unwrap();
    let out = run(
        &[
            "sign",
            "--secret",
            SECRET,
            "--timestamp",
            &T.to_string(),
            path,
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let expected = sign(&Secret::new(SECRET).unwrap(), T, BODY);
    assert_eq!(out.stdout.trim(), expected);

    // The environment, JSON, and the other key convention.
    let out = run(
        &[
            "sign",
            "--json",
            "--convention",
            "whsec-base64",
            "--timestamp",
            "7",
            path,
        ],
        &[("MONITE_WEBHOOK_SECRET", OTHER_SECRET)],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let json = out.json();
    let expected = sign(&Secret::whsec_base64(OTHER_SECRET).unwrap(), 7, BODY);
    assert_eq!(json["signature"], expected.as_str());
    assert_eq!(json["convention"], "whsec_base64");
    assert_eq!(json["secret"], "MONITE_WEBHOOK_SECRET[0]");

    // The body from stdin.
    let mut child = common::command()
        .args([
            "sign",
            "--secret",
            SECRET,
            "--timestamp",
            &T.to_string(),
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), BODY).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        sign(&Secret::new(SECRET).unwrap(), T, BODY)
    );

    let out = run(&["sign", path], &[]).await;
    assert_eq!(out.code, 2);
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(
        out.stderr.starts_with("error: no signing secret"),
        "{out:?}"
    );
    let out = run(&["sign", "--secret", SECRET, "/no/such/file"], &[]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("cannot read /no/such/file"), "{out:?}");
}

/// Secrets can come from a file or stdin (`--secret-file`), so that they appear in no
/// command line (`ps`, shell history).
#[tokio::test(flavor = "multi_thread")]
async fn secrets_come_from_a_file_or_stdin_and_never_the_command_line() {
    let file = body_file("secret-file-body", BODY);
    let path = file.to_str().unwrap();
    // Two secrets, a blank line, and the newline an editor adds.
    let secrets = body_file(
        "secret-file",
        format!("{SECRET}\n\n  {OTHER_SECRET}  \n").as_bytes(),
    );
    let secrets = secrets.to_str().unwrap();
    let out = run(
        &[
            "sign",
            "--secret-file",
            secrets,
            "--timestamp",
            &T.to_string(),
            path,
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout.trim(),
        sign(&Secret::new(SECRET).unwrap(), T, BODY)
    );

    // Both secrets are accepted; the label names the file and line, never the secret.
    let header = sign(&Secret::new(OTHER_SECRET).unwrap(), T, BODY);
    let out = run(
        &[
            "verify",
            "--json",
            "--secret-file",
            secrets,
            "--signature",
            &header,
            "--at",
            &T.to_string(),
            path,
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json()["secret"], format!("{secrets} #2"));

    // From stdin.
    let mut child = common::command()
        .args([
            "sign",
            "--secret-file",
            "-",
            "--timestamp",
            &T.to_string(),
            path,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        format!("{SECRET}\n").as_bytes(),
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        sign(&Secret::new(SECRET).unwrap(), T, BODY)
    );

    // Stdin cannot be both the body and the secrets; an empty or missing file is an error.
    let out = run(&["sign", "--secret-file", "-", "-"], &[]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("both read stdin"), "{out:?}");
    let empty = body_file("secret-file-empty", b"\n \n");
    let out = run(
        &["sign", "--secret-file", empty.to_str().unwrap(), path],
        &[],
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("holds no secret"), "{out:?}");
    let out = run(&["sign", "--secret-file", "/no/such/secrets", path], &[]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("cannot read /no/such/secrets"),
        "{out:?}"
    );
}

/// `listen --forward-secret-file`: the forwarding secret from a file, too.
#[tokio::test(flavor = "multi_thread")]
async fn listen_takes_its_secrets_from_files() {
    let app = common::receiver(FORWARD_SECRET).await;
    let listening = body_file("listen-secret-file", format!("{SECRET}\n").as_bytes());
    let forward = body_file(
        "listen-forward-secret-file",
        format!("{FORWARD_SECRET}\n").as_bytes(),
    );
    let listen = common::Listening::start(&[
        "--secret-file",
        listening.to_str().unwrap(),
        "--forward-to",
        &app.url(),
        "--forward-secret-file",
        forward.to_str().unwrap(),
    ]);
    let out = run(
        &[
            "send",
            "payable.created",
            "--to",
            &listen.url,
            "--secret",
            SECRET,
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let line = listen.next_line();
    assert!(line.contains("forwarded -> 200"), "{line}");
    assert_eq!(app.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_accepts_any_given_secret_and_names_it() {
    let file = body_file("verify-ok", BODY);
    let path = file.to_str().unwrap();
    let value = sign(&Secret::new(SECRET).unwrap(), T, BODY);
    let at = (T + 10).to_string();
    let args = [
        "verify",
        "--secret",
        OTHER_SECRET,
        "--secret",
        SECRET,
        "--signature",
        &value,
        "--at",
        &at,
        path,
    ];
    let out = run(&args, &[]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("signed with --secret #2"), "{out:?}");

    // A whole header line, secrets by subscription from MONITE_WEBHOOK_SECRETS, JSON: the
    // envelope's `webhook_subscription_id` picks the secrets tried, as in a receiver.
    let env = format!("sub-a={OTHER_SECRET},sub-b={SECRET}");
    let verify_named = |subscription: &'static str| {
        let body = format!(
            r#"{{"id": "e1", "action": "payable.paid", "object_type": "payable", "webhook_subscription_id": "{subscription}"}}"#
        );
        let file = body_file(&format!("verify-{subscription}"), body.as_bytes());
        let line = format!(
            "Monite-Signature: {}",
            sign(&Secret::new(SECRET).unwrap(), T, body.as_bytes())
        );
        let (env, at) = (env.clone(), at.clone());
        async move {
            let path = file.to_str().unwrap().to_owned();
            run(
                &["verify", "--json", "--signature", &line, "--at", &at, &path],
                &[("MONITE_WEBHOOK_SECRETS", &env)],
            )
            .await
        }
    };
    let out = verify_named("sub-b").await;
    assert_eq!(out.code, 0, "{out:?}");
    let json = out.json();
    assert_eq!(json["valid"], true);
    assert_eq!(json["secret"], "subscription sub-b");
    assert_eq!(json["diagnosis"]["skew_seconds"], 10);

    let out = verify_named("sub-a").await;
    assert_eq!(out.code, 1, "{out:?}");
    let findings = out.json()["diagnosis"]["findings"].to_string();
    assert!(
        findings.contains("matches subscription sub-b")
            && findings.contains("the body names subscription sub-a"),
        "{findings}"
    );

    // A body naming no subscription, with only per-subscription secrets.
    let out = run(
        &["verify", "--signature", &value, "--at", &at, path],
        &[("MONITE_WEBHOOK_SECRETS", &env)],
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("names no subscription"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_explains_each_kind_of_mismatch() {
    let file = body_file("verify-bad", BODY);
    let path = file.to_str().unwrap();
    let at = T.to_string();
    let verify = |value: String, extra: Vec<String>| {
        let path = path.to_owned();
        let at = at.clone();
        async move {
            let mut args = vec![
                "verify".to_owned(),
                "--json".to_owned(),
                "--signature".to_owned(),
                value,
                "--at".to_owned(),
                at,
            ];
            args.extend(extra);
            args.push(path);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run(&args, &[]).await
        }
    };
    let secret_flags = || vec!["--secret".to_owned(), SECRET.to_owned()];

    // Skew: signed 20 minutes before `--at`.
    let out = verify(
        sign(&Secret::new(SECRET).unwrap(), T - 1200, BODY),
        secret_flags(),
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    let json = out.json();
    assert_eq!(json["valid"], false);
    assert_eq!(json["diagnosis"]["skew_seconds"], 1200);
    assert!(
        json["diagnosis"]["findings"][0]
            .as_str()
            .unwrap()
            .contains("1200 s ago")
    );

    // The other key convention.
    let out = verify(
        sign(&Secret::whsec_base64(OTHER_SECRET).unwrap(), T, BODY),
        vec!["--secret".into(), OTHER_SECRET.into()],
    )
    .await;
    assert_eq!(out.code, 1);
    let json = out.json();
    assert_eq!(
        json["diagnosis"]["matches"][0]["convention"],
        "whsec_base64"
    );
    assert!(
        json["diagnosis"]["findings"][0]
            .as_str()
            .unwrap()
            .contains("--convention whsec-base64")
    );

    // A body re-serialised after it was signed: Monite signed the compact form.
    let value: serde_json::Value = serde_json::from_slice(BODY).unwrap();
    let compact = serde_json::to_vec(&value).unwrap();
    let out = verify(
        sign(&Secret::new(SECRET).unwrap(), T, &compact),
        secret_flags(),
    )
    .await;
    assert_eq!(out.code, 1);
    let finding = out.json()["diagnosis"]["findings"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(finding.contains("re-serialised"), "{finding}");

    // The header's shape.
    let out = verify("t=abc,v1=00".to_owned(), secret_flags()).await;
    assert_eq!(out.code, 1);
    assert!(
        out.json()["diagnosis"]["header_problem"]
            .as_str()
            .unwrap()
            .contains("whole number")
    );

    // An unknown secret: text output, one explanation line per finding.
    let value = sign(&Secret::new("whsec_someone_else").unwrap(), T, BODY);
    let out = run(
        &[
            "verify",
            "--secret",
            SECRET,
            "--signature",
            &value,
            "--at",
            &at,
            path,
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.starts_with("invalid: no `v1` signature matched"),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("  - no signature matches any of 1 secret(s)"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn send_all_documented_events_is_routed_as_each_event() {
    let receiver = common::receiver(SECRET).await;
    let out = run(
        &[
            "send",
            "--all",
            "--json",
            "--to",
            &receiver.url(),
            "--concurrency",
            "8",
        ],
        &[("MONITE_WEBHOOK_SECRET", SECRET)],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let json = out.json();
    assert_eq!(json["sent"], 89);
    assert_eq!(json["acknowledged"], 89);

    let seen = receiver.seen();
    let pairs: BTreeSet<(String, String)> = common::catalog_pairs().into_iter().collect();
    assert_eq!(pairs.len(), 89);
    let routed: BTreeSet<(String, String)> = seen
        .iter()
        .map(|s| {
            s.routed_as
                .clone()
                .unwrap_or_else(|| panic!("{s:?} reached the fallback"))
        })
        .collect();
    assert_eq!(routed, pairs);
    for s in &seen {
        let (object_type, event) = s.routed_as.as_ref().unwrap();
        assert_eq!(s.action, format!("{object_type}.{event}"));
    }
    let ids: BTreeSet<&str> = seen.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), 89, "every event has a fresh id");
}

#[tokio::test(flavor = "multi_thread")]
async fn send_repeat_shows_deduplication_and_failures_exit_1() {
    let receiver = common::receiver(SECRET).await;
    let url = receiver.url();
    let out = run(
        &[
            "send",
            "payable.paid",
            "--to",
            &url,
            "--secret",
            SECRET,
            "--repeat",
            "3",
            "--json",
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let json = out.json();
    let answers: Vec<&str> = json["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["answer"].as_str().unwrap())
        .collect();
    assert_eq!(
        answers,
        ["ok", "ok (already handled)", "ok (already handled)"]
    );
    assert_eq!(receiver.seen().len(), 1, "the handler ran once");
    assert_eq!(*receiver.requests.lock().unwrap(), 3);

    // A receiver with another secret answers 401: exit 1, and the text says so.
    let out = run(
        &[
            "send",
            "entity.onboarding_requirements.updated",
            "--to",
            &url,
            "--secret",
            OTHER_SECRET,
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("-> 401 \"invalid signature\""),
        "{out:?}"
    );

    // Nothing listening.
    let out = run(
        &[
            "send",
            "tag.created",
            "--allow-undocumented",
            "--to",
            "http://127.0.0.1:9/",
            "--secret",
            SECRET,
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("no answer"), "{out:?}");

    // Misuse: one line, exit 2.
    for args in [
        vec![
            "send",
            "counterpart.exploded",
            "--to",
            &url,
            "--secret",
            SECRET,
        ],
        vec![
            "send",
            "counterpart.created",
            "--to",
            "not a url",
            "--secret",
            SECRET,
        ],
    ] {
        let out = run(&args, &[]).await;
        assert_eq!(out.code, 2, "{out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    }
    // A body of one's own, sent as is.
    let own = br#"{"id": "own-1", "action": "tag.created", "object_type": "tag"}"#;
    let file = body_file("send-own", own);
    let out = run(
        &[
            "send",
            "--body-file",
            file.to_str().unwrap(),
            "--to",
            &url,
            "--secret",
            SECRET,
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        receiver
            .seen()
            .iter()
            .any(|s| s.id == "own-1" && s.action == "tag.created")
    );

    let out = run(&["send", "--list"], &[]).await;
    assert_eq!(out.stdout.lines().count(), 89);
}

#[tokio::test(flavor = "multi_thread")]
async fn listen_prints_verified_events_and_explains_rejections() {
    let listen = common::Listening::start(&["--json", "--secret", SECRET]);
    let to = listen.url.clone();

    let out = run(
        &[
            "send",
            "counterpart.created",
            "--to",
            &to,
            "--secret",
            SECRET,
            "--repeat",
            "2",
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let first: serde_json::Value = serde_json::from_str(&listen.next_line()).unwrap();
    assert_eq!(first["verified"], true);
    assert_eq!(first["outcome"], "routed");
    assert_eq!(first["action"], "counterpart.created");
    assert_eq!(first["object_type"], "counterpart");
    assert_eq!(first["secret"], "--secret #1");
    let second: serde_json::Value = serde_json::from_str(&listen.next_line()).unwrap();
    assert_eq!(second["outcome"], "duplicate (already handled)");
    assert_eq!(second["id"], first["id"]);

    let out = run(
        &[
            "send",
            "payable.paid",
            "--to",
            &to,
            "--secret",
            OTHER_SECRET,
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    let rejected: serde_json::Value = serde_json::from_str(&listen.next_line()).unwrap();
    assert_eq!(rejected["verified"], false);
    assert_eq!(rejected["status"], 401);
    assert_eq!(rejected["action"], "payable.paid");
    assert!(
        rejected["explanation"][0]
            .as_str()
            .unwrap()
            .contains("no signature matches"),
        "{rejected}"
    );

    // A body changed on the way: the explanation says it was re-serialised. (A second
    // after the last one: `listen` diagnoses at most once a second.)
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let value: serde_json::Value = serde_json::from_slice(BODY).unwrap();
    let compact = serde_json::to_vec(&value).unwrap();
    let signature = sign(&Secret::new(SECRET).unwrap(), common_now(), &compact);
    let pretty = serde_json::to_vec_pretty(&value).unwrap();
    let status = reqwest_free_post(&to, &pretty, &signature);
    assert_eq!(status, 401);
    let rejected: serde_json::Value = serde_json::from_str(&listen.next_line()).unwrap();
    assert!(
        rejected["explanation"][0]
            .as_str()
            .unwrap()
            .contains("re-serialised"),
        "{rejected}"
    );
}

/// The diagnosis of a rejection costs HMACs over the body for every secret and body form:
/// `listen` runs it at most once a second, and never for a body over the verifier's limit.
#[tokio::test(flavor = "multi_thread")]
async fn listen_diagnoses_at_most_once_a_second_and_never_an_oversized_body() {
    let listen = common::Listening::start(&["--json", "--secret", SECRET]);
    let to = listen.url.clone();

    // Over the verifier's 256 KiB, under axum's 2 MB: refused (413), not diagnosed.
    let mut big = b"{\"id\": \"big\", \"pad\": \"".to_vec();
    big.resize(300 * 1024, b'x');
    big.extend_from_slice(b"\"}");
    let signature = sign(&Secret::new(OTHER_SECRET).unwrap(), common_now(), &big);
    assert_eq!(reqwest_free_post(&to, &big, &signature), 413);
    let rejected: serde_json::Value = serde_json::from_str(&listen.next_line()).unwrap();
    assert_eq!(rejected["status"], 413);
    assert_eq!(rejected["explanation"], serde_json::json!([]), "{rejected}");
    assert_eq!(rejected["diagnosed"], false, "{rejected}");

    // Two bad signatures within a second: the first is explained, the second is not.
    // (The oversized body above used no diagnosis, so the first one here gets it.)
    let signature = sign(&Secret::new(OTHER_SECRET).unwrap(), common_now(), BODY);
    assert_eq!(reqwest_free_post(&to, BODY, &signature), 401);
    assert_eq!(reqwest_free_post(&to, BODY, &signature), 401);
    let first: serde_json::Value = serde_json::from_str(&listen.next_line()).unwrap();
    let second: serde_json::Value = serde_json::from_str(&listen.next_line()).unwrap();
    assert!(
        first["explanation"][0]
            .as_str()
            .unwrap()
            .contains("no signature matches"),
        "{first}"
    );
    assert_eq!(first["diagnosed"], true, "{first}");
    assert_eq!(second["explanation"], serde_json::json!([]), "{second}");
    assert_eq!(second["diagnosed"], false, "{second}");

    // A second later, the next one is explained again.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(reqwest_free_post(&to, BODY, &signature), 401);
    let third: serde_json::Value = serde_json::from_str(&listen.next_line()).unwrap();
    assert_eq!(third["diagnosed"], true, "{third}");

    // In text, a rejection not diagnosed says why.
    let listen = common::Listening::start(&["--secret", SECRET]);
    assert_eq!(reqwest_free_post(&listen.url, &big, &signature), 413);
    let line = listen.next_line();
    assert!(line.contains("413 rejected"), "{line}");
    assert_eq!(reqwest_free_post(&listen.url, BODY, &signature), 401);
    let line = listen.next_line();
    assert!(line.contains("401 rejected"), "{line}");
    assert!(listen.next_line().starts_with("    - no signature matches"));
    assert_eq!(reqwest_free_post(&listen.url, BODY, &signature), 401);
    assert!(listen.next_line().contains("401 rejected"));
    let line = listen.next_line();
    assert!(
        line.contains("not diagnosed") && line.contains("once a second"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn listen_forwards_deliveries_re_signed_for_the_target() {
    let app = common::receiver(FORWARD_SECRET).await;
    let listen = common::Listening::start(&[
        "--secret",
        SECRET,
        "--forward-to",
        &app.url(),
        "--forward-secret",
        FORWARD_SECRET,
    ]);
    let out = run(
        &[
            "send",
            "receivable.created",
            "--allow-undocumented",
            "--to",
            &listen.url,
            "--secret",
            SECRET,
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let line = listen.next_line();
    assert!(
        line.contains("200 receivable.created") && line.contains("forwarded -> 200"),
        "{line}"
    );
    let seen = app.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].action, "receivable.created");

    // The target failing is what the sender sees, so Monite would retry.
    *app.fail_first.lock().unwrap() = 1;
    let out = run(
        &[
            "send",
            "payable.created",
            "--to",
            &listen.url,
            "--secret",
            SECRET,
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("-> 500"), "{out:?}");
    assert!(listen.next_line().contains("500 payable.created"));
}

#[tokio::test(flavor = "multi_thread")]
async fn simulate_retries_follows_the_schedule_until_acknowledged() {
    let receiver = common::receiver(SECRET).await;
    *receiver.fail_first.lock().unwrap() = 3;
    let out = run(
        &[
            "simulate-retries",
            "--to",
            &receiver.url(),
            "--secret",
            SECRET,
            "--speedup",
            "100000",
            "--json",
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let json = out.json();
    assert_eq!(json["delivered"], true);
    let offsets: Vec<u64> = json["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["scheduled_seconds"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [0, 120, 420, 1020]);
    let statuses: Vec<u64> = json["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [500, 500, 500, 200]);
    assert_eq!(receiver.seen().len(), 1);

    // An outage longer than a week: every attempt fails, and the text says what follows.
    let out = run(
        &[
            "simulate-retries",
            "--to",
            "http://127.0.0.1:9/",
            "--secret",
            SECRET,
            "--speedup",
            "10000000",
        ],
        &[],
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.stdout
            .lines()
            .filter(|l| l.starts_with("attempt"))
            .count(),
        28,
        "{out:?}"
    );
    assert!(out.stdout.contains("attempt 28 at +6d"), "{out:?}");
    assert!(
        out.stdout
            .contains("Monite would now disable the subscription"),
        "{out:?}"
    );
}

fn common_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A POST with exactly these bytes and signature, over a plain socket; the status.
fn reqwest_free_post(url: &str, body: &[u8], signature: &str) -> u16 {
    use std::io::{Read as _, Write as _};
    let addr = url.trim_start_matches("http://").split('/').next().unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /webhooks/monite HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Monite-Signature: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The tool installs its TLS provider (*ring*) at start: `send` to an `https` URL opens a TLS
/// handshake, and a peer that does not speak TLS is a failed delivery (exit 1), not a panic
/// for want of a provider (exit 101).
#[tokio::test(flavor = "multi_thread")]
async fn send_over_https_starts_a_tls_handshake() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut record_header = [0_u8; 3];
        socket.read_exact(&mut record_header).await.unwrap();
        socket
            .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            .await
            .unwrap();
        record_header
    });
    let url = format!("https://{addr}/webhooks/monite");
    let out = run(
        &["send", "payable.paid", "--to", &url, "--secret", SECRET],
        &[],
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    // A TLS record of type handshake (22), version 3.x: the ClientHello.
    assert_eq!(peer.await.unwrap()[..2], [0x16, 0x03]);
}
