//! `GET /events`: an entity's events, as the receiver's own [`Event`] type.

use futures_util::Stream;
use http::Method;

use super::Client;
use super::models::ListQuery;
use super::request::{Request, segment};
use crate::error::Result;
use crate::event::Event;

/// An entity's events (`GET /events`), as [`Event`]s: the same type the receiver hands to
/// handlers.
#[derive(Debug, Clone)]
pub struct Events<'a> {
    client: &'a Client,
    entity_id: String,
}

impl<'a> Events<'a> {
    pub(super) fn new(client: &'a Client, entity_id: String) -> Self {
        Self { client, entity_id }
    }

    /// Every event matching `query`, fetching pages as the stream is read. An event the
    /// parser refuses is an `Err` item; the stream goes on after it if read further.
    pub fn list(&self, query: ListQuery) -> impl Stream<Item = Result<Event>> + Send + '_ {
        self.client.paginate(
            "/events".to_owned(),
            Some(&self.entity_id),
            query,
            Event::parse,
        )
    }

    /// One event.
    ///
    /// # Errors
    /// [`ErrorKind::Api`](crate::ErrorKind::Api),
    /// [`ErrorKind::Transport`](crate::ErrorKind::Transport),
    /// [`ErrorKind::NotAnEnvelope`](crate::ErrorKind::NotAnEnvelope) if the answer is not an
    /// event, or [`ErrorKind::Misconfigured`](crate::ErrorKind::Misconfigured) for an id
    /// that cannot be a path segment.
    pub async fn get(&self, id: &str) -> Result<Event> {
        let path = format!("/events/{}", segment(id)?);
        let request = Request::new(Method::GET, path).entity(&self.entity_id);
        Event::parse(self.client.send(&request).await?)
    }
}
