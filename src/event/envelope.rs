//! The one-pass envelope reader behind [`Event::parse`](super::Event::parse): which
//! top-level members a body has and where their strings are, found in one scan.

use std::borrow::Cow;

use super::EnvelopeVersion;
use super::event_type::EventType;
use super::json_scan::{JsonStr, Scalar, Scan, Scanner, SyntaxError};
use super::object_type::ObjectType;
use crate::error::{Error, ErrorKind};

/// A string field: where it sits in the body, or in `decoded` when JSON escapes changed it.
#[derive(Clone, Copy)]
pub(super) enum Text {
    Body(usize, usize),
    Decoded(usize, usize),
}

impl Text {
    /// A string member's text: a span of the body when it has no escapes (the usual case),
    /// else decoded into `decoded`.
    #[inline(always)]
    fn new(body: &str, span: JsonStr, decoded: &mut String) -> Scan<Self> {
        if span.escapes == 0 {
            Ok(Self::Body(span.start, span.end))
        } else {
            Self::decoded(body, span, decoded)
        }
    }

    #[cold]
    fn decoded(body: &str, span: JsonStr, decoded: &mut String) -> Scan<Self> {
        let start = decoded.len();
        decoded.push_str(&decode(body, span)?);
        Ok(Self::Decoded(start, decoded.len()))
    }

    pub(super) fn as_str<'a>(self, body: &'a str, decoded: &'a str) -> &'a str {
        // Spans end at quotes and are in range; `get` keeps even a bug from panicking.
        match self {
            Self::Body(start, end) => body.get(start..end),
            Self::Decoded(start, end) => decoded.get(start..end),
        }
        .unwrap_or_default()
    }
}

/// A string with escapes, decoded. Rare: serde_json decodes the escapes and surrogate pairs.
/// The scan checked the escapes, so this fails only on a `\uD800`-`\uDFFF` escape that is
/// not half of a pair, which names no character.
fn decode(body: &str, span: JsonStr) -> Scan<String> {
    let invalid = SyntaxError {
        at: span.start,
        what: "a string escapes an unpaired surrogate",
    };
    // From the opening quote to the closing one.
    let quoted = body
        .get(span.start.saturating_sub(1)..=span.end)
        .ok_or(invalid)?;
    serde_json::from_str(quoted).map_err(|_| invalid)
}

pub(super) fn not_an_envelope(e: SyntaxError) -> Error {
    Error::new(
        ErrorKind::NotAnEnvelope,
        format!(
            "body is not a Monite event envelope: {} at byte {}",
            e.what, e.at
        ),
    )
}

/// The event name inside `action`, as protocol section 3 says: strip `object_type.`, else
/// the longest known object type followed by `.`, else the whole action is the name.
/// Object types and event names both contain dots, so never split on the first one.
pub(crate) fn event_type_of(object_type: &str, action: &str) -> EventType {
    let after = |prefix: &str| {
        action
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('.'))
    };
    let name = after(object_type)
        .or_else(|| {
            ObjectType::KNOWN
                .iter()
                .filter_map(|known| Some((known.as_str().len(), after(known.as_str())?)))
                .max_by_key(|(len, _)| *len)
                .map(|(_, rest)| rest)
        })
        .unwrap_or(action);
    EventType::from(name)
}

/// A top-level member this crate reads; its value is its index in `Found::strings`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    Action,
    ObjectType,
    Id,
    ObjectId,
    EntityId,
    WebhookSubscriptionId,
    CreatedAt,
    ApiVersion,
    Description,
    Name,
    Significance,
    // Last: `COUNT` is counted from it.
    Object,
}

impl Field {
    const COUNT: usize = Self::Object as usize + 1;

    /// Whether a value this crate cannot read refuses the body, rather than being ignored.
    fn is_required(self) -> bool {
        matches!(self, Self::Action | Self::ObjectType | Self::Id)
    }

    fn named(name: &[u8]) -> Option<Self> {
        Some(match name {
            b"id" => Self::Id,
            b"action" => Self::Action,
            b"object_type" => Self::ObjectType,
            b"object" => Self::Object,
            b"object_id" => Self::ObjectId,
            b"entity_id" => Self::EntityId,
            b"webhook_subscription_id" => Self::WebhookSubscriptionId,
            b"created_at" => Self::CreatedAt,
            b"api_version" => Self::ApiVersion,
            b"description" => Self::Description,
            b"name" => Self::Name,
            b"significance" => Self::Significance,
            _ => return None,
        })
    }
}

/// Where the envelope's members are, found in one pass over the body; decoding waits until
/// the scan is over, so the scan itself only moves spans around.
///
/// The fields of all three generations are read, with the rules `Event::parse` states:
/// `action`, `object_type` and `id` are strict; the descriptive ones are kept if they are
/// strings that decode and ignored otherwise (other values are only checked to be JSON, so
/// `1e400` there is ignored too). A field named twice is an error, as in serde.
#[derive(Default)]
pub(super) struct Found {
    seen: u16,
    pub(super) strings: [Option<Text>; Field::COUNT],
    pub(super) object: Option<Text>,
    pub(super) object_ref_id: Option<Text>,
    pub(super) decoded: String,
}

impl Found {
    pub(super) fn scan(&mut self, body: &str) -> Scan<()> {
        let mut scanner = Scanner::new(body.as_bytes());
        if scanner.peek() != Some(b'{') {
            // serde would read an array positionally; an envelope is an object.
            return Err(scanner.error_here("not a JSON object"));
        }
        scanner.object(|scanner, key| self.member(scanner, body, key))?;
        scanner.end()
    }

    pub(super) fn version(&self) -> EnvelopeVersion {
        let has = |field: Field| self.strings[field as usize].is_some();
        if !has(Field::Id) {
            EnvelopeVersion::WebhookSettings2022
        } else if has(Field::Name) || has(Field::ObjectId) || has(Field::Significance) {
            // 2023-09-01 envelopes carry these beside the current fields.
            EnvelopeVersion::Api2023
        } else {
            EnvelopeVersion::Api2024
        }
    }

    fn member(&mut self, scanner: &mut Scanner<'_>, body: &str, key: JsonStr) -> Scan<()> {
        let Some(field) = key_name(body, key).and_then(|name| Field::named(name.as_bytes())) else {
            return scanner.skip_value();
        };
        let bit = 1 << field as u16;
        if self.seen & bit != 0 {
            return Err(scanner.error_here("a field is named twice"));
        }
        self.seen |= bit;
        if field == Field::Object {
            return self.object(scanner, body);
        }
        self.strings[field as usize] = match (scanner.scalar()?, field) {
            (Scalar::Str(text), _) => match Text::new(body, text, &mut self.decoded) {
                Ok(text) => Some(text),
                Err(e) if field.is_required() => return Err(e),
                // A descriptive string that does not decode is ignored like any odd value.
                Err(_) => None,
            },
            (_, Field::Action) => return Err(scanner.error_here("`action` is not a string")),
            (_, Field::ObjectType) => {
                return Err(scanner.error_here("`object_type` is not a string"));
            }
            (Scalar::Other, Field::Id) => return Err(scanner.error_here("`id` is not a string")),
            _ => None,
        };
        Ok(())
    }

    /// `object`, kept raw, and its `id` when it is an object with one string `id`.
    fn object(&mut self, scanner: &mut Scanner<'_>, body: &str) -> Scan<()> {
        let start = match scanner.peek() {
            Some(b'n') => return scanner.skip_value(),
            _ => scanner.position(),
        };
        if scanner.peek() == Some(b'{') {
            let mut ids = 0;
            scanner.object(|scanner, key| {
                if key_name(body, key).as_deref() != Some("id") {
                    return scanner.skip_value();
                }
                ids += 1;
                self.object_ref_id = match scanner.scalar()? {
                    Scalar::Str(text) if ids == 1 => Text::new(body, text, &mut self.decoded).ok(),
                    _ => None,
                };
                Ok(())
            })?;
        } else {
            scanner.skip_value()?;
        }
        self.object = Some(Text::Body(start, scanner.position()));
        Ok(())
    }
}

/// A key's name: a slice of the body, or decoded for the rare key with escapes; `None` for
/// a key that does not decode (a lone surrogate), which names no member this crate reads.
fn key_name(body: &str, key: JsonStr) -> Option<Cow<'_, str>> {
    if key.escapes == 0 {
        return Some(Cow::Borrowed(
            body.get(key.start..key.end).unwrap_or_default(),
        ));
    }
    decode(body, key).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_parsing_follows_protocol_section_3() {
        for (object_type, action, expected) in [
            ("counterpart", "counterpart.created", "created"),
            (
                "entity",
                "entity.onboarding_requirements.updated",
                "onboarding_requirements.updated",
            ),
            ("payable.line_item", "payable.line_item.created", "created"),
            // Rule 1 wins even where a longer known type would also match.
            ("payable", "payable.line_item.updated", "line_item.updated"),
            // object_type and action disagree: strip the longest known type instead.
            ("payable_line_item", "payable.line_item.created", "created"),
            ("comment", "create", "create"),
            ("brand_new", "brand_new.thing.happened", "thing.happened"),
            ("entity", "other.created", "other.created"),
        ] {
            assert_eq!(
                event_type_of(object_type, action).as_str(),
                expected,
                "{action}"
            );
        }
    }
}
