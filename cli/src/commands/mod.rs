//! One module per command.

// A command's result is the tool's output: stdout is where the workspace's `print_stdout`
// lint (there to keep the library and the tool's plumbing quiet) does not apply.
#![allow(
    clippy::print_stdout,
    reason = "a command's result is the tool's output"
)]

pub(crate) mod deliveries;
pub(crate) mod emulate;
pub(crate) mod fetch;
pub(crate) mod inbox;
pub(crate) mod listen;
pub(crate) mod reconcile;
pub(crate) mod replay;
pub(crate) mod send;
pub(crate) mod sign;
pub(crate) mod simulate_retries;
pub(crate) mod subscriptions;
pub(crate) mod verify;
pub(crate) mod watch;

use std::io::Read as _;
use std::path::Path;

use crate::failure::Failure;

/// A body file's bytes, exactly; `-` reads stdin.
pub(crate) fn read_body(path: &Path) -> Result<Vec<u8>, Failure> {
    if path == Path::new("-") {
        let mut body = Vec::new();
        std::io::stdin()
            .read_to_end(&mut body)
            .map_err(|e| Failure::usage(format!("cannot read the body from stdin: {e}")))?;
        return Ok(body);
    }
    std::fs::read(path).map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))
}
