//! The `webhook_subscription_id` a body names, read from its raw bytes before verification:
//! a hint that picks which secrets to try, so it must cost next to nothing and never fail.

use std::sync::LazyLock;

use memchr::memmem::{Finder, FinderRev};

/// How far from the end the field is looked for when the body does not end with it.
const TAIL: usize = 512;

const FIELD: &[u8] = b"\"webhook_subscription_id\"";

// Built once: building a finder costs more than searching a small envelope with it.
static FIND_LAST: LazyLock<FinderRev<'static>> = LazyLock::new(|| FinderRev::new(FIELD));
static FIND: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(FIELD));

/// The `webhook_subscription_id` a body names: a hint that picks which secrets to try,
/// read before verification, so it must cost next to nothing and never fail.
///
/// Monite writes the field last, after `object`, so the body's end is read first; then the
/// last occurrence of the key in the body's tail, then in the whole body (the last one
/// wins: a nested `object` comes before the envelope's own field). A value with escapes,
/// or one that is not a string, gives no hint.
pub(super) fn subscription_hint(body: &[u8]) -> Option<&[u8]> {
    hint_at_end(body).or_else(|| hint_by_search(body))
}

/// The hint of a body that does not end with the field: the last occurrence of its key.
// Out of line: the searchers' state would otherwise be set up on every call.
#[inline(never)]
fn hint_by_search(body: &[u8]) -> Option<&[u8]> {
    let tail_start = body.len().saturating_sub(TAIL);
    let at = FIND_LAST
        .rfind(&body[tail_start..])
        .map(|at| tail_start + at)
        .or_else(|| FIND.find_iter(body).last())?;
    hint_after_key(body, at)
}

/// The hint when the body ends `"webhook_subscription_id":"<id>"}` (no whitespace, as
/// Monite sends it): read backwards from the end, without a search.
fn hint_at_end(body: &[u8]) -> Option<&[u8]> {
    let value_end = body.strip_suffix(b"\"}")?;
    // Monite's ids are UUIDs: look where one would open before searching for the quote.
    let open = match value_end.len().checked_sub(UUID_LEN + 1) {
        Some(at) if value_end[at] == b'"' => at,
        _ => memchr::memrchr(b'"', value_end)?,
    };
    let id = &value_end[open + 1..];
    let key = value_end[..open].strip_suffix(b":")?.strip_suffix(FIELD)?;
    // `\"webhook_subscription_id"` would be the end of some other string.
    (plain(id) && key.last() != Some(&b'\\')).then_some(id)
}

/// Whether a string's raw bytes hold no quote and no escape.
fn plain(text: &[u8]) -> bool {
    // Not `any`: a fold has no early exit, so it is read sixteen bytes at a time, and at a
    // UUID's fixed length without a loop.
    let special = |seen: bool, &b: &u8| seen | (b == b'"') | (b == b'\\');
    match <&[u8; UUID_LEN]>::try_from(text) {
        Ok(uuid) => !uuid.iter().fold(false, special),
        Err(_) => !text.iter().fold(false, special),
    }
}

/// The length of a UUID in text, as Monite's subscription ids are.
const UUID_LEN: usize = 36;

/// The string value of the key whose opening quote is at `at`.
fn hint_after_key(body: &[u8], at: usize) -> Option<&[u8]> {
    // `\"webhook_subscription_id"` would be the end of some other string.
    if at > 0 && body[at - 1] == b'\\' {
        return None;
    }
    let rest = body[at + FIELD.len()..].trim_ascii_start();
    let rest = rest.strip_prefix(b":")?.trim_ascii_start();
    let rest = rest.strip_prefix(b"\"")?;
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    if rest[end] != b'"' {
        return None;
    }
    // Compared byte for byte with the ids held, so it need not be checked as UTF-8.
    Some(&rest[..end])
}

/// Whether a held id is the one a body names.
pub(super) fn same_id(held: &str, named: &[u8]) -> bool {
    // At a UUID's fixed length the comparison is inlined instead of calling `memcmp`.
    match (
        <&[u8; UUID_LEN]>::try_from(held.as_bytes()),
        <&[u8; UUID_LEN]>::try_from(named),
    ) {
        (Ok(held), Ok(named)) => held == named,
        _ => held.as_bytes() == named,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_is_the_envelopes_own_field() {
        let monite = br#"{"id":"e","object":{"id":"o"},"object_type":"payable","webhook_subscription_id":"sub-1"}"#;
        assert_eq!(subscription_hint(monite), Some(&b"sub-1"[..]));
        // Spaces, another order, a nested field before the envelope's own: the last wins.
        let spaced = br#"{"object":{"webhook_subscription_id":"inner"}, "webhook_subscription_id" : "sub-2" , "id":"e"}"#;
        assert_eq!(subscription_hint(spaced), Some(&b"sub-2"[..]));
        // Far from the end, past the tail that is searched first.
        let far = format!(
            r#"{{"webhook_subscription_id":"sub-3","description":"{}"}}"#,
            "x".repeat(4 * TAIL)
        );
        assert_eq!(subscription_hint(far.as_bytes()), Some(&b"sub-3"[..]));
        for no_hint in [
            &br#"{"id":"e"}"#[..],
            br#"{"webhook_subscription_id":null}"#,
            br#"{"webhook_subscription_id":"a\"b"}"#,
            br#"{"description":"x\"webhook_subscription_id\":\"forged"}"#,
            br#"{"webhook_subscription_id":"unterminated"#,
            br#"{"webhook_subscription_id""#,
            b"",
            b"\"}",
        ] {
            assert_eq!(
                subscription_hint(no_hint),
                None,
                "{}",
                String::from_utf8_lossy(no_hint)
            );
        }
    }

    proptest::proptest! {
        /// The hint is the value of the key's last occurrence, however the body is cut.
        #[test]
        fn the_hint_is_the_last_occurrence_of_the_key(
            pieces in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(r#""webhook_subscription_id""#.to_owned()),
                    proptest::strategy::Just(":".to_owned()),
                    proptest::strategy::Just(" ".to_owned()),
                    proptest::strategy::Just("\"".to_owned()),
                    proptest::strategy::Just("\\".to_owned()),
                    proptest::strategy::Just("\"}".to_owned()),
                    "[0-9a-f-]{36}",
                    "[a-z,{}]{1,4}",
                ],
                0..16,
            ),
            // Mostly Monite's own ending, with an id near a UUID's length.
            ending in proptest::option::weighted(0.8, r#"[0-9a-f"\\-]{34,38}"#),
        ) {
            let mut body = pieces.concat();
            if let Some(id) = ending {
                body.push_str(&format!(r#""webhook_subscription_id":"{id}"}}"#));
            }
            let reference = FIND
                .find_iter(body.as_bytes())
                .last()
                .and_then(|at| hint_after_key(body.as_bytes(), at));
            proptest::prop_assert_eq!(subscription_hint(body.as_bytes()), reference, "{}", body);
        }
    }
}
