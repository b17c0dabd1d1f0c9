//! `inbox`, run as the binary against a real PostgreSQL whose inbox the library filled:
//! status, list by state, show, retry one, replay by filter with the count first, purge
//! the dead.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

mod common;

use std::time::Duration;

use common::run;
use monite_webhooks::inbox::{
    ClaimRequest, InboxStore as _, PostgresInbox, RetrySchedule, Workers,
};
use monite_webhooks::{Dispatcher, Event, ObjectType, PostgresStore, Receiver, Secret, Verifier};
use monite_webhooks_testkit::pg;

fn envelope(n: usize, object_type: &str) -> String {
    format!(
        r#"{{"id":"evt-{n}","action":"{object_type}.created","object":{{"id":"o"}},"object_type":"{object_type}","entity_id":"e"}}"#
    )
}

/// Three payables handled and one counterpart dead (its handler always fails, one attempt).
async fn filled(url: &str) -> PostgresInbox {
    let store = PostgresStore::connect(url, "cli").await.unwrap();
    let inbox = PostgresInbox::new(&store);
    inbox.ensure_schema().await.unwrap();
    let accept = Receiver::inbox_builder(
        Verifier::new(Secret::new("whsec_cli_inbox").unwrap()),
        inbox.clone(),
    )
    .build();
    for (n, object_type) in [
        (1, "payable"),
        (2, "payable"),
        (3, "payable"),
        (4, "counterpart"),
    ] {
        let event = Event::parse(envelope(n, object_type)).unwrap();
        accept.receive_event(event).await.unwrap();
    }
    let dispatcher = Dispatcher::builder()
        .on_object(ObjectType::Payable, |_: Event| async {})
        .on_object(ObjectType::Counterpart, |_: Event| async {
            Err::<(), _>(std::io::Error::other("counterparts are broken"))
        })
        .build();
    let workers = Workers::builder(inbox.clone(), dispatcher)
        .poll_interval(Duration::from_millis(20))
        .retry(RetrySchedule::new([], 1))
        .start()
        .unwrap();
    for _ in 0..300 {
        let status = inbox.status().await.unwrap();
        if status.done == Some(3) && status.dead == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    workers.shutdown().await;
    inbox
}

#[tokio::test(flavor = "multi_thread")]
async fn inbox_status_list_show_retry_replay_and_purge() {
    let server = pg::PgServer::start();
    let url = server.url();
    let inbox = filled(&url).await;
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("MONITE_WEBHOOK_NAMESPACE", "cli"),
    ];

    let status = run(&["--json", "inbox", "status"], &env).await;
    assert_eq!(status.code, 0, "{status:?}");
    assert_eq!(status.json()["done"], 3);
    assert_eq!(status.json()["dead"], 1);
    assert_eq!(status.json()["pending"], 0);
    assert_eq!(status.json()["pending_with_retries"], 0);

    let dead = run(&["--json", "inbox", "list", "--state", "dead"], &env).await;
    let dead = dead.json();
    assert_eq!(dead.as_array().unwrap().len(), 1);
    assert_eq!(dead[0]["event_id"], "evt-4");
    assert!(dead[0]["last_error"].as_str().unwrap().contains("broken"));
    let id = dead[0]["id"].as_i64().unwrap().to_string();

    let shown = run(&["--json", "inbox", "show", &id], &env).await;
    assert!(shown.json()["body"].as_str().unwrap().contains("evt-4"));
    assert_eq!(run(&["inbox", "show", "999999"], &env).await.code, 1);

    let retried = run(&["--json", "inbox", "retry", &id], &env).await;
    assert_eq!(retried.json()["retried"], true);
    assert_eq!(
        inbox.status().await.unwrap().pending,
        1,
        "pending, its attempts fresh"
    );

    let dry = run(
        &[
            "--json",
            "inbox",
            "replay",
            "--object-type",
            "payable",
            "--state",
            "done",
            "--dry-run",
        ],
        &env,
    )
    .await;
    assert_eq!(dry.json()["matching"], 3);
    assert_eq!(
        inbox.status().await.unwrap().done,
        Some(3),
        "a dry run changes nothing"
    );
    let replayed = run(
        &[
            "--json",
            "inbox",
            "requeue",
            "--event",
            "payable.created",
            "--since",
            "1h",
            "--state",
            "done",
        ],
        &env,
    )
    .await;
    assert_eq!(replayed.json()["replayed"], 3);
    assert_eq!(replayed.json()["requeued"], 3);
    assert!(
        replayed.stderr.contains("requeued 3 of 3"),
        "progress on stderr: {}",
        replayed.stderr
    );
    let status = inbox.status().await.unwrap();
    assert_eq!((status.done, status.pending), (Some(0), 4));

    // Bury the counterpart again, then purge it.
    let workers = Workers::builder(
        inbox.clone(),
        Dispatcher::builder()
            .on_object(ObjectType::Counterpart, |_: Event| async {
                Err::<(), _>(std::io::Error::other("still broken"))
            })
            .on_object(ObjectType::Payable, |_: Event| async {})
            .build(),
    )
    .poll_interval(Duration::from_millis(20))
    .retry(RetrySchedule::new([], 1))
    .start()
    .unwrap();
    for _ in 0..300 {
        if inbox.status().await.unwrap().dead == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    workers.shutdown().await;
    let refused = run(&["inbox", "purge", "--older-than", "0s"], &env).await;
    assert_eq!(refused.code, 2, "--dead is required");
    let purged = run(
        &["--json", "inbox", "purge", "--dead", "--older-than", "0s"],
        &env,
    )
    .await;
    assert_eq!(purged.json()["purged"], 1);
    assert_eq!(inbox.status().await.unwrap().dead, 0);

    // Pause and resume, for every worker of the namespace.
    run(&["inbox", "replay", "--state", "done"], &env).await;
    let paused = run(&["--json", "inbox", "pause"], &env).await;
    assert_eq!(paused.json()["paused"], true, "{paused:?}");
    let claim = ClaimRequest::new("w", 10, Duration::from_secs(60));
    assert!(inbox.claim(&claim).await.unwrap().is_empty(), "paused");
    assert_eq!(run(&["inbox", "resume"], &env).await.code, 0);
    assert_eq!(inbox.claim(&claim).await.unwrap().len(), 3, "resumed");
}

/// `inbox replay` without `--state` takes the dead events only, never the done ones (whose
/// handlers would run again), and prints the matching events by state before it acts.
#[tokio::test(flavor = "multi_thread")]
async fn replay_without_a_state_takes_dead_events_only() {
    let server = pg::PgServer::start();
    let url = server.url();
    let inbox = filled(&url).await;
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("MONITE_WEBHOOK_NAMESPACE", "cli"),
    ];
    let replayed = run(&["--json", "inbox", "replay", "--since", "1h"], &env).await;
    assert_eq!(replayed.code, 0, "{replayed:?}");
    let json = replayed.json();
    assert_eq!(json["replayed"], 1, "{json}");
    assert_eq!(json["state"], "dead");
    assert_eq!(json["by_state"]["done"], 3, "{json}");
    assert_eq!(json["by_state"]["dead"], 1, "{json}");
    assert!(
        replayed.stderr.contains("1 dead, 3 done, 0 pending"),
        "the counts by state come first: {}",
        replayed.stderr
    );
    let status = inbox.status().await.unwrap();
    assert_eq!(
        (status.done, status.pending),
        (Some(3), 1),
        "no done event requeued"
    );

    let refused = run(&["inbox", "replay", "--state", "finished"], &env).await;
    assert_eq!(refused.code, 2, "an unknown state is a usage error");
    let all = run(&["--json", "inbox", "replay", "--state", "all"], &env).await;
    assert_eq!(
        all.json()["replayed"],
        4,
        "`all` is the explicit way to take every state"
    );
}

/// A `DATABASE_URL` the inbox cannot use, in each form a password can take, fails without
/// printing the password on stdout or stderr.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_connection_prints_no_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for url in [
        format!("host=127.0.0.1 port={port} user=app password=hunter2-secret dbname=app"),
        format!("postgres://app:hunter2-secret@127.0.0.1:{port}/app"),
        format!("postgres://127.0.0.1:{port}/app?password=hunter2-secret"),
    ] {
        let failed = run(&["inbox", "status"], &[("DATABASE_URL", url.as_str())]).await;
        assert_ne!(failed.code, 0, "{failed:?}");
        assert!(
            !failed.stdout.contains("hunter2") && !failed.stderr.contains("hunter2"),
            "{url}: {failed:?}"
        );
        assert!(
            failed.stderr.contains("cannot connect to PostgreSQL"),
            "{failed:?}"
        );
    }
}
