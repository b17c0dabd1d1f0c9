//! What `Client::fetch` costs beyond the HTTP round trip, and how many requests a burst of
//! events sends.
//!
//! `cargo bench --bench fetch --features emulator`. Both sides read one payable from the
//! fake Monite on loopback (its rate limit off, the client's budget out of the way): the
//! library's fetch (path table, coalescing, the budget, token, retries policy, JSON
//! parse, `updated_at` against the event's `created_at`), and a bare reqwest `GET` with the
//! same headers whose body is parsed as JSON too. Then a burst: 1,000 events about 100
//! objects, all in flight at once, and the requests the fake saw; printed, not timed.

#![allow(
    clippy::unwrap_used,
    clippy::print_stderr,
    reason = "a bench fails loudly where its setup is wrong, and prints its figures"
)]

use std::future::IntoFuture as _;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use monite_webhooks::Event;
use monite_webhooks::client::{Client, Environment};
#[path = "../tests/support/fake_monite.rs"]
mod fake_monite;

use fake_monite::{CLIENT_ID, CLIENT_SECRET, ENTITY_ID, Fake};
use serde_json::json;

fn event(id: &str) -> Event {
    Event::parse(
        json!({"id": format!("ev-{id}"), "action": "payable.paid", "object_type": "payable",
            "object": {"id": id}, "entity_id": ENTITY_ID, "api_version": "2024-05-25",
            "created_at": "2024-03-04T20:06:48+00:00"})
        .to_string(),
    )
    .unwrap()
}

fn setup(rt: &tokio::runtime::Runtime) -> (std::net::SocketAddr, Arc<Fake>, Client) {
    rt.block_on(async {
        let (addr, fake) =
            fake_monite::start_with(|f| *f.rate_limit.get_mut().unwrap() = None).await;
        for i in 0..100 {
            fake.put_object(
                &format!("/payables/p{i}"),
                Some(ENTITY_ID),
                json!({"id": format!("p{i}"), "status": "paid", "amount": 1200,
                    "updated_at": "2024-03-05T00:00:00Z"}),
            );
        }
        let client = Client::builder(Environment::Custom(format!("http://{addr}/v1")))
            .credentials(CLIENT_ID, CLIENT_SECRET)
            .max_rate(1e9)
            .build()
            .unwrap();
        (addr, fake, client)
    })
}

fn fetch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (addr, fake, client) = setup(&rt);
    let paid = event("p1");
    // The token, once, outside the measurement.
    rt.block_on(client.fetch(&paid).into_future()).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bare = reqwest::Client::new();
    let token = rt.block_on(async {
        let body = json!({"grant_type": "client_credentials", "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET});
        let answer = bare
            .post(format!("http://{addr}/v1/auth/token"))
            .header("x-monite-version", "2024-05-25")
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        answer["access_token"].as_str().unwrap().to_owned()
    });
    let url = format!("http://{addr}/v1/payables/p1");
    let mut group = c.benchmark_group("fetch_one_payable");
    group.bench_function("bare_reqwest_get", |b| {
        b.iter(|| {
            rt.block_on(async {
                let body = bare
                    .get(&url)
                    .header("x-monite-version", "2024-05-25")
                    .header("x-monite-entity-id", ENTITY_ID)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                serde_json::from_slice::<serde_json::Value>(&body).unwrap()
            })
        });
    });
    group.bench_function("client_fetch", |b| {
        b.iter(|| rt.block_on(async { client.fetch(&paid).await.unwrap() }));
    });
    group.finish();

    // The same two, interleaved in rounds so that the other load of a shared machine falls
    // on both alike: the median of the rounds' per-request times.
    let mut bare_rounds = Vec::new();
    let mut fetch_rounds = Vec::new();
    for _ in 0..41 {
        let started = std::time::Instant::now();
        rt.block_on(async {
            for _ in 0..200 {
                let body = bare
                    .get(&url)
                    .header("x-monite-version", "2024-05-25")
                    .header("x-monite-entity-id", ENTITY_ID)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                serde_json::from_slice::<serde_json::Value>(&body).unwrap();
            }
        });
        bare_rounds.push(started.elapsed() / 200);
        let started = std::time::Instant::now();
        rt.block_on(async {
            for _ in 0..200 {
                client.fetch(&paid).await.unwrap();
            }
        });
        fetch_rounds.push(started.elapsed() / 200);
    }
    bare_rounds.sort();
    fetch_rounds.sort();
    eprintln!(
        "interleaved medians: bare reqwest GET {:?}, Client::fetch {:?}",
        bare_rounds[20], fetch_rounds[20]
    );

    // 1,000 events about 100 objects, all at once: as the fake answers on loopback, and
    // as an API 20 ms away does.
    for delay_ms in [0, 20] {
        fake.set_object_delay(std::time::Duration::from_millis(delay_ms));
        let before = fake.object_reads().len();
        let events: Vec<Event> = (0..1000).map(|i| event(&format!("p{}", i % 100))).collect();
        rt.block_on(async {
            let tasks: Vec<_> = events
                .into_iter()
                .map(|e| {
                    let client = client.clone();
                    tokio::spawn(async move { client.fetch(&e).await.unwrap() })
                })
                .collect();
            for task in tasks {
                assert_eq!(task.await.unwrap().name(), "found");
            }
        });
        eprintln!(
            "burst: 1000 events about 100 objects, in flight together, answers {delay_ms} ms \
             late: {} requests",
            fake.object_reads().len() - before
        );
    }
}

criterion_group!(benches, fetch);
criterion_main!(benches);
