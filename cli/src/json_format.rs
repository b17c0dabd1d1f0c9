//! Re-encodings of a JSON body that keep its keys in order, as a framework that parsed and
//! re-serialised it would have produced: compact, Python's `", "`/`": "`, and indented. A
//! signature that matches one of these, and not the bytes given, means the body was
//! re-serialised before verification.

/// One lexical token; strings and scalars keep their exact text (escapes included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Open(u8),
    Close(u8),
    Comma,
    Colon,
    Value(&'a [u8]),
}

/// The tokens of `json`, which must already be known to be valid JSON.
fn tokens(json: &[u8]) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b @ (b'{' | b'[') => {
                out.push(Token::Open(b));
                i += 1;
            }
            b @ (b'}' | b']') => {
                out.push(Token::Close(b));
                i += 1;
            }
            b',' => {
                out.push(Token::Comma);
                i += 1;
            }
            b':' => {
                out.push(Token::Colon);
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < json.len() && json[i] != b'"' {
                    i += if json[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(json.len());
                out.push(Token::Value(&json[start..i]));
            }
            _ => {
                let start = i;
                while i < json.len() && !b" \t\n\r,:]}".contains(&json[i]) {
                    i += 1;
                }
                out.push(Token::Value(&json[start..i]));
            }
        }
    }
    out
}

/// How to lay the tokens out.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Layout {
    /// No whitespace: `{"a":1,"b":[1,2]}` (JavaScript's and serde's default).
    Compact,
    /// `{"a": 1, "b": [1, 2]}` (Python's `json.dumps` default).
    Spaced,
    /// Indented by this many spaces per level, `": "` after keys.
    Indented(usize),
}

impl Layout {
    /// A short name for reports.
    pub(crate) fn describe(self) -> String {
        match self {
            Self::Compact => "compact".to_owned(),
            Self::Spaced => "Python-style (`, ` and `: `)".to_owned(),
            Self::Indented(n) => format!("pretty-printed ({n}-space indent)"),
        }
    }
}

/// `json` laid out as `layout` says; `None` if it is not valid JSON.
pub(crate) fn reformat(json: &[u8], layout: Layout) -> Option<Vec<u8>> {
    serde_json::from_slice::<serde::de::IgnoredAny>(json).ok()?;
    let tokens = tokens(json);
    let mut out = Vec::with_capacity(json.len() + json.len() / 4);
    let mut depth = 0usize;
    let newline = |out: &mut Vec<u8>, depth: usize, width: usize| {
        out.push(b'\n');
        out.extend(std::iter::repeat_n(b' ', depth * width));
    };
    for (i, token) in tokens.iter().enumerate() {
        match (*token, layout) {
            (Token::Open(b), Layout::Indented(width)) => {
                out.push(b);
                depth += 1;
                if !matches!(tokens.get(i + 1), Some(Token::Close(_))) {
                    newline(&mut out, depth, width);
                }
            }
            (Token::Close(b), Layout::Indented(width)) => {
                depth = depth.saturating_sub(1);
                if !matches!(tokens.get(i.wrapping_sub(1)), Some(Token::Open(_))) {
                    newline(&mut out, depth, width);
                }
                out.push(b);
            }
            (Token::Comma, Layout::Indented(width)) => {
                out.push(b',');
                newline(&mut out, depth, width);
            }
            (Token::Open(b) | Token::Close(b), _) => out.push(b),
            (Token::Comma, Layout::Spaced) => out.extend_from_slice(b", "),
            (Token::Comma, Layout::Compact) => out.push(b','),
            (Token::Colon, Layout::Compact) => out.push(b':'),
            (Token::Colon, _) => out.extend_from_slice(b": "),
            (Token::Value(text), _) => out.extend_from_slice(text),
        }
    }
    Some(out)
}

/// The body parsed into a map and written back with its keys sorted, as serde_json's
/// `Value` (and Python's `sort_keys=True`) write it.
pub(crate) fn sorted_keys(json: &[u8]) -> Option<Vec<u8>> {
    let value: serde_json::Value = serde_json::from_slice(json).ok()?;
    let sorted = sort(value);
    serde_json::to_vec(&sorted).ok()
}

fn sort(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sort(v))).collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sort).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] =
        br#"{"id": "a\"b", "object": {"id": "x", "tags": [1, 2]}, "e": {}, "n": null}"#;

    #[test]
    fn layouts_match_the_usual_serialisers() {
        assert_eq!(
            reformat(BODY, Layout::Compact).unwrap(),
            br#"{"id":"a\"b","object":{"id":"x","tags":[1,2]},"e":{},"n":null}"#
        );
        assert_eq!(reformat(BODY, Layout::Spaced).unwrap(), BODY);
        let value: serde_json::Value = serde_json::from_slice(BODY).unwrap();
        // serde_json's pretty printer, with keys kept in order by the check below.
        let pretty = reformat(BODY, Layout::Indented(2)).unwrap();
        let reparsed: serde_json::Value = serde_json::from_slice(&pretty).unwrap();
        assert_eq!(reparsed, value);
        assert_eq!(
            String::from_utf8(pretty).unwrap(),
            "{\n  \"id\": \"a\\\"b\",\n  \"object\": {\n    \"id\": \"x\",\n    \"tags\": [\n      1,\n      2\n    ]\n  },\n  \"e\": {},\n  \"n\": null\n}"
        );
        assert!(reformat(b"{not json", Layout::Compact).is_none());
    }

    #[test]
    fn sorted_keys_sort_every_level() {
        assert_eq!(
            sorted_keys(br#"{"b": {"d": 1, "c": 2}, "a": 0}"#).unwrap(),
            br#"{"a":0,"b":{"c":2,"d":1}}"#
        );
    }
}
