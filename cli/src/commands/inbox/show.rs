//! `inbox show`: one event, with its body.

use std::process::ExitCode;

use clap::Args;
use monite_webhooks::inbox::PostgresInbox;

use crate::failure::Failure;
use crate::output::Output;

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The event's row id (from `list`).
    id: i64,
}

pub(crate) async fn run(
    inbox: &PostgresInbox,
    args: &ShowArgs,
    output: Output,
) -> Result<ExitCode, Failure> {
    let id = args.id;
    let Some((event, body)) = inbox.show(id).await? else {
        return Err(Failure::negative(format!("no inbox event {id}")));
    };
    let report = serde_json::json!({ "event": event, "body": body });
    output.print(&report, |_| {
        super::print_row(&event);
        if let Some(error) = &event.last_error {
            println!("last error: {error}");
        }
        println!("{body}");
    });
    Ok(ExitCode::SUCCESS)
}
