//! Monite's webhook resources, as the API sends and takes them. Unknown fields are ignored;
//! enums keep values Monite adds later.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Number, Value};

use crate::event::EventType;
use crate::event::ObjectType;
use crate::event::wire_enum;
use crate::signature::Secret;

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
    /// The events it sends; empty means every event of the object type (also when Monite
    /// sends `null`).
    #[serde(default, deserialize_with = "null_as_empty")]
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
    /// `None` when Monite's whole answer was read. Otherwise why part of it could not be:
    /// the secret was kept all the same (Monite returns it only once), and `subscription`
    /// holds the fields that could be read, with what the request asked for (creating) or
    /// an empty value (regenerating) in the others. Fetch it with `get` for the rest.
    pub incomplete: Option<String>,
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
    /// How many attempts Monite made (any integer is read; beyond `u32` it saturates).
    #[serde(deserialize_with = "saturating_u32")]
    pub requests_made_count: u32,
    /// What the listener answered last, if anything.
    #[serde(default)]
    pub response: Option<String>,
    /// The status the listener answered last, if it answered (any integer is read; beyond
    /// `u16` it saturates).
    #[serde(default, deserialize_with = "saturating_u16")]
    pub response_status_code: Option<u16>,
    /// Where it was sent.
    pub url: String,
    /// Whether the final attempt succeeded, once known.
    #[serde(default)]
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

    /// Created at or after `at` (`created_at__gte`).
    pub fn created_at_or_after(self, at: jiff::Timestamp) -> Self {
        self.with("created_at__gte", at.to_string())
    }

    /// Created at or before `at` (`created_at__lte`).
    pub fn created_at_or_before(self, at: jiff::Timestamp) -> Self {
        self.with("created_at__lte", at.to_string())
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

/// `null` read as an empty list (the schema says a list; a lenient reader costs nothing).
fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// An integer of any size (the schema's `integer` has no bounds) clamped to `[min, max]`.
fn clamp(number: &Number, min: i128, max: i128) -> i128 {
    let value = number
        .as_i64()
        .map(i128::from)
        .or_else(|| number.as_u64().map(i128::from))
        // Beyond 64 bits serde_json reads a float; `as` saturates.
        .unwrap_or_else(|| number.as_f64().map_or(0, |f| f as i128));
    value.clamp(min, max)
}

fn saturating_u32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let number = Number::deserialize(deserializer)?;
    Ok(u32::try_from(clamp(&number, 0, u32::MAX.into())).unwrap_or(u32::MAX))
}

fn saturating_u16<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u16>, D::Error> {
    Ok(Option::<Number>::deserialize(deserializer)?
        .map(|number| u16::try_from(clamp(&number, 0, u16::MAX.into())).unwrap_or(u16::MAX)))
}

/// `POST /webhook_subscriptions` and `regenerate_secret` answers: the resource plus
/// `secret`. The secret is read first and on its own, so that nothing else in the answer
/// can make it be lost.
pub(crate) struct WithSecret {
    pub(crate) secret: String,
    pub(crate) subscription: WebhookSubscription,
    pub(crate) incomplete: Option<String>,
}

impl WithSecret {
    /// Reads `answer`; `asked`, the subscription created, fills what cannot be read.
    ///
    /// # Errors
    /// A message if the answer is not an object with a string `secret`.
    pub(crate) fn read(answer: &[u8], asked: Option<&NewSubscription>) -> Result<Self, String> {
        let mut fields: Map<String, Value> =
            serde_json::from_slice(answer).map_err(|e| e.to_string())?;
        let Some(Value::String(secret)) = fields.remove("secret") else {
            return Err("no string `secret` in the answer".to_owned());
        };
        match WebhookSubscription::deserialize(Value::Object(fields.clone())) {
            Ok(subscription) => Ok(Self {
                secret,
                subscription,
                incomplete: None,
            }),
            Err(e) => {
                let mut field = |name: &str| fields.remove(name).unwrap_or(Value::Null);
                let text = |value: Value| match value {
                    Value::String(text) => Some(text),
                    _ => None,
                };
                let subscription = WebhookSubscription {
                    id: text(field("id")).unwrap_or_default(),
                    object_type: text(field("object_type"))
                        .map(|t| ObjectType::from(t.as_str()))
                        .or_else(|| asked.map(|a| a.object_type.clone()))
                        .unwrap_or_else(|| ObjectType::from("")),
                    event_types: match field("event_types") {
                        list @ Value::Array(_) => null_as_empty(list).unwrap_or_default(),
                        _ => asked
                            .and_then(|a| a.event_types.clone())
                            .unwrap_or_default(),
                    },
                    status: text(field("status"))
                        .map(|t| SubscriptionStatus::from(t.as_str()))
                        // Monite creates subscriptions enabled.
                        .or_else(|| asked.map(|_| SubscriptionStatus::Enabled))
                        .unwrap_or_else(|| SubscriptionStatus::from("")),
                    url: text(field("url"))
                        .or_else(|| asked.map(|a| a.url.clone()))
                        .unwrap_or_default(),
                };
                Ok(Self {
                    secret,
                    subscription,
                    incomplete: Some(e.to_string()),
                })
            }
        }
    }
}
