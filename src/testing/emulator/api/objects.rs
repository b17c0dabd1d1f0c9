//! The `GET` of an object an event named: its last state, `404` after a delete event (or
//! never stored), `400` without the entity header it needs; `429` and delays on demand.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::error;
use crate::testing::emulator::faults::ObjectRead;
use crate::testing::emulator::state::{Shared, keep, lock};

pub(super) async fn get(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let headers = request.headers();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut read = ObjectRead {
        path: path.clone(),
        entity_id: header("x-monite-entity-id"),
        version: header("x-monite-version"),
        bearer: header("authorization").is_some_and(|v| v.starts_with("Bearer ")),
        status: 200,
    };
    drop(request);
    let (throttle, delay) = {
        let mut state = lock(&shared.state);
        state.object_read_count += 1;
        let every = state.object_429_every;
        (
            every > 0 && state.object_read_count % every == 0,
            state.object_delay,
        )
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut state = lock(&shared.state);
    let response = if throttle {
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
        response.headers_mut().insert("retry-after", 0.into());
        response
    } else {
        // An entity listed and not stored as an object answers as listed.
        let listed = path
            .strip_prefix("/v1/entities/")
            .filter(|id| !id.contains('/'))
            .and_then(|id| state.entities.iter().find(|e| e["id"] == id))
            .map(|entity| (entity.clone(), None));
        match state.objects.get(&path).cloned().or(listed) {
            None => error(StatusCode::NOT_FOUND, "Object not found"),
            Some((_, Some(entity))) if read.entity_id.as_deref() != Some(entity.as_str()) => error(
                StatusCode::BAD_REQUEST,
                "Missing or unknown x-monite-entity-id header",
            ),
            Some((object, _)) => axum::Json(object).into_response(),
        }
    };
    read.status = response.status().as_u16();
    keep(&mut state.object_reads, read);
    response
}
