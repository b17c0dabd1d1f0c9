//! `Event::parse` reads envelopes with its own one-pass scanner (`src/json_scan.rs`). This
//! test checks it against a model of the semantics the `Event` docs state, built on
//! serde_json: on generated, broken and mutated bodies, the scanner accepts a body exactly
//! when the model does, and then reads the same fields.
//!
//! The model, rule by rule:
//! - the body is UTF-8 (checked apart: serde_json checks only the strings it decodes);
//! - it is one JSON object as serde_json's grammar reads it (RFC 8259: four whitespace
//!   bytes, no BOM, the eight simple escapes and `\uXXXX`, no raw control characters in
//!   strings, no trailing content);
//! - at most 128 arrays and objects are nested, the envelope included (serde_json skips
//!   ignored values at any depth; the scanner bounds its stack);
//! - `action` and `object_type` are strings, `id` a string or null, each one decoded: a
//!   lone surrogate there refuses the body;
//! - a known member named twice refuses the body (as serde derive does);
//! - the descriptive members (`object_id`, `entity_id`, `webhook_subscription_id`,
//!   `created_at`, `api_version`, `description`, `name`, `significance`) are skipped
//!   unchecked like unknown members (`RawValue`: numbers are not converted, so `1e400`
//!   passes) and kept only if they are a string that decodes;
//! - `object` is kept raw (null is none); its id is its one member named `id` when that
//!   is a string that decodes;
//! - a key that does not decode (a lone surrogate) names no known member, at the top and
//!   inside `object`.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use std::fmt;

use monite_webhooks::Event;
use monite_webhooks::event::EnvelopeVersion;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestCaseError;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The deepest nesting `Event::parse` accepts, the envelope itself included.
const MAX_DEPTH: usize = 128;

const DESCRIPTIVE: [&str; 8] = [
    "object_id",
    "entity_id",
    "webhook_subscription_id",
    "created_at",
    "api_version",
    "description",
    "name",
    "significance",
];

/// The members the model reads, in the order `Envelope::lenient` stores the descriptive ones.
const KNOWN: [&str; 12] = [
    "id",
    "action",
    "object_type",
    "object",
    DESCRIPTIVE[0],
    DESCRIPTIVE[1],
    DESCRIPTIVE[2],
    DESCRIPTIVE[3],
    DESCRIPTIVE[4],
    DESCRIPTIVE[5],
    DESCRIPTIVE[6],
    DESCRIPTIVE[7],
];

/// A member name as serde_json reads it without checking surrogates (as bytes, WTF-8):
/// a name with a lone surrogate is not UTF-8, so it names no known member. (Read so,
/// serde_json does not refuse raw control characters either; `model` checks the grammar
/// apart.)
struct Key(Option<&'static str>);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl Visitor<'_> for Bytes {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_bytes<E: de::Error>(self, name: &[u8]) -> Result<Key, E> {
                Ok(Key(KNOWN
                    .into_iter()
                    .find(|known| known.as_bytes() == name)))
            }
        }
        deserializer.deserialize_bytes(Bytes)
    }
}

/// A descriptive member: a string that decodes, else nothing.
fn lenient(raw: &RawValue) -> Option<String> {
    let raw = raw.get();
    if raw.starts_with('"') {
        serde_json::from_str(raw).ok()
    } else {
        None
    }
}

#[derive(Default)]
struct Envelope<'a> {
    id: Option<String>,
    action: Option<String>,
    object_type: Option<String>,
    object: Option<&'a RawValue>,
    /// In `DESCRIPTIVE` order.
    lenient: [Option<String>; 8],
}

impl<'de> Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Envelope<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an envelope object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope<'de>, A::Error> {
                let mut envelope = Envelope::default();
                let mut seen = Vec::new();
                while let Some(Key(name)) = map.next_key()? {
                    let Some(name) = name else {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    };
                    if seen.contains(&name) {
                        return Err(de::Error::duplicate_field(name));
                    }
                    seen.push(name);
                    match name {
                        "id" => envelope.id = map.next_value()?,
                        "action" => envelope.action = Some(map.next_value()?),
                        "object_type" => envelope.object_type = Some(map.next_value()?),
                        "object" => envelope.object = map.next_value()?,
                        _ => {
                            let at = DESCRIPTIVE.iter().position(|&d| d == name).unwrap();
                            envelope.lenient[at] = lenient(map.next_value()?);
                        }
                    }
                }
                if envelope.action.is_none() || envelope.object_type.is_none() {
                    return Err(de::Error::missing_field("action or object_type"));
                }
                Ok(envelope)
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// `object`'s id: its members named `id`, in order.
struct ObjectIds(Vec<Option<String>>);

impl<'de> Deserialize<'de> for ObjectIds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = ObjectIds;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ObjectIds, A::Error> {
                let mut ids = Vec::new();
                while let Some(Key(name)) = map.next_key()? {
                    if name == Some("id") {
                        ids.push(lenient(map.next_value()?));
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(ObjectIds(ids))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// The deepest nesting of arrays and objects in valid JSON text.
fn depth(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0, 0, false, false);
    for byte in text.bytes() {
        match (in_string, escaped, byte) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') | (false, _, b'"') => in_string = !in_string,
            (false, _, b'[' | b'{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (false, _, b']' | b'}') => depth -= 1,
            _ => {}
        }
    }
    deepest
}

/// What `Event` exposes.
#[derive(Debug, PartialEq)]
struct Reading {
    id: Option<String>,
    action: String,
    object_type: String,
    object_json: Option<String>,
    object_id: Option<String>,
    entity_id: Option<String>,
    webhook_subscription_id: Option<String>,
    created_at: Option<String>,
    api_version: Option<String>,
    description: Option<String>,
    name: Option<String>,
    version: EnvelopeVersion,
}

/// What the model reads from a UTF-8 body, or `None` where it refuses it.
fn model(text: &str) -> Option<Reading> {
    // The grammar, checked by skipping the whole body: reading keys as bytes (below) lets
    // raw control characters through.
    serde_json::from_str::<IgnoredAny>(text).ok()?;
    if depth(text) > MAX_DEPTH {
        return None;
    }
    let envelope: Envelope<'_> = serde_json::from_str(text).ok()?;
    let object_ref_id = envelope.object.and_then(|raw| {
        match serde_json::from_str::<ObjectIds>(raw.get())
            .ok()?
            .0
            .as_mut_slice()
        {
            [only] => only.take(),
            _ => None,
        }
    });
    let [
        object_id,
        entity_id,
        webhook_subscription_id,
        created_at,
        api_version,
        description,
        name,
        significance,
    ] = envelope.lenient;
    let version = if envelope.id.is_none() {
        EnvelopeVersion::WebhookSettings2022
    } else if name.is_some() || object_id.is_some() || significance.is_some() {
        EnvelopeVersion::Api2023
    } else {
        EnvelopeVersion::Api2024
    };
    Some(Reading {
        id: envelope.id,
        action: envelope.action.unwrap(),
        object_type: envelope.object_type.unwrap(),
        object_json: envelope.object.map(|raw| raw.get().to_owned()),
        object_id: object_ref_id.or(object_id),
        entity_id,
        webhook_subscription_id,
        created_at,
        api_version,
        description,
        name,
        version,
    })
}

fn ours(body: &[u8]) -> Option<Reading> {
    let event = Event::parse(body.to_vec()).ok()?;
    let owned = |text: Option<&str>| text.map(str::to_owned);
    Some(Reading {
        id: owned(event.id()),
        action: event.action().to_owned(),
        object_type: event.object_type().as_str().to_owned(),
        object_json: owned(event.object_json()),
        object_id: owned(event.object_id()),
        entity_id: owned(event.entity_id()),
        webhook_subscription_id: owned(event.webhook_subscription_id()),
        created_at: owned(event.created_at()),
        api_version: owned(event.api_version()),
        description: owned(event.description()),
        name: owned(event.name()),
        version: event.envelope_version(),
    })
}

/// A body, shown as ASCII with escapes.
#[derive(Clone)]
struct Shown(Vec<u8>);

impl fmt::Debug for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// Both directions: the scanner accepts exactly what the model accepts, and then reads
/// the same fields. A body that is not UTF-8 is refused, whatever serde_json makes of it.
fn agree(body: &[u8]) -> Result<bool, TestCaseError> {
    let shown = Shown(body.to_vec());
    let ours = ours(body);
    let Ok(text) = std::str::from_utf8(body) else {
        prop_assert!(
            ours.is_none(),
            "accepted a body that is not UTF-8: {:?}",
            shown
        );
        return Ok(false);
    };
    let model = model(text);
    prop_assert_eq!(
        ours.is_some(),
        model.is_some(),
        "scanner accepts: {}, model accepts: {}, body: {:?}",
        ours.is_some(),
        model.is_some(),
        shown
    );
    prop_assert_eq!(&ours, &model, "{:?}", shown);
    Ok(ours.is_some())
}

// ---- Generators -------------------------------------------------------------------------

/// A JSON value, kept as a tree so that whitespace can go between any two tokens.
#[derive(Debug, Clone)]
enum Json {
    /// A scalar's whole text (a string with its quotes, a number, a literal).
    Token(Vec<u8>),
    Array(Vec<Self>),
    Object(Vec<(Vec<u8>, Self)>),
}

impl Json {
    fn render(&self, out: &mut Vec<u8>, ws: &mut impl FnMut(&mut Vec<u8>)) {
        match self {
            Self::Token(text) => out.extend_from_slice(text),
            Self::Array(items) => {
                out.push(b'[');
                ws(out);
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                        ws(out);
                    }
                    item.render(out, ws);
                    ws(out);
                }
                out.push(b']');
            }
            Self::Object(members) => {
                out.push(b'{');
                ws(out);
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                        ws(out);
                    }
                    out.extend_from_slice(key);
                    ws(out);
                    out.push(b':');
                    ws(out);
                    value.render(out, ws);
                    ws(out);
                }
                out.push(b'}');
            }
        }
    }
}

/// A body: the envelope with whitespace from `spaces`, in turn, before, after and between
/// every token.
fn render(envelope: &Json, spaces: &[&[u8]]) -> Vec<u8> {
    let mut slot = 0;
    let mut ws = |out: &mut Vec<u8>| {
        out.extend_from_slice(spaces[slot % spaces.len()]);
        slot += 1;
    };
    let mut out = Vec::new();
    ws(&mut out);
    envelope.render(&mut out, &mut ws);
    ws(&mut out);
    out
}

/// Whitespace: mostly none or JSON's four bytes; rarely a byte or character JSON does not
/// count as whitespace (form feed, vertical tab, NBSP, BOM, line separator).
fn spaces() -> impl Strategy<Value = Vec<&'static [u8]>> {
    let space = prop_oneof![
        60 => Just(&b""[..]),
        12 => prop::sample::select(vec![&b" "[..], b"\t", b"\n", b"\r"]),
        4 => prop::sample::select(vec![&b"\r\n  "[..], b" \t", b"\n\n\t ", b"    "]),
        1 => prop::sample::select(vec![
            &b"\x0c"[..], b"\x0b", "\u{a0}".as_bytes(), "\u{feff}".as_bytes(),
            "\u{2028}".as_bytes(), b"\x00",
        ]),
    ];
    proptest::collection::vec(space, 1..16)
}

/// A `\u` escape of one UTF-16 code unit, in lower- or upper-case hex.
fn u_escape(unit: u16, upper: bool) -> String {
    if upper {
        format!("\\u{unit:04X}")
    } else {
        format!("\\u{unit:04x}")
    }
}

/// A run of string contents: plain text, non-ASCII, every escape, any `\u` code unit,
/// surrogate pairs the right and the wrong way round, lone surrogates; rarely something
/// JSON refuses (a raw control character, an invalid escape, a byte that is not UTF-8).
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        80 => "[a-zA-Z0-9 ._:-]{0,8}".prop_map(String::into_bytes),
        6 => prop::sample::select(vec!["é", "€", "😀", "\u{7f}", "\u{a0}", "\u{feff}", "\u{2028}"])
            .prop_map(|s| s.as_bytes().to_vec()),
        8 => prop::sample::select(vec![r#"\""#, r"\\", r"\/", r"\b", r"\f", r"\n", r"\r", r"\t"])
            .prop_map(|s| s.as_bytes().to_vec()),
        6 => (any::<u16>(), any::<bool>()).prop_map(|(unit, upper)| u_escape(unit, upper).into_bytes()),
        3 => (0xd800u16..0xdc00, 0xdc00u16..0xe000, any::<bool>()).prop_map(|(high, low, upper)| {
            (u_escape(high, upper) + &u_escape(low, upper)).into_bytes()
        }),
        1 => (0xdc00u16..0xe000, 0xd800u16..0xdc00, any::<bool>()).prop_map(|(low, high, upper)| {
            (u_escape(low, upper) + &u_escape(high, upper)).into_bytes()
        }),
        2 => (0xd800u16..0xe000, any::<bool>()).prop_map(|(unit, upper)| u_escape(unit, upper).into_bytes()),
        1 => (0xd800u16..0xdc00, prop::sample::select(vec!["x", r"\n", r"\u0041", r"\ud800"]))
            .prop_map(|(high, next)| (u_escape(high, false) + next).into_bytes()),
        1 => prop_oneof![
            (0u8..0x20).prop_map(|control| vec![control]),
            prop::sample::select(vec![r"\x", r"\u12", r"\U0041", r"\u00g1", r"\'", r"\a", "\\ "])
                .prop_map(|s| s.as_bytes().to_vec()),
            prop::sample::select(vec![
                &b"\xff"[..], b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80",
            ])
            .prop_map(<[u8]>::to_vec),
        ],
    ]
}

/// A JSON string, quotes included.
fn string() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(piece(), 0..4).prop_map(|pieces| {
        let mut text = vec![b'"'];
        text.extend(pieces.concat());
        text.push(b'"');
        text
    })
}

/// A number: short ones, long digit runs, exponents past `f64`'s range either way.
fn number() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => "-?(0|[1-9][0-9]{0,5})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,3})?",
        1 => "-?[1-9][0-9]{18,400}(\\.[0-9]{1,400})?",
        1 => "-?[1-9](\\.[0-9]{1,20})?[eE][+-]?(309|[4-9][0-9]{2}|[1-9][0-9]{3,5})",
        1 => prop::sample::select(vec![
            "1e400", "-1e999", "1E+309", "1e-400", "-0", "0e0", "2.5E-0", "1.7976931348623157e308",
            "1.8e308", "4.9e-324", "18446744073709551616", "-9223372036854775809",
        ])
        .prop_map(str::to_owned),
    ]
    .prop_map(String::into_bytes)
}

/// An array or object nested `levels` deep, the kinds mixed.
fn deep() -> impl Strategy<Value = Json> {
    (MAX_DEPTH - 3..=MAX_DEPTH + 1)
        .prop_flat_map(|levels| proptest::collection::vec(any::<bool>(), levels))
        .prop_map(|kinds| {
            kinds
                .into_iter()
                .fold(Json::Token(b"1".to_vec()), |inner, array| {
                    if array {
                        Json::Array(vec![inner])
                    } else {
                        Json::Object(vec![(b"\"id\"".to_vec(), inner)])
                    }
                })
        })
}

/// A member name: mostly a known one, sometimes written with escapes, sometimes anything.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => prop::sample::select(KNOWN.to_vec()).prop_map(|k| format!("\"{k}\"").into_bytes()),
        1 => Just(b"\"id\"".to_vec()),
        1 => prop::sample::select(vec![
            r#""\u0069d""#, r#""\u0069\u0064""#, r#""\u0049D""#, r#""\u0061ction""#,
            r#""object\u005Ftype""#, r#""descr\u0069ption""#, r#""id\ud800""#, r#""\udc00""#,
        ])
        .prop_map(|k| k.as_bytes().to_vec()),
        4 => string(),
    ]
}

fn value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        8 => string().prop_map(Json::Token),
        1 => prop::sample::select(vec!["null", "true", "false"])
            .prop_map(|word| Json::Token(word.as_bytes().to_vec())),
        3 => number().prop_map(Json::Token),
        1 => deep(),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            proptest::collection::vec((key(), inner), 0..4).prop_map(Json::Object),
        ]
    })
}

/// An envelope: usually `action` and `object_type` strings, often an `id` and an
/// `object`, then any members, in any order.
fn envelope() -> impl Strategy<Value = Json> {
    let named = |name: &str| format!("\"{name}\"").into_bytes();
    let string_value = || string().prop_map(Json::Token);
    let (action, object_type, id, object) = (
        named("action"),
        named("object_type"),
        named("id"),
        named("object"),
    );
    (
        prop::option::weighted(0.95, string_value()),
        prop::option::weighted(0.95, string_value()),
        prop::option::weighted(0.7, prop_oneof![4 => string_value(), 1 => value()]),
        prop::option::weighted(0.6, value()),
        proptest::collection::vec((key(), value()), 0..6),
    )
        .prop_flat_map(move |(a, t, i, o, mut members)| {
            for (name, value) in [(&action, a), (&object_type, t), (&id, i), (&object, o)] {
                if let Some(value) = value {
                    members.push((name.clone(), value));
                }
            }
            Just(members).prop_shuffle().prop_map(Json::Object)
        })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    (envelope(), spaces()).prop_map(|(envelope, spaces)| render(&envelope, &spaces))
}

/// A body with a few bytes deleted, replaced or inserted: mostly invalid JSON.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let edit = (
        any::<prop::sample::Index>(),
        0u8..3,
        prop::sample::select(vec![
            &b"{"[..],
            b"}",
            b"[",
            b"]",
            b":",
            b",",
            b"\"",
            b"\\",
            b" ",
            b"\t",
            b"\r",
            b"\n",
            b"n",
            b"u",
            b"l",
            b"0",
            b"9",
            b"-",
            b"+",
            b"e",
            b"E",
            b".",
            b"t",
            b"f",
            b"\x01",
            b"\x0b",
            b"\x0c",
            b"\x7f",
            b"\xff",
            b"\xc3",
            b"\xa0",
            b"\xed",
            "\u{a0}".as_bytes(),
            "\u{feff}".as_bytes(),
            br"\ud800",
            br"\udc00",
            b"1e400",
        ]),
    );
    (body(), proptest::collection::vec(edit, 1..4)).prop_map(|(mut body, edits)| {
        for (at, op, bytes) in edits {
            let at = at.index(body.len() + 1);
            match op {
                0 if at < body.len() => {
                    body.remove(at);
                }
                1 if at < body.len() => {
                    body.splice(at..=at, bytes.iter().copied());
                }
                _ => {
                    body.splice(at..at, bytes.iter().copied());
                }
            }
        }
        body
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn generated_envelopes_read_as_the_model_reads_them(body in body().prop_map(Shown)) {
        agree(&body.0)?;
    }

    #[test]
    fn mutated_envelopes_are_refused_exactly_when_the_model_refuses_them(
        body in mutated().prop_map(Shown),
    ) {
        agree(&body.0)?;
    }
}

/// The generators reach both outcomes often enough for the comparison to mean something.
#[test]
fn generated_bodies_are_often_accepted_and_often_refused() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut accepted, total) = (0, 1000);
    for _ in 0..total {
        let body = body().new_tree(&mut runner).unwrap().current();
        accepted += usize::from(agree(&body).unwrap());
    }
    assert!(
        (total / 4..total * 3 / 4).contains(&accepted),
        "{accepted} of {total} accepted"
    );
}

fn accepted(body: &str) -> Reading {
    agree(body.as_bytes()).unwrap();
    ours(body.as_bytes()).unwrap_or_else(|| panic!("refused: {body}"))
}

fn refused(body: &[u8]) {
    agree(body).unwrap();
    assert!(ours(body).is_none(), "{}", String::from_utf8_lossy(body));
}

/// A lone surrogate or an out-of-range number in a descriptive member, or in a key, is
/// ignored; in `action`, `object_type` or `id` it refuses the body.
#[test]
fn undecodable_descriptive_values_are_ignored_and_required_ones_refused() {
    const HEAD: &str = r#""action":"a","object_type":"b","id":"e""#;
    for odd in [
        r#""\ud800""#,
        r#""\udc00""#,
        r#""x\uDBFF\u0041""#,
        r#""\udc00\ud800""#,
        "1e400",
        "-1e999",
        "1E+309",
        &"9".repeat(400),
        &format!("-0.{}e-99999", "1".repeat(400)),
    ] {
        for field in DESCRIPTIVE {
            let event = accepted(&format!("{{{HEAD},\"{field}\":{odd}}}"));
            assert_eq!(event.object_id, None, "{field}: {odd}");
            assert_eq!(
                (
                    event.description,
                    event.name,
                    event.entity_id,
                    event.created_at
                ),
                (None, None, None, None),
                "{field}: {odd}"
            );
            assert_eq!(event.version, EnvelopeVersion::Api2024, "{field}: {odd}");
        }
        // Inside `object`: its id is ignored, and so is a key that does not decode.
        let event = accepted(&format!(
            r#"{{{HEAD},"object":{{"id":{odd},"x":{odd}}},"object_id":"o"}}"#
        ));
        assert_eq!(event.object_id.as_deref(), Some("o"), "{odd}");
        for field in ["action", "object_type", "id"] {
            let body = match field {
                "action" => format!(r#"{{"action":{odd},"object_type":"b"}}"#),
                "object_type" => format!(r#"{{"action":"a","object_type":{odd}}}"#),
                _ => format!(r#"{{"action":"a","object_type":"b","id":{odd}}}"#),
            };
            refused(body.as_bytes());
        }
    }
    for key in [r#""\ud800""#, r#""i\udc00d""#, r#""\ud800\u0041""#] {
        let event = accepted(&format!(
            r#"{{{HEAD},{key}:1,"object":{{{key}:1,"id":"o",{key}:2}}}}"#
        ));
        assert_eq!(event.object_id.as_deref(), Some("o"), "{key}");
    }
    // Decodable escapes are decoded, in keys and values alike.
    let event = accepted(
        r#"{"act\u0069on":"a\b\f\n\r\t\"\\\/\u00E9\ud83d\uDE00","object_type":"b","object":{"\u0069d":"\u006F"}}"#,
    );
    assert_eq!(event.action, "a\u{8}\u{c}\n\r\t\"\\/é😀");
    assert_eq!(event.object_id.as_deref(), Some("o"));
}

/// Arrays and objects nest 128 deep, the envelope included, in every member: 127 and 128
/// levels are accepted, 129 refused.
#[test]
fn nesting_is_bounded_at_128_levels_in_every_member() {
    for field in KNOWN.into_iter().chain(["unknown"]) {
        for levels in [MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH] {
            let nested = format!("{}{}", "[".repeat(levels), "]".repeat(levels));
            let in_objects = format!("{}1{}", r#"{"id":"#.repeat(levels), "}".repeat(levels));
            for value in [nested, in_objects] {
                let mut members = vec![("action", r#""a""#), ("object_type", r#""b""#)];
                members.retain(|(name, _)| *name != field);
                members.insert(members.len() / 2, (field, &value));
                let members: Vec<_> = members
                    .iter()
                    .map(|(name, value)| format!(r#""{name}":{value}"#))
                    .collect();
                let body = format!("{{{}}}", members.join(","));
                // `action`, `object_type` and `id` refuse containers at any depth.
                let shape_ok = !["action", "object_type", "id"].contains(&field);
                assert_eq!(
                    ours(body.as_bytes()).is_some(),
                    shape_ok && levels < MAX_DEPTH,
                    "{field}, {levels} levels inside the envelope"
                );
                agree(body.as_bytes()).unwrap();
            }
        }
    }
}

/// Whitespace is exactly space, tab, line feed and carriage return, anywhere between
/// tokens; nothing else is, not even at the start.
#[test]
fn whitespace_is_json_s_four_bytes() {
    // `~` marks every place between tokens.
    let template =
        r#"~{~"action"~:~"a"~,~"object_type"~:~"b"~,~"x"~:~[~1~,~[~]~,~{~}~,~{~"y"~:~null~}~]~}~"#;
    let legal = [" ", "\t", "\n", "\r", " \t\n\r", ""];
    let with = |special: usize, bad: &str| {
        let mut body = String::new();
        for (slot, part) in template.split('~').enumerate() {
            if slot > 0 {
                let space = if slot - 1 == special {
                    bad
                } else {
                    legal[slot % legal.len()]
                };
                body.push_str(space);
            }
            body.push_str(part);
        }
        body
    };
    accepted(&with(usize::MAX, ""));
    for slot in 0..template.matches('~').count() {
        for bad in [
            "\x0c", "\x0b", "\u{a0}", "\u{feff}", "\u{2028}", "\u{3000}", "\0",
        ] {
            refused(with(slot, bad).as_bytes());
        }
    }
}

/// A body that is not UTF-8 is refused, even where serde_json would skip the bytes.
#[test]
fn bytes_that_are_not_utf8_are_refused_anywhere() {
    for bad in [
        &b"\xff"[..],
        b"\xc3",
        b"\xc0\xaf",
        b"\xed\xa0\x80",
        b"\x80\x80",
    ] {
        for (before, after) in [
            (&br#"{"action":""#[..], &br#"","object_type":"b"}"#[..]),
            (br#"{"action":"a","object_type":"b","x":""#, br#""}"#),
            (
                br#"{"action":"a","object_type":"b","object":{"y":""#,
                br#""}}"#,
            ),
        ] {
            let body = [before, bad, after].concat();
            refused(&body);
        }
    }
    // serde_json alone lets them through in a value it skips.
    let skipped = [
        &br#"{"action":"a","object_type":"b","x":""#[..],
        b"\xff",
        br#""}"#,
    ]
    .concat();
    assert!(serde_json::from_slice::<IgnoredAny>(&skipped).is_ok());
}

#[test]
fn the_real_envelopes_read_as_the_model_reads_them() {
    let page: serde_json::Value =
        serde_json::from_str(include_str!("../data/monite-api/events.json")).unwrap();
    let mut bodies = vec![
        r#"{"id":"e","object_type":"payable","action":"payable.paid","object":{"id":"o","x":[1,{"id":2}]}}"#.to_owned(),
        r#" {"object":{"id":"a","id":"b"},"action":"a","object_type":"b","id":null} "#.to_owned(),
        r#"{"action":"a","object_type":"b","description":1e400,"x":1e400}"#.to_owned(),
    ];
    for event in page["data"].as_array().unwrap() {
        bodies.push(event.to_string());
        bodies.push(serde_json::to_string_pretty(event).unwrap());
    }
    for body in &bodies {
        accepted(body);
    }
}
