//! How a command fails: one line on stderr and an exit code that tells why.

use std::fmt;
use std::process::ExitCode;

/// A command's failure. `Display` is the one line printed after `error: `.
#[derive(Debug)]
pub(crate) struct Failure {
    message: String,
    code: u8,
}

/// The check or delivery failed: an invalid signature, a non-2xx answer, an API error.
pub(crate) const NEGATIVE: u8 = 1;
/// The command could not run as asked: bad input, missing configuration.
pub(crate) const USAGE: u8 = 2;

impl Failure {
    /// A usage or configuration error (exit 2).
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: USAGE,
        }
    }

    /// A negative outcome (exit 1).
    pub(crate) fn negative(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: NEGATIVE,
        }
    }

    /// Prints the one line and returns the exit code.
    pub(crate) fn exit(self) -> ExitCode {
        eprintln!("error: {self}");
        ExitCode::from(self.code)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the underlying error put in it.
        let mut lines = self
            .message
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty());
        if let Some(first) = lines.next() {
            f.write_str(first)?;
        }
        for line in lines {
            write!(f, "; {line}")?;
        }
        Ok(())
    }
}

/// An error of the library, as a failure: API and transport errors are negative outcomes,
/// configuration errors are usage errors.
impl From<monite_webhooks::Error> for Failure {
    fn from(error: monite_webhooks::Error) -> Self {
        use monite_webhooks::ErrorKind;
        match error.kind() {
            ErrorKind::InvalidSecret | ErrorKind::Misconfigured => Self::usage(error.to_string()),
            _ => Self::negative(error.to_string()),
        }
    }
}

/// Exit code 0 or 1 for a yes/no outcome.
pub(crate) fn outcome(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(NEGATIVE)
    }
}
