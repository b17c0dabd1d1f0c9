//! `GET /entities`: the partner's entities, which the reconciler sweeps one by one.

use futures_util::Stream;
use serde::Deserialize;

use super::Client;
use super::models::ListQuery;
use super::request::parse;
use crate::error::Result;

/// One entity (`EntityResponse`), as much of it as the reconciler needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Entity {
    /// The entity id, sent as `X-Monite-Entity-Id`.
    pub id: String,
    /// `active`, `inactive` or `deleted` (any other value is kept as sent).
    #[serde(default)]
    pub status: Option<String>,
}

impl Entity {
    /// Whether Monite still records events for it: every status but `deleted`.
    #[must_use]
    pub fn is_live(&self) -> bool {
        self.status.as_deref() != Some("deleted")
    }
}

/// The partner's entities (`GET /entities`, partner-level: no entity header).
#[derive(Debug, Clone)]
pub struct Entities<'a> {
    client: &'a Client,
}

impl<'a> Entities<'a> {
    pub(super) fn new(client: &'a Client) -> Self {
        Self { client }
    }

    /// Every entity matching `query`, fetching pages as the stream is read.
    pub fn list(&self, query: ListQuery) -> impl Stream<Item = Result<Entity>> + Send + '_ {
        self.client
            .paginate("/entities".to_owned(), None, query, |raw| {
                parse("GET /entities", &raw)
            })
    }
}
