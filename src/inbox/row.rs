//! `InboxEvent`: one event of the inbox, as an operator sees it.

use jiff::Timestamp;

use super::state::InboxState;
use crate::event::{EventType, ObjectType};

/// One event of the inbox, as an operator sees it: what `list` and `show` answer.
///
/// Serialised (the command line's `--json`) with `object_type`, `event` (the envelope's
/// `action`, such as `payable.created`), `event_type`, `state` and `received_at` (RFC 3339,
/// milliseconds, UTC) as strings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboxEvent {
    /// The row's id: what `retry` and `show` take.
    pub id: i64,
    /// Monite's event id.
    pub event_id: Option<String>,
    /// The object type, such as `payable`.
    pub object_type: ObjectType,
    /// What happened, without the object type: `created` for `payable.created`.
    pub event_type: EventType,
    /// Where the event is in its life.
    pub state: InboxState,
    /// Attempts so far.
    pub attempt: i32,
    /// When it was accepted.
    pub received_at: Timestamp,
    /// The last attempt's error.
    pub last_error: Option<String>,
    // The envelope's `action` as stored: `event_type` with its object type, or a legacy
    // action as sent.
    action: Box<str>,
}

impl InboxEvent {
    /// An event as a store read it, with no attempt, error or event id yet; `action` is
    /// the envelope's, as accepted.
    pub(crate) fn new(
        id: i64,
        object_type: &str,
        action: &str,
        state: InboxState,
        received_at: Timestamp,
    ) -> Self {
        Self {
            id,
            event_id: None,
            object_type: ObjectType::from(object_type),
            event_type: crate::event::event_type_of(object_type, action),
            state,
            attempt: 0,
            received_at,
            last_error: None,
            action: action.into(),
        }
    }

    /// The envelope's `action` as accepted, such as `payable.created`.
    #[must_use]
    pub fn action(&self) -> &str {
        &self.action
    }
}

impl serde::Serialize for InboxEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut event = serializer.serialize_struct("InboxEvent", 9)?;
        event.serialize_field("id", &self.id)?;
        event.serialize_field("event_id", &self.event_id)?;
        event.serialize_field("object_type", self.object_type.as_str())?;
        event.serialize_field("event", self.action())?;
        event.serialize_field("event_type", self.event_type.as_str())?;
        event.serialize_field("state", self.state.as_str())?;
        event.serialize_field("attempt", &self.attempt)?;
        event.serialize_field("received_at", &format!("{:.3}", self.received_at))?;
        event.serialize_field("last_error", &self.last_error)?;
        event.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_keeps_the_columns_as_strings() {
        let at: Timestamp = "2024-03-04T20:06:48Z".parse().unwrap();
        let mut event = InboxEvent::new(7, "payable", "payable.created", InboxState::Dead, at);
        event.attempt = 3;
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["object_type"], "payable");
        assert_eq!(json["event"], "payable.created");
        assert_eq!(json["event_type"], "created");
        assert_eq!(json["state"], "dead");
        assert_eq!(json["received_at"], "2024-03-04T20:06:48.000Z");
        assert_eq!(
            (json["id"].as_i64(), json["attempt"].as_i64()),
            (Some(7), Some(3))
        );
        assert_eq!(event.event_type, EventType::Created);
    }
}
