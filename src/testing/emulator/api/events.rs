//! `GET /events` (the entity's, filtered, sorted, paginated) and `GET /events/{id}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error;
use super::pagination::{filtered, paginate};
use crate::testing::emulator::state::{Shared, keep, lock};

fn entity(headers: &HeaderMap) -> &str {
    headers
        .get("x-monite-entity-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let entity = entity(&headers);
    let own: Vec<Value> = {
        let mut state = lock(&shared.state);
        if !query.contains_key("pagination_token") {
            keep(&mut state.events_listings, entity.to_owned());
        }
        state
            .events
            .iter()
            .filter(|e| e.entity_id == entity)
            .map(|e| e.value.clone())
            .collect()
    };
    match filtered(&own, &query) {
        Ok(items) => paginate(&shared, items, &query),
        Err(refused) => *refused,
    }
}

pub(super) async fn get(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let entity = entity(&headers);
    let state = lock(&shared.state);
    match state
        .events
        .iter()
        .find(|e| e.entity_id == entity && e.value["id"] == id.as_str())
    {
        Some(event) => axum::Json(event.value.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "Event not found"),
    }
}
