//! `inbox pause` and `resume`: whether the namespace's workers claim events.

use std::process::ExitCode;

use monite_webhooks::inbox::PostgresInbox;

use crate::failure::Failure;
use crate::output::Output;

pub(crate) async fn pause(
    inbox: &PostgresInbox,
    namespace: &str,
    output: Output,
) -> Result<ExitCode, Failure> {
    inbox.pause().await?;
    output.print(&serde_json::json!({ "paused": true }), |_| {
        println!("paused: no worker of {namespace} claims until `inbox resume`");
    });
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn resume(
    inbox: &PostgresInbox,
    namespace: &str,
    output: Output,
) -> Result<ExitCode, Failure> {
    inbox.resume().await?;
    output.print(&serde_json::json!({ "paused": false }), |_| {
        println!("resumed: workers of {namespace} claim again");
    });
    Ok(ExitCode::SUCCESS)
}
