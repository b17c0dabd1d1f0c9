//! `emulate`: a local Monite (the library's `testing::Emulator`) until Ctrl-C or SIGTERM:
//! its API under `/v1`, deliveries retried on Monite's schedule, subscriptions disabled
//! after a week of failures, a clock to fast-forward (`POST /_emulator/clock`), a ledger
//! (`GET /_emulator/ledger`). `emulate trigger` asks a running one for events.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use monite_webhooks::testing::Emulator;
use serde::Serialize;
use serde_json::{Value, json};

use crate::failure::{self, Failure};
use crate::output::Output;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct EmulateArgs {
    #[command(subcommand)]
    command: Option<EmulateCommand>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum EmulateCommand {
    /// Ask a running emulator to record events (`POST /_emulator/events`), as Monite
    /// would: delivered to every enabled subscription of their object type.
    Trigger(TriggerArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Where to listen.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4010")]
    addr: SocketAddr,
    /// Take only this client id at `POST /auth/token` (with `--client-secret`); any pair
    /// otherwise.
    #[arg(long, value_name = "ID", requires = "client_secret")]
    client_id: Option<String>,
    /// The client secret taken with `--client-id`.
    #[arg(
        long,
        value_name = "SECRET",
        requires = "client_id",
        hide_env_values = true
    )]
    client_secret: Option<String>,
    /// API requests taken in any one second before `429` (Monite's 30); 0: no limit.
    #[arg(long, value_name = "N", default_value_t = monite_webhooks::testing::emulator::DEFAULT_RATE_LIMIT)]
    rate_limit: usize,
    /// How long a receiver may take to answer a delivery (`10s`, `1m`).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::time::parse_interval)]
    delivery_timeout: Duration,
    /// Run the emulated clock this many times as fast as the wall clock.
    #[arg(long, value_name = "F", default_value_t = 1.0, value_parser = parse_scale)]
    time_scale: f64,
}

#[derive(Debug, Args)]
struct TriggerArgs {
    /// The event's action, such as `payable.paid`.
    action: String,
    /// The entity it is about (the emulator's default entity if none).
    #[arg(long, value_name = "ID")]
    entity: Option<String>,
    /// How many such events, each about a new object.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    count: u32,
    /// The running emulator's base URL, as `emulate` printed it (`http://127.0.0.1:4010/v1`).
    #[arg(long, value_name = "URL")]
    emulator: String,
}

fn parse_scale(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(f) if f.is_finite() && f > 0.0 && f <= 1e9 => Ok(f),
        _ => Err("not a positive number up to 1e9, such as 1, 60 or 3600".to_owned()),
    }
}

pub(crate) async fn run(args: EmulateArgs, output: Output) -> Result<ExitCode, Failure> {
    match args.command {
        Some(EmulateCommand::Trigger(trigger)) => run_trigger(trigger, output).await,
        None => serve(args.serve, output).await,
    }
}

#[derive(Debug, Serialize)]
struct Started {
    base_url: String,
    credentials: &'static str,
}

async fn serve(args: ServeArgs, output: Output) -> Result<ExitCode, Failure> {
    let mut builder = Emulator::builder()
        .addr(args.addr)
        .rate_limit((args.rate_limit > 0).then_some(args.rate_limit))
        .delivery_timeout(args.delivery_timeout)
        .time_scale(args.time_scale);
    let fixed = args.client_id.is_some();
    if let (Some(id), Some(secret)) = (args.client_id, args.client_secret) {
        builder = builder.credentials(id, secret);
    }
    let emulator = builder
        .start()
        .await
        .map_err(|e| Failure::usage(e.to_string()))?;
    let started = Started {
        base_url: emulator.base_url(),
        credentials: if fixed { "the given pair" } else { "any pair" },
    };
    output.print(&started, |s| println!("{}", s.base_url));
    output.text_error_line(format_args!(
        "a local Monite at {} (credentials: {}); Ctrl-C stops it",
        started.base_url, started.credentials
    ));
    stopped().await;
    emulator.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Until Ctrl-C, or SIGTERM where there is one.
async fn stopped() {
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[derive(Debug, Serialize)]
struct TriggerReport {
    recorded: usize,
    not_recorded: usize,
    events: Vec<Value>,
}

async fn run_trigger(args: TriggerArgs, output: Output) -> Result<ExitCode, Failure> {
    let root = args
        .emulator
        .trim_end_matches('/')
        .trim_end_matches("/v1")
        .to_owned();
    if !(root.starts_with("http://") || root.starts_with("https://")) {
        return Err(Failure::usage(format!(
            "--emulator must be the URL `emulate` printed, such as http://127.0.0.1:4010/v1, not {:?}",
            args.emulator
        )));
    }
    let http = crate::deliver::http_client(Duration::from_secs(30))?;
    let url = format!("{root}/_emulator/events");
    let mut report = TriggerReport {
        recorded: 0,
        not_recorded: 0,
        events: Vec::new(),
    };
    for _ in 0..args.count {
        let body = json!({"action": args.action, "entity_id": args.entity});
        let answer = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| Failure::negative(format!("cannot reach the emulator at {url}: {e}")))?;
        let status = answer.status();
        let value: Value = match answer.bytes().await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        if status.as_u16() == 201 {
            report.recorded += 1;
            output.text_line(format_args!(
                "recorded {} {} for entity {}",
                value["id"].as_str().unwrap_or("?"),
                value["action"].as_str().unwrap_or("?"),
                value["entity_id"].as_str().unwrap_or("?"),
            ));
        } else if status.is_success() {
            report.not_recorded += 1;
            output.text_line(format_args!(
                "not recorded: {}",
                value["reason"].as_str().unwrap_or("no reason given")
            ));
        } else {
            let message = value["error"]["message"]
                .as_str()
                .unwrap_or("no reason given");
            return Err(Failure::usage(format!(
                "the emulator refused the event ({status}): {message}"
            )));
        }
        report.events.push(value);
    }
    let ok = report.not_recorded == 0;
    if output.is_json() {
        output.print(&report, |_| {});
    }
    Ok(failure::outcome(ok))
}
