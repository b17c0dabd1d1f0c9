//! `inbox pause` and `resume`: whether the namespace's workers claim events.

use std::process::ExitCode;

use monite_webhooks::inbox::PostgresInbox;

use crate::failure::Failure;
use crate::output::Output;

/// Pauses the namespace's workers, or resumes them when `pause` is false.
pub(crate) async fn run(
    inbox: &PostgresInbox,
    namespace: &str,
    pause: bool,
    output: Output,
) -> Result<ExitCode, Failure> {
    if pause {
        inbox.pause().await?;
    } else {
        inbox.resume().await?;
    }
    output.print(&serde_json::json!({ "paused": pause }), |_| {
        if pause {
            println!("paused: no worker of {namespace} claims until `inbox resume`");
        } else {
            println!("resumed: workers of {namespace} claim again");
        }
    });
    Ok(ExitCode::SUCCESS)
}
