//! Exactly-once effects under crashes: a receiver process with a transactional handler is
//! killed with SIGKILL at random instants while a Monite-like sender retries every event
//! until it is answered `2xx`; at the end every event has exactly one row. Then the same
//! with PostgreSQL itself stopped and restarted mid-run.
//!
//! The receiver process is this test binary run again with `MONITE_PG_CRASH_CHILD` set,
//! which turns the `child_receiver` test into a server.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::IntoResponse as _;
use monite_webhooks::idempotency::{Claim, ClaimToken};
use monite_webhooks::testing::sign;
use monite_webhooks::{
    BoxError, Dispatcher, Event, Idempotency, IdempotencyStore, ObjectType, PostgresStore,
    Receiver, Secret, Verifier,
};
use support::pg::PgServer;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const SECRET: &str = "whsec_IpHYzcMQQR5+wnN4pmHJNRh8B+TVY26b";
const CHILD_ENV: &str = "MONITE_PG_CRASH_CHILD";
/// The front store's lease in the child: a killed delivery's claim blocks retries this long.
const LEASE: Duration = Duration::from_millis(500);

/// A small xorshift generator: random kill instants and delays, no dependency.
struct Random(u64);

impl Random {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Self(u64::from(nanos) ^ (u64::from(std::process::id()) << 32) | 1)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound.max(1)
    }
}

fn random_millis(bound: u64) -> Duration {
    static STATE: Mutex<Option<Random>> = Mutex::new(None);
    let mut state = STATE.lock().unwrap();
    Duration::from_millis(state.get_or_insert_with(Random::new).below(bound))
}

/// The front store with a few milliseconds of network before each call, which widens the
/// windows a kill can land in (after the commit, before the done mark, above all).
#[derive(Clone)]
struct Slow(PostgresStore);

impl IdempotencyStore for Slow {
    async fn claim(
        &self,
        key: &str,
        token: &ClaimToken,
        lease: Duration,
    ) -> Result<Claim, BoxError> {
        tokio::time::sleep(random_millis(3)).await;
        self.0.claim(key, token, lease).await
    }

    async fn complete(
        &self,
        key: &str,
        token: &ClaimToken,
        retention: Duration,
    ) -> Result<bool, BoxError> {
        tokio::time::sleep(random_millis(10)).await;
        self.0.complete(key, token, retention).await
    }

    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), BoxError> {
        self.0.release(key, token).await
    }
}

/// The receiver process: serves `POST /` on `$MONITE_PG_CRASH_CHILD_ADDR` until killed.
#[test]
fn child_receiver() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return; // Run as a test: nothing to do.
    };
    let addr: SocketAddr = std::env::var("MONITE_PG_CRASH_CHILD_ADDR")
        .unwrap()
        .parse()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = PostgresStore::connect(&url, "test").await.unwrap();
        let handler = store.transactional(|event: Event, tx| {
            Box::pin(async move {
                sqlx::query("INSERT INTO payments (event_id, pid) VALUES ($1, $2)")
                    .bind(event.id())
                    .bind(i64::from(std::process::id()))
                    .execute(&mut *tx)
                    .await?;
                // Some work inside the transaction, for kills to land in.
                tokio::time::sleep(random_millis(8)).await;
                Ok(())
            })
        });
        let receiver = Receiver::builder(
            Verifier::new(Secret::new(SECRET).unwrap()),
            Dispatcher::builder()
                .on_object(ObjectType::Payable, handler)
                .build(),
        )
        .idempotency(Idempotency::new(Slow(store)).with_lease(LEASE))
        .build();
        let app = axum::Router::new()
            .route("/", axum::routing::post(receive))
            .with_state(receiver);
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        axum::serve(listener, app).await.unwrap();
    });
}

async fn receive(
    axum::extract::State(receiver): axum::extract::State<Receiver>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
        return http::StatusCode::BAD_REQUEST.into_response();
    };
    let mut response = receiver
        .handle(http::Request::from_parts(parts, body))
        .await;
    // Which process answered, so the test can tell a retry answered by another process.
    response
        .headers_mut()
        .insert("x-receiver-pid", std::process::id().into());
    response.map(axum::body::Body::from)
}

/// The receiver process, restarted after each kill.
struct ChildReceiver {
    child: Option<Child>,
    url: String,
    addr: SocketAddr,
}

impl ChildReceiver {
    fn start(url: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Self {
            child: None,
            url: url.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        child.respawn();
        child
    }

    fn respawn(&mut self) {
        self.kill();
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                &crate::support::process::test_name(module_path!(), "child_receiver"),
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &self.url)
            .env("MONITE_PG_CRASH_CHILD_ADDR", self.addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// SIGKILL: no destructor, no rollback from the process, no goodbye to PostgreSQL.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ChildReceiver {
    fn drop(&mut self) {
        self.kill();
    }
}

fn body(id: &str) -> String {
    format!(
        r#"{{"id":"{id}","object_type":"payable","action":"payable.created","object":{{"id":"p"}},"webhook_subscription_id":"sub-1"}}"#
    )
}

/// One delivery as Monite makes it: a fresh signature, `Connection: close`, the status (or
/// `None` when the connection failed: the receiver was dead or died mid-request).
async fn post(addr: SocketAddr, body: &str) -> Option<u16> {
    post_from(addr, body).await.map(|(status, _)| status)
}

/// As [`post`], with the id of the process that answered.
async fn post_from(addr: SocketAddr, body: &str) -> Option<(u16, i64)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signature = sign(&Secret::new(SECRET).unwrap(), now, body.as_bytes());
    let request = format!(
        "POST / HTTP/1.1\r\nHost: receiver\r\nContent-Type: application/json\r\n\
         Monite-Signature: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let head = String::from_utf8_lossy(&response);
        let status = head.split(' ').nth(1)?.parse().ok()?;
        let pid = head
            .lines()
            .find_map(|line| line.strip_prefix("x-receiver-pid: "))
            .and_then(|pid| pid.trim().parse().ok())
            .unwrap_or(0);
        Some((status, pid))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .ok()
        .flatten()
}

#[derive(Default)]
struct Tally {
    statuses: Mutex<std::collections::BTreeMap<String, usize>>,
    // Event id to the process that acknowledged it.
    acknowledged_by: Mutex<HashMap<String, i64>>,
}

impl Tally {
    fn count(&self, status: Option<u16>) {
        let name = status.map_or_else(|| "no answer".to_owned(), |s| s.to_string());
        *self.statuses.lock().unwrap().entry(name).or_default() += 1;
    }

    fn get(&self, name: &str) -> usize {
        self.statuses
            .lock()
            .unwrap()
            .get(name)
            .copied()
            .unwrap_or(0)
    }
}

/// Sends every event, each again every 20-50 ms until it is answered `2xx`, 16 at a time.
async fn send_until_acknowledged(addr: SocketAddr, ids: &[String], tally: &Arc<Tally>) {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(16));
    let senders: Vec<_> = ids
        .iter()
        .map(|id| {
            let (body, tally, in_flight) = (body(id), tally.clone(), in_flight.clone());
            let id = id.clone();
            tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    let permit = in_flight.acquire().await.unwrap();
                    let answer = post_from(addr, &body).await;
                    drop(permit);
                    tally.count(answer.map(|(status, _)| status));
                    if let Some((200..=299, pid)) = answer {
                        tally.acknowledged_by.lock().unwrap().insert(id, pid);
                        return;
                    }
                    assert!(Instant::now() < deadline, "never acknowledged: {body}");
                    tokio::time::sleep(Duration::from_millis(20) + random_millis(30)).await;
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
}

async fn prepare(server: &PgServer) -> PostgresStore {
    let store = PostgresStore::connect(&server.url(), "test").await.unwrap();
    store.ensure_schema().await.unwrap();
    sqlx::query("CREATE TABLE payments (event_id text NOT NULL, pid bigint NOT NULL)")
        .execute(store.pool())
        .await
        .unwrap();
    store
}

/// How many events were acknowledged by another process than the one whose row committed:
/// the writer died after its commit and before its answer (most often before the front
/// store marked the event done), and a later process answered from the inbox.
async fn acknowledged_by_another_process(store: &PostgresStore, tally: &Tally) -> usize {
    let writers: Vec<(String, i64)> = sqlx::query_as("SELECT event_id, pid FROM payments")
        .fetch_all(store.pool())
        .await
        .unwrap();
    let acknowledged = tally.acknowledged_by.lock().unwrap();
    writers
        .iter()
        .filter(|(id, pid)| acknowledged.get(id).is_some_and(|by| by != pid))
        .count()
}

/// Every event has exactly one row, and no other row exists.
async fn assert_one_row_per_event(store: &PostgresStore, ids: &[String]) {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT event_id, count(*) FROM payments GROUP BY event_id ORDER BY 1")
            .fetch_all(store.pool())
            .await
            .unwrap();
    let wrong: Vec<_> = rows.iter().filter(|(_, count)| *count != 1).collect();
    assert!(wrong.is_empty(), "events with more than one row: {wrong:?}");
    let mut expected = ids.to_vec();
    expected.sort();
    let found: Vec<String> = rows.into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        found, expected,
        "events without a row, or rows for no event"
    );
}

fn fresh_ids(run: &str, count: usize) -> Vec<String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    (0..count)
        .map(|_| format!("{run}-{}", NEXT.fetch_add(1, Ordering::Relaxed)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_instants_leaves_exactly_one_row_per_event() {
    let server = PgServer::start();
    let store = prepare(&server).await;
    let receiver = Arc::new(Mutex::new(ChildReceiver::start(&server.url())));
    let addr = receiver.lock().unwrap().addr;
    let ids = fresh_ids("crash", 300);
    let tally = Arc::new(Tally::default());

    // Kill the receiver every 30-250 ms until every event is acknowledged.
    let done = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicUsize::new(0));
    let killer = {
        let (receiver, done, kills) = (receiver.clone(), done.clone(), kills.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(30) + random_millis(220));
                receiver.lock().unwrap().respawn();
                kills.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    send_until_acknowledged(addr, &ids, &tally).await;
    done.store(true, Ordering::Relaxed);
    killer.join().unwrap();

    let kills = kills.load(Ordering::Relaxed);
    let answered_from_inbox = acknowledged_by_another_process(&store, &tally).await;
    println!(
        "{kills} kills; {answered_from_inbox} events committed by a process killed before it \
         answered; answers: {:?}",
        tally.statuses.lock().unwrap()
    );
    assert!(kills >= 5, "too few kills to test anything: {kills}");
    assert!(
        answered_from_inbox > 0,
        "no kill landed between a commit and its answer"
    );
    assert_one_row_per_event(&store, &ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_run_answers_503_then_loses_and_doubles_nothing() {
    let mut server = PgServer::start();
    let store = prepare(&server).await;
    let receiver = ChildReceiver::start(&server.url());
    let addr = receiver.addr;
    let ids = fresh_ids("restart", 400);
    let tally = Arc::new(Tally::default());

    let sending = {
        let (ids, tally) = (ids.clone(), tally.clone());
        tokio::spawn(async move { send_until_acknowledged(addr, &ids, &tally).await })
    };
    // Stop PostgreSQL once the run is well under way.
    while tally.get("200") < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let acknowledged_before = tally.get("200");
    server.stop();
    // While it is down, deliveries are refused with 503 (not 500, not lost).
    let down = ids.last().unwrap();
    let mut status = post(addr, &body(down)).await;
    for _ in 0..20 {
        if status == Some(503) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = post(addr, &body(down)).await;
    }
    assert_eq!(status, Some(503), "while PostgreSQL is down");
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.start_again();
    sending.await.unwrap();
    drop(receiver);

    println!(
        "{acknowledged_before} acknowledged before the stop; answers: {:?}",
        tally.statuses.lock().unwrap()
    );
    assert!(
        acknowledged_before < ids.len(),
        "the run ended before the stop"
    );
    assert!(tally.get("503") > 0);
    assert_one_row_per_event(&store, &ids).await;
}
