//! A validating JSON scanner that hands out object members as spans of the input.
//!
//! The receiver needs a few top-level strings of each body and the raw `object`; serde_json
//! spends longer than the whole HMAC just walking a 400-byte envelope (`parts/*` in
//! `benches/verify.rs`). This reads the same grammar in one pass and copies nothing, so
//! invalid JSON is still refused. It checks syntax only, as serde_json does where it skips
//! a value: strings are not decoded (an escaped unpaired surrogate, `"\ud800"`, passes;
//! callers decode the few strings they keep) and numbers are not converted (`1e400` and
//! 400-digit integers pass). Two differences from serde_json are deliberate: nesting past
//! `MAX_DEPTH` is refused wherever it is, and the caller checks that the whole input is
//! UTF-8. `tests/receive/envelope_differential.rs` checks `Event::parse` against a serde_json model
//! of these rules.

/// Nesting deeper than this (the outermost array or object is level 1) is refused, so that
/// a hostile body cannot exhaust the stack.
/// serde_json has the same limit where it builds values (it skips deeper ignored values);
/// no Monite object comes near it.
const MAX_DEPTH: usize = 128;

/// Where and why the input stopped being JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub(crate) at: usize,
    pub(crate) what: &'static str,
}

/// A string's contents (without the quotes) as a span of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JsonStr {
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// How many `\` escapes it holds: if any, its text must be decoded rather than sliced.
    /// A count rather than a flag so that the struct has no padding, which copies slowly.
    pub(crate) escapes: usize,
}

/// A value, as far as a caller that wants strings needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    Str(JsonStr),
    Null,
    /// A number, `true`, `false`, an array or an object, skipped.
    Other,
}

pub(crate) type Scan<T> = Result<T, SyntaxError>;

pub(crate) struct Scanner<'a> {
    input: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self {
            input,
            pos: 0,
            depth: 0,
        }
    }

    /// The offset of the next byte.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// The next byte after whitespace, not consumed.
    pub(crate) fn peek(&mut self) -> Option<u8> {
        while let Some(&byte) = self.input.get(self.pos) {
            if !matches!(byte, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(byte);
            }
            self.pos += 1;
        }
        None
    }

    /// Reads an object, calling `member` with each key; `member` must read the value.
    pub(crate) fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, JsonStr) -> Scan<()>,
    ) -> Scan<()> {
        self.sequence([b'{', b'}'], "expected `,` or `}`", |scanner| {
            scanner.expect(b'"', "expected a string key")?;
            let key = scanner.string()?;
            scanner.expect(b':', "expected `:`")?;
            member(scanner, key)
        })
    }

    fn array(&mut self) -> Scan<()> {
        self.sequence([b'[', b']'], "expected `,` or `]`", Self::skip_value)
    }

    /// What objects and arrays share: `open`, then `item`s separated by commas, then
    /// `close`, one level deeper.
    fn sequence(
        &mut self,
        [open, close]: [u8; 2],
        expected: &'static str,
        mut item: impl FnMut(&mut Self) -> Scan<()>,
    ) -> Scan<()> {
        if self.peek() != Some(open) {
            return Err(self.error_here("expected a value"));
        }
        self.pos += 1;
        self.enter()?;
        if self.peek() == Some(close) {
            self.pos += 1;
        } else {
            loop {
                item(self)?;
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(byte) if byte == close => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.error_here(expected)),
                }
            }
        }
        self.depth -= 1;
        Ok(())
    }

    /// Reads any value, telling strings and null apart from the rest.
    // Inlined so that the result comes back in registers; see `string`.
    #[inline(always)]
    pub(crate) fn scalar(&mut self) -> Scan<Scalar> {
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                self.string().map(Scalar::Str)
            }
            Some(b'n') => self.literal(b"null").map(|()| Scalar::Null),
            Some(b't') => self.literal(b"true").map(|()| Scalar::Other),
            Some(b'f') => self.literal(b"false").map(|()| Scalar::Other),
            Some(b'-' | b'0'..=b'9') => self.number().map(|()| Scalar::Other),
            Some(b'{' | b'[') => self.container().map(|()| Scalar::Other),
            _ => Err(self.error_here("expected a value")),
        }
    }

    #[inline(always)]
    pub(crate) fn skip_value(&mut self) -> Scan<()> {
        self.scalar().map(drop)
    }

    /// An object or array, skipped: the one place the scan recurses.
    #[inline(never)]
    fn container(&mut self) -> Scan<()> {
        if self.peek() == Some(b'[') {
            self.array()
        } else {
            self.object(|scanner, _| scanner.skip_value())
        }
    }

    /// Only whitespace may follow the top-level value.
    pub(crate) fn end(&mut self) -> Scan<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error_here("trailing characters")),
        }
    }

    /// The rest of a string whose opening quote was consumed.
    // Inlined so that the span comes back in registers: returned through memory, it is
    // stored in words and reloaded in wider pieces, which stalls store forwarding.
    #[inline(always)]
    fn string(&mut self) -> Scan<JsonStr> {
        let start = self.pos;
        let mut escapes = 0;
        loop {
            self.pos = special_byte(self.input, self.pos);
            match self.input.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(JsonStr {
                        start,
                        end: self.pos - 1,
                        escapes,
                    });
                }
                Some(b'\\') => {
                    escapes += 1;
                    self.escape()?;
                }
                Some(_) => return Err(self.error_here("control character in a string")),
                None => return Err(self.error_here("unterminated string")),
            }
        }
    }

    /// One escape sequence, at its backslash.
    fn escape(&mut self) -> Scan<()> {
        let valid = match self.input.get(self.pos + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => 2,
            Some(b'u')
                if self
                    .input
                    .get(self.pos + 2..self.pos + 6)
                    .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)) =>
            {
                6
            }
            _ => return Err(self.error_here("invalid escape")),
        };
        self.pos += valid;
        Ok(())
    }

    fn number(&mut self) -> Scan<()> {
        if self.input.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match self.input.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error_here("invalid number")),
        }
        if self.input.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            self.at_least_one_digit()?;
        }
        if matches!(self.input.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.input.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.at_least_one_digit()?;
        }
        Ok(())
    }

    fn at_least_one_digit(&mut self) -> Scan<()> {
        if !self.input.get(self.pos).is_some_and(u8::is_ascii_digit) {
            return Err(self.error_here("invalid number"));
        }
        self.digits();
        Ok(())
    }

    fn digits(&mut self) {
        while self.input.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Scan<()> {
        if self.input.get(self.pos..self.pos + word.len()) != Some(word) {
            return Err(self.error_here("expected a value"));
        }
        self.pos += word.len();
        Ok(())
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Scan<()> {
        if self.peek() != Some(byte) {
            return Err(self.error_here(what));
        }
        self.pos += 1;
        Ok(())
    }

    fn enter(&mut self) -> Scan<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_here("nested too deeply"));
        }
        Ok(())
    }

    pub(crate) fn error_here(&self, what: &'static str) -> SyntaxError {
        SyntaxError { at: self.pos, what }
    }
}

/// The offset of the first `"`, `\` or control character at or after `from`, or the
/// input's length. Eight bytes per step, reading past the string's end while the input
/// lasts: strings are most of an envelope's bytes, and most of them are short.
fn special_byte(input: &[u8], from: usize) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // The high bit of each byte of `word` below `n` (exact for the lowest such byte,
    // which is the only one used).
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS;
    let mut at = from;
    while let Some(chunk) = input.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        let word = u64::from_le_bytes(*chunk);
        let found = below(word ^ (ONES * u64::from(b'"')), 1)
            | below(word ^ (ONES * u64::from(b'\\')), 1)
            | below(word, 0x20);
        if found != 0 {
            return at + (found.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    let tail = input.get(at..).unwrap_or_default();
    at + tail
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .unwrap_or(tail.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(json: &str) -> Scan<Vec<(String, Scalar)>> {
        let mut scanner = Scanner::new(json.as_bytes());
        let mut out = Vec::new();
        scanner.object(|scanner, key| {
            out.push((json[key.start..key.end].to_owned(), scanner.scalar()?));
            Ok(())
        })?;
        scanner.end()?;
        Ok(out)
    }

    #[test]
    fn members_come_back_as_spans() {
        let json = r#" {"a":"x\"y", "b" : [1, {"c": null}], "d":null,"e":-0.5e+3} "#;
        let members = keys(json).unwrap();
        let names: Vec<_> = members.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["a", "b", "d", "e"]);
        let Scalar::Str(text) = members[0].1 else {
            panic!("{members:?}")
        };
        assert_eq!(&json[text.start..text.end], r#"x\"y"#);
        assert_eq!(text.escapes, 1);
        assert_eq!(members[1].1, Scalar::Other);
        assert_eq!(members[2].1, Scalar::Null);
    }

    #[test]
    fn special_bytes_are_found_in_every_lane() {
        for len in 0..20 {
            for at in 0..len {
                for special in [b'"', b'\\', 0x1f, 0] {
                    let mut input = vec![b'a'; len];
                    input[at] = special;
                    assert_eq!(special_byte(&input, 0), at, "{len} {at} {special}");
                }
            }
            assert_eq!(special_byte(&vec![0xe9; len], 0), len);
        }
    }

    #[test]
    fn invalid_json_is_refused() {
        for json in [
            "",
            "{",
            "[]",
            r#"{"a"}"#,
            r#"{"a":}"#,
            r#"{"a":1,}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":tru}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12"}"#,
            "{\"a\":\"\t\"}",
            r#"{"a":[1,]}"#,
            r#"{"a":1} x"#,
            r#"{a:1}"#,
        ] {
            assert!(keys(json).is_err(), "{json:?}");
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert_eq!(keys(&deep).unwrap_err().what, "nested too deeply");
    }
}
