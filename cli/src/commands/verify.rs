//! `verify`: check a signature with the library's verifier; explain a failure.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use monite_webhooks::signature::SIGNATURE_HEADER;

use crate::diagnose::diagnose;
use crate::failure::{self, Failure};
use crate::options::SecretArgs;
use crate::output::Output;
use crate::secrets;

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    secrets: SecretArgs,
    /// The `Monite-Signature` value (a whole `Monite-Signature: ...` line is accepted).
    #[arg(long, value_name = "VALUE")]
    signature: String,
    /// Unix seconds to check the timestamp against; now by default.
    #[arg(long, value_name = "T")]
    at: Option<u64>,
    /// Timestamp tolerance in seconds, either way.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    tolerance: u64,
    /// The body exactly as received (`-` for stdin).
    #[arg(value_name = "BODY_FILE")]
    body_file: PathBuf,
}

pub(crate) fn run(args: &VerifyArgs, output: Output) -> Result<ExitCode, Failure> {
    secrets::check_stdin(&args.secrets, &args.body_file)?;
    let body = super::read_body(&args.body_file)?;
    let named = secrets::resolve(&args.secrets)?;
    let convention = args.secrets.convention.into();
    let verifier = secrets::verifier(&named, convention)?
        .with_tolerance(Duration::from_secs(args.tolerance))
        // Any body the user hands over is checked, whatever its size.
        .with_max_body_bytes(usize::MAX);
    let value = header_value(&args.signature);
    let at = args.at.unwrap_or_else(crate::time::unix_now);
    let headers = [(SIGNATURE_HEADER, value.as_bytes())];
    let verdict = verifier.verify_at(&headers, &body, at);
    let diagnosis = diagnose(
        value.as_bytes(),
        &body,
        &named,
        convention,
        at,
        args.tolerance,
    );
    let valid = verdict.is_ok();
    let (secret, error) = match &verdict {
        Ok(verified) => (verified.secret().label().map(str::to_owned), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let report = serde_json::json!({
        "valid": valid,
        "secret": secret,
        "error": error,
        "at": at,
        "diagnosis": diagnosis,
    });
    output.print(&report, |_| match &verdict {
        Ok(verified) => println!(
            "valid: signed with {} at t={} ({} s before {at})",
            verified.secret().label().unwrap_or("a secret"),
            verified.timestamp(),
            i128::from(at) - i128::from(verified.timestamp()),
        ),
        Err(e) => {
            println!("invalid: {e}");
            for finding in &diagnosis.findings {
                println!("  - {finding}");
            }
        }
    });
    Ok(failure::outcome(valid))
}

/// The value, from a bare value or a whole `Monite-Signature: ...` header line.
fn header_value(given: &str) -> String {
    let given = given.trim();
    match given.split_once(':') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case(SIGNATURE_HEADER) => {
            value.trim().to_owned()
        }
        _ => given.to_owned(),
    }
}
