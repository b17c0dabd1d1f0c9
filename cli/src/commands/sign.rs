//! `sign`: the `Monite-Signature` value for a body.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use monite_webhooks::testing::sign;

use crate::failure::Failure;
use crate::options::SecretArgs;
use crate::output::Output;
use crate::secrets;

#[derive(Debug, Args)]
pub(crate) struct SignArgs {
    #[command(flatten)]
    secrets: SecretArgs,
    /// Unix seconds to sign at; now by default.
    #[arg(long, value_name = "T")]
    timestamp: Option<u64>,
    /// The body, signed byte for byte (`-` for stdin).
    #[arg(value_name = "BODY_FILE")]
    body_file: PathBuf,
}

pub(crate) fn run(args: &SignArgs, output: Output) -> Result<ExitCode, Failure> {
    secrets::check_stdin(&args.secrets, &args.body_file)?;
    let body = super::read_body(&args.body_file)?;
    let (secret, _) = secrets::signing(&args.secrets)?;
    let timestamp = args.timestamp.unwrap_or_else(crate::time::unix_now);
    let value = sign(&secret, timestamp, &body);
    let report = serde_json::json!({
        "signature": value,
        "timestamp": timestamp,
        "secret": secret.label(),
        "convention": secret.convention().as_str(),
        "body_bytes": body.len(),
    });
    output.print(&report, |_| println!("{value}"));
    Ok(ExitCode::SUCCESS)
}
