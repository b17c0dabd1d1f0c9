//! Sweep time at scale, against the fake Monite at the default budget (6 requests/s):
//! ignored by default, run with
//! `RECONCILE_ENTITIES=1000 cargo test --features client --test reconcile reconcile::scale:: -- --ignored --nocapture`.
//! It measures real time: one full sweep, as `reconcile --once` runs it (every entity, one
//! page each, one event in ten entities) and prints the figures; it asserts only correctness (each event once, no 429).

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a load script: it prints its figures and fails loudly"
)]

use crate::support;

use std::time::Instant;

use monite_webhooks::client::{Client, DEFAULT_MAX_RATE, Environment};
use monite_webhooks::jiff::{SignedDuration, Timestamp};
use monite_webhooks::reconcile::{MemoryCheckpoints, Reconciler};
use support::client::counting_receiver;
use support::fake_monite::{self, CLIENT_ID, CLIENT_SECRET};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a load script: minutes of real time"]
async fn sweep_time_at_scale() {
    let count: usize = std::env::var("RECONCILE_ENTITIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000);
    let (addr, fake) = fake_monite::start().await;
    let entities = fake.add_entities(count);
    let at = (Timestamp::now() - SignedDuration::from_secs(3_600)).to_string();
    for entity in entities.iter().step_by(10) {
        fake.commit_event(entity, Some(&at));
    }
    let client = Client::builder(Environment::Custom(format!("http://{addr}/v1")))
        .credentials(CLIENT_ID, CLIENT_SECRET)
        .build()
        .unwrap();
    let runs = Default::default();
    let reconciler = Reconciler::builder(
        client,
        counting_receiver(&runs, None),
        MemoryCheckpoints::default(),
    )
    .cold_per_cycle(usize::MAX)
    .allow_process_local_store()
    .build()
    .unwrap();
    let started = Instant::now();
    let cycle = reconciler.run_once().await.unwrap();
    let took = started.elapsed();
    let requests = fake.requests();
    println!(
        "{count} entities at {DEFAULT_MAX_RATE} requests/s: swept in {:.1} s ({requests} requests, \
         {:.2} requests/s, most in one second {}, 429s {}), {} events handled",
        took.as_secs_f64(),
        requests as f64 / took.as_secs_f64(),
        fake.max_requests_in_a_second(),
        fake.throttled(),
        cycle.handled,
    );
    assert_eq!(cycle.swept, count);
    assert_eq!(cycle.handled, count.div_ceil(10));
    assert_eq!(fake.throttled(), 0);
}
