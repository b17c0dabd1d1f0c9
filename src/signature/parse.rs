//! The `Monite-Signature` header: parsing it, by the short way for Monite's own shape and
//! in full for any other.

use super::hex;
use crate::error::{Error, ErrorKind, Result};

/// A parsed `Monite-Signature` value: `t=<unix seconds>` and one or more `v1=<hex>`.
///
/// [`Verifier`](crate::Verifier) parses the header itself; this is for diagnostics, such as
/// logging when a refused delivery was signed. Parsing checks the shape once and allocates
/// nothing; the `v1` values are read again, lazily, when asked for.
///
/// ```
/// use monite_webhooks::signature::SignatureHeader;
///
/// let header = SignatureHeader::parse(
///     b"t=1710139795,v1=a9618bc1d19bf749467d59db36c9a7c2eac23052bb45cf5415aa77933ff31f87",
/// )?;
/// assert_eq!(header.timestamp(), 1_710_139_795);
/// assert_eq!(header.signatures().count(), 1);
/// # Ok::<(), monite_webhooks::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SignatureHeader<'h> {
    timestamp: u64,
    timestamp_text: &'h [u8],
    raw: &'h [u8],
    // Where the first `v1` element starts, so reading the signatures skips what precedes it.
    first_v1: usize,
}

impl<'h> SignatureHeader<'h> {
    /// Parses a header value: comma-separated `key=value` elements, whitespace around them
    /// ignored, exactly one `t` (whole seconds, fitting in `u64`), at least one `v1`, unknown
    /// keys ignored.
    ///
    /// # Errors
    /// [`ErrorKind::MalformedSignature`], saying what is wrong.
    pub fn parse(raw: &'h [u8]) -> Result<Self> {
        let mut timestamp = None;
        let mut first_v1 = None;
        for (at, key, value) in elements(raw, 0) {
            match key {
                b"t" if timestamp.is_some() => {
                    return Err(malformed("it has more than one `t` element"));
                }
                b"t" => timestamp = Some((parse_timestamp(value)?, value)),
                b"v1" => {
                    first_v1.get_or_insert(at);
                }
                _ => {}
            }
        }
        let Some((timestamp, timestamp_text)) = timestamp else {
            return Err(malformed("it has no `t` timestamp"));
        };
        let Some(first_v1) = first_v1 else {
            return Err(malformed("it has no `v1` signature"));
        };
        Ok(Self {
            timestamp,
            timestamp_text,
            raw,
            first_v1,
        })
    }

    /// The signed Unix timestamp, in seconds.
    #[must_use]
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// The timestamp exactly as sent: this, not a re-formatted number, is what was signed.
    pub(crate) fn timestamp_text(&self) -> &'h [u8] {
        self.timestamp_text
    }

    /// Every `v1` signature that is well-formed (64 hex digits), decoded; others can never
    /// match and are left out.
    pub fn signatures(&self) -> impl Iterator<Item = [u8; 32]> + 'h {
        elements(self.raw, self.first_v1)
            .filter(|(_, key, _)| *key == b"v1")
            .filter_map(|(_, _, value)| hex::decode_32(value))
    }
}

/// The `key=value` elements of `raw` from byte `from` on, with where each starts; elements
/// with no `=` are skipped, and whitespace around keys and values is trimmed.
fn elements(raw: &[u8], from: usize) -> impl Iterator<Item = (usize, &[u8], &[u8])> {
    let mut start = from;
    std::iter::from_fn(move || {
        while let Some(rest) = raw.get(start..) {
            let at = start;
            let end = memchr::memchr(b',', rest).unwrap_or(rest.len());
            start += end + 1;
            let element = &rest[..end];
            if let Some(eq) = memchr::memchr(b'=', element) {
                return Some((
                    at,
                    element[..eq].trim_ascii(),
                    element[eq + 1..].trim_ascii(),
                ));
            }
        }
        None
    })
}

/// The header exactly as Monite sends it, `t=<digits>,v1=<64 hex digits>`: its timestamp,
/// the timestamp's text and the tag. `None` for any other shape, which
/// [`SignatureHeader::parse`] then reads in full; where this answers, that agrees.
///
/// The fixed shape is cut from the end instead of scanned: the verifier's fixed cost per
/// request is mostly this and the clock.
#[inline]
pub(crate) fn parse_usual(raw: &[u8]) -> Option<(u64, &[u8], [u8; 32])> {
    let rest = raw.strip_prefix(b"t=")?;
    let (digits, tail) = rest.split_at_checked(rest.len().checked_sub(68)?)?;
    let tag = hex::decode_32(tail.strip_prefix(b",v1=")?)?;
    Some((whole_number(digits)?, digits, tag))
}

fn parse_timestamp(text: &[u8]) -> Result<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return Err(malformed("its `t` is not a whole number of seconds"));
    }
    whole_number(text).ok_or_else(|| malformed("its `t` is too large"))
}

/// Digits only: no sign, no spaces inside, and overflow is `None`, not a wrap.
#[inline]
fn whole_number(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    // Nineteen digits always fit in a `u64`: every timestamp takes this branch-free way,
    // which costs half the checked one below (a tenth of the verifier's own work).
    if text.len() <= 19 {
        let (n, valid) = text.iter().fold((0u64, true), |(n, valid), &d| {
            let digit = d.wrapping_sub(b'0');
            // Wrapping: a non-digit may push the sum past `u64::MAX` before it is refused.
            (
                n.wrapping_mul(10).wrapping_add(u64::from(digit)),
                valid & (digit <= 9),
            )
        });
        return valid.then_some(n);
    }
    text.iter().try_fold(0u64, |n, &d| {
        let digit = d.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

fn malformed(why: &'static str) -> Error {
    Error::new(
        ErrorKind::MalformedSignature,
        format!("malformed Monite-Signature header: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let header = SignatureHeader::parse(
            b"t=1710139795,v1=a9618bc1d19bf749467d59db36c9a7c2eac23052bb45cf5415aa77933ff31f87",
        )
        .unwrap();
        assert_eq!(header.timestamp(), 1_710_139_795);
        assert_eq!(header.timestamp_text(), b"1710139795");
        assert_eq!(header.signatures().count(), 1);
    }

    #[test]
    fn malformed_headers_say_why() {
        for (raw, why) in [
            (&b""[..], "no `t`"),
            (b"v1=00", "no `t`"),
            (b"t=1", "no `v1`"),
            (b"t=1,t=1,v1=00", "more than one `t`"),
            (b"t=-1,v1=00", "not a whole number"),
            (b"t=+1,v1=00", "not a whole number"),
            (b"t=,v1=00", "not a whole number"),
            (b"t=18446744073709551616,v1=00", "too large"),
        ] {
            let err = SignatureHeader::parse(raw).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::MalformedSignature);
            assert!(err.to_string().contains(why), "{err} for {raw:?}");
        }
        assert_eq!(
            SignatureHeader::parse(b"t=18446744073709551615,v1=00")
                .unwrap()
                .timestamp(),
            u64::MAX
        );
    }

    proptest::proptest! {
        #[test]
        fn the_usual_shape_reads_as_the_full_parser_reads_it(
            t in "[0-9+ -]{0,22}",
            separator in ",|, | ,|;",
            key in "v1|v0| v1|v1 ",
            tag in "[0-9a-fA-F]{63,65}|[0-9a-g]{64}",
            extra in "|,|,v1=00| ",
        ) {
            let raw = format!("t={t}{separator}{key}={tag}{extra}");
            let full = SignatureHeader::parse(raw.as_bytes());
            if let Some((timestamp, text, tag)) = parse_usual(raw.as_bytes()) {
                let full = full.unwrap();
                proptest::prop_assert_eq!(full.timestamp(), timestamp);
                proptest::prop_assert_eq!(full.timestamp_text(), text);
                proptest::prop_assert_eq!(full.signatures().collect::<Vec<_>>(), vec![tag]);
            } else {
                // Only other shapes fall through: never the usual one.
                let usual = t.bytes().all(|b| b.is_ascii_digit()) && !t.is_empty()
                    && separator == "," && key == "v1" && extra.is_empty()
                    && tag.len() == 64 && tag.bytes().all(|b| b.is_ascii_hexdigit())
                    && full.is_ok();
                proptest::prop_assert!(!usual, "{}", raw);
            }
        }
    }

    #[test]
    fn short_or_non_hex_v1_values_are_kept_out_of_comparison() {
        let header = SignatureHeader::parse(b"t=1, v1=zz ,v0=00,v1= 00 ,x").unwrap();
        assert_eq!(header.signatures().count(), 0);
    }
}
