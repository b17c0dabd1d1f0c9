//! Monite's API under `/v1`, one module per resource, behind the layers every request
//! meets: the request log, the rate limit, injected faults, `X-Monite-Version`, the bearer
//! token, and a `Date` on the emulated clock.

mod auth;
mod deliveries;
mod entities;
mod events;
mod objects;
mod pagination;
mod subscriptions;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::clock::http_date;
use super::faults::Effect;
use super::rate;
use super::state::{Shared, keep, lock};

/// Monite's error body, `{"error": {"message"}}`, with `status`.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": {"message": message}}))).into_response()
}

/// A 422 as Monite's validation answers it, for `field` at `location` (`body`, `query`).
pub(super) fn invalid(location: &str, field: &str, message: &str, kind: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({"detail": [{"loc": [location, field], "msg": message, "type": kind}]})),
    )
        .into_response()
}

/// The API's routes, both the current paths and the `webhook_settings` ones.
pub(super) fn router(shared: &Arc<Shared>) -> Router<Arc<Shared>> {
    let mut authenticated = Router::new();
    for collection in ["/v1/webhook_subscriptions", "/v1/webhook_settings"] {
        authenticated = authenticated
            .route(
                collection,
                post(subscriptions::create).get(subscriptions::list),
            )
            .route(
                &format!("{collection}/{{id}}"),
                get(subscriptions::get)
                    .patch(subscriptions::update)
                    .delete(subscriptions::delete),
            )
            .route(
                &format!("{collection}/{{id}}/{{action}}"),
                post(subscriptions::action),
            );
    }
    let authenticated = authenticated
        .route("/v1/events", get(events::list))
        .route("/v1/events/{id}", get(events::get))
        .route("/v1/webhook_deliveries", get(deliveries::list))
        .route("/v1/entities", get(entities::list))
        .route("/v1/{*path}", get(objects::get))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            auth::authenticate,
        ));
    Router::new()
        .route("/v1/auth/token", post(auth::token))
        .merge(authenticated)
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            every_request,
        ))
}

/// The request log and the rate limit; then injected faults and the version header; a
/// `Date` on every answer.
async fn every_request(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    shared
        .counters
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let decision = {
        let mut state = lock(&shared.state);
        let line = format!("{} {}", request.method(), request.uri().path());
        keep(&mut state.request_log, line);
        let in_last_second = state.arrivals.arrive(Instant::now());
        rate::decide(state.rate_limit, in_last_second)
    };
    let mut response = match decision {
        Err(()) => {
            shared
                .counters
                .throttled
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
            let headers = response.headers_mut();
            headers.insert("retry-after", 1.into());
            if let Some(limit) = lock(&shared.state).rate_limit {
                headers.insert("ratelimit-limit", limit.into());
            }
            headers.insert("ratelimit-remaining", 0.into());
            headers.insert("ratelimit-reset", 1.into());
            response
        }
        Ok(remaining) => {
            let mut response = answer(&shared, request, next).await;
            if let Some((limit, remaining)) = remaining {
                let headers = response.headers_mut();
                headers.insert("ratelimit-limit", limit.into());
                headers.insert("ratelimit-remaining", remaining.into());
                headers.insert("ratelimit-reset", 1.into());
            }
            response
        }
    };
    if let Ok(date) = http_date(shared.clock.now()).parse() {
        response.headers_mut().insert("date", date);
    }
    response
}

/// The request carried out, unless a fault says otherwise.
async fn answer(shared: &Arc<Shared>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let collection = path == "/v1/webhook_subscriptions" || path == "/v1/webhook_settings";
    let effect = {
        let mut state = lock(&shared.state);
        let due = state
            .faults
            .front()
            .is_some_and(|f| path.starts_with(f.path_prefix()));
        let mut effect = if due {
            state
                .faults
                .pop_front()
                .map(super::faults::Fault::into_effect)
        } else {
            None
        };
        if request.method() == axum::http::Method::POST && collection {
            let n = state.creates;
            state.creates += 1;
            if let Some(due) = state.create_faults.remove(&n) {
                effect = Some(due);
            }
        }
        effect
    };
    match effect {
        Some(Effect::Refuse {
            status,
            retry_after,
        }) => {
            let mut response = error(status, "injected failure");
            if let Some(seconds) = retry_after {
                response.headers_mut().insert("retry-after", seconds.into());
            }
            return response;
        }
        Some(Effect::Answer(status, body)) => {
            let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
            return (status, json, body).into_response();
        }
        _ => {}
    }
    if !request.headers().contains_key("x-monite-version") {
        let body = json!({"error": {"type": "missing_api_version",
            "message": "Missing the x-monite-version HTTP header"}});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    let response = next.run(request).await;
    match effect {
        Some(Effect::AfterCommit(status)) => error(status, "injected failure after commit"),
        Some(Effect::ResetAfterHeaders) => reset_after_headers(response).await,
        _ => response,
    }
}

/// `response`'s status, headers and the first half of its body, then a reset.
async fn reset_after_headers(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let half = body.slice(..body.len() / 2);
    let chunks = futures_util::stream::unfold(Some(half), |half| async move {
        match half {
            Some(half) => Some((Ok(half), None)),
            None => {
                // Let the status and the first chunk reach the client before the reset.
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some((
                    Err(std::io::Error::other("connection reset by the emulator")),
                    None,
                ))
            }
        }
    });
    Response::from_parts(parts, axum::body::Body::from_stream(chunks))
}
