//! `listen`: a local receiver on the library's verifier, parser and dispatcher. It prints
//! each verified event, explains each rejection, and can forward deliveries, re-signed, to
//! the application being developed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use clap::Args;
use monite_webhooks::signature::{KeyConvention, SIGNATURE_HEADER};
use monite_webhooks::{
    Dispatcher, ErrorKind, Event, EventType, ObjectType, Outcome, Receiver, Secret,
};
use serde_json::json;

use crate::catalog;
use crate::deliver;
use crate::diagnose::diagnose;
use crate::failure::Failure;
use crate::options::SecretArgs;
use crate::output::Output;
use crate::secrets::{self, NamedSecret};

#[derive(Debug, Args)]
pub(crate) struct ListenArgs {
    /// Address to listen on; every path takes deliveries.
    #[arg(long, value_name = "A", default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    #[command(flatten)]
    secrets: SecretArgs,
    /// Forward each verified delivery, raw body re-signed, to this URL, and answer with its
    /// status.
    #[arg(long, value_name = "URL")]
    forward_to: Option<String>,
    /// The secret `--forward-to` verifies with; the first listening secret by default.
    /// Prefer `--forward-secret-file`: command lines are visible to other users.
    #[arg(
        long,
        value_name = "SECRET",
        requires = "forward_to",
        conflicts_with = "forward_secret_file"
    )]
    forward_secret: Option<String>,
    /// A file whose first non-blank line is the `--forward-to` secret, `-` for stdin.
    #[arg(long, value_name = "PATH", requires = "forward_to")]
    forward_secret_file: Option<PathBuf>,
    /// Print each event's body, indented, under its line.
    #[arg(long)]
    pretty: bool,
    /// Timestamp tolerance in seconds, either way.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    tolerance: u64,
}

/// A line on stdout; a closed stdout (`listen | head`) must not stop the server.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// A line on stderr, likewise.
macro_rules! say_err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

struct Listener {
    receiver: Receiver,
    named: Vec<NamedSecret>,
    convention: KeyConvention,
    tolerance: u64,
    forward: Option<Forward>,
    pretty: bool,
    json: bool,
    /// When the next diagnosis may start; `None` while one runs.
    next_diagnosis: Mutex<Option<Instant>>,
}

/// At most one diagnosis a second: each costs an HMAC per secret, key convention and body
/// form (up to 12), so unthrottled it would let any sender burn the CPU.
const DIAGNOSIS_INTERVAL: Duration = Duration::from_secs(1);

/// Why a rejection was not diagnosed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Diagnosed {
    Yes,
    /// The body is over the verifier's limit: never diagnosed.
    TooLarge,
    /// Another diagnosis ran less than a second ago (or is running).
    RateLimited,
}

struct Forward {
    url: String,
    secret: Secret,
    http: reqwest::Client,
}

pub(crate) async fn run(args: ListenArgs, output: Output) -> Result<ExitCode, Failure> {
    if args.forward_secret_file.as_deref() == Some(std::path::Path::new("-"))
        && args
            .secrets
            .secret_files
            .iter()
            .any(|p| p.as_os_str() == "-")
    {
        return Err(Failure::usage(
            "--secret-file and --forward-secret-file both read stdin (`-`): give one as a file",
        ));
    }
    let named = secrets::resolve(&args.secrets)?;
    let convention: KeyConvention = args.secrets.convention.into();
    let verifier =
        secrets::verifier(&named, convention)?.with_tolerance(Duration::from_secs(args.tolerance));
    let forward = match &args.forward_to {
        Some(url) => {
            deliver::check_url(url, "--forward-to")?;
            let secret = match (&args.forward_secret, &args.forward_secret_file) {
                (Some(text), _) => {
                    NamedSecret::new("--forward-secret", text.clone()).secret(convention)?
                }
                (None, Some(path)) => {
                    secrets::secret_from_file(path, "--forward-secret-file")?.secret(convention)?
                }
                (None, None) => named[0].secret(convention)?,
            };
            Some(Forward {
                url: url.clone(),
                secret,
                http: deliver::http_client(Duration::from_secs(30))?,
            })
        }
        None => None,
    };
    let listener = Arc::new(Listener {
        receiver: Receiver::new(verifier, routes()),
        named,
        convention,
        tolerance: args.tolerance,
        forward,
        pretty: args.pretty,
        // One JSON line per delivery as it comes, not one document: the stream is the result.
        json: output.is_json(),
        next_diagnosis: Mutex::new(Some(Instant::now())),
    });
    let app = axum::Router::new()
        .fallback(receive)
        .with_state(listener.clone());
    let socket = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| Failure::usage(format!("cannot listen on {}: {e}", args.addr)))?;
    let addr = socket
        .local_addr()
        .map_err(|e| Failure::usage(format!("cannot read the listening address: {e}")))?;
    let secrets = listener
        .named
        .iter()
        .map(|s| s.label.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    say_err!("listening on http://{addr}/webhooks/monite (any path), verifying with {secrets}");
    if let Some(forward) = &listener.forward {
        say_err!("forwarding verified deliveries to {}", forward.url);
    }
    axum::serve(socket, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| Failure::negative(format!("the server stopped: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

/// A route for every documented event, so each is reported as routed to its own handler;
/// anything else reaches no handler and is acknowledged as "no handler".
fn routes() -> Dispatcher {
    catalog::documented()
        .into_iter()
        .fold(Dispatcher::builder(), |builder, pair| {
            builder.on(
                ObjectType::from(pair.object_type.as_str()),
                EventType::from(pair.event.as_str()),
                |_: Event| async {},
            )
        })
        .build()
}

async fn receive(
    State(listener): State<Arc<Listener>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let clock = crate::time::rfc3339(crate::time::unix_now());
    let clock = clock.get(11..19).unwrap_or_default().to_owned();
    if method != Method::POST {
        listener.report_rejection(&clock, 405, "not a POST", None, &headers, &body);
        return (StatusCode::METHOD_NOT_ALLOWED, "method not allowed").into_response();
    }
    let verified = listener
        .receiver
        .verifier()
        .verify(&headers, &body)
        .map(|v| v.secret().label().unwrap_or_default().to_owned());
    let secret_label = match verified {
        Ok(label) => label,
        Err(error) => {
            let diagnosis = listener.diagnose(&error, &headers, &body).await;
            let status = error.status();
            listener.report_rejection(
                &clock,
                status.as_u16(),
                &error.to_string(),
                Some(&diagnosis),
                &headers,
                &body,
            );
            return (status, error.public_message()).into_response();
        }
    };
    let event = match Event::parse(body.clone()) {
        Ok(event) => event,
        Err(error) => {
            listener.report_rejection(&clock, 400, &error.to_string(), None, &headers, &body);
            return (StatusCode::BAD_REQUEST, error.public_message()).into_response();
        }
    };
    let (status, outcome, forwarded) = match &listener.forward {
        Some(forward) => {
            let answer =
                deliver::post_signed(&forward.http, &forward.url, &body, &forward.secret).await;
            let status = answer
                .status
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::BAD_GATEWAY);
            (status, "forwarded".to_owned(), Some(answer))
        }
        None => {
            let result = listener.receiver.dispatch(event.clone()).await;
            let outcome = match &result {
                Ok(Outcome::Handled) => "routed".to_owned(),
                Ok(Outcome::Duplicate) => "duplicate (already handled)".to_owned(),
                Ok(Outcome::Unhandled(_)) => "no route (not a documented event)".to_owned(),
                Ok(_) => "acknowledged".to_owned(),
                Err(e) => e.to_string(),
            };
            (listener.receiver.status(&result), outcome, None)
        }
    };
    listener.report_event(
        &clock,
        status.as_u16(),
        &event,
        &secret_label,
        &outcome,
        forwarded.as_ref(),
    );
    let text = match &forwarded {
        Some(answer) => answer.answer.clone(),
        None => outcome,
    };
    (status, text).into_response()
}

impl Listener {
    /// The findings about a rejected delivery: none for a body over the verifier's limit,
    /// and none if another diagnosis ran less than a second ago. It runs off the async
    /// threads, on the body as received (within the limit).
    async fn diagnose(
        self: &Arc<Self>,
        error: &monite_webhooks::Error,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> (Diagnosed, Vec<String>) {
        let limit = self.receiver.verifier().max_body_bytes();
        if error.kind() == ErrorKind::BodyTooLarge || body.len() > limit {
            return (Diagnosed::TooLarge, Vec::new());
        }
        {
            let mut next = self
                .next_diagnosis
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match *next {
                Some(at) if Instant::now() >= at => *next = None,
                _ => return (Diagnosed::RateLimited, Vec::new()),
            }
        }
        let header = headers
            .get(SIGNATURE_HEADER)
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default();
        let (listener, body) = (self.clone(), body.clone());
        let findings = tokio::task::spawn_blocking(move || {
            let findings = diagnose(
                &header,
                &body,
                &listener.named,
                listener.convention,
                crate::time::unix_now(),
                listener.tolerance,
            )
            .findings;
            *listener
                .next_diagnosis
                .lock()
                .unwrap_or_else(PoisonError::into_inner) =
                Some(Instant::now() + DIAGNOSIS_INTERVAL);
            findings
        })
        .await;
        match findings {
            Ok(findings) => (Diagnosed::Yes, findings),
            Err(_) => {
                // The diagnosis panicked: let the next one run.
                *self
                    .next_diagnosis
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) =
                    Some(Instant::now() + DIAGNOSIS_INTERVAL);
                (Diagnosed::RateLimited, Vec::new())
            }
        }
    }

    fn report_event(
        &self,
        clock: &str,
        status: u16,
        event: &Event,
        secret: &str,
        outcome: &str,
        forwarded: Option<&deliver::Answer>,
    ) {
        if self.json {
            let line = json!({
                "verified": true,
                "status": status,
                "outcome": outcome,
                "action": event.action(),
                "object_type": event.object_type(),
                "event": event.event_type(),
                "id": event.id(),
                "object_id": event.object_id(),
                "entity_id": event.entity_id(),
                "webhook_subscription_id": event.webhook_subscription_id(),
                "secret": secret,
                "forwarded": forwarded.map(|a| json!({"url": self.forward.as_ref().map(|f| &f.url), "status": a.status, "answer": a.answer})),
            });
            say!("{line}");
            return;
        }
        let forwarded = forwarded.map_or_else(String::new, |a| format!(" -> {}", a.describe()));
        say!(
            "{clock} {status} {} id={} object={} entity={} ({secret}) {outcome}{forwarded}",
            event.action(),
            event.id().unwrap_or("-"),
            event.object_id().unwrap_or("-"),
            event.entity_id().unwrap_or("-"),
        );
        if self.pretty {
            let pretty =
                crate::json_format::reformat(event.body(), crate::json_format::Layout::Indented(2))
                    .unwrap_or_else(|| event.body().to_vec());
            say!("{}", String::from_utf8_lossy(&pretty));
        }
    }

    fn report_rejection(
        &self,
        clock: &str,
        status: u16,
        error: &str,
        diagnosis: Option<&(Diagnosed, Vec<String>)>,
        headers: &HeaderMap,
        body: &[u8],
    ) {
        // The action of a body within the verifier's limit only: reading it is work too.
        let action = (body.len() <= self.receiver.verifier().max_body_bytes())
            .then(|| serde_json::from_slice::<serde_json::Value>(body).ok())
            .flatten()
            .and_then(|v| v["action"].as_str().map(str::to_owned));
        let (diagnosed, findings) = match diagnosis {
            Some((diagnosed, findings)) => (Some(*diagnosed), findings.as_slice()),
            None => (None, &[][..]),
        };
        if self.json {
            let mut line = json!({
                "verified": false,
                "status": status,
                "error": error,
                "explanation": findings,
                "action": action,
                "signature_present": headers.contains_key(SIGNATURE_HEADER),
            });
            if let Some(diagnosed) = diagnosed {
                line["diagnosed"] = json!(diagnosed == Diagnosed::Yes);
            }
            say!("{line}");
            return;
        }
        let action = action.map_or_else(String::new, |a| format!(" {a}"));
        say!("{clock} {status} rejected{action}: {error}");
        for finding in findings {
            say!("    - {finding}");
        }
        if diagnosed == Some(Diagnosed::RateLimited) {
            say!("    (not diagnosed: the diagnosis runs at most once a second)");
        }
    }
}
