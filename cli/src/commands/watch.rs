//! `watch`: the library's subscription watchdog. Each check prints every disabled
//! subscription (id, object type), re-enabling it with `--reenable`; Monite records no
//! events of a disabled subscription, so the interval is reported as lost. With `--once`
//! (the default) it exits 1 while any subscription stays disabled.

use std::process::ExitCode;

use monite_webhooks::client::reconcile::{WatchCheck, Watchdog};
use serde::Serialize;

use crate::args::WatchArgs;
use crate::failure::{self, Failure};

/// One disabled subscription, as printed.
#[derive(Debug, Serialize)]
struct Disabled {
    id: String,
    object_type: String,
    reenabled: bool,
    error: Option<String>,
}

pub(crate) async fn run(args: &WatchArgs, json: bool) -> Result<ExitCode, Failure> {
    let every = args
        .every
        .as_deref()
        .map(|text| super::reconcile::duration(text, "--every"))
        .transpose()?;
    let watchdog = Watchdog::new(crate::api::client()?).reenable(args.reenable);
    loop {
        let check = watchdog.check_once().await?;
        print(&check, json);
        let Some(every) = every else {
            return Ok(failure::outcome(!check.any_still_disabled()));
        };
        tokio::time::sleep(every).await;
    }
}

fn print(check: &WatchCheck, json: bool) {
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
    if json {
        super::print_json(&rows);
        return;
    }
    for row in &rows {
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
}
