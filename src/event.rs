//! `Event`: one parsed Monite delivery, in any of the three envelope generations.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::{Error, ErrorKind, Result};
use crate::event_type::EventType;
use crate::object_type::ObjectType;

/// Which generation of Monite's envelope a delivery used, told apart by its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EnvelopeVersion {
    /// The 2022 `webhook_settings` payload: `object_id`, `object_type`, `action`, `name`,
    /// and no event `id`.
    WebhookSettings2022,
    /// API 2023-09-01: the current fields plus `name`, `object_id` and `significance`.
    Api2023,
    /// API 2024-01-31 and later: `id`, `action`, `object`, `webhook_subscription_id`, ...
    Api2024,
}

/// One Monite event, parsed from a verified body.
///
/// String fields are read straight out of the body, which the event keeps (cheaply, as
/// [`Bytes`]): parsing allocates nothing for them. Unknown fields are ignored; the raw body
/// and the raw `object` JSON stay available.
///
/// ```
/// use monite_webhooks::{Event, EventType, ObjectType};
///
/// let event = Event::parse(r#"{
///     "id": "f8130c42-6c0f-4b9d-81db-38c08712b8bc",
///     "action": "entity.onboarding_requirements.updated",
///     "object_type": "entity",
///     "object": {"id": "587fd280-3b1a-4ad4-8e00-75a8c2cd789a"},
///     "entity_id": "c381e88f-7019-4f06-9fbb-3bab8d88348a",
///     "webhook_subscription_id": "f3c64af7-4a2f-4ed2-8160-d66b6a8ac4ba",
///     "description": "entity onboarding requirements updated",
///     "api_version": "2024-01-31",
///     "created_at": "2024-03-04T20:06:48.593225+00:00"
/// }"#)?;
/// assert_eq!(event.object_type(), &ObjectType::Entity);
/// assert_eq!(event.event_type(), &EventType::OnboardingRequirementsUpdated);
/// assert_eq!(event.object_id(), Some("587fd280-3b1a-4ad4-8e00-75a8c2cd789a"));
/// # Ok::<(), monite_webhooks::Error>(())
/// ```
#[derive(Clone)]
pub struct Event {
    body: Bytes,
    version: EnvelopeVersion,
    object_type: ObjectType,
    event_type: EventType,
    action: Text,
    id: Option<Text>,
    entity_id: Option<Text>,
    object_id: Option<Text>,
    object: Option<Text>,
    webhook_subscription_id: Option<Text>,
    created_at: Option<Text>,
    api_version: Option<Text>,
    description: Option<Text>,
    name: Option<Text>,
}

/// A string field: where it sits in the body, or (when JSON escapes changed it) its own copy.
#[derive(Clone)]
enum Text {
    Span(u32, u32),
    Owned(Box<str>),
}

impl Event {
    /// Parses a body (verify it first) into an event.
    ///
    /// # Errors
    /// [`ErrorKind::NotAnEnvelope`] if the body is not a JSON object with string `action` and
    /// `object_type` fields (and, where present, a string `id`).
    pub fn parse(body: impl Into<Bytes>) -> Result<Self> {
        let body = body.into();
        let envelope = parse_envelope(&body)?;
        let text = |cow: Cow<'_, str>| Text::new(&body, cow);
        let object_type = ObjectType::from(&*envelope.object_type);
        let event_type = event_type_of(&envelope.object_type, &envelope.action);
        let version = envelope.version();
        let object_id = envelope
            .object
            .and_then(object_id_of)
            .or(envelope.object_id.0);
        Ok(Self {
            version,
            object_type,
            event_type,
            action: text(envelope.action),
            id: envelope.id.map(text),
            entity_id: envelope.entity_id.0.map(text),
            object_id: object_id.map(text),
            object: envelope.object.map(|raw| text(Cow::Borrowed(raw.get()))),
            webhook_subscription_id: envelope.webhook_subscription_id.0.map(text),
            created_at: envelope.created_at.0.map(text),
            api_version: envelope.api_version.0.map(text),
            description: envelope.description.0.map(text),
            name: envelope.name.0.map(text),
            body,
        })
    }

    /// The event id: stable across retries, and the id `GET /events/{id}` knows.
    /// `None` only for 2022 `webhook_settings` payloads, which had no id.
    #[must_use]
    pub fn id(&self) -> Option<&str> {
        self.get(self.id.as_ref())
    }

    /// What kind of object the event is about.
    #[must_use]
    pub fn object_type(&self) -> &ObjectType {
        &self.object_type
    }

    /// What happened, without the object-type prefix (`created`,
    /// `onboarding_requirements.updated`, or a 2022 `update`).
    #[must_use]
    pub fn event_type(&self) -> &EventType {
        &self.event_type
    }

    /// The `action` field exactly as sent, such as `counterpart.created`.
    #[must_use]
    pub fn action(&self) -> &str {
        self.get(Some(&self.action)).unwrap_or_default()
    }

    /// The entity the event belongs to.
    #[must_use]
    pub fn entity_id(&self) -> Option<&str> {
        self.get(self.entity_id.as_ref())
    }

    /// The changed object's id: `object.id`, or the legacy `object_id` field.
    #[must_use]
    pub fn object_id(&self) -> Option<&str> {
        self.get(self.object_id.as_ref())
    }

    /// The subscription that produced this delivery (2023-09-01 and later).
    #[must_use]
    pub fn webhook_subscription_id(&self) -> Option<&str> {
        self.get(self.webhook_subscription_id.as_ref())
    }

    /// `created_at` as sent: an RFC 3339 timestamp, when Monite sets it.
    #[must_use]
    pub fn created_at(&self) -> Option<&str> {
        self.get(self.created_at.as_ref())
    }

    /// The API version the event was rendered in, such as `2024-01-31`.
    #[must_use]
    pub fn api_version(&self) -> Option<&str> {
        self.get(self.api_version.as_ref())
    }

    /// Monite's free-text description.
    #[must_use]
    pub fn description(&self) -> Option<&str> {
        self.get(self.description.as_ref())
    }

    /// The `name` field of legacy envelopes.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.get(self.name.as_ref())
    }

    /// The raw JSON of `object`, exactly as sent (`None` if absent or null).
    #[must_use]
    pub fn object_json(&self) -> Option<&str> {
        self.get(self.object.as_ref())
    }

    /// Deserializes `object` into your own type.
    ///
    /// # Errors
    /// serde's error if `object` is absent, null or does not fit `T`.
    pub fn object_as<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.object_json().unwrap_or("null"))
    }

    /// The verified body, byte for byte as received.
    #[must_use]
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Which envelope generation the delivery used.
    #[must_use]
    pub fn envelope_version(&self) -> EnvelopeVersion {
        self.version
    }

    /// Whether this crate knows both the object type and the event name, and Monite
    /// documents that event for that object type.
    #[must_use]
    pub fn is_documented(&self) -> bool {
        self.object_type
            .documented_events()
            .contains(&self.event_type)
    }

    /// Events fetched from `GET /events` name no subscription; recovery gives them the one
    /// they would have been delivered by, so that their idempotency key matches.
    #[cfg(feature = "client")]
    pub(crate) fn assume_webhook_subscription_id(&mut self, subscription_id: &str) {
        if self.webhook_subscription_id.is_none() {
            self.webhook_subscription_id = Some(Text::Owned(subscription_id.into()));
        }
    }

    fn get<'a>(&'a self, text: Option<&'a Text>) -> Option<&'a str> {
        match text? {
            Text::Owned(owned) => Some(owned),
            // Spans were cut from `&str`s borrowed out of this very body, so this is valid
            // UTF-8 and in range; `get` and `from_utf8` keep even a bug from panicking.
            Text::Span(start, end) => self
                .body
                .get(*start as usize..*end as usize)
                .and_then(|bytes| std::str::from_utf8(bytes).ok()),
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("id", &self.id())
            .field("object_type", &self.object_type)
            .field("event_type", &self.event_type)
            .field("entity_id", &self.entity_id())
            .field("object_id", &self.object_id())
            .field("webhook_subscription_id", &self.webhook_subscription_id())
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Text {
    fn new(body: &[u8], text: Cow<'_, str>) -> Self {
        match text {
            Cow::Borrowed(part) => span_in(body, part.as_bytes())
                .map_or_else(|| Self::Owned(part.into()), |(s, e)| Self::Span(s, e)),
            Cow::Owned(owned) => Self::Owned(owned.into_boxed_str()),
        }
    }
}

/// Where `part`, a slice borrowed from `body`, sits in it.
pub(crate) fn span_in(body: &[u8], part: &[u8]) -> Option<(u32, u32)> {
    let start = part.as_ptr().addr().checked_sub(body.as_ptr().addr())?;
    let end = start.checked_add(part.len())?;
    if end > body.len() {
        return None;
    }
    Some((u32::try_from(start).ok()?, u32::try_from(end).ok()?))
}

/// The event name inside `action`, as protocol section 3 says: strip `object_type.`, else
/// the longest known object type followed by `.`, else the whole action is the name.
/// Object types and event names both contain dots, so never split on the first one.
fn event_type_of(object_type: &str, action: &str) -> EventType {
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

fn parse_envelope(body: &[u8]) -> Result<Envelope<'_>> {
    // serde would also read a JSON array positionally into the struct; an envelope is an
    // object, so say so before it tries.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(Error::new(
            ErrorKind::NotAnEnvelope,
            "body is not a Monite event envelope: not a JSON object",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        Error::new(
            ErrorKind::NotAnEnvelope,
            format!("body is not a Monite event envelope: {e}"),
        )
        .with_source(e)
    })
}

/// The fields of all three generations. Those a handler cannot do without are strict; the
/// descriptive ones are read if they are strings and ignored otherwise, so that a change of
/// shape in one of them does not turn a whole delivery into a week of failed retries.
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
    #[serde(borrow, default)]
    object_id: Lenient<'a>,
    #[serde(borrow, default)]
    entity_id: Lenient<'a>,
    #[serde(borrow, default)]
    webhook_subscription_id: Lenient<'a>,
    #[serde(borrow, default)]
    created_at: Lenient<'a>,
    #[serde(borrow, default)]
    api_version: Lenient<'a>,
    #[serde(borrow, default)]
    description: Lenient<'a>,
    #[serde(borrow, default)]
    name: Lenient<'a>,
    #[serde(borrow, default)]
    significance: Lenient<'a>,
}

impl Envelope<'_> {
    fn version(&self) -> EnvelopeVersion {
        if self.id.is_none() {
            EnvelopeVersion::WebhookSettings2022
        } else if self.name.0.is_some()
            || self.object_id.0.is_some()
            || self.significance.0.is_some()
        {
            // 2023-09-01 envelopes carry these beside the current fields.
            EnvelopeVersion::Api2023
        } else {
            EnvelopeVersion::Api2024
        }
    }
}

/// `object.id`, when `object` is a JSON object with a string `id`.
fn object_id_of(object: &RawValue) -> Option<Cow<'_, str>> {
    #[derive(Deserialize)]
    struct ObjectRef<'a> {
        #[serde(borrow, default)]
        id: Lenient<'a>,
    }
    let raw = object.get();
    if !raw.starts_with('{') {
        return None;
    }
    serde_json::from_str::<ObjectRef<'_>>(raw).ok()?.id.0
}

/// A string, or `None` for any other JSON value.
#[derive(Default)]
struct Lenient<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Lenient<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LenientVisitor(PhantomData))
    }
}

struct LenientVisitor<'a>(PhantomData<Lenient<'a>>);

impl<'de: 'a, 'a> Visitor<'de> for LenientVisitor<'a> {
    type Value = Lenient<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Lenient(Some(Cow::Borrowed(v))))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Lenient(Some(Cow::Owned(v.to_owned()))))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Lenient(Some(Cow::Owned(v))))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Lenient(None))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Lenient::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Lenient(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Lenient(None))
    }
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

    #[test]
    fn versions_are_told_apart_by_fields() {
        let v2022 = Event::parse(
            r#"{"object_id":"o","object_type":"entity","action":"update","name":"hook"}"#,
        )
        .unwrap();
        assert_eq!(
            v2022.envelope_version(),
            EnvelopeVersion::WebhookSettings2022
        );
        assert_eq!(v2022.id(), None);
        assert_eq!(v2022.object_id(), Some("o"));
        assert_eq!(v2022.event_type(), &EventType::Update);

        let v2023 = Event::parse(
            r#"{"id":"e","object_id":"o","object_type":"payable","action":"payable.paid",
                "name":"n","significance":"medium","webhook_subscription_id":"s","object":null}"#,
        )
        .unwrap();
        assert_eq!(v2023.envelope_version(), EnvelopeVersion::Api2023);
        assert_eq!(v2023.object_id(), Some("o"));
        assert_eq!(v2023.object_json(), None);

        let v2024 = Event::parse(
            r#"{"id":"e","object_type":"payable","action":"payable.paid","object":{"id":"o2"}}"#,
        )
        .unwrap();
        assert_eq!(v2024.envelope_version(), EnvelopeVersion::Api2024);
        assert_eq!(v2024.object_id(), Some("o2"));
        assert_eq!(v2024.object_json(), Some(r#"{"id":"o2"}"#));
    }

    #[test]
    fn escaped_strings_are_decoded_and_descriptive_fields_are_lenient() {
        let event = Event::parse(
            r#"{"id":"a\u0062c","object_type":"tag","action":"tag.created",
                "description":{"unexpected":"shape"},"entity_id":7,"extra":[1,2]}"#,
        )
        .unwrap();
        assert_eq!(event.id(), Some("abc"));
        assert_eq!(event.description(), None);
        assert_eq!(event.entity_id(), None);
    }

    #[test]
    fn non_envelopes_are_rejected_with_the_reason() {
        for body in [
            &b"[]"[..],
            b"\"x\"",
            b"not json",
            b"{}",
            br#"{"action":"x"}"#,
            br#"{"action":1,"object_type":"x"}"#,
            br#"{"id":5,"action":"a","object_type":"x"}"#,
            b"{\"action\":\"\xff\",\"object_type\":\"x\"}",
        ] {
            let err = Event::parse(body.to_vec()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotAnEnvelope, "{body:?}");
        }
    }
}
