//! The `metrics` feature: a known sequence of deliveries, read back from metrics-util's
//! debugging recorder and from the Prometheus exporter the axum example serves; then the
//! axum example itself, when it is built, answering `/metrics` after a sample delivery.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use support::fixture;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use metrics::{SharedString, Unit};
use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

/// One reading of the recorder (reading resets it).
type Snapshot = Vec<(CompositeKey, Option<Unit>, Option<SharedString>, DebugValue)>;
use monite_webhooks::idempotency::{Claim, ClaimToken};
use monite_webhooks::metrics::{
    DELIVERIES, HANDLER_DURATION, REJECTIONS, STORE_DURATION, STORE_FAILURES,
};
use monite_webhooks::testing::sign;
use monite_webhooks::{
    BoxError, Dispatcher, Event, EventType, Idempotency, IdempotencyStore, ObjectType, Receiver,
    Verifier,
};

/// A store whose backend is down: every call fails, as a store's does when its database
/// cannot be reached.
struct DownStore;

impl IdempotencyStore for DownStore {
    async fn claim(&self, _: &str, _: &ClaimToken, _: Duration) -> Result<Claim, BoxError> {
        Err("connection refused".into())
    }
    async fn complete(&self, _: &str, _: &ClaimToken, _: Duration) -> Result<bool, BoxError> {
        Err("connection refused".into())
    }
    async fn release(&self, _: &str, _: &ClaimToken) -> Result<(), BoxError> {
        Err("connection refused".into())
    }
}

fn receiver_for(handled: &Arc<AtomicUsize>) -> monite_webhooks::ReceiverBuilder {
    let handled = handled.clone();
    let dispatcher = Dispatcher::builder()
        .on_object(ObjectType::Counterpart, move |_: Event| {
            handled.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .on(ObjectType::Payable, EventType::Paid, |_: Event| async {
            Err::<(), _>(std::io::Error::other("ledger unavailable"))
        })
        .build();
    Receiver::builder(Verifier::new(fixture::secret(fixture::CURRENT)), dispatcher)
}

fn post(body: &str, signature: Option<String>) -> Request<Bytes> {
    let mut request = Request::post(fixture::PATH);
    if let Some(signature) = signature {
        request = request.header("monite-signature", signature);
    }
    request.body(Bytes::from(body.to_owned())).unwrap()
}

fn signed(body: &str, secret: &str, t: u64) -> Option<String> {
    Some(sign(&fixture::secret(secret), t, body.as_bytes()))
}

/// The known sequence, through `Receiver::handle`; returns how often the counterpart
/// handler ran.
async fn deliver_the_sequence() -> usize {
    let handled = Arc::new(AtomicUsize::new(0));
    let receiver = receiver_for(&handled).build();
    let t = fixture::now();
    let created = fixture::current_envelope("counterpart", "counterpart.created");
    let paid = fixture::current_envelope("payable", "payable.paid");
    let tag = fixture::current_envelope("tag", "tag.created");
    let sequence = [
        (post(&created, signed(&created, fixture::CURRENT, t)), 200),
        // Monite's retry of the same event.
        (post(&created, signed(&created, fixture::CURRENT, t)), 200),
        // After a key rotation: signed with a secret this receiver does not have.
        (
            post(&created, signed(&created, "whsec_rotated_away", t)),
            401,
        ),
        // A replay from long ago.
        (
            post(&created, signed(&created, fixture::CURRENT, t - 3600)),
            401,
        ),
        (post(&created, None), 400),
        (post(&paid, signed(&paid, fixture::CURRENT, t)), 500),
        (post(&tag, signed(&tag, fixture::CURRENT, t)), 200),
        (Request::get(fixture::PATH).body(Bytes::new()).unwrap(), 405),
    ];
    for (request, status) in sequence {
        assert_eq!(receiver.handle(request).await.status(), status);
    }
    // The same delivery against a store that is down: 503, no handler.
    let down = receiver_for(&handled)
        .idempotency(Idempotency::new(DownStore))
        .build();
    let fresh = fixture::current_envelope("counterpart", "counterpart.created");
    let request = post(&fresh, signed(&fresh, fixture::CURRENT, t));
    assert_eq!(down.handle(request).await.status(), 503);
    handled.load(Ordering::SeqCst)
}

/// The counter `name` with exactly `labels`, or 0.
fn counter(snapshot: &Snapshot, name: &str, labels: &[(&str, &str)]) -> u64 {
    values(snapshot, name, labels)
        .map(|value| match value {
            DebugValue::Counter(count) => *count,
            other => panic!("{name} is not a counter: {other:?}"),
        })
        .sum()
}

/// How many values the histogram `name` with exactly `labels` recorded.
fn recorded(snapshot: &Snapshot, name: &str, labels: &[(&str, &str)]) -> usize {
    values(snapshot, name, labels)
        .map(|value| match value {
            DebugValue::Histogram(values) => {
                assert!(
                    values.iter().all(|v| v.0 >= 0.0 && v.0 < 10.0),
                    "{values:?}"
                );
                values.len()
            }
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .sum()
}

fn values<'a>(
    snapshot: &'a Snapshot,
    name: &'a str,
    labels: &[(&str, &str)],
) -> impl Iterator<Item = &'a DebugValue> + 'a {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    snapshot.iter().filter_map(move |(key, _, _, value)| {
        let key = key.key();
        let mut found: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        found.sort();
        (key.name() == name && found == labels).then_some(value)
    })
}

#[test]
fn a_known_sequence_of_deliveries_is_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A recorder for this thread only, so other tests cannot add to its counts.
    let handled =
        metrics::with_local_recorder(&recorder, || runtime.block_on(deliver_the_sequence()));
    assert_eq!(handled, 1, "the counterpart handler ran once");
    let snapshot = snapshotter.snapshot().into_vec();

    let deliveries = |outcome, status| {
        counter(
            &snapshot,
            DELIVERIES,
            &[("outcome", outcome), ("status", status)],
        )
    };
    assert_eq!(deliveries("handled", "200"), 1);
    assert_eq!(deliveries("duplicate", "200"), 1);
    assert_eq!(deliveries("unhandled", "200"), 1);
    assert_eq!(deliveries("rejected", "401"), 2);
    assert_eq!(deliveries("rejected", "400"), 1);
    assert_eq!(deliveries("rejected", "405"), 1);
    assert_eq!(deliveries("failed", "500"), 1);
    assert_eq!(deliveries("failed", "503"), 1);

    let rejections = |reason| counter(&snapshot, REJECTIONS, &[("reason", reason)]);
    assert_eq!(rejections("bad_signature"), 1);
    assert_eq!(rejections("stale_timestamp"), 1);
    assert_eq!(rejections("missing_signature"), 1);
    assert_eq!(rejections("method_not_allowed"), 1);
    assert_eq!(
        rejections("store_unavailable"),
        0,
        "a store outage is no rejection"
    );

    // Handlers: the created event and the tag's (no handler: not timed), the failing one.
    assert_eq!(
        recorded(&snapshot, HANDLER_DURATION, &[("outcome", "ok")]),
        1
    );
    assert_eq!(
        recorded(&snapshot, HANDLER_DURATION, &[("outcome", "error")]),
        1
    );

    // The store: four claims (created, its retry, paid, tag), two marked done (created,
    // tag), one released (paid); one failed claim against the store that is down.
    let store = |op, result| recorded(&snapshot, STORE_DURATION, &[("op", op), ("result", result)]);
    assert_eq!(store("claim", "ok"), 4);
    assert_eq!(store("complete", "ok"), 2);
    assert_eq!(store("release", "ok"), 1);
    assert_eq!(store("claim", "error"), 1);
    assert_eq!(counter(&snapshot, STORE_FAILURES, &[("op", "claim")]), 1);
}

#[test]
fn the_prometheus_exporter_renders_the_counts() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        monite_webhooks::metrics::describe();
        runtime.block_on(deliver_the_sequence())
    });
    let text = handle.render();
    for line in [
        r#"monite_webhooks_deliveries_total{outcome="handled",status="200"} 1"#,
        r#"monite_webhooks_deliveries_total{outcome="rejected",status="401"} 2"#,
        r#"monite_webhooks_rejections_total{reason="bad_signature"} 1"#,
        r#"monite_webhooks_rejections_total{reason="stale_timestamp"} 1"#,
        r#"monite_webhooks_store_failures_total{op="claim"} 1"#,
        "# HELP monite_webhooks_rejections_total Monite webhook requests refused before dispatch, by reason",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

#[cfg(all(
    feature = "axum",
    feature = "tracing",
    feature = "redis",
    feature = "postgres"
))]
#[test]
fn the_axum_example_serves_the_counters_after_a_sample_delivery() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut child = std::process::Command::new(fixture::example_binary("axum_server"))
        .env("MONITE_WEBHOOK_ADDR", addr.to_string())
        .env("MONITE_WEBHOOK_SECRET", fixture::CURRENT)
        .env_remove("REDIS_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let valid = fixture::cases().into_iter().next().unwrap();
    let (status, _) = fixture::send(addr, &valid);
    let forged = fixture::cases()
        .into_iter()
        .find(|case| case.name == "wrong secret")
        .unwrap();
    let (forged_status, _) = fixture::send(addr, &forged);
    let (metrics_status, text) = fixture::exchange(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!((status, forged_status, metrics_status), (200, 401, 200));
    for line in [
        r#"monite_webhooks_deliveries_total{outcome="handled",status="200"} 1"#,
        r#"monite_webhooks_deliveries_total{outcome="rejected",status="401"} 1"#,
        r#"monite_webhooks_rejections_total{reason="bad_signature"} 1"#,
        r#"monite_webhooks_store_duration_seconds_count{op="claim",result="ok"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}
