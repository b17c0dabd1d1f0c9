//! `Event::parse` reads envelopes with its own one-pass scanner. Here serde_json is the
//! oracle: on generated and mutated bodies, both accept the same bodies and read the same
//! fields. The oracle is the serde model the scanner replaced.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use std::borrow::Cow;

use monite_webhooks::{EnvelopeVersion, Event};
use proptest::prelude::*;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny};
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow)]
    object_type: Cow<'a, str>,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "lenient")]
    object_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    entity_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    webhook_subscription_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    created_at: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    api_version: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    description: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    significance: Option<String>,
}

/// A string, or `None` for any other value.
fn lenient<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(value.as_str().map(str::to_owned))
}

/// What serde_json reads from `body`, in the shape `Event` exposes it.
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

fn oracle(body: &[u8]) -> Option<Reading> {
    // JSON is UTF-8 (RFC 8259, section 8.1); serde_json checks only the strings it reads,
    // `Event` the whole body, so that its fields are slices of it.
    if body.trim_ascii_start().first() != Some(&b'{') || std::str::from_utf8(body).is_err() {
        return None;
    }
    let envelope: Envelope<'_> = serde_json::from_slice(body).ok()?;
    let object_ref_id = envelope.object.and_then(|raw| {
        #[derive(Deserialize)]
        struct ObjectRef {
            #[serde(default, deserialize_with = "lenient")]
            id: Option<String>,
        }
        let raw = raw.get();
        raw.starts_with('{')
            .then(|| serde_json::from_str::<ObjectRef>(raw).ok()?.id)
            .flatten()
    });
    let version = if envelope.id.is_none() {
        EnvelopeVersion::WebhookSettings2022
    } else if envelope.name.is_some()
        || envelope.object_id.is_some()
        || envelope.significance.is_some()
    {
        EnvelopeVersion::Api2023
    } else {
        EnvelopeVersion::Api2024
    };
    Some(Reading {
        id: envelope.id.map(Cow::into_owned),
        action: envelope.action.into_owned(),
        object_type: envelope.object_type.into_owned(),
        object_json: envelope.object.map(|raw| raw.get().to_owned()),
        object_id: object_ref_id.or(envelope.object_id),
        entity_id: envelope.entity_id,
        webhook_subscription_id: envelope.webhook_subscription_id,
        created_at: envelope.created_at,
        api_version: envelope.api_version,
        description: envelope.description,
        name: envelope.name,
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

/// JSON text for strings, with escapes, quotes, non-ASCII and surrogate pairs.
fn string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-z0-9._-]{0,6}",
        Just(r#"\""#.to_owned()),
        Just(r"\\".to_owned()),
        Just(r"\n\t\/".to_owned()),
        Just(r"\u00e9\u0069".to_owned()),
        Just(r"\ud83d\ude00".to_owned()),
        Just("é€😀".to_owned()),
    ];
    proptest::collection::vec(piece, 0..4).prop_map(|pieces| format!("\"{}\"", pieces.concat()))
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "id", "action", "object_type", "object", "object_id", "entity_id",
            "webhook_subscription_id", "created_at", "api_version", "description", "name",
            "significance",
        ])
        .prop_map(|k| format!("\"{k}\"")),
        1 => Just(r#""\u0069d""#.to_owned()),
        1 => string(),
    ]
}

fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        4 => string(),
        1 => Just("null".to_owned()),
        1 => Just("true".to_owned()),
        1 => Just("false".to_owned()),
        1 => "-?(0|[1-9][0-9]{0,5})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?",
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| format!("[{}]", v.join(","))),
            proptest::collection::vec((key(), inner), 0..4).prop_map(|members| {
                let members: Vec<_> = members.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// Envelope-shaped bodies: mostly the known fields with strings, sometimes other values,
/// with whitespace between tokens.
fn envelope() -> impl Strategy<Value = String> {
    let member = (
        key(),
        value(),
        prop::sample::select(vec!["", " ", "\n\t", "\r\n  "]),
    );
    proptest::collection::vec(member, 0..10).prop_map(|members| {
        let members: Vec<_> = members
            .iter()
            .map(|(k, v, ws)| format!("{ws}{k}{ws}:{ws}{v}{ws}"))
            .collect();
        format!("{{{}}}", members.join(","))
    })
}

/// An envelope with a few bytes deleted, replaced or inserted: mostly invalid JSON.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let edit = (
        any::<prop::sample::Index>(),
        0u8..3,
        prop::sample::select(b"{}[]:,\"\\ nul0-e.tf\x01\xff".to_vec()),
    );
    (envelope(), proptest::collection::vec(edit, 1..4)).prop_map(|(body, edits)| {
        let mut body = body.into_bytes();
        for (at, op, byte) in edits {
            let at = at.index(body.len() + 1);
            match op {
                0 if at < body.len() => {
                    body.remove(at);
                }
                1 if at < body.len() => body[at] = byte,
                _ => body.insert(at, byte),
            }
        }
        body
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn generated_envelopes_read_as_serde_reads_them(body in envelope()) {
        prop_assert_eq!(ours(body.as_bytes()), oracle(body.as_bytes()), "{}", body);
    }

    #[test]
    fn mutated_envelopes_are_refused_exactly_when_serde_refuses_them(body in mutated()) {
        let text = String::from_utf8_lossy(&body);
        prop_assert_eq!(ours(&body), oracle(&body), "{}", text);
        // The scanner's syntax check agrees with serde's on the whole body, too.
        let valid_json = serde_json::from_slice::<IgnoredAny>(&body).is_ok();
        if ours(&body).is_some() {
            prop_assert!(valid_json, "{}", text);
        }
    }
}

#[test]
fn the_real_envelopes_read_as_serde_reads_them() {
    let page: serde_json::Value =
        serde_json::from_str(include_str!("data/monite-api/events.json")).unwrap();
    let mut bodies = vec![
        r#"{"id":"e","object_type":"payable","action":"payable.paid","object":{"id":"o","x":[1,{"id":2}]}}"#.to_owned(),
        r#" {"object":{"id":"a","id":"b"},"action":"a","object_type":"b","id":null} "#.to_owned(),
        r#"{"action":"a","object_type":"b","description":1e400,"x":1e400}"#.replace("1e400", "1e300"),
        format!(r#"{{"action":"a","object_type":"b","x":{}{}}}"#, "[".repeat(126), "]".repeat(126)),
        format!(r#"{{"action":"a","object_type":"b","x":{}{}}}"#, "[".repeat(127), "]".repeat(127)),
    ];
    // The one known difference: nesting past 128 levels is refused, to bound the stack.
    let deep = format!(
        r#"{{"action":"a","object_type":"b","x":{}{}}}"#,
        "[".repeat(128),
        "]".repeat(128)
    );
    assert!(ours(deep.as_bytes()).is_none() && oracle(deep.as_bytes()).is_some());
    for event in page["data"].as_array().unwrap() {
        bodies.push(event.to_string());
        bodies.push(serde_json::to_string_pretty(event).unwrap());
    }
    for body in &bodies {
        assert_eq!(ours(body.as_bytes()), oracle(body.as_bytes()), "{body}");
    }
}
