//! What did Monite send? [`Event`], one parsed delivery in any of the three envelope
//! generations, with the [`ObjectType`] and [`EventType`] enums that keep values Monite adds
//! later instead of rejecting them.

mod envelope;
mod event_type;
mod json_scan;
mod object_type;
mod wire_enum;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;

use self::envelope::{Field, Found, Text, not_an_envelope};
// The inbox reads an event's type back from its stored object type and action.
pub(crate) use self::envelope::event_type_of;
use self::json_scan::SyntaxError;
use crate::error::{Error, ErrorKind, Result};

pub use self::event_type::EventType;
pub use self::object_type::ObjectType;
#[cfg(feature = "client")]
pub(crate) use self::object_type::SUBSCRIBABLE;
pub use self::wire_enum::UnknownValue;
// `client::models` declares its enums with it too.
#[cfg(feature = "client")]
pub(crate) use self::wire_enum::wire_enum;

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
/// and the raw `object` JSON stay available. Descriptive fields are lenient: one that is
/// not a string, or a string that does not decode, reads as `None` rather than refusing
/// the delivery ([`Event::parse`] states exactly what is refused).
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
    // Shared, so that moving an event into a handler's future, and cloning it, copies a
    // pointer rather than every field.
    data: Arc<EventData>,
}

#[derive(Clone)]
struct EventData {
    // Checked to be UTF-8 once, so that every field is a free slice of it.
    body: ByteString,
    // The few strings JSON escapes changed, decoded; almost always empty.
    decoded: String,
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

impl Event {
    /// Parses a body (verify it first) into an event.
    ///
    /// Only the fields a handler cannot do without are strict. The descriptive ones
    /// (`object_id`, `entity_id`, `webhook_subscription_id`, `created_at`, `api_version`,
    /// `description`, `name`, `significance`, and `object`'s `id`) are kept when they are
    /// strings and ignored otherwise, so that an odd value in one of them cannot turn a
    /// delivery into a week of failed retries: a number (even one out of `f64`'s range,
    /// such as `1e400` or a 400-digit integer, which is never converted), `true`, an
    /// array, an object, or a string that does not decode (one escaping an unpaired
    /// surrogate, `"\ud800"`) reads as `None`. A key that does not decode names no field.
    /// Unknown fields are ignored, whatever valid JSON they hold.
    ///
    /// # Errors
    /// [`ErrorKind::NotAnEnvelope`] if:
    /// - the body is not UTF-8, or not one JSON object (RFC 8259, as serde_json reads it:
    ///   whitespace is only space, tab, line feed and carriage return, no byte order mark,
    ///   no raw control character in a string, no trailing content);
    /// - arrays and objects nest more than 128 deep, the envelope included, anywhere;
    /// - `action` or `object_type` is missing or not a string that decodes, or `id` is
    ///   neither null nor a string that decodes;
    /// - a field this crate reads (any named here, or `object`) is named twice, however
    ///   its name is escaped.
    pub fn parse(body: impl Into<Bytes>) -> Result<Self> {
        let body = ByteString::try_from(body.into()).map_err(|e| {
            Error::new(
                ErrorKind::NotAnEnvelope,
                "body is not a Monite event envelope: not UTF-8",
            )
            .with_source(e)
        })?;
        let mut found = Found::default();
        found.scan(&body).map_err(not_an_envelope)?;
        let field = |field: Field| found.strings[field as usize];
        let (Some(action), Some(object_type)) = (field(Field::Action), field(Field::ObjectType))
        else {
            return Err(not_an_envelope(SyntaxError {
                at: body.len(),
                what: "missing field `action` or `object_type`",
            }));
        };
        let object_type_name = object_type.as_str(&body, &found.decoded);
        let data = EventData {
            version: found.version(),
            object_type: ObjectType::from(object_type_name),
            event_type: event_type_of(object_type_name, action.as_str(&body, &found.decoded)),
            action,
            id: field(Field::Id),
            entity_id: field(Field::EntityId),
            object_id: found.object_ref_id.or(field(Field::ObjectId)),
            object: found.object,
            webhook_subscription_id: field(Field::WebhookSubscriptionId),
            created_at: field(Field::CreatedAt),
            api_version: field(Field::ApiVersion),
            description: field(Field::Description),
            name: field(Field::Name),
            body,
            decoded: found.decoded,
        };
        Ok(Self {
            data: Arc::new(data),
        })
    }

    /// The event id: stable across retries, and the id `GET /events/{id}` knows.
    /// `None` only for 2022 `webhook_settings` payloads, which had no id.
    #[must_use]
    pub fn id(&self) -> Option<&str> {
        self.get(self.data.id.as_ref())
    }

    /// What kind of object the event is about.
    #[must_use]
    pub fn object_type(&self) -> &ObjectType {
        &self.data.object_type
    }

    /// What happened, without the object-type prefix (`created`,
    /// `onboarding_requirements.updated`, or a 2022 `update`).
    #[must_use]
    pub fn event_type(&self) -> &EventType {
        &self.data.event_type
    }

    /// The `action` field exactly as sent, such as `counterpart.created`.
    #[must_use]
    pub fn action(&self) -> &str {
        self.get(Some(&self.data.action)).unwrap_or_default()
    }

    /// The entity the event belongs to.
    #[must_use]
    pub fn entity_id(&self) -> Option<&str> {
        self.get(self.data.entity_id.as_ref())
    }

    /// The changed object's id: `object.id`, or the legacy `object_id` field.
    #[must_use]
    pub fn object_id(&self) -> Option<&str> {
        self.get(self.data.object_id.as_ref())
    }

    /// The subscription that produced this delivery (2023-09-01 and later).
    #[must_use]
    pub fn webhook_subscription_id(&self) -> Option<&str> {
        self.get(self.data.webhook_subscription_id.as_ref())
    }

    /// `created_at` as sent: an RFC 3339 timestamp, when Monite sets it.
    #[must_use]
    pub fn created_at(&self) -> Option<&str> {
        self.get(self.data.created_at.as_ref())
    }

    /// `created_at` as a [`jiff::Timestamp`]; `Ok(None)` when Monite sent none (`null` or
    /// absent, which its schema allows).
    ///
    /// ```
    /// # fn run() -> Result<(), monite_webhooks::Error> {
    /// let event = monite_webhooks::Event::parse(bytes::Bytes::from_static(
    ///     br#"{"id":"e1","action":"payable.paid","object_type":"payable","created_at":"2024-03-04T20:06:48.593225+00:00"}"#,
    /// ))?;
    /// let at = event.created_at_timestamp()?.expect("set");
    /// assert_eq!(at.as_second(), 1_709_582_808);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::NotAnEnvelope`] when it is set but not an RFC 3339 timestamp.
    #[cfg(feature = "jiff")]
    pub fn created_at_timestamp(&self) -> Result<Option<jiff::Timestamp>> {
        self.created_at()
            .map(|text| {
                text.parse::<jiff::Timestamp>().map_err(|e| {
                    Error::new(
                        ErrorKind::NotAnEnvelope,
                        format!("created_at {text:?} is not an RFC 3339 timestamp: {e}"),
                    )
                    .with_source(e)
                })
            })
            .transpose()
    }

    /// The API version the event was rendered in, such as `2024-01-31`.
    #[must_use]
    pub fn api_version(&self) -> Option<&str> {
        self.get(self.data.api_version.as_ref())
    }

    /// Monite's free-text description.
    #[must_use]
    pub fn description(&self) -> Option<&str> {
        self.get(self.data.description.as_ref())
    }

    /// The `name` field of legacy envelopes.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.get(self.data.name.as_ref())
    }

    /// The raw JSON of `object`, exactly as sent (`None` if absent or null).
    #[must_use]
    pub fn object_json(&self) -> Option<&str> {
        self.get(self.data.object.as_ref())
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
        self.data.body.as_bytes()
    }

    /// Which envelope generation the delivery used.
    #[must_use]
    pub fn envelope_version(&self) -> EnvelopeVersion {
        self.data.version
    }

    /// Whether this crate knows both the object type and the event name, and Monite
    /// documents that event for that object type.
    #[must_use]
    pub fn is_documented(&self) -> bool {
        self.data
            .object_type
            .documented_events()
            .contains(&self.data.event_type)
    }

    /// Events fetched from `GET /events` name no subscription; recovery gives them the one
    /// they would have been delivered by, so that their idempotency key matches.
    #[cfg(feature = "client")]
    pub(crate) fn assume_webhook_subscription_id(&mut self, subscription_id: &str) {
        if self.data.webhook_subscription_id.is_none() {
            let data = Arc::make_mut(&mut self.data);
            let start = data.decoded.len();
            data.decoded.push_str(subscription_id);
            data.webhook_subscription_id = Some(Text::Decoded(start, data.decoded.len()));
        }
    }

    fn get<'a>(&'a self, text: Option<&'a Text>) -> Option<&'a str> {
        text.map(|text| text.as_str(&self.data.body, &self.data.decoded))
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("id", &self.id())
            .field("object_type", &self.data.object_type)
            .field("event_type", &self.data.event_type)
            .field("entity_id", &self.entity_id())
            .field("object_id", &self.object_id())
            .field("webhook_subscription_id", &self.webhook_subscription_id())
            .field("version", &self.data.version)
            .finish_non_exhaustive()
    }
}
#[cfg(test)]
mod tests {
    use super::*;

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
    fn descriptive_fields_that_do_not_decode_are_ignored() {
        // Lone and reversed surrogates, and numbers past f64's range.
        for odd in [
            r#""\ud800""#,
            r#""x\uDC00y""#,
            r#""\udc00\ud800""#,
            "1e400",
            "-1e999",
            &"7".repeat(400),
        ] {
            let event = Event::parse(format!(
                r#"{{"id":"e","action":"a","object_type":"b","description":{odd},
                    "name":{odd},"entity_id":{odd},"object_id":{odd},"created_at":{odd},
                    "webhook_subscription_id":{odd},"api_version":{odd},"significance":{odd},
                    "object":{{"\ud800":{odd},"id":{odd}}},"\udfff":{odd}}}"#
            ))
            .unwrap_or_else(|e| panic!("{odd}: {e}"));
            assert_eq!(event.description(), None, "{odd}");
            assert_eq!(event.name(), None, "{odd}");
            assert_eq!(event.entity_id(), None, "{odd}");
            assert_eq!(event.object_id(), None, "{odd}");
            assert_eq!(event.envelope_version(), EnvelopeVersion::Api2024, "{odd}");
        }
        // A key that does not decode is not `id`, in `object` or at the top.
        let event = Event::parse(
            r#"{"action":"a","object_type":"b","\ud800":1,"object":{"\ud800":1,"id":"o"}}"#,
        )
        .unwrap();
        assert_eq!(event.object_id(), Some("o"));
    }

    #[test]
    fn required_fields_that_do_not_decode_are_refused() {
        for body in [
            r#"{"action":"\ud800","object_type":"b"}"#,
            r#"{"action":"a","object_type":"\udc00"}"#,
            r#"{"action":"a","object_type":"b","id":"\ud800\u0041"}"#,
            r#"{"action":"a","object_type":"b","id":1e400}"#,
        ] {
            let err = Event::parse(body).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotAnEnvelope, "{body}");
        }
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
