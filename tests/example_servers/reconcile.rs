//! The example servers with `MONITE_CLIENT_ID` and `MONITE_CLIENT_SECRET` set run the
//! reconciler and the watchdog in the background: against the fake Monite, an event no
//! webhook delivered is swept and printed as a handled event, and a disabled subscription
//! is re-enabled. The reconciler needs a store that outlives the process: here
//! `DATABASE_URL` (without it or `REDIS_URL`, only the watchdog runs). On SIGTERM both
//! servers stop the reconciler and the watchdog with the server, and exit 0 promptly.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use monite_webhooks::jiff::{SignedDuration, Timestamp};
use support::examples::example;
use support::fake_monite::{self, CLIENT_ID, CLIENT_SECRET};

/// Starts `command` (an example server) with the background tasks' credentials for the
/// fake Monite at `fake`, and a task reading its first line: the first handled event.
fn start_with_background(
    mut command: Command,
    fake: SocketAddr,
) -> (Child, tokio::task::JoinHandle<Option<String>>) {
    let listen = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = command
        .env("MONITE_WEBHOOK_ADDR", listen.to_string())
        .env("MONITE_WEBHOOK_SECRET", "whsec_example_background_test")
        .env("MONITE_CLIENT_ID", CLIENT_ID)
        .env("MONITE_CLIENT_SECRET", CLIENT_SECRET)
        .env("MONITE_ENVIRONMENT", format!("http://{fake}/v1"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout).lines().next().map(Result::unwrap)
    });
    (child, line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_servers_sweep_a_missed_event_and_reenable_a_subscription() {
    for name in ["axum_server", "actix_server"] {
        let (addr, fake) = fake_monite::start().await;
        let entity = fake.add_entities(1).remove(0);
        let at = (Timestamp::now() - SignedDuration::from_secs(600)).to_string();
        let missed = fake.commit_event(&entity, Some(&at));
        let subscription = fake.seed("payable", "https://example.com/hook", "disabled");
        // A database of its own per server: the fake's ids repeat.
        let server = support::pg::PgServer::start();
        let mut command = Command::new(example(name));
        command
            .env("DATABASE_URL", server.url())
            .env_remove("MONITE_WEBHOOK_INBOX")
            .env_remove("REDIS_URL");
        let (mut child, line) = start_with_background(command, addr);
        let line = tokio::time::timeout(Duration::from_secs(60), line).await;
        let pool = sqlx::PgPool::connect(&server.url()).await.unwrap();
        let checkpoints = || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM monite_webhook_checkpoints WHERE entity_id = $1",
            )
            .bind(&entity)
            .fetch_one(&pool)
            .await
            .unwrap_or(0)
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while (fake.subscriptions()[0]["status"] != "enabled" || checkpoints().await != 1)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let saved = checkpoints().await == 1;
        child.kill().unwrap();
        child.wait().unwrap();
        let line = line
            .expect("no handled event within a minute")
            .unwrap()
            .unwrap();
        let handled: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(handled["id"], missed.as_str(), "{name}: {line}");
        assert_eq!(fake.subscriptions()[0]["id"], subscription.as_str());
        assert_eq!(
            fake.subscriptions()[0]["status"],
            "enabled",
            "{name} did not re-enable"
        );
        assert!(saved, "{name}: no checkpoint saved");
    }
}

/// In inbox mode the reconciler accepts what it sweeps into the inbox, and a worker of the
/// same server handles it (transactionally, `DATABASE_URL` being set), printing its line;
/// the checkpoint goes to PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_inbox_mode_a_swept_event_is_accepted_and_handled_by_a_worker() {
    let server = support::pg::PgServer::start();
    let (addr, fake) = fake_monite::start().await;
    let entity = fake.add_entities(1).remove(0);
    let at = (Timestamp::now() - SignedDuration::from_secs(600)).to_string();
    let missed = fake.commit_event(&entity, Some(&at));
    let mut command = Command::new(example("axum_server"));
    command
        .env("MONITE_WEBHOOK_INBOX", "postgres")
        .env("DATABASE_URL", server.url())
        .env_remove("REDIS_URL");
    let (mut child, line) = start_with_background(command, addr);
    let line = tokio::time::timeout(Duration::from_secs(60), line).await;
    let pool = sqlx::PgPool::connect(&server.url()).await.unwrap();
    let mut saved = 0;
    for _ in 0..200 {
        saved = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM monite_webhook_checkpoints WHERE entity_id = $1",
        )
        .bind(&entity)
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
        if saved == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let line = line
        .expect("no handled event within a minute")
        .unwrap()
        .unwrap();
    let handled: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(handled["id"], missed.as_str(), "{line}");
    let (state, rows): (String, i64) = sqlx::query_as(
        "SELECT e.state, (SELECT count(*) FROM handled_events h WHERE h.event_id = e.event_id) \
         FROM monite_webhook_inbox_events e WHERE e.event_id = $1",
    )
    .bind(&missed)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (state.as_str(), rows),
        ("done", 1),
        "accepted, then handled once"
    );
    assert_eq!(saved, 1, "the checkpoint is in PostgreSQL");
}

/// On SIGTERM a server running the reconciler and the watchdog stops them as it stops
/// serving: it exits promptly with status 0, and says so on stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_servers_stop_the_reconciler_and_the_watchdog_on_sigterm() {
    for name in ["axum_server", "actix_server"] {
        let (addr, fake) = fake_monite::start().await;
        let entity = fake.add_entities(1).remove(0);
        let server = support::pg::PgServer::start();
        let listen = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut child = Command::new(example(name))
            .env("MONITE_WEBHOOK_ADDR", listen.to_string())
            .env("MONITE_WEBHOOK_SECRET", "whsec_example_background_test")
            .env("MONITE_CLIENT_ID", CLIENT_ID)
            .env("MONITE_CLIENT_SECRET", CLIENT_SECRET)
            .env("MONITE_ENVIRONMENT", format!("http://{addr}/v1"))
            .env("DATABASE_URL", server.url())
            .env("RUST_LOG", "info")
            .env("RUST_LOG_FORMAT", "text")
            .env_remove("MONITE_WEBHOOK_INBOX")
            .env_remove("REDIS_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = tokio::task::spawn_blocking(move || {
            BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        // Running: the first cycle saved the entity's checkpoint.
        let pool = sqlx::PgPool::connect(&server.url()).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let saved: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM monite_webhook_checkpoints WHERE entity_id = $1",
            )
            .bind(&entity)
            .fetch_one(&pool)
            .await
            .unwrap_or(0);
            if saved == 1 {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "{name} exited before its first cycle"
            );
            assert!(
                Instant::now() < deadline,
                "{name}: no cycle within a minute"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "{name}: kill -TERM failed");
        let stopped_at = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if stopped_at.elapsed() > Duration::from_secs(30) {
                child.kill().unwrap();
                panic!("{name} still runs 30 s after SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let log = log.await.unwrap();
        assert!(status.success(), "{name}: {status}; {log:#?}");
        assert!(
            stopped_at.elapsed() < Duration::from_secs(10),
            "{name} took {:?} to stop",
            stopped_at.elapsed()
        );
        assert!(
            log.iter()
                .any(|line| line
                    .contains("background stopped: reconciler and subscription watchdog")),
            "{name}: {log:#?}"
        );
    }
}
