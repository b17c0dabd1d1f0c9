//! Where a command's result goes: text for a person, or one JSON document with `--json`.

// A command's result is the tool's output: stdout is where the workspace's `print_stdout`
// lint (there to keep the library and the tool's plumbing quiet) does not apply.
#![allow(
    clippy::print_stdout,
    reason = "a command's result is the tool's output"
)]

use std::fmt;

use serde::Serialize;

/// Text or JSON, as `--json` chose; every command prints its result through it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    json: bool,
}

impl Output {
    pub(crate) const fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether the result is one JSON document (so stdout holds nothing else).
    pub(crate) const fn is_json(self) -> bool {
        self.json
    }

    /// The result: `report` as one JSON document with `--json`, else what `text` prints.
    pub(crate) fn print<R: Serialize + ?Sized>(self, report: &R, text: impl FnOnce(&R)) {
        if self.json {
            print_json(report);
        } else {
            text(report);
        }
    }

    /// A line of the text result on stdout, such as one row as it comes; none with `--json`.
    pub(crate) fn text_line(self, line: fmt::Arguments<'_>) {
        if !self.json {
            println!("{line}");
        }
    }

    /// A line for a person on stderr, such as an error the text result explains; none with
    /// `--json`, whose document says it.
    pub(crate) fn text_error_line(self, line: fmt::Arguments<'_>) {
        if !self.json {
            eprintln!("{line}");
        }
    }
}

/// Prints `value` as one JSON document on stdout.
fn print_json(value: &(impl Serialize + ?Sized)) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot encode the result as JSON: {e}"),
    }
}
