//! `GET /entities`: the entities events have named, and those added on purpose. (`GET
//! /entities/{id}` is an object read, in `objects`.)

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;

use super::pagination::paginate;
use crate::testing::emulator::state::{Shared, lock};

pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let all = lock(&shared.state).entities.clone();
    paginate(&shared, all, &query)
}
