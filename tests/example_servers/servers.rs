//! The example servers as users start them: real processes, real HTTP over loopback, the
//! secrets from the environment (`MONITE_WEBHOOK_SECRETS` for forty subscriptions), and the
//! development secret only with `--dev`.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use monite_webhooks::Secret;
use monite_webhooks::testing::sign;
use support::examples::example;

const DEVELOPMENT_SECRET: &str = "whsec_development_only_do_not_use_in_production";

fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(name: &str, env: &[(&str, String)], args: &[&str]) -> Self {
        let addr = free_addr();
        let mut command = Command::new(example(name));
        command
            .args(args)
            .env("MONITE_WEBHOOK_ADDR", &addr)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for var in [
            "MONITE_WEBHOOK_SECRET",
            "MONITE_WEBHOOK_SECRETS",
            "MONITE_WEBHOOK_KEYRING",
            "MONITE_WEBHOOK_DEV",
            "REDIS_URL",
            "DATABASE_URL",
        ] {
            command.env_remove(var);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().unwrap();
        let server = Self { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut server = server;
        while TcpStream::connect(&server.addr).is_err() {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("{name} exited before listening: {status}");
            }
            assert!(Instant::now() < deadline, "{name} did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// POSTs `body` with `signature` and answers the status.
    fn deliver(&self, body: &str, signature: &str) -> u16 {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        write!(
            stream,
            "POST /webhooks/monite HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Monite-Signature: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
            .split(' ')
            .nth(1)
            .and_then(|status| status.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
    }

    /// The JSON lines printed so far, after stopping the server.
    fn stop(mut self) -> Vec<serde_json::Value> {
        self.child.kill().unwrap();
        let mut lines = Vec::new();
        let stdout = self.child.stdout.take().unwrap();
        for line in BufReader::new(stdout).lines() {
            lines.push(serde_json::from_str(&line.unwrap()).unwrap());
        }
        self.child.wait().unwrap();
        lines
    }
}

fn envelope(id: &str, subscription: &str) -> String {
    format!(
        r#"{{"id":"{id}","action":"payable.created","object":{{"id":"o-{id}"}},"object_type":"payable","webhook_subscription_id":"{subscription}"}}"#
    )
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn forty_subscriptions_one_endpoint_on_both_frameworks() {
    let secrets: Vec<(String, String)> = (0..40)
        .map(|i| (format!("sub-{i:02}"), format!("whsec_subscription_{i}")))
        .collect();
    let pairs = secrets
        .iter()
        .map(|(id, secret)| format!("{id}={secret}"))
        .collect::<Vec<_>>()
        .join(",");
    for name in ["axum_server", "actix_server"] {
        let server = Server::start(name, &[("MONITE_WEBHOOK_SECRETS", pairs.clone())], &[]);
        for (i, (id, secret)) in secrets.iter().enumerate() {
            let body = envelope(&format!("{name}-evt-{i}"), id);
            let signature = sign(&Secret::new(secret).unwrap(), now(), body.as_bytes());
            assert_eq!(server.deliver(&body, &signature), 200, "{name}: {id}");
        }
        // Signed by another subscription's secret, naming one not held, and forged.
        let body = envelope("e-cross", "sub-39");
        let other = sign(&Secret::new(&secrets[0].1).unwrap(), now(), body.as_bytes());
        assert_eq!(server.deliver(&body, &other), 401, "{name}: cross");
        let body = envelope("e-unknown", "sub-99");
        let signature = sign(&Secret::new(&secrets[0].1).unwrap(), now(), body.as_bytes());
        assert_eq!(server.deliver(&body, &signature), 401, "{name}: unknown");
        let forged = format!("t={},v1={}", now(), "0".repeat(64));
        assert_eq!(server.deliver(&envelope("e-f", "sub-01"), &forged), 401);

        let lines = server.stop();
        assert_eq!(lines.len(), 40, "{name}: one line per handled event");
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(line["object_type"], "payable");
            assert_eq!(line["event"], "created");
            assert!(line["id"].as_str().unwrap().starts_with(name), "{line}");
            assert!(line["webhook_subscription_id"].is_string(), "{i}: {line}");
        }
    }
}

#[test]
fn the_development_secret_needs_dev() {
    let refused = Command::new(example("axum_server"))
        .env_remove("MONITE_WEBHOOK_SECRET")
        .env_remove("MONITE_WEBHOOK_SECRETS")
        .env_remove("MONITE_WEBHOOK_KEYRING")
        .env_remove("MONITE_WEBHOOK_DEV")
        .env("MONITE_WEBHOOK_ADDR", free_addr())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("no secret configured"), "{stderr}");

    let server = Server::start("axum_server", &[], &["--dev"]);
    let body = envelope("dev-1", "sub-dev");
    let signature = sign(
        &Secret::new(DEVELOPMENT_SECRET).unwrap(),
        now(),
        body.as_bytes(),
    );
    assert_eq!(server.deliver(&body, &signature), 200);
    assert_eq!(server.stop().len(), 1);
}

/// `MONITE_WEBHOOK_INBOX=postgres` with no workers accepts (`202`, a duplicate `200`);
/// a `--workers-only` process then handles every event once, transactionally: one row
/// per event in `handled_events`, one JSON line per event after its commit.
#[test]
fn the_inbox_accepts_and_a_workers_only_process_handles() {
    let server = support::pg::PgServer::start();
    let secret = "whsec_IpHYzcMQQR5+wnN4pmHJNRh8B+TVY26b";
    let env = [
        ("MONITE_WEBHOOK_SECRET", secret.to_owned()),
        ("DATABASE_URL", server.url()),
        ("MONITE_WEBHOOK_INBOX", "postgres".to_owned()),
        ("MONITE_WEBHOOK_WORKERS", "0".to_owned()),
    ];
    let accepting = Server::start("axum_server", &env, &[]);
    let sign_now = |body: &str| sign(&Secret::new(secret).unwrap(), now(), body.as_bytes());
    for n in 0..30 {
        let body = envelope(&format!("inbox-{n}"), "sub-1");
        assert_eq!(accepting.deliver(&body, &sign_now(&body)), 202);
    }
    let again = envelope("inbox-0", "sub-1");
    assert_eq!(
        accepting.deliver(&again, &sign_now(&again)),
        200,
        "a duplicate"
    );
    assert!(
        accepting.stop().is_empty(),
        "no handler ran in the accepting process"
    );

    let mut workers = Command::new(example("actix_server"))
        .arg("--workers-only")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("MONITE_WEBHOOK_WORKERS", "2")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(workers.stdout.take().unwrap());
    let mut ids: Vec<String> = stdout
        .lines()
        .take(30)
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
            line["id"].as_str().unwrap().to_owned()
        })
        .collect();
    workers.kill().unwrap();
    workers.wait().unwrap();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 30, "one line per event");
    let rows: (i64, i64) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let pool = sqlx::PgPool::connect(&server.url()).await.unwrap();
            sqlx::query_as("SELECT count(*), count(DISTINCT event_id) FROM handled_events")
                .fetch_one(&pool)
                .await
                .unwrap()
        });
    assert_eq!(rows, (30, 30), "each event recorded once");
}

/// A server process whose log (stderr) is collected line by line while it runs.
struct Logged {
    child: Child,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Logged {
    fn start(name: &str, env: &[(&str, String)], args: &[&str]) -> Self {
        let mut command = Command::new(example(name));
        command
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for var in [
            "MONITE_WEBHOOK_SECRET",
            "MONITE_WEBHOOK_SECRETS",
            "MONITE_WEBHOOK_KEYRING",
            "MONITE_WEBHOOK_DEV",
            "MONITE_WEBHOOK_INBOX",
            "MONITE_WEBHOOK_WORKERS",
            "MONITE_CLIENT_ID",
            "MONITE_CLIENT_SECRET",
            "REDIS_URL",
            "DATABASE_URL",
        ] {
            command.env_remove(var);
        }
        command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        let mut child = command.spawn().unwrap();
        let log: std::sync::Arc<std::sync::Mutex<Vec<String>>> = std::sync::Arc::default();
        let lines = std::sync::Arc::clone(&log);
        let stderr = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Self { child, log }
    }

    fn logged(&self, text: &str) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains(text))
    }

    /// Waits up to a minute for `text` in the log; panics if the process exits first.
    fn wait_for_log(&mut self, text: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.logged(text) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("{what} exited before logging {text:?}: {status}");
            }
            assert!(Instant::now() < deadline, "{what} never logged {text:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM, as Kubernetes, systemd and `docker stop` do, and waits for the exit.
    fn terminate(mut self, what: &str) -> (std::process::ExitStatus, Vec<String>) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "{what}: kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                self.child.kill().unwrap();
                panic!("{what} still runs a minute after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // The reader thread sees the pipe close once the process is gone.
        std::thread::sleep(Duration::from_millis(200));
        let log = self.log.lock().unwrap().clone();
        (status, log)
    }
}

/// `count` accepted events for the example's namespace, written straight to the inbox.
const BACKLOG: &str = "INSERT INTO monite_webhook_inbox_events (dedup_key, namespace, \
     event_id, entity_id, object_type, event, body, headers) \
     SELECT 'monite-webhooks-example:evt:sig-' || g, 'monite-webhooks-example', 'sig-' || g, \
       'ent' || g, 'payable', 'payable.created', convert_to('{\"id\":\"sig-' || g || \
       '\",\"action\":\"payable.created\",\"entity_id\":\"ent' || g || \
       '\",\"object\":{\"id\":\"x\"},\"object_type\":\"payable\"}', 'UTF8'), '{}' \
     FROM generate_series(1, 20000) g";

/// Both example servers stop on SIGTERM in every mode (HTTP, inbox with workers,
/// `--workers-only`): they exit with status 0 through their shutdown, logging "stopped",
/// and the inbox modes hand back every claimed event, leaving none `running`.
#[test]
fn both_example_servers_stop_on_sigterm_in_every_mode() {
    let server = support::pg::PgServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = runtime
        .block_on(sqlx::PgPool::connect(&server.url()))
        .unwrap();
    let sql = |statement: &'static str| {
        runtime
            .block_on(sqlx::query(statement).execute(&pool))
            .unwrap();
    };
    let count = |statement: &'static str| -> i64 {
        runtime
            .block_on(sqlx::query_scalar(statement).fetch_one(&pool))
            .unwrap()
    };
    let secret = ("MONITE_WEBHOOK_SECRET", DEVELOPMENT_SECRET.to_owned());
    for name in ["actix_server", "axum_server"] {
        // HTTP only: the plain receiver.
        let addr = free_addr();
        let mut http = Logged::start(name, &[secret.clone(), ("MONITE_WEBHOOK_ADDR", addr)], &[]);
        http.wait_for_log("listening on", name);
        let (status, log) = http.terminate(name);
        assert!(status.success(), "{name} (HTTP): {status}; {log:#?}");
        assert!(
            log.iter().any(|l| l.contains("stopped")),
            "{name}: {log:#?}"
        );

        // The inbox, with workers in the HTTP process, and with `--workers-only`.
        for (mode, args) in [
            ("with workers", &[][..]),
            ("--workers-only", &["--workers-only"][..]),
        ] {
            let what = format!("{name} ({mode})");
            // With the record of the migrations, so that the next start makes them again.
            sql("DROP TABLE IF EXISTS monite_webhook_inbox_attempts, \
                 monite_webhook_inbox_events, monite_webhook_inbox_events_paused, handled_events, \
                 monite_webhook_migrations");
            let env = [
                secret.clone(),
                ("MONITE_WEBHOOK_ADDR", free_addr()),
                ("DATABASE_URL", server.url()),
                ("MONITE_WEBHOOK_INBOX", "postgres".to_owned()),
                ("MONITE_WEBHOOK_WORKERS", "2".to_owned()),
            ];
            let mut process = Logged::start(name, &env, args);
            process.wait_for_log("inbox: PostgreSQL", &what);
            // The tables exist once the log says so; a backlog keeps both workers busy.
            sql(BACKLOG);
            let deadline = Instant::now() + Duration::from_secs(60);
            while count("SELECT count(*) FROM handled_events") < 10 {
                assert!(Instant::now() < deadline, "{what} handled nothing");
                std::thread::sleep(Duration::from_millis(20));
            }
            let (status, log) = process.terminate(&what);
            assert!(status.success(), "{what}: {status}; {log:#?}");
            assert!(
                log.iter().any(|l| l.contains("stopped")),
                "{what}: {log:#?}"
            );
            let running =
                count("SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'running'");
            assert_eq!(running, 0, "{what} left claimed events running");
            let pending =
                count("SELECT count(*) FROM monite_webhook_inbox_events WHERE state = 'pending'");
            assert!(pending > 0, "{what}: the backlog was stopped part-way");
        }
    }
}

/// The logs (stderr) of both servers: text without colour codes when stderr is not a
/// terminal (a file, a log collector), and one JSON object per line with
/// `RUST_LOG_FORMAT=json`.
#[test]
fn logs_are_plain_text_off_a_terminal_and_json_on_request() {
    for name in ["actix_server", "axum_server"] {
        for format in ["text", "json"] {
            let what = format!("{name} ({format})");
            let env = [
                ("MONITE_WEBHOOK_SECRET", DEVELOPMENT_SECRET.to_owned()),
                ("MONITE_WEBHOOK_ADDR", free_addr()),
                ("RUST_LOG_FORMAT", format.to_owned()),
                // Empty: not set, so that only the terminal check can turn colours off.
                ("NO_COLOR", String::new()),
            ];
            let mut server = Logged::start(name, &env, &[]);
            server.wait_for_log("listening on", &what);
            let (status, log) = server.terminate(&what);
            assert!(status.success(), "{what}: {status}; {log:#?}");
            assert!(log.len() >= 2, "{what}: {log:#?}");
            for line in &log {
                assert!(!line.contains('\x1b'), "{what}: an escape code in {line:?}");
                let json = serde_json::from_str::<serde_json::Value>(line);
                if format == "json" {
                    let json = json.unwrap_or_else(|e| panic!("{what}: {e} in {line:?}"));
                    assert!(json["level"].is_string(), "{what}: {line}");
                    assert!(json["fields"]["message"].is_string(), "{what}: {line}");
                } else {
                    assert!(json.is_err(), "{what}: a JSON line {line:?}");
                }
            }
        }
    }
}
