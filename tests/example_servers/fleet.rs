//! Three replicas of the example server, started at the same instant on one store (a
//! PostgreSQL, then a Redis), against the fake Monite with 1,000 entities: all three come
//! up; one leads the reconciler and one the watchdog, and the logs say which; each entity's
//! events are listed once in the cycle, not three times; every missed event is handled
//! once; a disabled subscription is re-enabled once and reported once. Then a leader is
//! SIGKILLed in the middle of a sweep: another replica takes the lease over once it runs
//! out, and finishes the cycle where it stopped, the replicas' requests together within the
//! fleet's budget plus one in any second.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use monite_webhooks::jiff::{SignedDuration, Timestamp};
use support::examples::example;
use support::fake_monite::{self, CLIENT_ID, CLIENT_SECRET, Fake};

/// The number of entities the fake serves.
const ENTITIES: usize = 1_000;
/// The leases' time to live the replicas are given: a killed leader is replaced within it.
const LEASE_SECS: u64 = 3;

/// One replica: its process, and its stdout and stderr lines as they come.
struct Replica {
    child: Child,
    addr: String,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

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

impl Replica {
    fn spawn(store: (&str, String), fake: SocketAddr, env: &[(&str, &str)]) -> Self {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        let mut command = Command::new(example("axum_server"));
        command
            .env("MONITE_WEBHOOK_ADDR", &addr)
            .env("MONITE_WEBHOOK_SECRET", "whsec_example_fleet_test")
            .env("MONITE_CLIENT_ID", CLIENT_ID)
            .env("MONITE_CLIENT_SECRET", CLIENT_SECRET)
            .env("MONITE_ENVIRONMENT", format!("http://{fake}/v1"))
            .env("MONITE_FLEET_LEASE", format!("{LEASE_SECS}s"))
            .env("RUST_LOG", "info")
            .env("RUST_LOG_FORMAT", "text")
            .env_remove("MONITE_WEBHOOK_INBOX")
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env(store.0, store.1)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Self {
            child,
            addr,
            stdout,
            stderr,
        }
    }

    fn log(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// How many of the example's own log lines (its reports, not the library's `tracing`
    /// lines, which say the same) contain `what`.
    fn says(&self, what: &str) -> usize {
        self.log()
            .iter()
            .filter(|l| l.contains("axum_server::common") && l.contains(what))
            .count()
    }
}

/// Three replicas spawned at the same instant; each listens, none exits.
fn start_three(store: &(&str, String), fake: SocketAddr, env: &[(&str, &str)]) -> Vec<Replica> {
    let replicas: Vec<Replica> = (0..3)
        .map(|_| Replica::spawn((store.0, store.1.clone()), fake, env))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut replicas = replicas;
    for replica in &mut replicas {
        while TcpStream::connect(&replica.addr).is_err() {
            if let Some(status) = replica.child.try_wait().unwrap() {
                panic!(
                    "a replica started with the others died: {status}; {:#?}",
                    replica.log()
                );
            }
            assert!(Instant::now() < deadline, "a replica did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    replicas
}

/// Waits for `done`, up to `within`.
async fn wait_for(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many times each entity's events were listed.
fn listings(fake: &Fake) -> HashMap<String, usize> {
    let mut listed = HashMap::new();
    for entity in fake.events_listings() {
        *listed.entry(entity).or_default() += 1;
    }
    listed
}

/// The fake with its entities, a missed event in each of 20 of them, and a disabled
/// subscription; returns the missed events' ids.
async fn fake_with_work() -> (SocketAddr, Arc<Fake>, Vec<String>, String) {
    let (addr, fake) = fake_monite::start().await;
    // The rate is not the point here: the fleet's own budget keeps to MONITE_MAX_RATE.
    fake.emulator().set_rate_limit(None);
    let entities = fake.add_entities(ENTITIES);
    let at = (Timestamp::now() - SignedDuration::from_secs(600)).to_string();
    let missed = entities
        .iter()
        .step_by(ENTITIES / 20)
        .map(|entity| fake.commit_event(entity, Some(&at)))
        .collect();
    let subscription = fake.seed("payable", "https://example.com/hook", "disabled");
    (addr, fake, missed, subscription)
}

async fn one_cycle_one_leader(store: (&str, String)) -> (Vec<Replica>, Vec<String>) {
    let (addr, fake, missed, subscription) = fake_with_work().await;
    let replicas = start_three(
        &store,
        addr,
        &[
            ("MONITE_RECONCILE_EVERY", "1h"),
            ("MONITE_WATCH_EVERY", "1s"),
            ("MONITE_MAX_RATE", "500"),
            // No takeover is wanted here: a lease a stalled machine cannot lose.
            ("MONITE_FLEET_LEASE", "15s"),
        ],
    );
    wait_for(Duration::from_secs(120), "every entity swept", || {
        listings(&fake).len() == ENTITIES
    })
    .await;
    wait_for(
        Duration::from_secs(30),
        "the subscription re-enabled",
        || fake.subscriptions()[0]["status"] == "enabled",
    )
    .await;
    // Two more checks of the watchdog, and time for a second sweep if any were to start.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let listed = listings(&fake);
    assert!(
        listed.values().all(|n| *n == 1),
        "an entity listed more than once: {:?}",
        listed.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    let enables = fake
        .request_log()
        .iter()
        .filter(|r| r.ends_with(&format!("{subscription}/enable")))
        .count();
    assert_eq!(enables, 1, "re-enabled once");
    let count = |what: &str| replicas.iter().map(|r| r.says(what)).sum::<usize>();
    assert_eq!(count("re-enabled;"), 1, "reported once");
    assert_eq!(count("leads the reconciler (lease"), 1, "one leader");
    assert_eq!(
        count("leads the subscription watchdog (lease"),
        1,
        "one watchdog"
    );
    (replicas, missed)
}

fn stop(replicas: Vec<Replica>) -> Vec<String> {
    let mut handled = Vec::new();
    for mut replica in replicas {
        replica.child.kill().unwrap();
        replica.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        handled.extend(replica.stdout.lock().unwrap().clone());
    }
    handled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_postgres_sweep_each_entity_once_and_act_once() {
    let server = support::pg::PgServer::start();
    let (replicas, missed) = one_cycle_one_leader(("DATABASE_URL", server.url())).await;
    let pool = sqlx::PgPool::connect(&server.url()).await.unwrap();
    let mut handled: Vec<(String, i64)> = Vec::new();
    for _ in 0..100 {
        handled = sqlx::query_as("SELECT event_id, count(*) FROM handled_events GROUP BY event_id")
            .fetch_all(&pool)
            .await
            .unwrap();
        if handled.len() >= missed.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop(replicas);
    let handled: HashMap<String, i64> = handled.into_iter().collect();
    for id in &missed {
        assert_eq!(handled.get(id), Some(&1), "{id} handled once: {handled:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_redis_sweep_each_entity_once_and_act_once() {
    let server = support::redis::RedisServer::start();
    let (replicas, missed) = one_cycle_one_leader(("REDIS_URL", server.url())).await;
    let lines = stop(replicas);
    let mut handled: HashMap<String, usize> = HashMap::new();
    for line in lines {
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        *handled
            .entry(event["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for id in &missed {
        assert_eq!(handled.get(id), Some(&1), "{id} handled once: {handled:?}");
    }
}

/// The leader is SIGKILLed a third of the way through its sweep: another replica takes the
/// lease over once it runs out and resumes after the last entity done, so the sweep ends
/// with every entity listed once (the one in flight at the kill, at most, twice). In any
/// second, the requests of all the replicas together stay within the budget plus one.
async fn a_killed_leader_is_taken_over(store: (&str, String)) {
    let (addr, fake, _, _) = fake_with_work().await;
    let mut replicas = start_three(
        &store,
        addr,
        &[
            ("MONITE_RECONCILE_EVERY", "1h"),
            ("MONITE_WATCH_EVERY", "1s"),
            ("MONITE_MAX_RATE", "60"),
        ],
    );
    wait_for(Duration::from_secs(120), "a third of the sweep", || {
        listings(&fake).len() >= ENTITIES / 3
    })
    .await;
    let leader = replicas
        .iter()
        .position(|r| r.says("leads the reconciler (lease") > 0)
        .expect("a replica leads");
    let mut killed = replicas.remove(leader);
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    let at_kill = listings(&fake).len();
    let killed_at = Instant::now();
    assert!(at_kill < ENTITIES, "the sweep ended before the kill");
    wait_for(Duration::from_secs(120), "the rest of the sweep", || {
        listings(&fake).len() == ENTITIES
    })
    .await;
    // Taken over within a lease: it runs out, and the next attempt (a third of it) takes it.
    let took_over = replicas
        .iter()
        .filter(|r| {
            r.log().iter().any(|l| {
                l.contains("leads the reconciler (lease") && l.contains("taking over from")
            })
        })
        .count();
    assert_eq!(
        took_over,
        1,
        "{:#?}",
        replicas.iter().map(Replica::log).collect::<Vec<_>>()
    );
    let listed = listings(&fake);
    let twice: Vec<_> = listed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.len() <= 1,
        "listed again after the takeover: {twice:?}"
    );
    assert!(
        killed_at.elapsed() < Duration::from_secs(120),
        "the sweep did not resume"
    );
    // The three together, the sweeps and the watchdog's checks, within the fleet's budget.
    let busiest = fake.max_requests_in_a_second();
    assert!(
        busiest <= 61,
        "{busiest} requests in one second, for a budget of 60"
    );
    stop(replicas);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_taken_over_on_postgres() {
    let server = support::pg::PgServer::start();
    a_killed_leader_is_taken_over(("DATABASE_URL", server.url())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_taken_over_on_redis() {
    let server = support::redis::RedisServer::start();
    a_killed_leader_is_taken_over(("REDIS_URL", server.url())).await;
}

/// The sweep of 1,000 entities by `FLEET_REPLICAS` replicas (default 3) on
/// `FLEET_STORE` (`postgres`, the default, or `redis`) at `MONITE_MAX_RATE` (default 6)
/// requests per second: ignored by default, run by `scripts/fleet-sweep.sh`. It measures
/// real time, from the replicas' start to the last entity's listing, and prints the
/// figures; it asserts only that each entity was listed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a load script: minutes of real time"]
#[allow(clippy::print_stdout, reason = "a load script prints its figures")]
async fn fleet_sweep_time() {
    let replicas: usize = std::env::var("FLEET_REPLICAS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    let rate = std::env::var("MONITE_MAX_RATE").unwrap_or_else(|_| "6".to_owned());
    let redis = std::env::var("FLEET_STORE").is_ok_and(|s| s == "redis");
    let (_pg, _redis, store) = if redis {
        let server = support::redis::RedisServer::start();
        let url = server.url();
        (None, Some(server), ("REDIS_URL", url))
    } else {
        let server = support::pg::PgServer::start();
        let url = server.url();
        (Some(server), None, ("DATABASE_URL", url))
    };
    let (addr, fake) = fake_monite::start().await;
    let entities = fake.add_entities(ENTITIES);
    let at = (Timestamp::now() - SignedDuration::from_secs(3_600)).to_string();
    for entity in entities.iter().step_by(10) {
        fake.commit_event(entity, Some(&at));
    }
    example("axum_server");
    let started = Instant::now();
    let env = [
        ("MONITE_RECONCILE_EVERY", "1h"),
        ("MONITE_MAX_RATE", rate.as_str()),
    ];
    let mut running: Vec<Replica> = (0..replicas)
        .map(|_| Replica::spawn((store.0, store.1.clone()), addr, &env))
        .collect();
    wait_for(Duration::from_secs(3_600), "every entity swept", || {
        listings(&fake).len() == ENTITIES
    })
    .await;
    let took = started.elapsed();
    let listed = listings(&fake);
    let requests = fake.request_log().len();
    let busiest = fake.max_requests_in_a_second();
    for replica in &mut running {
        replica.child.kill().unwrap();
        replica.child.wait().unwrap();
    }
    println!(
        "{replicas} replica(s) on {}, {rate} requests/s: {ENTITIES} entities swept in {:.1} s; \
         {requests} requests to Monite, at most {busiest} in any second; \
         each entity's events listed {} time(s)",
        store.0,
        took.as_secs_f64(),
        listed.values().max().unwrap()
    );
    assert!(listed.values().all(|n| *n == 1));
}
