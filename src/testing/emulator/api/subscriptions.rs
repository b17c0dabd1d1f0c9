//! `webhook_subscriptions`: list with its filters, create (answering a fresh `whsec_`
//! secret), get, update, delete, `enable`, `disable`, `regenerate_secret`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error;
use super::pagination::{filtered, paginate};
use crate::testing::emulator::state::{Shared, Subscription, lock};

const NOT_FOUND: &str = "Webhook subscription not found";

/// A subscription's URL: `https://`, or `http://` to a loopback host (Monite reaches no
/// such host, the emulator's receivers are on one).
fn url_ok(url: &str) -> bool {
    if url.len() > 2048 {
        return false;
    }
    if let Some(rest) = url.strip_prefix("https://") {
        return !rest.is_empty();
    }
    url.strip_prefix("http://").is_some_and(|rest| {
        let host = rest.split(['/', '?']).next().unwrap_or_default();
        let host = host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        host == "localhost" || host == "[::1]" || host.starts_with("127.")
    })
}

/// The event types a body lists, when it lists them as strings.
fn event_types(body: &Value) -> Result<Option<Vec<String>>, Box<Response>> {
    match body.get("event_types") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(types)) => types
            .iter()
            .map(|t| t.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| {
                Box::new(super::invalid(
                    "body",
                    "event_types",
                    "Input should be a valid list of strings",
                    "list_type",
                ))
            }),
        Some(_) => Err(Box::new(super::invalid(
            "body",
            "event_types",
            "Input should be a valid list",
            "list_type",
        ))),
    }
}

/// The object types a subscription takes: the `WebhookObjectType` enum of Monite's
/// OpenAPI document (API 2024-05-25), which spells line items `payable.line_item` only.
const WEBHOOK_OBJECT_TYPES: [&str; 42] = [
    "account",
    "accounting_connection",
    "approval",
    "approval_request",
    "approval_policy",
    "approval_policy_process",
    "batch_payment",
    "comment",
    "counterpart",
    "counterpart_address",
    "counterpart_bank_account",
    "counterpart_contact_person",
    "counterpart_partner_metadata",
    "counterpart_tax_id",
    "entity",
    "entity_bank_account",
    "entity_settings",
    "entity_user",
    "export",
    "overdue_reminder",
    "partner_settings",
    "payable",
    "payables_credit_note",
    "payables_purchase_order",
    "payable.line_item",
    "payment",
    "payment_intent",
    "payment_link",
    "payment_reminder",
    "product",
    "project",
    "receivable",
    "recurrence",
    "role",
    "tag",
    "todo_task",
    "workflow",
    "workflow_pipeline",
    "ocr_task",
    "delivery_note",
    "receipt",
    "transaction",
];

fn known_object_type(value: &Value) -> Option<&str> {
    value.as_str().filter(|t| WEBHOOK_OBJECT_TYPES.contains(t))
}

/// Monite's answer to an `object_type` outside `WebhookObjectType`.
fn unknown_object_type() -> Response {
    super::invalid(
        "body",
        "object_type",
        "Input should be one of the WebhookObjectType values",
        "enum",
    )
}

pub(super) async fn create(State(shared): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return super::invalid("body", "url", "Invalid JSON", "json_invalid");
    };
    let url = body["url"].as_str().unwrap_or_default();
    if !url_ok(url) {
        return super::invalid("body", "url", "URL scheme should be 'https'", "url_scheme");
    }
    let Some(object_type) = known_object_type(&body["object_type"]) else {
        return unknown_object_type();
    };
    let event_types = match event_types(&body) {
        Ok(types) => types.unwrap_or_default(),
        Err(refused) => return *refused,
    };
    let subscription = Subscription {
        id: crate::testing::emulator::record::new_id(&shared, "f3c64af7"),
        object_type: object_type.to_owned(),
        event_types,
        enabled: true,
        url: url.to_owned(),
        secret: crate::testing::emulator::new_secret(),
    };
    let mut answer = subscription.resource();
    answer["secret"] = json!(subscription.secret);
    lock(&shared.state).subscriptions.push(subscription);
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

pub(super) async fn list(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let all: Vec<Value> = lock(&shared.state)
        .subscriptions
        .iter()
        .map(Subscription::resource)
        .collect();
    match filtered(&all, &query) {
        Ok(items) => paginate(&shared, items, &query),
        Err(refused) => *refused,
    }
}

pub(super) async fn get(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    match lock(&shared.state).subscription_mut(&id) {
        Some(subscription) => axum::Json(subscription.resource()).into_response(),
        None => error(StatusCode::NOT_FOUND, NOT_FOUND),
    }
}

pub(super) async fn update(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return super::invalid("body", "url", "Invalid JSON", "json_invalid");
    };
    let url = match body.get("url").filter(|v| !v.is_null()) {
        None => None,
        Some(url) => match url.as_str().filter(|u| url_ok(u)) {
            Some(url) => Some(url.to_owned()),
            None => {
                return super::invalid("body", "url", "URL scheme should be 'https'", "url_scheme");
            }
        },
    };
    let object_type = match body.get("object_type").filter(|v| !v.is_null()) {
        None => None,
        Some(value) => match known_object_type(value) {
            Some(t) => Some(t.to_owned()),
            None => return unknown_object_type(),
        },
    };
    let event_types = match event_types(&body) {
        Ok(types) => types,
        Err(refused) => return *refused,
    };
    let mut state = lock(&shared.state);
    let Some(subscription) = state.subscription_mut(&id) else {
        return error(StatusCode::NOT_FOUND, NOT_FOUND);
    };
    if let Some(url) = url {
        subscription.url = url;
    }
    if let Some(object_type) = object_type {
        subscription.object_type = object_type;
    }
    if let Some(event_types) = event_types {
        subscription.event_types = event_types;
    }
    axum::Json(subscription.resource()).into_response()
}

pub(super) async fn delete(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let mut state = lock(&shared.state);
    let before = state.subscriptions.len();
    state.subscriptions.retain(|s| s.id != id);
    if state.subscriptions.len() == before {
        return error(StatusCode::NOT_FOUND, NOT_FOUND);
    }
    state.cancel_pending(&id);
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn action(
    State(shared): State<Arc<Shared>>,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let mut state = lock(&shared.state);
    let Some(subscription) = state.subscription_mut(&id) else {
        return error(StatusCode::NOT_FOUND, NOT_FOUND);
    };
    match action.as_str() {
        "enable" => subscription.enabled = true,
        "disable" => {
            subscription.enabled = false;
            state.cancel_pending(&id);
            let answer = state.subscription_mut(&id).map(|s| s.resource());
            return axum::Json(answer).into_response();
        }
        "regenerate_secret" => {
            subscription.secret = crate::testing::emulator::new_secret();
            let mut answer = subscription.resource();
            answer["secret"] = json!(subscription.secret);
            shared.counters.regenerations.fetch_add(1, Ordering::SeqCst);
            return axum::Json(answer).into_response();
        }
        _ => return error(StatusCode::NOT_FOUND, "Not found"),
    }
    axum::Json(subscription.resource()).into_response()
}
