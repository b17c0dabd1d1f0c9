//! Load figures for the inbox over real HTTP on loopback, on a PostgreSQL of its own
//! (fsync, full-page writes and `synchronous_commit` on): the receiver served by axum
//! through `monite_webhooks::axum::route`, driven by a keep-alive HTTP/1.1 client (hyper),
//! every delivery a new, correctly signed event. Prints; asserts nothing about speed.
//!
//! - acknowledgement latency at a fixed offered rate (1,000 and 2,000 deliveries/s), for
//!   the inbox and for the plain receiver with `PostgresStore` and a no-op handler. Open
//!   loop: delivery `i` is due at `start + i / rate` and its latency counts from then, so a
//!   slow answer delays the ones behind it on its connection and they count it
//!   (coordinated omission is not hidden); only the client's own lateness (its timer
//!   wakes up to a millisecond late) is taken off. The latency from the actual send is
//!   printed beside it;
//! - the saturated rate of both: closed loop, 32 connections, each sending as soon as it
//!   has its answer;
//! - acceptance to handling at 1,000/s offered while 4 workers (batch 32) drain in the
//!   server's process;
//! - events drained with no-op handlers by 2 worker processes of 4 workers each (this
//!   program run again as children), batch 32 and 256, over 50,000 accepted events.
//!
//! ```sh
//! cargo bench --bench inbox_http --features postgres,axum
//! INBOX_HTTP_SECS=20 cargo bench --bench inbox_http --features postgres,axum
//! ```
//!
//! `INBOX_HTTP_SECS` (default 15) is the length of each fixed-rate run; the saturated runs
//! take at most 10 s.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a load script: it fails loudly and prints its figures"
)]

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::serve::ListenerExt as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use monite_webhooks::inbox::{PostgresInbox, Workers};
use monite_webhooks::testing::signed_request;
use monite_webhooks::{Dispatcher, Event, ObjectType, PostgresStore, Receiver, Secret, Verifier};
use monite_webhooks_testkit::pg::PgServer;
use sqlx::PgPool;
use support::{SECRET, envelope, event_number, noop_dispatcher, percentile, wait_done};
use tokio::runtime::Runtime;

/// Set in a child: the database URL; the child runs workers until killed.
const CHILD_ENV: &str = "INBOX_HTTP_CHILD";
/// Connections of a fixed-rate run; delivery `i` goes on connection `i % OPEN_LANES`.
const OPEN_LANES: usize = 16;
/// Connections of a saturated run.
const CLOSED_LANES: usize = 32;
/// Events accepted before the worker processes start: 20,000 drain in about a second
/// since the done marks are batched, too short a window to time.
const DRAIN_EVENTS: usize = 50_000;

/// One delivery as the client saw it.
struct Sample {
    n: usize,
    /// When it was due (the actual send, in a saturated run).
    due: Instant,
    /// How late the client itself sent it: from when it was due or its connection was
    /// free, whichever came last, to the send. Tokio's timer wakes up to a millisecond
    /// late; that is the client's, not the server's, and is taken off.
    late: Duration,
    sent: Instant,
    answered: Instant,
    ok: bool,
}

impl Sample {
    /// From when it was due to its answer, less the client's own lateness: a connection
    /// still waiting on an earlier answer makes this one late, and that counts.
    fn latency(&self) -> Duration {
        self.answered - self.due - self.late
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1e3)
}

/// The 1-minute load average (Linux), to tell a run on a busy machine from a quiet one.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|line| line.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

fn verifier() -> Verifier {
    Verifier::new(Secret::new(SECRET).unwrap())
}

/// Serves `receiver` at `/webhooks/monite` on a fresh loopback port, on `runtime`.
fn serve(runtime: &Runtime, receiver: Receiver) -> SocketAddr {
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/webhooks/monite", monite_webhooks::axum::route(receiver));
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    })
}

/// A keep-alive HTTP/1.1 connection to `addr`.
async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

/// POSTs `body` signed now, reads the whole answer: whether it was `2xx`.
async fn post(sender: &mut SendRequest<Full<Bytes>>, secret: &Secret, body: String) -> bool {
    let mut request = signed_request(secret, body).map(Full::new);
    request.headers_mut().insert(
        http::header::HOST,
        http::HeaderValue::from_static("127.0.0.1"),
    );
    sender.ready().await.unwrap();
    let response = sender.send_request(request).await.unwrap();
    let ok = response.status().is_success();
    response.into_body().collect().await.unwrap();
    ok
}

/// Events `0..rate * secs` of `run`, delivery `n` due at `start + n / rate`, on
/// [`OPEN_LANES`] connections; and the time from the start to the last answer.
async fn open_loop(addr: SocketAddr, run: &str, rate: f64, secs: f64) -> (Vec<Sample>, Duration) {
    let total = (rate * secs) as usize;
    let mut senders = Vec::new();
    for _ in 0..OPEN_LANES {
        senders.push(connect(addr).await);
    }
    let start = Instant::now() + Duration::from_millis(50);
    let lanes: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(lane, mut sender)| {
            let secret = Secret::new(SECRET).unwrap();
            let run = run.to_owned();
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(total / OPEN_LANES + 1);
                let mut free = start;
                for n in (lane..total).step_by(OPEN_LANES) {
                    let body = envelope(&run, n);
                    let due = start + Duration::from_secs_f64(n as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                    let sent = Instant::now();
                    let ok = post(&mut sender, &secret, body).await;
                    let answered = Instant::now();
                    samples.push(Sample {
                        n,
                        due,
                        late: sent - due.max(free),
                        sent,
                        answered,
                        ok,
                    });
                    free = answered;
                }
                samples
            })
        })
        .collect();
    gather(lanes, start).await
}

/// Events of `run` sent back to back on [`CLOSED_LANES`] connections for `secs`.
async fn closed_loop(addr: SocketAddr, run: &str, secs: f64) -> (Vec<Sample>, Duration) {
    let mut senders = Vec::new();
    for _ in 0..CLOSED_LANES {
        senders.push(connect(addr).await);
    }
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let lanes: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(lane, mut sender)| {
            let secret = Secret::new(SECRET).unwrap();
            let run = run.to_owned();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut n = lane;
                while Instant::now() < end {
                    let body = envelope(&run, n);
                    let sent = Instant::now();
                    let ok = post(&mut sender, &secret, body).await;
                    samples.push(Sample {
                        n,
                        due: sent,
                        late: Duration::ZERO,
                        sent,
                        answered: Instant::now(),
                        ok,
                    });
                    n += CLOSED_LANES;
                }
                samples
            })
        })
        .collect();
    gather(lanes, start).await
}

async fn gather(
    lanes: Vec<tokio::task::JoinHandle<Vec<Sample>>>,
    start: Instant,
) -> (Vec<Sample>, Duration) {
    let mut samples = Vec::new();
    for lane in lanes {
        samples.extend(lane.await.unwrap());
    }
    let last = samples.iter().map(|s| s.answered).max().unwrap_or(start);
    (samples, last - start)
}

/// Prints the acknowledgement figures of one run.
fn report(label: &str, samples: &[Sample], elapsed: Duration) {
    let mut from_due: Vec<Duration> = samples.iter().map(Sample::latency).collect();
    let mut from_send: Vec<Duration> = samples.iter().map(|s| s.answered - s.sent).collect();
    let mut late: Vec<Duration> = samples.iter().map(|s| s.late).collect();
    from_due.sort();
    from_send.sort();
    late.sort();
    let ok = samples.iter().filter(|s| s.ok).count();
    println!(
        "{label}: {} deliveries in {:.1} s, {:.0}/s acknowledged, {} not 2xx; load average {}\n    \
         from due: p50 {} p99 {} p99.9 {} max {}\n    \
         from send: p50 {} p99 {} p99.9 {}; the client's own lateness (taken off): p50 {} p99 {}",
        samples.len(),
        elapsed.as_secs_f64(),
        ok as f64 / elapsed.as_secs_f64(),
        samples.len() - ok,
        load_average(),
        ms(percentile(&from_due, 0.5)),
        ms(percentile(&from_due, 0.99)),
        ms(percentile(&from_due, 0.999)),
        ms(*from_due.last().unwrap()),
        ms(percentile(&from_send, 0.5)),
        ms(percentile(&from_send, 0.99)),
        ms(percentile(&from_send, 0.999)),
        ms(percentile(&late, 0.5)),
        ms(percentile(&late, 0.99)),
    );
}

/// The plain receiver (the handler runs, then `PostgresStore` marks the event done).
fn plain_receiver(runtime: &Runtime, url: &str) -> Receiver {
    let store = runtime.block_on(async {
        let store = PostgresStore::connect(url, "plain").await.unwrap();
        store.ensure_schema().await.unwrap();
        store
    });
    Receiver::builder(verifier(), noop_dispatcher())
        .store(store)
        .build()
}

/// The inbox on namespace `namespace`, its tables created.
fn inbox(runtime: &Runtime, url: &str, namespace: &str) -> (PostgresInbox, PgPool) {
    runtime.block_on(async {
        let store = PostgresStore::connect(url, namespace).await.unwrap();
        let inbox = PostgresInbox::new(&store);
        inbox.ensure_schema().await.unwrap();
        (inbox, store.pool().clone())
    })
}

fn inbox_receiver(inbox: &PostgresInbox) -> Receiver {
    Receiver::inbox_builder(verifier(), inbox.clone()).build()
}

/// Acceptance to handling at 1,000/s offered, 4 workers (batch 32) in the server's process.
fn live(server: &Runtime, client: &Runtime, url: &str, secs: f64) {
    const RATE: f64 = 1000.0;
    let (inbox, pool) = inbox(server, url, "live");
    let total = (RATE * secs) as usize;
    // When each event's handler ran, in nanoseconds after `origin` (0: not yet).
    let ran: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let origin = Instant::now();
    let record = Arc::clone(&ran);
    let dispatcher = Dispatcher::builder()
        .on_object(ObjectType::Payable, move |event: Event| {
            let ran = Arc::clone(&record);
            async move {
                let at = u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
                if let Some(slot) = event_number(&event).and_then(|n| ran.get(n)) {
                    slot.store(at, Ordering::Relaxed);
                }
            }
        })
        .build();
    let addr = serve(server, inbox_receiver(&inbox));
    let workers = {
        let _in_server = server.enter();
        Workers::builder(inbox, dispatcher)
            .concurrency(4)
            .batch(32)
            .start()
            .unwrap()
    };
    let (samples, elapsed) = client.block_on(open_loop(addr, "live", RATE, secs));
    report(
        "inbox at 1,000/s offered, 4 workers (batch 32) draining in the server's process",
        &samples,
        elapsed,
    );
    server.block_on(async {
        wait_done(&pool, "live", total as i64).await;
        workers.shutdown().await;
    });
    // Handler run minus the 202's arrival: negative when a worker ran it before the
    // client had read the answer.
    let mut after_ack: Vec<f64> = samples
        .iter()
        .map(|s| {
            let ran = origin + Duration::from_nanos(ran[s.n].load(Ordering::Relaxed));
            match ran.checked_duration_since(s.answered) {
                Some(after) => after.as_secs_f64() * 1e3,
                None => -(s.answered - ran).as_secs_f64() * 1e3,
            }
        })
        .collect();
    after_ack.sort_by(f64::total_cmp);
    let (p50, p99): (f64, f64) = server.block_on(
        sqlx::query_as(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM done_at - received_at)), \
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM done_at - received_at)) \
             FROM monite_webhook_inbox_events WHERE namespace = 'live'",
        )
        .fetch_one(&pool),
    )
    .unwrap();
    println!(
        "    202 answered -> handler ran: p50 {:.1} ms p99 {:.1} ms p99.9 {:.1} ms max {:.1} ms \
         ({} ran before the client read its 202)\n    \
         received_at -> done_at (SQL, commit included): p50 {:.1} ms p99 {:.1} ms",
        percentile(&after_ack, 0.5),
        percentile(&after_ack, 0.99),
        percentile(&after_ack, 0.999),
        after_ack.last().unwrap(),
        after_ack.iter().filter(|ms| **ms < 0.0).count(),
        p50 * 1e3,
        p99 * 1e3,
    );
}

/// A worker process: 4 workers, no-op handlers, on `url`; runs until killed.
fn child(url: &str) {
    let namespace = std::env::var("INBOX_HTTP_NAMESPACE").unwrap();
    let batch: usize = std::env::var("INBOX_HTTP_BATCH").unwrap().parse().unwrap();
    let name = std::env::var("INBOX_HTTP_NAME").unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = PostgresStore::connect(url, &namespace).await.unwrap();
        let _workers = Workers::builder(PostgresInbox::new(&store), noop_dispatcher())
            .concurrency(4)
            .batch(batch)
            .name(name)
            .start()
            .unwrap();
        std::future::pending::<()>().await;
    });
}

fn spawn_child(url: &str, namespace: &str, batch: usize, name: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, url)
        .env("INBOX_HTTP_NAMESPACE", namespace)
        .env("INBOX_HTTP_BATCH", batch.to_string())
        .env("INBOX_HTTP_NAME", name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Events drained by 2 worker processes of 4 workers each, from [`DRAIN_EVENTS`] accepted
/// beforehand (straight into the inbox, no HTTP).
fn drain_by_processes(server: &Runtime, url: &str, batch: usize) {
    let namespace = format!("procs{batch}");
    let (inbox, pool) = inbox(server, url, &namespace);
    server.block_on(async {
        let accept = Receiver::inbox_builder(verifier(), inbox).build();
        let lanes: Vec<_> = (0..16)
            .map(|lane| {
                let accept = accept.clone();
                let namespace = namespace.clone();
                tokio::spawn(async move {
                    for n in (lane..DRAIN_EVENTS).step_by(16) {
                        let event = Event::parse(envelope(&namespace, n)).unwrap();
                        accept.receive_event(event).await.unwrap();
                    }
                })
            })
            .collect();
        for lane in lanes {
            lane.await.unwrap();
        }
    });
    let started = Instant::now();
    let mut children: Vec<Child> = (0..2)
        .map(|p| spawn_child(url, &namespace, batch, &format!("proc{p}")))
        .collect();
    server.block_on(wait_done(&pool, &namespace, DRAIN_EVENTS as i64));
    let wall = started.elapsed();
    for child in &mut children {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let (span, by_process): (f64, String) = server.block_on(async {
        let span: f64 = sqlx::query_scalar(
            "SELECT extract(epoch FROM max(done_at) - min(done_at))::float8 \
             FROM monite_webhook_inbox_events WHERE namespace = $1",
        )
        .bind(&namespace)
        .fetch_one(&pool)
        .await
        .unwrap();
        let by_process: String = sqlx::query_scalar(
            "SELECT string_agg(process || ' ' || attempts, ', ' ORDER BY process) FROM \
             (SELECT split_part(a.worker, '-', 1) AS process, count(*) AS attempts \
              FROM monite_webhook_inbox_attempts a JOIN monite_webhook_inbox_events e \
              ON e.id = a.event_row WHERE e.namespace = $1 GROUP BY 1) AS p",
        )
        .bind(&namespace)
        .fetch_one(&pool)
        .await
        .unwrap();
        (span, by_process)
    });
    println!(
        "drain, 2 processes x 4 workers, batch {batch}: {:.0} events/s from first to last done \
         ({:.0}/s over {:.1} s from spawning the processes); attempts by process: {by_process}; \
         load average {}",
        DRAIN_EVENTS as f64 / span,
        DRAIN_EVENTS as f64 / wall.as_secs_f64(),
        wall.as_secs_f64(),
        load_average(),
    );
}

async fn settings(url: &str) -> String {
    let pool = PgPool::connect(url).await.unwrap();
    let mut shown = Vec::new();
    for setting in [
        "server_version",
        "fsync",
        "full_page_writes",
        "synchronous_commit",
    ] {
        let value: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW {setting}")))
            .fetch_one(&pool)
            .await
            .unwrap();
        shown.push(format!("{setting}={value}"));
    }
    pool.close().await;
    shown.join(" ")
}

fn main() {
    if let Ok(url) = std::env::var(CHILD_ENV) {
        child(&url);
        return;
    }
    let secs: f64 = std::env::var("INBOX_HTTP_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15.0);
    // The server (axum, the receiver, its sqlx pool, in-process workers) on a runtime of
    // its own; the client on the main thread, so that neither runs on the other's threads.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pg = PgServer::start_durable();
    let url = pg.url();
    println!(
        "PostgreSQL on loopback: {}; {} CPUs; server: axum on a 2-thread Tokio runtime, \
         sqlx pools of 10; client: hyper HTTP/1.1 keep-alive on a current-thread runtime on \
         the main thread; nothing pinned",
        server.block_on(settings(&url)),
        std::thread::available_parallelism().map_or(0, usize::from),
    );

    let plain = serve(&server, plain_receiver(&server, &url));
    let (accepting, _) = inbox(&server, &url, "inbox");
    let inbox = serve(&server, inbox_receiver(&accepting));
    let receivers = [
        ("inbox", inbox),
        ("plain receiver with PostgresStore", plain),
    ];
    for (run, (_, addr)) in receivers.iter().enumerate() {
        // Opens the pool's connections and warms the caches before anything is measured.
        client.block_on(closed_loop(*addr, &format!("warm{run}"), 1.0));
    }
    for rate in [1000.0, 2000.0] {
        for (run, (name, addr)) in receivers.iter().enumerate() {
            let (samples, elapsed) =
                client.block_on(open_loop(*addr, &format!("r{rate}x{run}"), rate, secs));
            report(
                &format!("{name} at {rate:.0}/s offered, {OPEN_LANES} connections"),
                &samples,
                elapsed,
            );
        }
    }
    for (run, (name, addr)) in receivers.iter().enumerate() {
        let (samples, elapsed) =
            client.block_on(closed_loop(*addr, &format!("sat{run}"), secs.min(10.0)));
        report(
            &format!("{name} saturated, {CLOSED_LANES} connections"),
            &samples,
            elapsed,
        );
    }
    live(&server, &client, &url, secs);
    for batch in [32, 256] {
        drain_by_processes(&server, &url, batch);
    }
}
