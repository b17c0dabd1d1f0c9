//! What the CLI's tests share: running the binary, and a local receiver built on the
//! library that records how it routed each delivery.

#![allow(dead_code, reason = "each test file uses what it needs")]

/// The fake Monite, the library's tests' own (one fake: the shipped emulator).
#[path = "../../../tests/support/fake_monite.rs"]
pub(crate) mod fake_monite;

use std::collections::HashSet;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use monite_webhooks::{
    Dispatcher, Event, EventType, ObjectType, Receiver, Secret, Unhandled, Verifier,
};

/// Secrets the tests use; no output may contain them unless asked.
pub(crate) const SECRET: &str = "whsec_cli_test_secret_do_not_print";
pub(crate) const OTHER_SECRET: &str = "whsec_b3RoZXJfc2VjcmV0X2ZvcjJ0ZXN0cw==";
pub(crate) const FORWARD_SECRET: &str = "whsec_forward_target_secret";

const SECRETS: [&str; 3] = [SECRET, OTHER_SECRET, FORWARD_SECRET];

/// The binary, with no `MONITE_*` variable of the test's own environment.
pub(crate) fn command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_monite-webhooks"));
    for (name, _) in std::env::vars() {
        if name.starts_with("MONITE_") {
            command.env_remove(name);
        }
    }
    command.stdin(Stdio::null());
    // An empty working directory of its own, so no default keyring file is found or left.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let cwd = std::env::temp_dir().join(format!(
        "monite-webhooks-cli-{}-cwd-{n}",
        std::process::id()
    ));
    std::fs::create_dir_all(&cwd).unwrap();
    command.current_dir(cwd);
    command
}

/// What a run printed, with its exit code.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

/// Runs the binary to its end (off the async runtime's threads) and checks that nothing it
/// printed contains a secret.
pub(crate) async fn run(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = command();
    command.args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    let output: Output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert_no_secret(&format!("{}{}", run.stdout, run.stderr), args);
    run
}

pub(crate) fn assert_no_secret(printed: &str, args: &[&str]) {
    for secret in SECRETS {
        // The part after `whsec_` would betray it too.
        let tail = &secret[6..];
        assert!(
            !printed.contains(tail),
            "output of {args:?} contains a secret:\n{printed}"
        );
    }
}

/// A body file in a fresh temporary directory.
pub(crate) fn body_file(name: &str, body: &[u8]) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("monite-webhooks-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("body.json");
    std::fs::write(&path, body).unwrap();
    path
}

/// One delivery the test receiver took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) id: String,
    pub(crate) action: String,
    /// The route that handled it: `(object_type, event)` of the handler, or `None` for the
    /// fallback.
    pub(crate) routed_as: Option<(String, String)>,
}

/// A receiver on the library with a route for every documented event.
#[derive(Clone)]
pub(crate) struct TestReceiver {
    pub(crate) addr: SocketAddr,
    pub(crate) seen: Arc<Mutex<Vec<Seen>>>,
    /// Answer 500 to this many deliveries first.
    pub(crate) fail_first: Arc<Mutex<usize>>,
    /// Answer 500, once each, to these event ids.
    pub(crate) fail_ids: Arc<Mutex<HashSet<String>>>,
    /// How many requests reached it at all.
    pub(crate) requests: Arc<Mutex<usize>>,
}

impl TestReceiver {
    pub(crate) fn url(&self) -> String {
        format!("http://{}/webhooks/monite", self.addr)
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

pub(crate) fn catalog_pairs() -> Vec<(String, String)> {
    let catalog: serde_json::Value =
        serde_json::from_str(include_str!("../data/catalog.json")).unwrap();
    let mut pairs = Vec::new();
    for (object_type, events) in catalog["events"].as_object().unwrap() {
        for event in events.as_array().unwrap() {
            pairs.push((object_type.clone(), event.as_str().unwrap().to_owned()));
        }
    }
    pairs
}

/// Starts a receiver verifying with `secret` on a free loopback port.
pub(crate) async fn receiver(secret: &str) -> TestReceiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let state = TestReceiver {
        addr: listener.local_addr().unwrap(),
        seen: Arc::default(),
        fail_first: Arc::default(),
        fail_ids: Arc::default(),
        requests: Arc::default(),
    };
    let record = |state: &TestReceiver, event: &Event, routed_as: Option<(String, String)>| {
        let id = event.id().unwrap_or_default().to_owned();
        let mut fail_first = state.fail_first.lock().unwrap();
        if *fail_first > 0 {
            *fail_first -= 1;
            return Err("failing as the test asked".to_owned());
        }
        if state.fail_ids.lock().unwrap().remove(&id) {
            return Err(format!("failing {id} as the test asked"));
        }
        state.seen.lock().unwrap().push(Seen {
            id,
            action: event.action().to_owned(),
            routed_as,
        });
        Ok(())
    };
    let mut builder = Dispatcher::builder();
    for (object_type, event) in catalog_pairs() {
        let state = state.clone();
        builder = builder.on(
            ObjectType::from(object_type.as_str()),
            EventType::from(event.as_str()),
            move |e: Event| {
                let result = record(&state, &e, Some((object_type.clone(), event.clone())));
                async move { result }
            },
        );
    }
    let fallback_state = state.clone();
    let dispatcher = builder
        .fallback(move |e: Event, _: Unhandled| {
            let result = record(&fallback_state, &e, None);
            async move { result }
        })
        .build();
    let receiver = Receiver::new(Verifier::new(Secret::new(secret).unwrap()), dispatcher);
    let app = axum::Router::new()
        .fallback(
            |State((receiver, counter)): State<(Receiver, Arc<Mutex<usize>>)>,
             headers: HeaderMap,
             body: Bytes| async move {
                *counter.lock().unwrap() += 1;
                let result = receiver.receive(&headers, body).await;
                let (parts, body) = receiver.response(&result).into_parts();
                Response::from_parts(parts, Body::from(body))
            },
        )
        .with_state((receiver, state.requests.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    state
}

/// A running `listen`, read line by line.
pub(crate) struct Listening {
    pub(crate) child: Child,
    pub(crate) url: String,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Listening {
    /// Starts `listen` with `args` on a free port and waits until it is ready.
    pub(crate) fn start(args: &[&str]) -> Self {
        Self::spawn(command(), args)
    }

    /// As [`start`](Self::start), from a prepared command (its environment, say).
    pub(crate) fn spawn(mut command: Command, args: &[&str]) -> Self {
        let mut child = command
            .arg("listen")
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut ready = String::new();
        stderr.read_line(&mut ready).unwrap();
        assert_no_secret(&ready, args);
        let url = ready
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {ready:?}"))
            .to_owned();
        // Keep reading stderr: closing it would break the child's next write there.
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                assert_no_secret(&line, &["listen (stderr)"]);
            }
        });
        let (send, lines) = std::sync::mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, url, lines }
    }

    /// The next line it printed.
    pub(crate) fn next_line(&self) -> String {
        let line = self
            .lines
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("listen printed nothing");
        assert_no_secret(&line, &["listen"]);
        line
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
