//! `inbox status`: events by state, and the age of the oldest pending one.

use std::process::ExitCode;

use monite_webhooks::inbox::PostgresInbox;

use crate::failure::Failure;
use crate::output::Output;

pub(crate) async fn run(inbox: &PostgresInbox, output: Output) -> Result<ExitCode, Failure> {
    let status = inbox.status().await?;
    output.print(&status, |status| {
        println!(
            "pending {}  retrying {}  running {}  done {}  dead {}",
            status.pending, status.retrying, status.running, status.done, status.dead
        );
        if let Some(age) = status.oldest_pending_seconds {
            println!("oldest pending: {age} s");
        }
    });
    Ok(ExitCode::SUCCESS)
}
