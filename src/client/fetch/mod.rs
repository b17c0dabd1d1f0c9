//! Fetching the object an event is about: Monite's events are thin (`object` carries an id),
//! so most handlers start by reading the object. [`Client::fetch`] does it in one call and
//! answers what happened as a [`Resolution`], not an error: found (and whether it changed
//! since the event), gone, needing a parent id the envelope does not carry, or without an
//! endpoint.
//!
//! ```no_run
//! use monite_webhooks::client::fetch::Resolution;
//! # async fn run(client: monite_webhooks::client::Client, event: monite_webhooks::Event)
//! #     -> Result<(), monite_webhooks::Error> {
//! match client.fetch(&event).await? {
//!     Resolution::Found { object, newer_than_event, .. } => {
//!         // `newer_than_event == Some(true)`: the object moved on since the event.
//!         let _ = (object, newer_than_event);
//!     }
//!     Resolution::Gone { .. } => { /* deleted since: expected for a delete event */ }
//!     Resolution::NeedsParent { parent, .. } => { /* supply it: `.parent(id)` */ let _ = parent; }
//!     _ => { /* no endpoint: nothing to fetch */ }
//! }
//! # Ok(()) }
//! ```
//!
//! # Paths
//!
//! Each object type's path comes from Monite's OpenAPI document (see [`endpoint`]). Nested
//! objects (a counterpart's addresses, bank accounts, contacts and VAT ids; a payable's line
//! items; an approval policy's processes) need their parent's id: taken from `object` when
//! it has the field ([`Endpoint::parent`]), else from [`Fetch::parent`], else the answer is
//! [`Resolution::NeedsParent`].
//!
//! # The budget and the crowd
//!
//! A fetch goes through the client's rate budget ahead of every other request waiting in it
//! (a reconciliation sweep's listings), so a live event does not wait behind a sweep of
//! thousands of entities. Fetches of the same object (entity, path) that overlap share one
//! request. `429`, `5xx` and transport failures are retried as every read is; a `401` renews
//! the token once.

mod coalesce;
mod handler;
mod table;

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde::de::DeserializeOwned;

use super::Client;
use super::request::Request;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Event, EventType};

pub(super) use self::coalesce::InFlight;
pub use self::handler::{Fetched, FetchedHandler};
pub use self::table::{Endpoint, EntityHeader, endpoint};

/// What fetching an event's object found.
///
/// `T` is the object: a [`serde_json::Value`] from [`Fetch`], or your own type from
/// [`Fetch::typed`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Resolution<T = serde_json::Value> {
    /// The object as Monite has it now.
    #[non_exhaustive]
    Found {
        /// The object.
        object: T,
        /// The path requested, after the API's base URL.
        path: String,
        /// Its `updated_at`, where its schema has one.
        updated_at: Option<jiff::Timestamp>,
        /// Whether `updated_at` is later than the event's `created_at`: the object changed
        /// after the event, so the event's news may be stale. `None` where either is absent.
        newer_than_event: Option<bool>,
    },
    /// The object no longer exists: a `404` (or `410`; for a delete event, any refusal but
    /// `401` and `429`), or a body whose `status` says deleted. For a delete event this is
    /// the expected answer.
    #[non_exhaustive]
    Gone {
        /// The path requested.
        path: String,
        /// The body's `status` (`deleted`) when that said so; `None` for a status code.
        deleted_status: Option<String>,
    },
    /// The object lives under a parent whose id neither `object` nor the caller gave.
    #[non_exhaustive]
    NeedsParent {
        /// The field naming the parent (`counterpart_id`, `payable_id`,
        /// `approval_policy_id`); give its value to [`Fetch::parent`].
        parent: &'static str,
    },
    /// Monite has no `GET` for this object type that the event's ids fill, or this version
    /// of the crate does not know the type ([`ObjectType::Unknown`](crate::ObjectType)).
    NoEndpoint,
}

impl<T> Resolution<T> {
    /// `found`, `gone`, `needs_parent` or `no_endpoint`.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Found { .. } => "found",
            Self::Gone { .. } => "gone",
            Self::NeedsParent { .. } => "needs_parent",
            Self::NoEndpoint => "no_endpoint",
        }
    }

    /// The object, if it was found.
    #[must_use]
    pub fn found(&self) -> Option<&T> {
        match self {
            Self::Found { object, .. } => Some(object),
            _ => None,
        }
    }

    /// The object, if it was found.
    #[must_use]
    pub fn into_found(self) -> Option<T> {
        match self {
            Self::Found { object, .. } => Some(object),
            _ => None,
        }
    }

    /// The path requested, if one was.
    #[must_use]
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::Found { path, .. } | Self::Gone { path, .. } => Some(path),
            _ => None,
        }
    }

    /// Whether the object is gone.
    #[must_use]
    pub const fn is_gone(&self) -> bool {
        matches!(self, Self::Gone { .. })
    }
}

/// One fetch, configured before it is awaited: `client.fetch(&event).await`, or with
/// [`parent`](Self::parent) and [`typed`](Self::typed).
#[must_use = "a fetch does nothing until awaited"]
#[derive(Debug, Clone)]
pub struct Fetch<'a> {
    client: &'a Client,
    event: &'a Event,
    parent: Option<String>,
}

impl<'a> Fetch<'a> {
    pub(super) const fn new(client: &'a Client, event: &'a Event) -> Self {
        Self {
            client,
            event,
            parent: None,
        }
    }

    /// The parent's id, for a nested object whose event's `object` does not carry it
    /// (`object`'s own field wins when it has one).
    pub fn parent(mut self, id: impl Into<String>) -> Self {
        self.parent = Some(id.into());
        self
    }

    /// Fetches and deserializes the object into `T`.
    ///
    /// # Errors
    /// As [`Fetch`]'s, and [`ErrorKind::Api`] when the object does not fit `T`.
    pub async fn typed<T: DeserializeOwned>(self) -> Result<Resolution<T>> {
        let found = self.run().await?;
        Ok(match found {
            Resolution::Found {
                object,
                path,
                updated_at,
                newer_than_event,
            } => {
                let object = serde_json::from_value(object).map_err(|e| {
                    Error::new(
                        ErrorKind::Api,
                        format!("GET {path}: the object did not fit the type asked for: {e}"),
                    )
                    .with_source(e)
                })?;
                Resolution::Found {
                    object,
                    path,
                    updated_at,
                    newer_than_event,
                }
            }
            Resolution::Gone {
                path,
                deleted_status,
            } => Resolution::Gone {
                path,
                deleted_status,
            },
            Resolution::NeedsParent { parent } => Resolution::NeedsParent { parent },
            Resolution::NoEndpoint => Resolution::NoEndpoint,
        })
    }

    async fn run(self) -> Result<Resolution> {
        let event = self.event;
        let Some(row) = endpoint(event.object_type()) else {
            return Ok(Resolution::NoEndpoint);
        };
        let parent = match row.parent() {
            None => None,
            Some(field) => match parent_in_object(event, field).or(self.parent) {
                Some(id) => Some(id),
                None => return Ok(Resolution::NeedsParent { parent: field }),
            },
        };
        let entity = match row.entity_header() {
            EntityHeader::None => None,
            EntityHeader::Optional => event.entity_id(),
            EntityHeader::Required => Some(event.entity_id().ok_or_else(|| {
                Error::new(
                    ErrorKind::Misconfigured,
                    format!(
                        "a {} event without entity_id cannot be fetched",
                        event.object_type()
                    ),
                )
            })?),
        };
        let path = row
            .fill(event.object_id(), event.entity_id(), parent.as_deref())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Misconfigured,
                    format!(
                        "the {} event names no id that can be a path segment",
                        event.object_type()
                    ),
                )
            })?;
        let answer = self.client.get_shared(entity, &path).await;
        classify(event, row, path, answer)
    }
}

impl<'a> IntoFuture for Fetch<'a> {
    type Output = Result<Resolution>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

impl Client {
    /// Fetches the object `event` is about; see the [module documentation](crate::client::fetch).
    ///
    /// ```no_run
    /// # async fn run(client: monite_webhooks::client::Client, event: monite_webhooks::Event)
    /// #     -> Result<(), monite_webhooks::Error> {
    /// let payable = client.fetch(&event).await?;
    /// let line_item = client.fetch(&event).parent("payable id").await?;
    /// # let _ = (payable, line_item); Ok(()) }
    /// ```
    ///
    /// # Errors
    /// When awaited: [`ErrorKind::Api`] for an answer other than the four
    /// [`Resolution`]s (after retries), [`ErrorKind::Transport`] when Monite could not be
    /// reached, [`ErrorKind::Misconfigured`] for an event without the `entity_id` its path
    /// needs, or without an object id.
    pub fn fetch<'a>(&'a self, event: &'a Event) -> Fetch<'a> {
        Fetch::new(self, event)
    }

    /// `GET path`, ahead in the rate budget, shared with the overlapping fetches of the same
    /// entity and path.
    async fn get_shared(&self, entity: Option<&str>, path: &str) -> Result<Bytes> {
        self.inner
            .in_flight
            .run(entity, path, || async {
                let mut request = Request::new(Method::GET, path.to_owned()).ahead();
                if let Some(entity) = entity {
                    request = request.entity(entity);
                }
                self.send(&request).await
            })
            .await
    }
}

/// The parent id `object` carries in `field`, if a string.
fn parent_in_object(event: &Event, field: &str) -> Option<String> {
    let object: serde_json::Value = serde_json::from_str(event.object_json()?).ok()?;
    Some(object.get(field)?.as_str()?.to_owned())
}

/// Whether the event says the object was deleted.
fn is_delete(event: &Event) -> bool {
    matches!(event.event_type(), EventType::Deleted | EventType::Delete)
}

fn classify(
    event: &Event,
    row: &Endpoint,
    path: String,
    answer: Result<Bytes>,
) -> Result<Resolution> {
    let body = match answer {
        Ok(body) => body,
        Err(e) => {
            let gone = match e.api_status() {
                Some(StatusCode::NOT_FOUND | StatusCode::GONE) => true,
                // Monite documents no 404 for some objects: after a delete, any refusal.
                Some(status) => {
                    is_delete(event)
                        && status.is_client_error()
                        && status != StatusCode::UNAUTHORIZED
                        && status != StatusCode::TOO_MANY_REQUESTS
                }
                None => false,
            };
            return if gone {
                Ok(Resolution::Gone {
                    path,
                    deleted_status: None,
                })
            } else {
                Err(e)
            };
        }
    };
    let object: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        Error::new(
            ErrorKind::Api,
            format!("GET {path}: Monite's answer is not JSON: {e}"),
        )
        .with_source(e)
    })?;
    if let Some(status) = object.get("status").and_then(|s| s.as_str())
        && row.deleted_statuses().contains(&status)
    {
        return Ok(Resolution::Gone {
            path,
            deleted_status: Some(status.to_owned()),
        });
    }
    let updated_at = if row.has_updated_at() {
        object
            .get("updated_at")
            .and_then(|v| v.as_str())
            .and_then(|text| text.parse::<jiff::Timestamp>().ok())
    } else {
        None
    };
    let created_at = event.created_at_timestamp().ok().flatten();
    let newer_than_event = match (updated_at, created_at) {
        (Some(updated), Some(created)) => Some(updated > created),
        _ => None,
    };
    Ok(Resolution::Found {
        object,
        path,
        updated_at,
        newer_than_event,
    })
}
