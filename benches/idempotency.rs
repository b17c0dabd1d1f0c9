//! What exactly-once costs per delivery: one claim and one mark-done, per store.
//!
//! `cargo bench --bench idempotency --features redis`. The Redis group starts its own
//! `redis-server` on a free loopback port, so the figure includes a real round trip.

#![allow(
    clippy::unwrap_used,
    reason = "a bench fails loudly where its setup is wrong"
)]

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use monite_webhooks::{ClaimToken, IdempotencyStore, MemoryStore, RedisStore};

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

fn start_redis() -> (Child, u16) {
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

    let (mut redis, port) = start_redis();
    let store = runtime
        .block_on(RedisStore::connect(&format!("redis://127.0.0.1:{port}/")))
        .unwrap();
    group.bench_function("redis/claim_complete", |b| {
        b.iter(|| runtime.block_on(claim_and_complete(&store)));
    });
    group.finish();
    let _ = redis.kill();
    let _ = redis.wait();
}

criterion_group!(benches, idempotency);
criterion_main!(benches);
