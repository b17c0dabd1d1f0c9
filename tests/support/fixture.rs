//! What the adapter tests share: one receiver, one table of cases with the statuses every
//! framework must answer, a raw HTTP/1.1 client, and a hostile-request generator.

#![allow(dead_code, reason = "each adapter test uses what it needs")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use monite_webhooks::testing::sign;
use monite_webhooks::{
    Dispatcher, Event, EventType, ObjectType, Receiver, Secret, Unhandled, Verifier,
};

pub(crate) const PATH: &str = "/webhooks/monite";
pub(crate) const CURRENT: &str = "whsec_IpHYzcMQQR5+wnN4pmHJNRh8B+TVY26b";
pub(crate) const PREVIOUS: &str = "whsec_previous_secret_still_draining";

/// What the handlers saw, as `object_type.event` strings.
pub(crate) type Seen = Arc<Mutex<Vec<String>>>;

pub(crate) fn secret(text: &str) -> Secret {
    Secret::new(text).unwrap()
}

/// The receiver every framework serves: two secrets (rotation), a failing handler for
/// `payable.paid`, a panicking one for `payable.rejected`, and a fallback for the rest.
pub(crate) fn receiver(seen: &Seen) -> Receiver {
    let verifier = Verifier::new(secret(CURRENT).labeled("current"))
        .with_secret(secret(PREVIOUS).labeled("previous"));
    let ok = seen.clone();
    let fallback = seen.clone();
    let dispatcher = Dispatcher::builder()
        .on_object(ObjectType::Counterpart, move |e: Event| {
            let seen = ok.clone();
            async move { seen.lock().unwrap().push(e.action().to_owned()) }
        })
        .on(ObjectType::Payable, EventType::Paid, |_: Event| async {
            Err::<(), _>(std::io::Error::other("ledger unavailable"))
        })
        .on(ObjectType::Payable, EventType::Rejected, panicking_handler)
        .fallback(move |e: Event, _: Unhandled| {
            let seen = fallback.clone();
            async move { seen.lock().unwrap().push(e.action().to_owned()) }
        })
        .build();
    Receiver::new(verifier, dispatcher)
}

async fn panicking_handler(_: Event) {
    panic!("bug in the payable.rejected handler")
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A current envelope with an id of its own: the receiver handles each event id once.
pub(crate) fn current_envelope(object_type: &str, action: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = format!(
        "evt-{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    format!(
        r#"{{"id":"{id}","created_at":"2024-03-04T20:06:48.593225+00:00","action":"{action}","api_version":"2024-01-31","entity_id":"c381e88f-7019-4f06-9fbb-3bab8d88348a","description":"d","object":{{"id":"587fd280-3b1a-4ad4-8e00-75a8c2cd789a"}},"object_type":"{object_type}","webhook_subscription_id":"f3c64af7-4a2f-4ed2-8160-d66b6a8ac4ba"}}"#
    )
}

/// One request and the status every adapter must answer it with.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) method: &'static str,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// Send the body chunked, without a Content-Length, so only streaming can find its size.
    pub(crate) chunked: bool,
    pub(crate) status: u16,
}

impl Case {
    fn post(
        name: &'static str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        status: u16,
    ) -> Self {
        Self {
            name,
            method: "POST",
            headers,
            body,
            chunked: false,
            status,
        }
    }
}

fn signed(secret_text: &str, t: u64, body: &str) -> Vec<(String, String)> {
    vec![(
        "Monite-Signature".to_owned(),
        sign(&secret(secret_text), t, body.as_bytes()),
    )]
}

/// The table: every status in protocol section 5, for every framework.
pub(crate) fn cases() -> Vec<Case> {
    let t = now();
    let created = current_envelope("counterpart", "counterpart.created");
    let v2023 = r#"{"id":"9a1e","created_at":null,"action":"counterpart.updated","api_version":"2023-09-01","entity_id":"c381","name":"counterpart updated","object":null,"object_id":"587f","object_type":"counterpart","significance":"medium","webhook_subscription_id":"f3c6"}"#;
    let v2022 =
        r#"{"object_id":"587f","object_type":"counterpart","action":"update","name":"My webhook"}"#;
    let too_large = vec![b' '; 256 * 1024 + 1];
    let unknown = current_envelope("invoice_batch", "invoice_batch.sealed");
    let failing = current_envelope("payable", "payable.paid");
    let panicking = current_envelope("payable", "payable.rejected");
    let mut cases = vec![
        Case::post(
            "valid 2024-01-31 envelope",
            signed(CURRENT, t, &created),
            created.clone().into(),
            200,
        ),
        Case::post(
            "valid 2023-09-01 envelope",
            signed(CURRENT, t, v2023),
            v2023.into(),
            200,
        ),
        Case::post(
            "valid 2022 webhook_settings envelope",
            signed(CURRENT, t, v2022),
            v2022.into(),
            200,
        ),
        Case::post(
            "signed with the rotated-out secret",
            signed(PREVIOUS, t, &created),
            created.clone().into(),
            200,
        ),
        Case::post(
            "lower-case header name",
            vec![(
                "monite-signature".to_owned(),
                sign(&secret(CURRENT), t, created.as_bytes()),
            )],
            created.clone().into(),
            200,
        ),
        Case::post(
            "unknown event",
            signed(CURRENT, t, &unknown),
            unknown.clone().into(),
            200,
        ),
        Case::post(
            "tampered body",
            signed(CURRENT, t, &created),
            created.replace("created\"", "deleted\"").into(),
            401,
        ),
        Case::post(
            "wrong secret",
            signed("whsec_wrong", t, &created),
            created.clone().into(),
            401,
        ),
        // One second past the tolerance, so a second boundary passing mid-run cannot bring
        // it back inside (the exact boundary is tested with an injected clock).
        Case::post(
            "stale timestamp",
            signed(CURRENT, t - 302, &created),
            created.clone().into(),
            401,
        ),
        Case::post(
            "future timestamp",
            signed(CURRENT, t + 302, &created),
            created.clone().into(),
            401,
        ),
        Case::post("missing header", vec![], created.clone().into(), 400),
        Case::post(
            "malformed header",
            vec![("Monite-Signature".to_owned(), "sha256=abc".to_owned())],
            created.clone().into(),
            400,
        ),
        Case::post("body over the limit", vec![], too_large.clone(), 413),
        Case::post(
            "signed non-JSON",
            signed(CURRENT, t, "hello"),
            b"hello".to_vec(),
            400,
        ),
        Case::post(
            "signed JSON that is not an envelope",
            signed(CURRENT, t, r#"{"hello":"world"}"#),
            br#"{"hello":"world"}"#.to_vec(),
            400,
        ),
        Case::post(
            "handler error",
            signed(CURRENT, t, &failing),
            failing.clone().into(),
            500,
        ),
        Case::post(
            "handler panic",
            signed(CURRENT, t, &panicking),
            panicking.clone().into(),
            500,
        ),
    ];
    cases.push(Case {
        name: "body over the limit, chunked",
        chunked: true,
        ..Case::post("", vec![], too_large, 413)
    });
    cases.push(Case {
        name: "GET",
        method: "GET",
        ..Case::post("", signed(CURRENT, t, &created), Vec::new(), 405)
    });
    cases
}

/// Sends `case` over a fresh connection and returns the status and body.
pub(crate) fn send(addr: SocketAddr, case: &Case) -> (u16, String) {
    let mut head = format!(
        "{} {PATH} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n",
        case.method
    );
    for (name, value) in &case.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let mut request = head.into_bytes();
    if case.chunked {
        request.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        for chunk in case.body.chunks(16 * 1024) {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            request.extend_from_slice(chunk);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
    } else {
        request
            .extend_from_slice(format!("Content-Length: {}\r\n\r\n", case.body.len()).as_bytes());
        request.extend_from_slice(&case.body);
    }
    exchange(addr, &request)
}

/// Writes raw bytes and reads the response. The write runs beside the read: a server may
/// answer (413) before it has read a large body, and that answer must still be seen.
pub(crate) fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let request = request.to_vec();
    let writing = std::thread::spawn(move || {
        // No half-close afterwards: hyper drops a request whose client shuts its write side.
        let _ = writer.write_all(&request);
    });
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let _ = writing.join();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Runs the whole table against a server and checks every status.
pub(crate) fn assert_table(addr: SocketAddr, framework: &str) {
    for case in cases() {
        let (status, body) = send(addr, &case);
        assert_eq!(
            status, case.status,
            "{framework}: {} answered {status} {body:?}",
            case.name
        );
        if status >= 400 {
            assert!(
                !body.contains("whsec_"),
                "{framework}: {} leaked a secret",
                case.name
            );
        }
    }
}

/// A few hundred malformed requests from a fixed seed: mangled headers, bodies, methods,
/// and bytes that are not HTTP at all. None may get a 5xx.
pub(crate) fn hostile_requests(count: usize) -> Vec<Vec<u8>> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let t = now();
    let body = current_envelope("counterpart", "counterpart.created");
    let good = sign(&secret(CURRENT), t, body.as_bytes());
    (0..count)
        .map(|i| {
            let r = next();
            let random: Vec<u8> = (0..(r % 300)).map(|_| (next() % 256) as u8).collect();
            let printable: String = (0..(r % 90))
                .map(|_| char::from(b' ' + (next() % 95) as u8))
                .collect();
            match i % 6 {
                0 => raw_post(&format!("Monite-Signature: {printable}\r\n"), body.as_bytes()),
                1 => raw_post(&format!("Monite-Signature: {good}\r\n"), &random),
                2 => {
                    let mangled = good.replacen(char::from(b'0' + (r % 10) as u8), &printable, 1);
                    raw_post(&format!("Monite-Signature: {mangled}\r\n"), body.as_bytes())
                }
                3 => raw_post(&format!("Monite-Signature: t={},v1={printable}\r\n", r % 3_000_000_000), &random),
                4 => {
                    let method = ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"][(r % 5) as usize];
                    format!("{method} {PATH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                        .into_bytes()
                }
                _ => random,
            }
        })
        .collect()
}

fn raw_post(extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {PATH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra_headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// Sends the hostile requests and then a valid one: no 5xx, and the server still works.
pub(crate) fn assert_survives_hostile_input(addr: SocketAddr, framework: &str) {
    let requests = hostile_requests(300);
    let mut answered = 0;
    for (i, request) in requests.iter().enumerate() {
        let (status, body) = exchange(addr, request);
        assert!(
            status < 500,
            "{framework}: hostile request {i} got {status} {body:?}"
        );
        if status != 0 {
            answered += 1;
        }
    }
    // Most are well-formed HTTP and must have been answered, not dropped.
    assert!(
        answered >= 200,
        "{framework}: only {answered} of 300 answered"
    );
    let valid = &cases()[0];
    assert_eq!(
        send(addr, valid).0,
        200,
        "{framework}: server broken after the soak"
    );
}

/// The example `name`, built now with this test's own feature set, so that it is this
/// source's build and not one left in the target directory by another feature set (with
/// the same set as the surrounding `cargo test`, the build is already up to date).
pub(crate) fn example_binary(name: &str) -> std::path::PathBuf {
    let features: Vec<&str> = [
        ("axum", cfg!(feature = "axum")),
        ("actix-web", cfg!(feature = "actix-web")),
        ("client", cfg!(feature = "client")),
        ("redis", cfg!(feature = "redis")),
        ("postgres", cfg!(feature = "postgres")),
        ("tracing", cfg!(feature = "tracing")),
        ("tower", cfg!(feature = "tower")),
        ("metrics", cfg!(feature = "metrics")),
    ]
    .into_iter()
    .filter_map(|(feature, on)| on.then_some(feature))
    .collect();
    let status = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--example",
            name,
            "--no-default-features",
        ])
        .args(["--features", &features.join(",")])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(status.success(), "building examples/{name}.rs failed");
    let deps = std::env::current_exe().unwrap();
    let profile_dir = deps.parent().unwrap().parent().unwrap();
    profile_dir.join("examples").join(name)
}

/// An event id no other test run uses.
pub(crate) fn fresh_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "evt-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// Delivers `body` signed now with [`CURRENT`], in process; the answer's status.
pub(crate) async fn deliver(receiver: &Receiver, body: &str) -> http::StatusCode {
    let request = monite_webhooks::testing::signed_request(&secret(CURRENT), body.to_owned());
    receiver.handle(request).await.status()
}

/// Delivers as Monite retries: again while the answer is `409` (a few seconds at most).
pub(crate) async fn deliver_until_not_in_flight(
    receiver: &Receiver,
    body: &str,
) -> http::StatusCode {
    for _ in 0..300 {
        let status = deliver(receiver, body).await;
        if status != http::StatusCode::CONFLICT {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    http::StatusCode::CONFLICT
}

/// Asserts that `error` names no `secret`: not its message, its `Debug`, nor any error of
/// its source chain.
pub(crate) fn assert_no_secret(error: &monite_webhooks::Error, secret: &str, given: &str) {
    let mut told = vec![error.to_string(), format!("{error:?}")];
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        told.push(cause.to_string());
        told.push(format!("{cause:?}"));
        source = cause.source();
    }
    for text in told {
        assert!(
            !text.contains(secret),
            "{given:?} printed its password: {text}"
        );
    }
    assert_eq!(
        error.kind(),
        monite_webhooks::ErrorKind::StoreUnavailable,
        "{given}"
    );
}
