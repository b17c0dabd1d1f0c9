//! Recording an event as Monite would: only when an enabled subscription covers it; then
//! one delivery per such subscription, its first attempt due now, and the object's last
//! state kept for its `GET`.

use serde_json::{Value, json};

use super::clock::rfc3339;
use super::state::{Asked, Delivery, Due, Shared, StoredEvent, lock};
use crate::ObjectType;
use crate::client::fetch::{EntityHeader, endpoint};

/// What became of an event asked for with [`Emulator::trigger`](super::Emulator::trigger).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Triggered {
    /// Recorded, and one delivery per covering subscription scheduled: the event as
    /// `GET /events/{id}` answers it.
    Recorded(Value),
    /// Not recorded, as Monite records no event no enabled subscription covers (while a
    /// subscription is disabled, its events are lost): why.
    NotRecorded(String),
}

impl Triggered {
    /// The event, if it was recorded.
    #[must_use]
    pub fn event(&self) -> Option<&Value> {
        match self {
            Self::Recorded(event) => Some(event),
            Self::NotRecorded(_) => None,
        }
    }
}

/// The object type an action is about: its shortest prefix before a `.` that is one of
/// Monite's object types (`payable.line_item.updated` is about a `payable`), else the
/// text before the first `.`.
pub(super) fn object_type_of(action: &str) -> Option<&str> {
    let mut first = None;
    for (at, _) in action.match_indices('.') {
        let prefix = &action[..at];
        first.get_or_insert(prefix);
        if prefix.parse::<ObjectType>().is_ok_and(|t| t.is_known()) {
            return Some(prefix);
        }
    }
    first.filter(|p| !p.is_empty())
}

/// Whether `id` can be one path segment as it stands: 1 to 100 ASCII letters, digits, `-`,
/// `_` or `.`, not starting with `.` (no `..`, no `/`, nothing to escape).
pub(super) fn id_ok(id: &str) -> bool {
    (1..=100).contains(&id.len())
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Checks what a trigger names: an action `<object_type>.<event>` of printable ASCII, an
/// entity id and an object id that can each be a path segment, an object that is a JSON
/// object.
pub(super) fn check(action: &str, entity_id: &str, object: Option<&Value>) -> Result<(), String> {
    let printable = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
    if action.is_empty() || action.len() > 200 || !printable(action) {
        return Err("`action` must be 1 to 200 printable ASCII characters".to_owned());
    }
    if object_type_of(action).is_none() {
        return Err(
            "`action` must read `<object_type>.<event>`, such as `payable.paid`".to_owned(),
        );
    }
    if !id_ok(entity_id) {
        return Err(
            "`entity_id` must be 1 to 100 ASCII letters, digits, `-`, `_` or `.`".to_owned(),
        );
    }
    if let Some(object) = object {
        let Some(fields) = object.as_object() else {
            return Err("`object` must be a JSON object".to_owned());
        };
        if let Some(id) = fields.get("id")
            && !id.as_str().is_some_and(id_ok)
        {
            return Err(
                "`object.id` must be 1 to 100 ASCII letters, digits, `-`, `_` or `.`".to_owned(),
            );
        }
    }
    Ok(())
}

/// A fresh UUID-shaped id, unique in this emulator.
pub(super) fn new_id(shared: &Shared, prefix: &str) -> String {
    let n = shared.counters.next();
    format!("{prefix}-0000-4000-8000-{n:012x}")
}

/// Records `action` for `entity_id` about `object` (a new id when `None`), once checked.
pub(super) fn record(
    shared: &Shared,
    action: &str,
    entity_id: &str,
    object: Option<Value>,
) -> Triggered {
    let Some(object_type) = object_type_of(action).map(str::to_owned) else {
        return Triggered::NotRecorded("the action names no object type".to_owned());
    };
    let now = shared.clock.now();
    let created_at = rfc3339(now);
    let mut object = object.unwrap_or_else(|| json!({}));
    if object.get("id").is_none() {
        object["id"] = json!(new_id(shared, "0b000000"));
    }
    let event_id = new_id(shared, "ee000000");
    let mut state = lock(&shared.state);
    state.ensure_entity(entity_id, &created_at);
    let covering: Vec<(String, String)> = state
        .subscriptions
        .iter()
        .filter(|s| s.covers(&object_type, action))
        .map(|s| (s.id.clone(), s.url.clone()))
        .collect();
    state.asked.push(Asked {
        id: event_id.clone(),
        action: action.to_owned(),
        entity_id: entity_id.to_owned(),
        recorded: !covering.is_empty(),
    });
    if covering.is_empty() {
        return Triggered::NotRecorded(format!(
            "no enabled subscription covers `{action}` (object type `{object_type}`)"
        ));
    }
    let event = json!({
        "id": event_id, "created_at": created_at, "action": action,
        "api_version": "2024-05-25", "description": action.replace(['.', '_'], " "),
        "entity_id": entity_id, "object": {"id": object["id"]}, "object_type": object_type,
    });
    keep_object(&mut state, &object_type, action, entity_id, object);
    state.events.push(StoredEvent {
        entity_id: entity_id.to_owned(),
        value: event.clone(),
    });
    for (subscription_id, url) in covering {
        let mut envelope = event.clone();
        envelope["webhook_subscription_id"] = json!(subscription_id);
        let delivery = Delivery {
            id: new_id(shared, "dd000000"),
            event_id: event_id.clone(),
            entity_id: Some(entity_id.to_owned()),
            subscription_id: Some(subscription_id),
            url,
            created_at: now,
            attempts: Vec::new(),
            next: Some((now, Due::Attempt)),
            body: envelope.to_string().into(),
            given: None,
        };
        state.deliveries.push(delivery);
    }
    drop(state);
    shared.wake.notify_one();
    Triggered::Recorded(event)
}

/// Keeps `object`'s last state at its `GET` path, or forgets it on a `*.deleted` action.
fn keep_object(
    state: &mut super::state::State,
    object_type: &str,
    action: &str,
    entity_id: &str,
    object: Value,
) {
    let Some(row) = object_type
        .parse::<ObjectType>()
        .ok()
        .and_then(|t| endpoint(&t))
    else {
        return;
    };
    let Some(path) = object_path(row.path_template(), &object, entity_id) else {
        return;
    };
    if action.ends_with(".deleted") {
        state.objects.remove(&path);
        return;
    }
    let header = match row.entity_header() {
        EntityHeader::None => None,
        _ => Some(entity_id.to_owned()),
    };
    state.objects.insert(path, (object, header));
}

/// The template filled in: its last parameter with the object's id (the entity's, where
/// the parameter names the entity), the others with the object's field of that name.
fn object_path(template: &str, object: &Value, entity_id: &str) -> Option<String> {
    let mut path = String::from("/v1");
    let parameters = template.matches('{').count();
    let mut seen = 0;
    for segment in template.split('/').filter(|s| !s.is_empty()) {
        path.push('/');
        let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
            path.push_str(segment);
            continue;
        };
        seen += 1;
        let value = if name == "entity_id" {
            Some(entity_id)
        } else if seen == parameters {
            object["id"].as_str()
        } else {
            object[name].as_str()
        };
        path.push_str(value?);
    }
    Some(path)
}
