//! `watch`: the library's subscription watchdog. Each check prints every disabled
//! subscription (id, object type), re-enabling it with `--reenable`; Monite records no
//! events of a disabled subscription, so the interval is reported as lost. With `--once`
//! (the default) it exits 1 while any subscription stays disabled.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use monite_webhooks::watchdog::{WatchCheck, Watchdog};
use serde::Serialize;

use crate::failure::{self, Failure};
use crate::output::Output;

#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// One check, then exit: 1 while a subscription stays disabled (the default).
    #[arg(long, conflicts_with = "every")]
    once: bool,
    /// A check every DURATION (`60s`, `5m`), until interrupted.
    #[arg(long, value_name = "DURATION", value_parser = crate::time::parse_interval)]
    every: Option<Duration>,
    /// Re-enable each disabled subscription at once.
    #[arg(long)]
    reenable: bool,
}

/// One disabled subscription, as printed.
#[derive(Debug, Serialize)]
struct Disabled {
    id: String,
    object_type: String,
    reenabled: bool,
    error: Option<String>,
}

pub(crate) async fn run(args: &WatchArgs, output: Output) -> Result<ExitCode, Failure> {
    let every = args.every;
    let watchdog = Watchdog::builder(crate::api::client()?)
        .reenable(args.reenable)
        .build()?;
    loop {
        let check = watchdog.run_once().await?;
        print(&check, output);
        let Some(every) = every else {
            return Ok(failure::outcome(!check.any_still_disabled()));
        };
        tokio::time::sleep(every).await;
    }
}

fn print(check: &WatchCheck, output: Output) {
    let rows: Vec<Disabled> = check
        .disabled
        .iter()
        .map(|s| Disabled {
            id: s.id.clone(),
            object_type: s.object_type.as_str().to_owned(),
            reenabled: check.reenabled.contains(&s.id),
            error: check
                .failed
                .iter()
                .find(|(id, _)| *id == s.id)
                .map(|(_, e)| e.clone()),
        })
        .collect();
    output.print(&rows, |rows| {
        for row in rows {
            let what = if row.reenabled {
                "re-enabled; its events while disabled are lost"
            } else {
                "disabled"
            };
            println!("{} {} {what}", row.id, row.object_type);
            if let Some(error) = &row.error {
                eprintln!("error: cannot re-enable {}: {error}", row.id);
            }
        }
    });
}
