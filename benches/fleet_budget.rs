//! The fleet's rate budget: how many requests per second replicas sharing it send together,
//! against the budget, and what one draw from the shared store costs.
//!
//! `cargo bench --bench fleet_budget --features emulator,postgres,redis,metrics`
//! (`SECONDS=20 REPLICAS=3 RATE=6 TASKS=2 DRAWS=2000` by default). Starts its own PostgreSQL
//! cluster and `redis-server` (from the test kit), and the emulator on loopback with
//! Monite's 30 requests/s limit. For each store:
//!
//! - **the fleet's rate**: `REPLICAS` clients, each with a `Fleet` of its own on the store
//!   and `TASKS` tasks listing subscriptions as fast as the budget lets them for `SECONDS`;
//!   printed: the requests per second the fake received (after the first), the most in any
//!   one second, and the `429`s. Then the same replicas without a fleet, for comparison.
//! - **the cost of a draw**: one client, its budget out of the way (`1e6`/s), `DRAWS`
//!   listings one after another; printed: the median and 99th percentile of the round trip
//!   to the store (`monite_webhooks_budget_store_duration_seconds`), and the listing's time
//!   with and without the fleet.
//!
//! Printed, not timed by criterion: the figures are rates over seconds.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a bench fails loudly where its setup is wrong, and prints its figures"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt as _;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use monite_webhooks::client::{Client, Environment};
use monite_webhooks::fleet::Fleet;
use monite_webhooks::{PostgresStore, RedisStore};
#[path = "../tests/support/fake_monite.rs"]
mod fake_monite;

use fake_monite::{CLIENT_ID, CLIENT_SECRET, Fake};
use monite_webhooks_testkit::pg::PgServer;
use monite_webhooks_testkit::redis::RedisServer;

fn setting(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Connects a new replica's fleet.
type Connect = Arc<dyn Fn() -> futures_util::future::BoxFuture<'static, Fleet> + Send + Sync>;

fn client(addr: SocketAddr, rate: f64, fleet: Option<&Fleet>) -> Client {
    let builder = Client::builder(Environment::Custom(format!("http://{addr}/v1")))
        .credentials(CLIENT_ID, CLIENT_SECRET)
        .max_rate(rate)
        .max_retries(10);
    match fleet {
        Some(fleet) => builder.fleet(fleet),
        None => builder,
    }
    .build()
    .unwrap()
}

async fn list(client: &Client) {
    client
        .webhook_subscriptions()
        .list(Default::default())
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
}

/// Replicas listing for `seconds`: requests per second after the first second, the most in
/// one second, and the 429s.
async fn fleet_rate(
    connect: Option<&Connect>,
    replicas: usize,
    rate: f64,
    tasks: usize,
    seconds: f64,
) -> (f64, usize, usize) {
    let (addr, fake) = fake_monite::start().await;
    let mut clients = Vec::new();
    for _ in 0..replicas {
        let fleet = match connect {
            Some(connect) => Some(connect().await),
            None => None,
        };
        clients.push(client(addr, rate, fleet.as_ref()));
    }
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut set = tokio::task::JoinSet::new();
    for client in &clients {
        for _ in 0..tasks {
            let client = client.clone();
            set.spawn(async move {
                while Instant::now() < deadline {
                    list(&client).await;
                }
            });
        }
    }
    // Count from the end of the first second: the tokens and the start are behind.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (from, at) = (requests(&fake), Instant::now());
    set.join_all().await;
    let per_second = (requests(&fake) - from) as f64 / at.elapsed().as_secs_f64();
    (
        per_second,
        fake.max_requests_in_a_second(),
        fake.throttled(),
    )
}

fn requests(fake: &Fake) -> usize {
    fake.requests()
}

/// `draws` listings one after another, with or without the fleet: the time of each.
async fn listing_time(addr: SocketAddr, fleet: Option<&Fleet>, draws: usize) -> Duration {
    let client = client(addr, 1e6, fleet);
    list(&client).await;
    let started = Instant::now();
    for _ in 0..draws {
        list(&client).await;
    }
    started.elapsed() / u32::try_from(draws).unwrap()
}

/// The median and 99th percentile of the store's round trips recorded so far, in µs.
fn store_round_trips(snapshotter: &Snapshotter) -> (f64, f64) {
    let mut samples: Vec<f64> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| {
            let key = key.key();
            key.name() == monite_webhooks::metrics::BUDGET_STORE_DURATION
                && key
                    .labels()
                    .any(|l| l.key() == "op" && l.value() == "reserve")
        })
        .flat_map(|(_, _, _, value)| match value {
            DebugValue::Histogram(values) => values.into_iter().map(|v| v.into_inner()).collect(),
            _ => Vec::new(),
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize] * 1e6;
    (at(0.5), at(0.99))
}

async fn measure(name: &str, connect: Connect, snapshotter: &Snapshotter) {
    let seconds = setting("SECONDS", 20.0);
    let replicas = setting("REPLICAS", 3.0) as usize;
    let rate = setting("RATE", 6.0);
    let tasks = setting("TASKS", 2.0) as usize;
    let draws = setting("DRAWS", 2000.0) as usize;
    let (per_second, most, throttled) =
        fleet_rate(Some(&connect), replicas, rate, tasks, seconds).await;
    println!(
        "{name}: {replicas} replicas sharing {rate}/s: {per_second:.2} requests/s, \
         at most {most} in one second, {throttled} answered 429"
    );
    let (per_second, most, throttled) = fleet_rate(None, replicas, rate, tasks, seconds).await;
    println!(
        "{name}: the same without a fleet: {per_second:.2} requests/s, \
         at most {most} in one second, {throttled} answered 429"
    );
    let (addr, _fake) = fake_monite::start_with(|f| *f.rate_limit.get_mut().unwrap() = None).await;
    let fleet = connect().await;
    let _ = snapshotter.snapshot();
    let with = listing_time(addr, Some(&fleet), draws).await;
    let (median, p99) = store_round_trips(snapshotter);
    let without = listing_time(addr, None, draws).await;
    println!(
        "{name}: one draw's round trip: median {median:.0} µs, p99 {p99:.0} µs; a listing \
         takes {:.0} µs with the fleet, {:.0} µs without",
        with.as_secs_f64() * 1e6,
        without.as_secs_f64() * 1e6
    );
}

fn main() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pg = PgServer::start();
    let redis = RedisServer::start();
    runtime.block_on(async {
        let url = pg.url();
        let connect: Connect = Arc::new(move || {
            let url = url.clone();
            Box::pin(async move {
                let fleet = Fleet::postgres(&PostgresStore::connect(&url, "bench").await.unwrap());
                fleet.ensure_schema().await.unwrap();
                fleet
            })
        });
        measure("postgres", connect, &snapshotter).await;
        let url = redis.url();
        let connect: Connect = Arc::new(move || {
            let url = url.clone();
            Box::pin(
                async move { Fleet::redis(&RedisStore::connect(&url, "bench").await.unwrap()) },
            )
        });
        measure("redis", connect, &snapshotter).await;
    });
}
