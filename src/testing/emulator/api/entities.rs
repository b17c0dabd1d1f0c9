//! `GET /entities` and `GET /entities/{id}`: the entities events have named, and those
//! added on purpose.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::error;
use super::pagination::paginate;
use crate::testing::emulator::state::{Shared, lock};

pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let all = lock(&shared.state).entities.clone();
    paginate(&shared, all, &query)
}

pub(super) async fn get(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let state = lock(&shared.state);
    match state.entities.iter().find(|e| e["id"] == id.as_str()) {
        Some(entity) => axum::Json(entity.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "Entity not found"),
    }
}
