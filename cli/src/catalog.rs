//! Monite's documented events (the library's [`ObjectType::documented_events`]), and
//! realistic envelopes of the current generation for them.

use std::hash::{BuildHasher as _, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

use monite_webhooks::ObjectType;
use serde::Serialize;

use crate::failure::Failure;

/// One documented `(object_type, event)` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pair {
    pub(crate) object_type: String,
    pub(crate) event: String,
}

impl Pair {
    /// `object_type.event`, the envelope's `action`.
    pub(crate) fn action(&self) -> String {
        format!("{}.{}", self.object_type, self.event)
    }
}

/// Every documented pair, by object type, then event, as the library lists them.
pub(crate) fn documented() -> Vec<Pair> {
    ObjectType::KNOWN
        .iter()
        .flat_map(|object_type| {
            object_type.documented_events().iter().map(|event| Pair {
                object_type: object_type.as_str().to_owned(),
                event: event.as_str().to_owned(),
            })
        })
        .collect()
}

/// The pair `OBJECT_TYPE.EVENT` names: a documented one, or with `allow_undocumented`, any
/// split at a known object type (else at the first dot).
pub(crate) fn find(action: &str, allow_undocumented: bool) -> Result<Pair, Failure> {
    let documented = documented();
    if let Some(pair) = documented.iter().find(|p| p.action() == action) {
        return Ok(pair.clone());
    }
    if allow_undocumented {
        let known = ObjectType::KNOWN
            .iter()
            .map(|t| t.as_str())
            .filter(|t| action.starts_with(&format!("{t}.")))
            .max_by_key(|t| t.len());
        let split = known.map_or_else(|| action.find('.'), |t| Some(t.len()));
        if let Some(at) = split.filter(|&at| at > 0 && at + 1 < action.len()) {
            return Ok(Pair {
                object_type: action[..at].to_owned(),
                event: action[at + 1..].to_owned(),
            });
        }
    }
    let prefix = action.split('.').next().unwrap_or(action);
    let same_type: Vec<String> = documented
        .iter()
        .filter(|p| p.object_type == prefix)
        .map(Pair::action)
        .collect();
    let hint = if same_type.is_empty() {
        documented
            .iter()
            .map(Pair::action)
            .filter(|a| a.starts_with(prefix))
            .take(6)
            .collect()
    } else {
        same_type
    };
    let hint = if hint.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", hint.join(", "))
    };
    Err(Failure::usage(format!(
        "{action:?} is not one of the {} documented events{hint}; see `monite-webhooks send --list`, \
         or pass --allow-undocumented",
        documented.len()
    )))
}

/// What goes into a generated envelope besides the event.
#[derive(Debug, Clone, Default)]
pub(crate) struct EnvelopeIds {
    pub(crate) entity_id: Option<String>,
    pub(crate) webhook_subscription_id: Option<String>,
}

/// The current envelope generation (API 2024-01-31 and later), in Monite's field order.
#[derive(Serialize)]
struct Envelope<'a> {
    id: String,
    created_at: String,
    action: String,
    api_version: &'a str,
    entity_id: String,
    description: String,
    object: serde_json::Value,
    object_type: &'a str,
    webhook_subscription_id: String,
}

/// A fresh event for `pair`: new event and object ids, created now.
pub(crate) fn envelope(pair: &Pair, ids: &EnvelopeIds) -> String {
    let envelope = Envelope {
        id: uuid_v4(),
        created_at: crate::time::rfc3339_micros(crate::time::now()),
        action: pair.action(),
        api_version: monite_webhooks::client::DEFAULT_API_VERSION,
        entity_id: ids.entity_id.clone().unwrap_or_else(uuid_v4),
        description: format!(
            "{} {}",
            pair.object_type.replace(['_', '.'], " "),
            pair.event.replace(['_', '.'], " ")
        ),
        object: serde_json::json!({ "id": uuid_v4() }),
        object_type: &pair.object_type,
        webhook_subscription_id: ids.webhook_subscription_id.clone().unwrap_or_else(uuid_v4),
    };
    serde_json::to_string(&envelope).unwrap_or_default()
}

/// A random (version 4) UUID, from the standard library's randomly keyed hasher: ids need
/// to be unique, not unpredictable.
pub(crate) fn uuid_v4() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let state = RandomState::new();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = crate::time::now().as_nanos();
    let high = state.hash_one((n, nanos, std::process::id()));
    let low = state.hash_one((high, n));
    let value = (u128::from(high) << 64 | u128::from(low)) & !(0xF000 << 64) & !(0xC << 60)
        | (0x4000 << 64)
        | (0x8 << 60);
    let hex = format!("{value:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use monite_webhooks::event::EnvelopeVersion;
    use monite_webhooks::{Event, EventType};

    #[test]
    fn the_catalog_has_every_documented_event() {
        let pairs = documented();
        assert_eq!(pairs.len(), 89);
        for pair in &pairs {
            let object_type = ObjectType::from(pair.object_type.as_str());
            let event = EventType::from(pair.event.as_str());
            assert!(object_type.documented_events().contains(&event), "{pair:?}");
        }
    }

    #[test]
    fn envelopes_parse_as_the_current_generation_with_their_pair() {
        for pair in documented() {
            let body = envelope(&pair, &EnvelopeIds::default());
            let event = Event::parse(body).unwrap();
            assert_eq!(event.envelope_version(), EnvelopeVersion::Api2024);
            assert_eq!(event.object_type().as_str(), pair.object_type);
            assert_eq!(event.event_type().as_str(), pair.event);
            assert!(event.is_documented(), "{pair:?}");
            assert_eq!(event.id().map(str::len), Some(36));
        }
    }

    #[test]
    fn finds_pairs_whose_parts_contain_dots() {
        let pair = find("entity.onboarding_requirements.updated", false).unwrap();
        assert_eq!(pair.object_type, "entity");
        let pair = find("payable.line_item.created", true).unwrap();
        assert_eq!(pair.object_type, "payable.line_item");
        assert!(find("counterpart.exploded", false).is_err());
        assert!(find("nodot", true).is_err());
    }

    #[test]
    fn uuids_are_version_4_and_distinct() {
        let a = uuid_v4();
        let b = uuid_v4();
        assert_ne!(a, b);
        assert_eq!(&a[14..15], "4");
        assert!("89ab".contains(&a[19..20]), "{a}");
    }
}
