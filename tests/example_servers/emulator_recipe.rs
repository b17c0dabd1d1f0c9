//! The recipe of the guide "Test the whole loop", with the example server as the receiver,
//! a real process: the shipped emulator delivers to a port where nothing listens yet, for
//! a simulated week, and disables the subscription; two events of the disabled interval
//! are not recorded. Then the axum example starts with the emulator's credentials and a
//! PostgreSQL: its watchdog re-enables the subscription and reports the lost interval, its
//! reconciler's deep sweep handles each of the three recorded events once, and an event
//! after that is delivered live and handled once (the sweeps that pass over it again find
//! it done). On SIGTERM the server stops cleanly.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use monite_webhooks::client::{Client, Environment, NewSubscription};
use monite_webhooks::jiff::{SignedDuration, Timestamp};
use monite_webhooks::testing::Emulator;
use monite_webhooks::testing::emulator::{DEFAULT_ENTITY_ID, Triggered};
use monite_webhooks::{Keyring, ObjectType};
use support::examples::example;

const CLIENT_ID: &str = "recipe-client-id";
const CLIENT_SECRET: &str = "recipe-client-secret";

/// The lines `from` gives, collected as they come.
fn collect(from: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let into = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            into.lock().unwrap().push(line);
        }
    });
    lines
}

/// The example server on the emulator, with its subscription's secret in a keyring file
/// and a PostgreSQL: the reconciler and the watchdog checking every second.
struct Server {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(monite: &Emulator, listen: &str, keyring: &Path, database: &str) -> Self {
        let mut child = Command::new(example("axum_server"))
            .env("MONITE_WEBHOOK_ADDR", listen)
            .env("MONITE_WEBHOOK_KEYRING", keyring)
            .env("MONITE_ENVIRONMENT", monite.base_url())
            .env("MONITE_CLIENT_ID", monite.client_id())
            .env("MONITE_CLIENT_SECRET", monite.client_secret())
            .env("MONITE_WATCH_EVERY", "1s")
            .env("MONITE_RECONCILE_EVERY", "1s")
            .env("MONITE_MAX_RATE", "20")
            .env("DATABASE_URL", database)
            .env("RUST_LOG", "info")
            .env("RUST_LOG_FORMAT", "text")
            .env_remove("MONITE_WEBHOOK_INBOX")
            .env_remove("MONITE_WEBHOOK_SECRETS")
            .env_remove("MONITE_WEBHOOK_SECRET")
            .env_remove("MONITE_FLEET_LEASE")
            .env_remove("REDIS_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// How many times each event was handled: its printed lines.
    fn handled(&self) -> HashMap<String, usize> {
        let mut handled = HashMap::new();
        for line in self.stdout.lock().unwrap().iter() {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            *handled
                .entry(event["id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        handled
    }

    /// The example's own log lines (its reports; not the library's `tracing` lines).
    fn reports(&self) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("axum_server::common"))
            .cloned()
            .collect()
    }

    fn log(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Fails the test, with the logs, if the server has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the example server exited: {status}; {:#?}", self.log());
        }
    }
}

fn id(triggered: &Triggered) -> String {
    triggered.event().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The entity's checkpoint, if the reconciler saved one.
async fn checkpoint(pool: &sqlx::PgPool) -> Option<Timestamp> {
    let us: Option<i64> = sqlx::query_scalar(
        "SELECT checkpoint_us FROM monite_webhook_checkpoints WHERE entity_id = $1",
    )
    .bind(DEFAULT_ENTITY_ID)
    .fetch_optional(pool)
    .await
    .ok()
    .flatten();
    us.map(|us| Timestamp::from_microsecond(us).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_server_recovers_a_week_down_except_the_disabled_interval_reported_lost() {
    let monite = Emulator::builder()
        .credentials(CLIENT_ID, CLIENT_SECRET)
        .start()
        .await
        .unwrap();
    let client = Client::builder(Environment::Custom(monite.base_url()))
        .credentials(monite.client_id(), monite.client_secret())
        .build()
        .unwrap();
    // Where the server will listen: free now, so every delivery until it starts is refused.
    let listen = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let subscription = client
        .webhook_subscriptions()
        .create(&NewSubscription::new(
            ObjectType::Payable,
            format!("http://{listen}/webhooks/monite"),
        ))
        .await
        .unwrap();
    let subscription_id = subscription.subscription.id.clone();
    // Its secret, which never prints, straight into the keyring file the server reads.
    let keyring = std::env::temp_dir().join(format!(
        "monite-emulator-recipe-{}.json",
        std::process::id()
    ));
    Keyring::new()
        .with_subscription(&subscription_id, subscription.secret.clone())
        .save(&keyring)
        .unwrap();

    // Down: three events recorded, retried for a week, then the subscription disabled.
    let early: Vec<String> = (0..3)
        .map(|_| {
            id(&monite
                .trigger("payable.paid", DEFAULT_ENTITY_ID, None)
                .unwrap())
        })
        .collect();
    monite
        .advance(Duration::from_secs(7 * 24 * 3600 + 60))
        .await;
    let ledger = monite.ledger();
    assert_eq!(ledger.subscriptions.len(), 1);
    assert_eq!(ledger.subscriptions[0].id, subscription_id);
    assert_eq!(ledger.subscriptions[0].status, "disabled");
    for event in &ledger.events {
        assert!(event.recorded && !event.acknowledged, "{event:?}");
        assert!(event.attempts.len() > 9, "retried for a week: {event:?}");
        assert!(event.attempts.iter().all(|a| a.status.is_none()), "refused");
    }
    // Two events while it is disabled: Monite does not record them.
    let disabled_at = monite.now();
    for _ in 0..2 {
        assert!(
            monite
                .trigger("payable.paid", DEFAULT_ENTITY_ID, None)
                .unwrap()
                .event()
                .is_none()
        );
    }
    monite.advance(Duration::from_secs(3600)).await;

    // Back up: the example server, with the reconciler and the watchdog.
    let database = support::pg::PgServer::start();
    let pool = sqlx::PgPool::connect(&database.url()).await.unwrap();
    let mut server = Server::start(&monite, &listen, &keyring, &database.url());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let enabled = monite.ledger().subscriptions[0].status == "enabled";
        let handled = server.handled();
        if enabled && early.iter().all(|id| handled.contains_key(id)) {
            break;
        }
        server.assert_running();
        assert!(
            Instant::now() < deadline,
            "not re-enabled ({enabled}) or not every recorded event handled ({handled:?}) \
             within two minutes; {:#?}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // An event now is delivered live; the reconciler's later sweeps pass over it again.
    let live = monite
        .trigger("payable.paid", DEFAULT_ENTITY_ID, None)
        .unwrap();
    let live_id = id(&live);
    let live_at: Timestamp = live.event().unwrap()["created_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let acknowledged = monite
            .ledger()
            .events
            .iter()
            .any(|e| e.id == live_id && e.acknowledged);
        let swept_past = checkpoint(&pool).await.is_some_and(|at| at >= live_at);
        if acknowledged && swept_past && server.handled().contains_key(&live_id) {
            break;
        }
        server.assert_running();
        assert!(
            Instant::now() < deadline,
            "the live event not delivered ({acknowledged}), handled, or swept past \
             ({swept_past}) within two minutes; {:#?}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Stopped with SIGTERM: it exits 0, the background tasks stopped with it.
    let sent = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -TERM failed");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            server.child.kill().unwrap();
            panic!("still running 30 s after SIGTERM; {:#?}", server.log());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Its pipes close with it: the reading threads have what it wrote once they end.
    let wait = Instant::now() + Duration::from_secs(5);
    while !server.log().iter().any(|l| l.contains("stopped")) && Instant::now() < wait {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = server.log();
    let _ = std::fs::remove_file(&keyring);
    assert!(status.success(), "{status}; {log:#?}");
    assert!(
        log.iter()
            .any(|l| l.contains("background stopped: reconciler and subscription watchdog")),
        "{log:#?}"
    );

    // Every recorded event handled once, the lost ones never.
    let ledger = monite.ledger();
    let recorded: Vec<&str> = ledger
        .events
        .iter()
        .filter(|e| e.recorded)
        .map(|e| e.id.as_str())
        .collect();
    let lost: Vec<&str> = ledger
        .events
        .iter()
        .filter(|e| !e.recorded)
        .map(|e| e.id.as_str())
        .collect();
    let mut expected = early.clone();
    expected.push(live_id.clone());
    assert_eq!(recorded, expected);
    assert_eq!(lost.len(), 2);
    assert_eq!(ledger.subscriptions[0].status, "enabled");
    // The week's events reached the server only through the sweep: no delivery of theirs
    // was ever answered.
    for event in &ledger.events[..3] {
        assert!(!event.acknowledged, "{event:?}");
    }
    let handled = server.handled();
    for id in &recorded {
        assert_eq!(handled.get(*id), Some(&1), "{id}: {handled:?}");
    }
    assert_eq!(handled.len(), 4, "nothing else handled: {handled:?}");
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT event_id, count(*) FROM handled_events GROUP BY event_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let rows: HashMap<String, i64> = rows.into_iter().collect();
    for id in &recorded {
        assert_eq!(rows.get(*id), Some(&1), "{id} written once: {rows:?}");
    }
    assert_eq!(rows.len(), 4, "{rows:?}");
    for id in &lost {
        assert!(!handled.contains_key(*id) && !rows.contains_key(*id));
    }

    // The reports: the re-enabling once, with the lost interval up to when it happened;
    // then the three events recovered by the sweep it asked for.
    let reports = server.reports();
    let reenabled: Vec<(usize, &String)> = reports
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            l.contains(&format!(
                "subscription {subscription_id} (payable) re-enabled;"
            ))
        })
        .collect();
    assert_eq!(reenabled.len(), 1, "{reports:#?}");
    let (at, line) = reenabled[0];
    let interval = line
        .split_once("events from before this process started to ")
        .and_then(|(_, rest)| rest.strip_suffix(" are lost"))
        .unwrap_or_else(|| panic!("no lost interval: {line}"));
    let lost_until: Timestamp = interval.parse().unwrap();
    // After the lost events and the hour of outage that followed them, to the second of
    // Monite's `Date`, which the watchdog's time comes from.
    assert!(
        lost_until >= disabled_at + SignedDuration::from_secs(3600 - 1),
        "the lost interval ends at {lost_until}, before the outage did"
    );
    let recovered: usize = reports[at..]
        .iter()
        .filter_map(|l| {
            let (_, rest) = l.split_once(&format!("entity {DEFAULT_ENTITY_ID}: "))?;
            rest.split_once(" missed event(s) recovered in ")?
                .0
                .parse::<usize>()
                .ok()
        })
        .sum();
    assert_eq!(recovered, 3, "{reports:#?}");
    assert!(
        !reports[..at]
            .iter()
            .any(|l| l.contains("missed event(s) recovered")),
        "recovered before the re-enabling: {reports:#?}"
    );
}
