//! `sign`: the `Monite-Signature` value for a body.

use std::process::ExitCode;

use monite_webhooks::testing::sign;

use crate::args::SignArgs;
use crate::failure::Failure;
use crate::secrets;

pub(crate) fn run(args: &SignArgs, json: bool) -> Result<ExitCode, Failure> {
    secrets::check_stdin(&args.secrets, &args.body_file)?;
    let body = super::read_body(&args.body_file)?;
    let (secret, _) = secrets::signing(&args.secrets)?;
    let timestamp = args.timestamp.unwrap_or_else(crate::time::unix_now);
    let value = sign(&secret, timestamp, &body);
    if json {
        super::print_json(&serde_json::json!({
            "signature": value,
            "timestamp": timestamp,
            "secret": secret.label(),
            "convention": secret.convention().as_str(),
            "body_bytes": body.len(),
        }));
    } else {
        println!("{value}");
    }
    Ok(ExitCode::SUCCESS)
}
