//! `GET /webhook_deliveries`: an entity's delivery log.

use futures_util::Stream;

use super::Client;
use super::models::{ListQuery, WebhookDelivery};
use super::request::parse;
use crate::error::Result;

/// An entity's delivery log (`GET /webhook_deliveries`).
#[derive(Debug, Clone)]
pub struct Deliveries<'a> {
    client: &'a Client,
    entity_id: String,
}

impl<'a> Deliveries<'a> {
    pub(super) fn new(client: &'a Client, entity_id: String) -> Self {
        Self { client, entity_id }
    }

    /// Every delivery matching `query`, fetching pages as the stream is read.
    pub fn list(
        &self,
        query: ListQuery,
    ) -> impl Stream<Item = Result<WebhookDelivery>> + Send + '_ {
        self.client.paginate(
            "/webhook_deliveries".to_owned(),
            Some(&self.entity_id),
            query,
            |raw| parse("/webhook_deliveries", &raw),
        )
    }
}
