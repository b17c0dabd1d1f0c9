//! The enums against Monite's catalog: every known object type and documented event parses
//! to a known variant and round-trips, and values Monite adds later round-trip too.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use monite_webhooks::{Event, EventType, ObjectType};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct Catalog {
    object_types: Vec<String>,
    events: BTreeMap<String, Vec<String>>,
    legacy_2022_actions: Vec<String>,
}

fn catalog() -> Catalog {
    serde_json::from_str(include_str!("../data/catalog.json")).unwrap()
}

fn assert_round_trips<T>(wire: &str)
where
    T: std::str::FromStr<Err = std::convert::Infallible>
        + std::fmt::Display
        + serde::Serialize
        + serde::de::DeserializeOwned
        + PartialEq
        + std::fmt::Debug,
{
    let parsed: T = wire.parse().unwrap();
    assert_eq!(parsed.to_string(), wire);
    let json = serde_json::to_string(&parsed).unwrap();
    assert_eq!(json, serde_json::to_string(wire).unwrap());
    assert_eq!(serde_json::from_str::<T>(&json).unwrap(), parsed);
}

#[test]
fn every_object_type_is_a_known_variant_and_round_trips() {
    let catalog = catalog();
    for wire in &catalog.object_types {
        let parsed = ObjectType::from(wire.as_str());
        assert!(parsed.is_known(), "{wire} should be a variant");
        assert_round_trips::<ObjectType>(wire);
    }
    assert_eq!(ObjectType::KNOWN.len(), catalog.object_types.len());
    // Monite's two spellings of line items stay distinct.
    assert_ne!(
        ObjectType::from("payable.line_item"),
        ObjectType::from("payable_line_item")
    );
}

#[test]
fn every_documented_pair_parses_to_known_variants_from_an_envelope() {
    let catalog = catalog();
    let mut names = std::collections::BTreeSet::new();
    for (object_type, events) in &catalog.events {
        let object = ObjectType::from(object_type.as_str());
        assert!(object.is_known(), "{object_type}");
        assert_eq!(
            object.documented_events().len(),
            events.len(),
            "{object_type}"
        );
        for event in events {
            names.insert(event.as_str());
            let name = EventType::from(event.as_str());
            assert!(name.is_known(), "{object_type}.{event}");
            assert!(
                object.documented_events().contains(&name),
                "{object_type}.{event}"
            );
            assert_round_trips::<EventType>(event);

            let body = serde_json::json!({
                "id": "f8130c42-6c0f-4b9d-81db-38c08712b8bc",
                "object_type": object_type,
                "action": format!("{object_type}.{event}"),
            });
            let parsed = Event::parse(serde_json::to_vec(&body).unwrap()).unwrap();
            assert_eq!(parsed.object_type(), &object, "{object_type}.{event}");
            assert_eq!(parsed.event_type(), &name, "{object_type}.{event}");
            assert!(parsed.is_documented());
        }
    }
    for action in &catalog.legacy_2022_actions {
        names.insert(action.as_str());
        assert!(EventType::from(action.as_str()).is_known(), "{action}");
    }
    assert_eq!(EventType::KNOWN.len(), names.len());
}

#[test]
fn values_monite_adds_later_round_trip_and_route_as_unknown() {
    for wire in ["invoice_batch", "payable.attachment", ""] {
        let object = ObjectType::from(wire);
        assert!(!object.is_known());
        assert_round_trips::<ObjectType>(wire);
    }
    let body = br#"{"id":"1","object_type":"receivable","action":"receivable.sent_by_pigeon"}"#;
    let event = Event::parse(&body[..]).unwrap();
    assert_eq!(event.object_type(), &ObjectType::Receivable);
    assert_eq!(event.event_type().as_str(), "sent_by_pigeon");
    assert!(!event.event_type().is_known());
    assert!(!event.is_documented());
}
