//! `GET /webhook_deliveries`: the entity's delivery log, every attempt counted.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

use super::pagination::{filtered, paginate};
use crate::testing::emulator::clock::rfc3339;
use crate::testing::emulator::state::{Shared, keep, lock};

pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let entity = headers
        .get("x-monite-entity-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let all: Vec<Value> = {
        let mut state = lock(&shared.state);
        keep(&mut state.delivery_queries, query.clone());
        let actions: HashMap<&str, (&Value, &Value)> = state
            .events
            .iter()
            .map(|e| {
                (
                    e.value["id"].as_str().unwrap_or_default(),
                    (&e.value["action"], &e.value["object_type"]),
                )
            })
            .collect();
        state
            .deliveries
            .iter()
            .filter(|d| d.entity_id.as_deref().is_none_or(|e| e == entity))
            .map(|d| {
                // `created_at`, `action` and `object_type` filter it, as Monite's do; they
                // are not served (the schema has no such fields).
                let mut item = d.resource();
                item["created_at"] = json!(rfc3339(d.created_at));
                if let Some((action, object_type)) = actions.get(d.event_id.as_str()) {
                    item["action"] = (*action).clone();
                    item["object_type"] = (*object_type).clone();
                }
                item
            })
            .collect()
    };
    let items = match filtered(&all, &query) {
        Ok(items) => items,
        Err(refused) => return *refused,
    };
    let items = items
        .into_iter()
        .map(|mut item| {
            if let Some(fields) = item.as_object_mut() {
                for hidden in ["created_at", "action", "object_type"] {
                    fields.remove(hidden);
                }
            }
            item
        })
        .collect();
    paginate(&shared, items, &query)
}
