//! The emulator's own endpoints, under `/_emulator`: the clock, events and entities on
//! demand, the ledger. Hostile input is a `400` with a reason, never a panic.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::ledger::Ledger;
use super::record::{Triggered, check, record};
use super::state::{Shared, lock};

/// The most a clock advance may ask: ten years.
const MAX_ADVANCE_SECONDS: f64 = 10.0 * 365.0 * 86_400.0;

pub(super) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_emulator/clock", post(clock).get(now))
        .route("/_emulator/events", post(event))
        .route("/_emulator/entities", post(entity))
        .route("/_emulator/ledger", get(ledger))
}

fn bad(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": {"message": message}})),
    )
        .into_response()
}

/// The body as a JSON object of `allowed` fields only, or why not.
fn object(body: &[u8], allowed: &[&str]) -> Result<serde_json::Map<String, Value>, Box<Response>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => match fields.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(unknown) => Err(Box::new(bad(&format!(
                "unknown field {:?}; the fields are {allowed:?}",
                unknown.chars().take(40).collect::<String>()
            )))),
            None => Ok(fields),
        },
        Ok(_) => Err(Box::new(bad("the body must be a JSON object"))),
        Err(e) => Err(Box::new(bad(&format!("the body is not JSON: {e}")))),
    }
}

async fn now(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(json!({"now": super::clock::rfc3339(shared.clock.now())})).into_response()
}

/// `{"advance_seconds": N}`: the clock moved forward, every attempt due on the way made.
async fn clock(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let fields = match object(&body, &["advance_seconds"]) {
        Ok(fields) => fields,
        Err(refused) => return *refused,
    };
    let Some(seconds) = fields.get("advance_seconds").and_then(Value::as_f64) else {
        return bad("`advance_seconds` must be a number");
    };
    if !(0.0..=MAX_ADVANCE_SECONDS).contains(&seconds) {
        return bad("`advance_seconds` must be from 0 to ten years");
    }
    super::deliveries::advance(&shared, Duration::from_secs_f64(seconds)).await;
    now(State(shared)).await
}

/// `{"action", "entity_id"?, "object"?}`: `201` with the recorded event, or `200` with
/// `{"recorded": false, "reason"}`.
async fn event(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let fields = match object(&body, &["action", "entity_id", "object"]) {
        Ok(fields) => fields,
        Err(refused) => return *refused,
    };
    let Some(action) = fields.get("action").and_then(Value::as_str) else {
        return bad("`action` must be a string, such as `payable.paid`");
    };
    let entity_id = match fields.get("entity_id") {
        None | Some(Value::Null) => super::DEFAULT_ENTITY_ID,
        Some(Value::String(id)) => id.as_str(),
        Some(_) => return bad("`entity_id` must be a string"),
    };
    let object = fields.get("object").filter(|o| !o.is_null());
    if let Err(reason) = check(action, entity_id, object) {
        return bad(&reason);
    }
    match record(&shared, action, entity_id, object.cloned()) {
        Triggered::Recorded(event) => (StatusCode::CREATED, axum::Json(event)).into_response(),
        Triggered::NotRecorded(reason) => {
            axum::Json(json!({"recorded": false, "reason": reason})).into_response()
        }
    }
}

/// `{"id"?}`: an entity with no events yet (a new id when none is given).
async fn entity(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let fields = if body.is_empty() {
        serde_json::Map::new()
    } else {
        match object(&body, &["id"]) {
            Ok(fields) => fields,
            Err(refused) => return *refused,
        }
    };
    let id = match fields.get("id") {
        None | Some(Value::Null) => super::record::new_id(&shared, "e0000000"),
        Some(Value::String(id)) if super::record::id_ok(id) => id.clone(),
        Some(_) => return bad("`id` must be 1 to 100 ASCII letters, digits, `-`, `_` or `.`"),
    };
    let now = super::clock::rfc3339(shared.clock.now());
    let mut state = lock(&shared.state);
    state.ensure_entity(&id, &now);
    let entity = state
        .entities
        .iter()
        .find(|e| e["id"] == id.as_str())
        .cloned();
    (StatusCode::CREATED, axum::Json(entity)).into_response()
}

async fn ledger(State(shared): State<Arc<Shared>>) -> Response {
    let ledger = Ledger::of(&lock(&shared.state));
    axum::Json(ledger).into_response()
}
