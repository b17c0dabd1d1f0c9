//! What exactly-once costs per delivery: one claim and one mark-done, per store.
//!
//! `cargo bench --bench idempotency --features redis,postgres`. Each feature adds its store:
//! the Redis group starts its own `redis-server`, the PostgreSQL group its own cluster
//! (`initdb` in a temporary directory), both on a free loopback port, so the figures
//! include real round trips. Without features, only the memory store is measured.

#![allow(
    clippy::unwrap_used,
    reason = "a bench fails loudly where its setup is wrong"
)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use monite_webhooks::idempotency::ClaimToken;
use monite_webhooks::{IdempotencyStore, MemoryStore};

const LEASE: Duration = Duration::from_secs(300);
const RETENTION: Duration = Duration::from_secs(8 * 24 * 3600);

fn fresh_key() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "sub:f3c64af7-4a2f-4ed2-8160-d66b6a8ac4ba:evt:{:036}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn claim_and_complete(store: &impl IdempotencyStore) {
    let key = fresh_key();
    let token = ClaimToken::new();
    store.claim(&key, &token, LEASE).await.unwrap();
    assert!(store.complete(&key, &token, RETENTION).await.unwrap());
}

#[cfg(feature = "redis")]
fn start_redis() -> (std::process::Child, u16) {
    use std::net::{TcpListener, TcpStream};
    use std::process::{Command, Stdio};

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server must be on PATH for this bench (apt-get install redis-server)");
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, port)
}

fn idempotency(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("idempotency");

    // Bounded like production: the store evicts once it holds this many keys.
    let memory = MemoryStore::with_capacity(100_000);
    group.bench_function("memory/claim_complete", |b| {
        b.iter(|| runtime.block_on(claim_and_complete(&memory)));
    });

    #[cfg(feature = "redis")]
    {
        let (mut redis, port) = start_redis();
        let store = runtime
            .block_on(monite_webhooks::RedisStore::connect(
                &format!("redis://127.0.0.1:{port}/"),
                "bench",
            ))
            .unwrap();
        group.bench_function("redis/claim_complete", |b| {
            b.iter(|| runtime.block_on(claim_and_complete(&store)));
        });
        let _ = redis.kill();
        let _ = redis.wait();
    }

    #[cfg(feature = "postgres")]
    {
        let server = monite_webhooks_testkit::pg::PgServer::start();
        let store = runtime
            .block_on(monite_webhooks::PostgresStore::connect(
                &server.url(),
                "bench",
            ))
            .unwrap();
        runtime.block_on(store.ensure_schema()).unwrap();
        group.bench_function("postgres/claim_complete", |b| {
            b.iter(|| runtime.block_on(claim_and_complete(&store)));
        });
        // The transactional path's own cost: begin, the handled row, commit.
        let handled =
            store.transactional(|_: monite_webhooks::Event, _| Box::pin(async { Ok(()) }));
        group.bench_function("postgres/transactional_handled", |b| {
            b.iter(|| runtime.block_on(handled_once(&handled)));
        });
    }
    group.finish();
}

#[cfg(feature = "postgres")]
async fn handled_once(handler: &impl monite_webhooks::Handler) {
    let body = format!(
        r#"{{"id":"{}","object_type":"payable","action":"payable.created"}}"#,
        fresh_key()
    );
    let event = monite_webhooks::Event::parse(body).unwrap();
    handler.call(event).await.unwrap();
}

criterion_group!(benches, idempotency);
criterion_main!(benches);
