//! Monite's webhook resources, as the API sends and takes them. Unknown fields are ignored;
//! enums keep values Monite adds later.

use serde::{Deserialize, Serialize};

use crate::event_type::EventType;
use crate::object_type::ObjectType;
use crate::signature::Secret;
use crate::wire_enum::wire_enum;

wire_enum! {
    /// Whether Monite sends a subscription's events. Monite disables a subscription after a
    /// week of failed deliveries.
    pub enum SubscriptionStatus {
        Enabled => "enabled",
        Disabled => "disabled",
    }
}

wire_enum! {
    /// The order of a listing.
    pub enum Order {
        Asc => "asc",
        Desc => "desc",
    }
}

/// A webhook subscription (`WebhookSubscriptionResource`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct WebhookSubscription {
    /// The subscription id; events carry it as `webhook_subscription_id`.
    pub id: String,
    /// The object type the subscription is for.
    pub object_type: ObjectType,
    /// The events it sends; empty means every event of the object type.
    #[serde(default)]
    pub event_types: Vec<EventType>,
    /// Whether Monite sends its events.
    pub status: SubscriptionStatus,
    /// Where Monite sends them.
    pub url: String,
}

/// A subscription with its signing secret, as creating one or regenerating its secret
/// returns it (`WebhookSubscriptionResourceWithSecret`). The secret is returned only then.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SubscriptionWithSecret {
    /// The subscription.
    pub subscription: WebhookSubscription,
    /// Its signing secret, read with the default key convention; it never prints.
    pub secret: Secret,
}

/// A subscription to create (`CreateWebhookSubscriptionRequest`).
#[derive(Debug, Clone, Serialize)]
#[must_use]
pub struct NewSubscription {
    object_type: ObjectType,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_types: Option<Vec<EventType>>,
}

impl NewSubscription {
    /// Every event of `object_type`, sent to `url` (public HTTPS, no redirects).
    pub fn new(object_type: ObjectType, url: impl Into<String>) -> Self {
        Self {
            object_type,
            url: url.into(),
            event_types: None,
        }
    }

    /// Only these events.
    pub fn event_types(mut self, event_types: impl IntoIterator<Item = EventType>) -> Self {
        self.event_types = Some(event_types.into_iter().collect());
        self
    }
}

/// Changes to a subscription (`UpdateWebhookSubscriptionRequest`); unset fields stay.
#[derive(Debug, Clone, Default, Serialize)]
#[must_use]
pub struct SubscriptionUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    object_type: Option<ObjectType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_types: Option<Vec<EventType>>,
}

impl SubscriptionUpdate {
    /// No change yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new object type.
    pub fn object_type(mut self, object_type: ObjectType) -> Self {
        self.object_type = Some(object_type);
        self
    }

    /// A new URL.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// New event types; empty means every event.
    pub fn event_types(mut self, event_types: impl IntoIterator<Item = EventType>) -> Self {
        self.event_types = Some(event_types.into_iter().collect());
        self
    }
}

/// One delivery of an event to one subscription (`WebhookDeliveryResource`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct WebhookDelivery {
    /// The delivery id.
    pub id: String,
    /// The event delivered.
    pub event_id: String,
    /// How many attempts Monite made.
    pub requests_made_count: u32,
    /// What the listener answered last, if anything.
    pub response: Option<String>,
    /// The status the listener answered last, if it answered.
    pub response_status_code: Option<u16>,
    /// Where it was sent.
    pub url: String,
    /// Whether the final attempt succeeded, once known.
    pub was_successful: Option<bool>,
}

/// Filters for listings: what `GET /webhook_subscriptions`, `/events` and
/// `/webhook_deliveries` share. Times are RFC 3339 (`2024-05-01T00:00:00Z`).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ListQuery {
    pub(crate) params: Vec<(&'static str, String)>,
}

impl ListQuery {
    /// No filter: everything, oldest first (Monite's default order).
    pub fn new() -> Self {
        Self::default()
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.params.push((name, value.into()));
        self
    }

    /// Only this object type.
    pub fn object_type(self, object_type: &ObjectType) -> Self {
        self.with("object_type", object_type.as_str())
    }

    /// Created at or after this time.
    pub fn created_since(self, rfc3339: impl Into<String>) -> Self {
        self.with("created_at__gte", rfc3339)
    }

    /// Created at or before this time.
    pub fn created_until(self, rfc3339: impl Into<String>) -> Self {
        self.with("created_at__lte", rfc3339)
    }

    /// Page size, 1 to 100 (Monite's default is 100).
    pub fn limit(self, limit: u8) -> Self {
        self.with("limit", limit.clamp(1, 100).to_string())
    }

    /// Order by `created_at`, ascending or descending.
    pub fn order(self, order: &Order) -> Self {
        self.with("sort", "created_at")
            .with("order", order.as_str())
    }

    /// Deliveries of this event only (`/webhook_deliveries`).
    pub fn event_id(self, event_id: impl Into<String>) -> Self {
        self.with("event_id", event_id)
    }

    /// Deliveries of this action only, such as `payable.paid` (`/webhook_deliveries`).
    pub fn event_action(self, action: impl Into<String>) -> Self {
        self.with("event_action", action)
    }
}

/// The page envelope of every listing.
#[derive(Deserialize)]
pub(crate) struct Page<T> {
    pub(crate) data: Vec<T>,
    #[serde(default)]
    pub(crate) next_pagination_token: Option<String>,
}

/// `POST /webhook_subscriptions` and `regenerate_secret` answers: the resource plus `secret`.
#[derive(Deserialize)]
pub(crate) struct WithSecret {
    #[serde(flatten)]
    pub(crate) subscription: WebhookSubscription,
    pub(crate) secret: String,
}
