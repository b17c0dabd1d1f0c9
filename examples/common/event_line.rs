//! The one JSON line per handled event that every example prints on stdout.

use monite_webhooks::Event;

/// Prints `event` as one JSON line: id, object type, event, when it was created, and the
/// ids it names.
pub(crate) fn print_handled(event: &Event) {
    let line = serde_json::json!({
        "id": event.id(),
        "object_type": event.object_type(),
        "event": event.event_type(),
        "created_at": event.created_at(),
        "object_id": event.object_id(),
        "entity_id": event.entity_id(),
        "webhook_subscription_id": event.webhook_subscription_id(),
    });
    println!("{line}");
}
