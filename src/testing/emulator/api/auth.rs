//! `POST /auth/token` (client credentials), and the bearer token every other request needs.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error;
use crate::testing::emulator::state::{Shared, lock};

/// A token for the configured credentials (any pair when none were configured).
pub(super) async fn token(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let n = shared
        .counters
        .token_requests
        .fetch_add(1, Ordering::SeqCst)
        + 1;
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return super::invalid("body", "grant_type", "Invalid JSON", "json_invalid");
    };
    if body["grant_type"] != "client_credentials" {
        return super::invalid(
            "body",
            "grant_type",
            "Input should be 'client_credentials'",
            "enum",
        );
    }
    let (Some(id), Some(secret)) = (body["client_id"].as_str(), body["client_secret"].as_str())
    else {
        return super::invalid("body", "client_id", "Field required", "missing");
    };
    let accepted = shared
        .credentials
        .as_ref()
        .is_none_or(|(want_id, want_secret)| id == want_id && secret == want_secret);
    if !accepted {
        return error(StatusCode::UNAUTHORIZED, "Invalid client credentials");
    }
    let token = format!(
        "emulated-token-{n}-{:016x}",
        crate::testing::emulator::random_u64()
    );
    let mut state = lock(&shared.state);
    let lifetime = state.token_lifetime;
    if state.revoke_on_issue {
        state.tokens.clear();
    }
    // Expired tokens go, so that a long-running emulator stays bounded.
    let now = Instant::now();
    state.tokens.retain(|_, expiry| *expiry > now);
    state
        .tokens
        .insert(token.clone(), Instant::now() + lifetime);
    let mut answer =
        json!({"access_token": token, "expires_in": lifetime.as_secs(), "token_type": "Bearer"});
    match state.expires_in.clone() {
        Some(Some(value)) => answer["expires_in"] = value,
        Some(None) => {
            if let Some(fields) = answer.as_object_mut() {
                fields.remove("expires_in");
            }
        }
        None => {}
    }
    axum::Json(answer).into_response()
}

/// A valid bearer token, and for `/events` and `/webhook_deliveries` a known entity in
/// `X-Monite-Entity-Id`.
pub(super) async fn authenticate(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let path = request.uri().path();
    let needs_entity = path.starts_with("/v1/events") || path.starts_with("/v1/webhook_deliveries");
    let entity = request
        .headers()
        .get("x-monite-entity-id")
        .and_then(|v| v.to_str().ok());
    {
        let state = lock(&shared.state);
        let valid = state
            .tokens
            .get(token)
            .is_some_and(|expiry| *expiry > Instant::now());
        if !valid {
            return error(StatusCode::UNAUTHORIZED, "Invalid or expired access token");
        }
        if needs_entity && !entity.is_some_and(|e| state.knows_entity(e)) {
            return error(
                StatusCode::BAD_REQUEST,
                "Missing or unknown x-monite-entity-id header",
            );
        }
    }
    next.run(request).await
}
