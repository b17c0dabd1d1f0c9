//! Crate-private parts the fuzz targets in `fuzz/` compare against public ones. Compiled
//! only under `--cfg fuzzing`, which `cargo fuzz` sets; never part of the API.

use crate::signature::{self, SignatureHeader};

/// The verifier's fast path for `t=<digits>,v1=<64 hex>`: timestamp, its text, the tag.
#[must_use]
pub fn parse_usual(raw: &[u8]) -> Option<(u64, &[u8], [u8; 32])> {
    signature::parse_usual(raw)
}

/// The timestamp exactly as sent, which is what was signed.
#[must_use]
pub fn timestamp_text<'h>(header: &SignatureHeader<'h>) -> &'h [u8] {
    header.timestamp_text()
}
