//! `inbox status`: events by state, and the age of the oldest pending one.

use std::process::ExitCode;

use monite_webhooks::inbox::PostgresInbox;

use crate::failure::Failure;
use crate::output::Output;

/// Pending here is what the `monite_webhooks_inbox_pending` gauge counts: first attempts
/// and retries. The `--json` field `pending` keeps its older meaning for scripts (first
/// attempts only); `pending_with_retries` is the gauge's figure.
pub(crate) async fn run(inbox: &PostgresInbox, output: Output) -> Result<ExitCode, Failure> {
    let counts = inbox.status().await?;
    let oldest = counts.oldest_pending.map(|age| age.as_secs());
    let report = serde_json::json!({
        "pending": counts.first_attempts(),
        "pending_with_retries": counts.pending,
        "retrying": counts.retrying,
        "running": counts.running,
        "done": counts.done.unwrap_or(0),
        "dead": counts.dead,
        "oldest_pending_seconds": oldest,
    });
    output.print(&report, |_| {
        println!(
            "pending {} ({} of them retries)  running {}  done {}  dead {}",
            counts.pending,
            counts.retrying,
            counts.running,
            counts.done.unwrap_or(0),
            counts.dead
        );
        if let Some(age) = oldest {
            println!("oldest pending: {age} s");
        }
    });
    Ok(ExitCode::SUCCESS)
}
