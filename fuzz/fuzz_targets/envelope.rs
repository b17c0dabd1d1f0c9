//! `Event::parse` against a model built on serde_json: both accept the same bodies, and
//! every field `Event` exposes reads the same.
//!
//! The model follows the envelope's documented rules:
//! - the body is UTF-8 and one JSON object, nested at most 128 levels (the object itself is
//!   the first), with nothing after it but whitespace;
//! - `action` and `object_type` are strings; `id` is a string or null; each must decode
//!   (a lone surrogate escape fails the delivery);
//! - the descriptive fields (`object_id`, `entity_id`, `webhook_subscription_id`,
//!   `created_at`, `api_version`, `description`, `name`, `significance`) are kept when they
//!   are strings that decode, and ignored otherwise (other types, lone surrogates, numbers
//!   out of range such as `1e400`);
//! - `object` is kept raw; its `id` is its one member named `id` when that is a string that
//!   decodes, else none; a key that does not decode is not `id`;
//! - a known field named twice is refused; a key that does not decode names no known field;
//! - `object_id()` is `object.id`, else the legacy `object_id`.

#![no_main]

use std::fmt;

use libfuzzer_sys::fuzz_target;
use monite_webhooks::{Event, ObjectType};
use monite_webhooks::event::EnvelopeVersion;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// serde_json's own limit where it builds values, and the scanner's.
const MAX_DEPTH: usize = 128;

fuzz_target!(|body: &[u8]| {
    let ours = Event::parse(body.to_vec());
    let model = model(body);
    match (&ours, &model) {
        (Ok(event), Ok(model)) => {
            assert_eq!(
                &reading(event),
                model,
                "{:?}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(&event.body()[..], body);
            // Exercised for panics: these derive from the fields compared above.
            let _ = event.is_documented();
            let _ = format!("{event:?}");
            assert!(
                event.object_as::<IgnoredAny>().is_ok(),
                "object_json is JSON"
            );
        }
        (Err(error), Err(_)) => {
            assert_eq!(error.kind(), monite_webhooks::ErrorKind::NotAnEnvelope);
        }
        _ => panic!(
            "Event::parse {:?}, model {:?}, for {:?}",
            ours.as_ref().map(reading),
            model,
            String::from_utf8_lossy(body)
        ),
    }
});

/// Everything `Event` exposes about a body, as owned values.
#[derive(Debug, PartialEq)]
struct Reading {
    id: Option<String>,
    action: String,
    object_type: String,
    event_type: String,
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

fn reading(event: &Event) -> Reading {
    let owned = |text: Option<&str>| text.map(str::to_owned);
    Reading {
        id: owned(event.id()),
        action: event.action().to_owned(),
        object_type: event.object_type().as_str().to_owned(),
        event_type: event.event_type().as_str().to_owned(),
        object_json: owned(event.object_json()),
        object_id: owned(event.object_id()),
        entity_id: owned(event.entity_id()),
        webhook_subscription_id: owned(event.webhook_subscription_id()),
        created_at: owned(event.created_at()),
        api_version: owned(event.api_version()),
        description: owned(event.description()),
        name: owned(event.name()),
        version: event.envelope_version(),
    }
}

fn model(body: &[u8]) -> Result<Reading, String> {
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    // The grammar, strictly: serde_json skipping a value checks every byte of it, and reads
    // no number's value nor any escape's meaning.
    serde_json::from_str::<IgnoredAny>(text).map_err(|e| e.to_string())?;
    if depth(text) > MAX_DEPTH {
        return Err("nested too deep".into());
    }
    if text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .as_bytes()
        .first()
        != Some(&b'{')
    {
        return Err("not an object".into());
    }
    let members = serde_json::from_str::<Members<'_>>(text).map_err(|e| e.to_string())?;
    let mut fields: [Option<&RawValue>; FIELDS.len()] = [None; FIELDS.len()];
    for (key, value) in members.0 {
        let Some(index) = FIELDS.iter().position(|name| name.as_bytes() == key) else {
            continue;
        };
        if fields[index].replace(value).is_some() {
            return Err(format!("{} named twice", FIELDS[index]));
        }
    }
    let field = |name: &str| fields[FIELDS.iter().position(|n| *n == name).unwrap()];
    let required = |name: &str| -> Result<String, String> {
        field(name)
            .and_then(string)
            .and_then(Result::ok)
            .ok_or_else(|| format!("`{name}` is not a string"))
    };
    let lenient = |name: &str| field(name).and_then(string).and_then(Result::ok);

    let action = required("action")?;
    let object_type = required("object_type")?;
    let id = match field("id") {
        None => None,
        Some(raw) if raw.get() == "null" => None,
        Some(_) => Some(required("id")?),
    };
    let object = field("object").filter(|raw| raw.get() != "null");
    let object_ref_id = object.and_then(object_id);
    let version = if id.is_none() {
        EnvelopeVersion::WebhookSettings2022
    } else if lenient("name").is_some()
        || lenient("object_id").is_some()
        || lenient("significance").is_some()
    {
        EnvelopeVersion::Api2023
    } else {
        EnvelopeVersion::Api2024
    };
    Ok(Reading {
        event_type: event_type(&object_type, &action),
        id,
        action,
        object_type,
        object_json: object.map(|raw| raw.get().to_owned()),
        object_id: object_ref_id.or_else(|| lenient("object_id")),
        entity_id: lenient("entity_id"),
        webhook_subscription_id: lenient("webhook_subscription_id"),
        created_at: lenient("created_at"),
        api_version: lenient("api_version"),
        description: lenient("description"),
        name: lenient("name"),
        version,
    })
}

const FIELDS: [&str; 12] = [
    "id",
    "action",
    "object_type",
    "object",
    "object_id",
    "entity_id",
    "webhook_subscription_id",
    "created_at",
    "api_version",
    "description",
    "name",
    "significance",
];

/// `object.id`: the one member named `id`, when it is a string that decodes.
fn object_id(object: &RawValue) -> Option<String> {
    if !object.get().starts_with('{') {
        return None;
    }
    let members = serde_json::from_str::<Members<'_>>(object.get()).ok()?;
    let mut ids = members.0.iter().filter(|(key, _)| key == b"id");
    match (ids.next(), ids.next()) {
        (Some((_, value)), None) => string(value)?.ok(),
        _ => None,
    }
}

/// `None` if the value is not a string; `Some(Err)` if it is one that does not decode.
fn string(raw: &RawValue) -> Option<Result<String, ()>> {
    if !raw.get().starts_with('"') {
        return None;
    }
    let bytes = serde_json::from_str::<Wtf8>(raw.get()).ok()?.0;
    Some(String::from_utf8(bytes).map_err(drop))
}

/// The event name within `action`, by protocol section 3: after `object_type.`, else after
/// the longest known object type and `.`, else all of it.
fn event_type(object_type: &str, action: &str) -> String {
    let after = |prefix: &str| {
        action
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('.'))
    };
    after(object_type)
        .or_else(|| {
            ObjectType::KNOWN
                .iter()
                .filter_map(|known| Some((known.as_str().len(), after(known.as_str())?)))
                .max_by_key(|(len, _)| *len)
                .map(|(_, rest)| rest)
        })
        .unwrap_or(action)
        .to_owned()
}

/// How deep objects and arrays nest in valid JSON text; the outermost counts as 1.
fn depth(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0, 0, false, false);
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth -= 1,
            _ => {}
        }
    }
    deepest
}

/// An object's members in order, duplicates kept: each key decoded to WTF-8 (so that a
/// lone surrogate shows as invalid UTF-8), each value raw.
struct Members<'a>(Vec<(Vec<u8>, &'a RawValue)>);

impl<'de> de::Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(key) = map.next_key_seed(Wtf8Seed)? {
                    members.push((key, map.next_value::<&RawValue>()?));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// A JSON string's decoded bytes; serde_json writes lone surrogates as WTF-8 here.
struct Wtf8(Vec<u8>);

impl<'de> de::Deserialize<'de> for Wtf8 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Wtf8Seed.deserialize(deserializer).map(Wtf8)
    }
}

struct Wtf8Seed;

impl<'de> DeserializeSeed<'de> for Wtf8Seed {
    type Value = Vec<u8>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<u8>, D::Error> {
        struct BytesVisitor;
        impl Visitor<'_> for BytesVisitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
                Ok(bytes.to_vec())
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<u8>, E> {
                Ok(text.as_bytes().to_vec())
            }
        }
        deserializer.deserialize_bytes(BytesVisitor)
    }
}
