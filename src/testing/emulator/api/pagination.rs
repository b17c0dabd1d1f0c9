//! Monite's pagination: the first request carries the filters; a `pagination_token`
//! stands for that query and a position, and every other parameter is then ignored.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error;
use crate::testing::emulator::state::{KEEP, Shared, lock};

/// Monite's largest page.
const MAX_LIMIT: usize = 100;

/// One page of `items` for `query`, or the page a token stands for.
pub(super) fn paginate(
    shared: &Shared,
    items: Vec<Value>,
    query: &HashMap<String, String>,
) -> Response {
    let mut state = lock(&shared.state);
    if state.empty_pages_with_new_tokens > 0 {
        state.empty_pages_with_new_tokens -= 1;
        let token = format!("empty-{}", shared.counters.next());
        return axum::Json(json!({"data": [], "next_pagination_token": token})).into_response();
    }
    let token = query.get("pagination_token");
    if let Some(token) = token {
        if state.echo_page_tokens > 0 {
            state.echo_page_tokens -= 1;
            return axum::Json(json!({"data": [], "next_pagination_token": token})).into_response();
        }
        if state.fail_token_on_use > 0 {
            state.fail_token_on_use -= 1;
            if state.fail_token_on_use == 0 {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "injected failure on a page",
                );
            }
        }
        if state.expire_token_on_use > 0 {
            state.expire_token_on_use -= 1;
            if state.expire_token_on_use == 0 {
                state.pages.remove(token);
            }
        }
    }
    let (items, offset, limit) = match token {
        Some(token) => match state.pages.get(token).cloned() {
            Some(page) => page,
            None => return error(StatusCode::BAD_REQUEST, "Invalid pagination token"),
        },
        None => {
            let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
                None => MAX_LIMIT,
                Some(Ok(limit)) if (1..=MAX_LIMIT).contains(&limit) => limit,
                Some(_) => {
                    return super::invalid(
                        "query",
                        "limit",
                        "Input should be between 1 and 100",
                        "range",
                    );
                }
            };
            (
                items,
                0,
                limit.min(state.page_size_cap.unwrap_or(MAX_LIMIT)),
            )
        }
    };
    let end = (offset + limit).min(items.len());
    let data = items.get(offset..end).unwrap_or_default().to_vec();
    let next = (end < items.len()).then(|| {
        let token = format!(
            "page-{}-{:08x}",
            shared.counters.next(),
            crate::testing::emulator::random_u64() as u32
        );
        if state.page_order.len() >= KEEP
            && let Some(oldest) = state.page_order.pop_front()
        {
            state.pages.remove(&oldest);
        }
        state.page_order.push_back(token.clone());
        state.pages.insert(token.clone(), (items, end, limit));
        token
    });
    axum::Json(json!({"data": data, "next_pagination_token": next, "prev_pagination_token": null}))
        .into_response()
}

/// `items` filtered by the query's `object_type`, `event_id`, `event_action`,
/// `created_at__gt`/`__gte`/`__lt`/`__lte` (compared as times), sorted by `created_at`
/// when asked, and in the order asked. A filter that does not parse is a 422.
pub(super) fn filtered(
    items: &[Value],
    query: &HashMap<String, String>,
) -> Result<Vec<Value>, Box<Response>> {
    let mut bounds = Vec::new();
    for name in [
        "created_at__gt",
        "created_at__gte",
        "created_at__lt",
        "created_at__lte",
    ] {
        if let Some(text) = query.get(name) {
            let Some(at) = time(text) else {
                return Err(Box::new(super::invalid(
                    "query",
                    name,
                    "Input should be a valid datetime",
                    "datetime_parsing",
                )));
            };
            bounds.push((name, at));
        }
    }
    if let Some(order) = query.get("order").filter(|o| *o != "asc" && *o != "desc") {
        let _ = order;
        return Err(Box::new(super::invalid(
            "query",
            "order",
            "Input should be 'asc' or 'desc'",
            "enum",
        )));
    }
    let field = |name: &str, item: &Value, want: &str| item[name] == want;
    let mut items: Vec<Value> = items
        .iter()
        .filter(|i| {
            query
                .get("object_type")
                .is_none_or(|t| field("object_type", i, t))
        })
        .filter(|i| {
            query
                .get("event_id")
                .is_none_or(|t| field("event_id", i, t))
        })
        .filter(|i| {
            query
                .get("event_action")
                .is_none_or(|t| field("action", i, t))
        })
        .filter(|i| {
            if bounds.is_empty() {
                return true;
            }
            // A `null` `created_at` matches no time filter.
            let Some(at) = i["created_at"].as_str().and_then(time) else {
                return false;
            };
            bounds.iter().all(|(name, bound)| match *name {
                "created_at__gt" => at > *bound,
                "created_at__gte" => at >= *bound,
                "created_at__lt" => at < *bound,
                _ => at <= *bound,
            })
        })
        .cloned()
        .collect();
    if query.get("sort").is_some_and(|s| s == "created_at") {
        items.sort_by_key(|i| i["created_at"].as_str().and_then(time));
    }
    if query.get("order").is_some_and(|o| o == "desc") {
        items.reverse();
    }
    Ok(items)
}

fn time(text: &str) -> Option<jiff::Timestamp> {
    text.parse().ok()
}
