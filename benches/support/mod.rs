//! What the inbox load scripts share: the secret, the events they send, a no-op
//! dispatcher, percentiles, and waiting for a namespace's events to be done.

#![allow(dead_code, reason = "each load script uses what it needs")]

use std::time::Duration;

use monite_webhooks::{Dispatcher, Event, ObjectType};
use sqlx::PgPool;

/// The secret every delivery is signed with.
pub(crate) const SECRET: &str = "whsec_IpHYzcMQQR5+wnN4pmHJNRh8B+TVY26b";

/// Event `n` of `run`: its id is `<run>-<n>`, so each is new to the inbox, and its entity
/// one of ten.
pub(crate) fn envelope(run: &str, n: usize) -> String {
    format!(
        r#"{{"id":"{run}-{n}","created_at":"2024-03-04T20:06:48.593225+00:00","action":"payable.created","api_version":"2024-01-31","entity_id":"entity-{}","description":"d","object":{{"id":"587fd280-3b1a-4ad4-8e00-75a8c2cd789a"}},"object_type":"payable","webhook_subscription_id":"f3c64af7"}}"#,
        n % 10
    )
}

/// The `n` of an id made by [`envelope`].
pub(crate) fn event_number(event: &Event) -> Option<usize> {
    event.id()?.rsplit('-').next()?.parse().ok()
}

/// A dispatcher whose one handler does nothing.
pub(crate) fn noop_dispatcher() -> Dispatcher {
    Dispatcher::builder()
        .on_object(ObjectType::Payable, |_: Event| async {})
        .build()
}

/// The value at fraction `p` of `sorted` (nearest rank, rounded down).
pub(crate) fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

/// Events of `namespace` done so far.
pub(crate) async fn done_count(pool: &PgPool, namespace: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM monite_webhook_inbox_events WHERE namespace = $1 AND state = 'done'",
    )
    .bind(namespace)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Waits until `total` events of `namespace` are done, looking every 20 ms.
pub(crate) async fn wait_done(pool: &PgPool, namespace: &str, total: i64) {
    while done_count(pool, namespace).await < total {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
