//! The fetch's path table against Monite's OpenAPI document (its GET paths and the
//! `updated_at` and `status` of their answers, cut into `tests/data/monite-openapi-fetch.json`):
//! a mistyped path, a wrong header rule or a missed deleted status fails here.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use monite_webhooks::ObjectType;
use monite_webhooks::client::fetch::{EntityHeader, endpoint};
use serde_json::Value;

fn document() -> Value {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/monite-openapi-fetch.json"
    );
    serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
}

fn schema<'a>(doc: &'a Value, reference: &Value) -> &'a Value {
    let name = reference.as_str().unwrap().rsplit('/').next().unwrap();
    &doc["components"]["schemas"][name]
}

#[test]
fn every_row_is_a_get_in_the_document_with_its_header_rule_and_fields() {
    let doc = document();
    let mut checked = 0;
    for object_type in ObjectType::KNOWN {
        let Some(row) = endpoint(object_type) else {
            continue;
        };
        checked += 1;
        let path = row.path_template();
        let get = &doc["paths"][path]["get"];
        assert!(
            get.is_object(),
            "{object_type}: no GET {path} in the document"
        );
        let entity = get["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "x-monite-entity-id");
        let expected = match entity {
            None => EntityHeader::None,
            Some(p) if p["required"] == true => EntityHeader::Required,
            Some(_) => EntityHeader::Optional,
        };
        assert_eq!(row.entity_header(), expected, "{object_type}: {path}");
        // The path's parameters: the object's id, and the parent where there is one.
        let parameters: Vec<&str> = path
            .split('{')
            .skip(1)
            .map(|p| p.split('}').next().unwrap())
            .collect();
        match row.parent() {
            Some(parent) => {
                assert_eq!(parameters.len(), 2, "{object_type}: {path}");
                assert_eq!(parameters[0], parent, "{object_type}: {path}");
            }
            None => assert!(parameters.len() <= 1, "{object_type}: {path}"),
        }
        let answer = schema(&doc, &get["responses"]["200"]["schema"]["$ref"]);
        assert_eq!(
            row.has_updated_at(),
            answer["properties"]["updated_at"].is_object(),
            "{object_type}: updated_at of {path}"
        );
        let statuses: Vec<&str> = answer["properties"]["status"]["enum"]
            .as_array()
            .map(|all| all.iter().map(|v| v.as_str().unwrap()).collect())
            .unwrap_or_default();
        let documented_deleted: Vec<&str> = statuses
            .iter()
            .copied()
            .filter(|s| s.contains("delet"))
            .collect();
        if *object_type == ObjectType::ApprovalPolicy {
            // The resource's own enum leaves `deleted` out; `ApprovalPolicyStatus` has it.
            let all = &doc["components"]["schemas"]["ApprovalPolicyStatus"]["enum"];
            assert!(all.as_array().unwrap().contains(&Value::from("deleted")));
            assert_eq!(row.deleted_statuses(), ["deleted"]);
        } else {
            assert_eq!(
                row.deleted_statuses(),
                documented_deleted.as_slice(),
                "{object_type}: deleted statuses of {path}"
            );
        }
    }
    assert_eq!(checked, 36);
}

#[test]
fn the_types_without_an_endpoint_are_the_ones_the_document_has_no_path_for() {
    let none: Vec<&str> = ObjectType::KNOWN
        .iter()
        .filter(|t| endpoint(t).is_none())
        .map(ObjectType::as_str)
        .collect();
    assert_eq!(
        none,
        [
            "account",
            "approval",
            "counterpart_partner_metadata",
            "payment",
            "todo_task",
            "transaction",
            "workflow",
            "workflow_pipeline",
        ]
    );
    // None of them has a path of its own name.
    let doc = document();
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    for name in [
        "account",
        "approval",
        "todo_task",
        "transaction",
        "workflow",
    ] {
        assert!(
            !paths.iter().any(|p| p.starts_with(&format!("/{name}s/{{"))),
            "{name}"
        );
    }
}

#[test]
fn the_entity_and_partner_objects_send_no_entity_header() {
    for object_type in [
        ObjectType::Entity,
        ObjectType::EntitySettings,
        ObjectType::PartnerSettings,
    ] {
        assert_eq!(
            endpoint(&object_type).unwrap().entity_header(),
            EntityHeader::None
        );
    }
    assert!(endpoint(&"invoice_batch".parse().unwrap()).is_none());
}

#[test]
fn every_wire_name_in_the_table_is_monites_or_its_documented_spelling() {
    let doc = document();
    let subscribable = doc["components"]["schemas"]["WebhookObjectType"]["enum"]
        .as_array()
        .unwrap()
        .clone();
    for object_type in ObjectType::KNOWN.iter().filter(|t| endpoint(t).is_some()) {
        let name = object_type.as_str();
        assert!(
            subscribable.contains(&Value::from(name))
                || ["payable_line_item", "counterpart_vat_id"].contains(&name),
            "{name}"
        );
    }
}
