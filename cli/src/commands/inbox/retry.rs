//! `inbox retry`: one done or dead event pending again, with a fresh set of attempts.

use std::process::ExitCode;

use clap::Args;
use monite_webhooks::inbox::PostgresInbox;

use crate::failure::Failure;
use crate::output::Output;

#[derive(Debug, Args)]
pub(crate) struct RetryArgs {
    /// The event's row id (from `list`).
    id: i64,
}

pub(crate) async fn run(
    inbox: &PostgresInbox,
    args: &RetryArgs,
    output: Output,
) -> Result<ExitCode, Failure> {
    let id = args.id;
    let retried = inbox.retry(id).await?;
    let report = serde_json::json!({ "id": id, "retried": retried });
    output.print(&report, |_| {
        if retried {
            println!("event {id} is pending again");
        }
    });
    if !retried {
        return Err(Failure::negative(format!(
            "no inbox event {id} that is not running"
        )));
    }
    Ok(ExitCode::SUCCESS)
}
