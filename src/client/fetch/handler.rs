//! Handlers that receive the fetched object: [`Client::fetched`] turns a
//! `Fn(Event, Resolution)` into a [`Handler`], and [`DispatcherBuilder::on_fetched`]
//! registers one. An event whose object cannot be resolved (gone for an event that is not a
//! delete, a parent id nobody supplied, no endpoint) does not reach the handler: retrying
//! would not change it, so it fails as [`Unresolvable`], which the receiver and the inbox
//! workers acknowledge (no week of retries) and report through their failure hooks (never
//! silently). [`Fetched::with_unresolved`] hands those to the handler instead.

use std::future::Future;
use std::sync::Arc;

use super::{Resolution, is_delete};
use crate::client::Client;
use crate::dispatch::{DispatcherBuilder, Handler, IntoHandlerResult, Unresolvable};
use crate::error::BoxError;
use crate::event::{Event, EventType, ObjectType};

/// Handles an event together with what fetching its object found.
///
/// Implemented for every async closure or `async fn` `Fn(Event, Resolution) -> impl
/// Future<Output = R>`, `R` as for [`Handler`].
pub trait FetchedHandler: Send + Sync + 'static {
    /// Handles `event`, whose object resolved to `resolution`.
    fn call(
        &self,
        event: Event,
        resolution: Resolution,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;
}

impl<F, Fut> FetchedHandler for F
where
    F: Fn(Event, Resolution) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: IntoHandlerResult> + Send,
{
    fn call(
        &self,
        event: Event,
        resolution: Resolution,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let future = self(event, resolution);
        async move { future.await.into_handler_result() }
    }
}

type ParentOf = Arc<dyn Fn(&Event) -> Option<String> + Send + Sync>;

/// A [`Handler`] that fetches the event's object, then runs a [`FetchedHandler`]; made by
/// [`Client::fetched`].
#[must_use]
pub struct Fetched<H> {
    client: Client,
    handler: H,
    parent_of: Option<ParentOf>,
    unresolved: bool,
}

impl<H> Fetched<H> {
    /// Where a nested object's parent id comes from when the event's `object` does not
    /// carry it (your own records, say): `None` leaves it unresolved.
    pub fn parent_of(
        mut self,
        resolve: impl Fn(&Event) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.parent_of = Some(Arc::new(resolve));
        self
    }

    /// Hands every resolution to the handler, the unresolvable ones included, instead of
    /// failing them as [`Unresolvable`].
    pub fn with_unresolved(mut self) -> Self {
        self.unresolved = true;
        self
    }
}

impl<H> std::fmt::Debug for Fetched<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetched")
            .field("client", &self.client)
            .field("parent_of", &self.parent_of.is_some())
            .field("unresolved", &self.unresolved)
            .finish_non_exhaustive()
    }
}

impl<H: FetchedHandler> Handler for Fetched<H> {
    async fn call(&self, event: Event) -> Result<(), BoxError> {
        let mut fetch = self.client.fetch(&event);
        if let Some(parent) = self.parent_of.as_ref().and_then(|of| of(&event)) {
            fetch = fetch.parent(parent);
        }
        // An API failure is an ordinary failure: it may pass, so the event is retried.
        let resolution = fetch.await?;
        if !self.unresolved
            && let Some(why) = unresolvable(&event, &resolution)
        {
            return Err(Box::new(Unresolvable::new(why)));
        }
        self.handler.call(event, resolution).await
    }
}

/// Why `resolution` cannot be handled, when retrying would not change it.
fn unresolvable(event: &Event, resolution: &Resolution) -> Option<String> {
    let what = event.action();
    match resolution {
        Resolution::Gone { path, .. } if !is_delete(event) => Some(format!(
            "{what}: the object is gone (GET {path}) and the event is not a delete"
        )),
        Resolution::NeedsParent { parent } => Some(format!(
            "{what}: the object's path needs {parent}, which neither the event nor a resolver gave"
        )),
        Resolution::NoEndpoint => Some(format!(
            "{what}: Monite has no GET for {} objects",
            event.object_type()
        )),
        _ => None,
    }
}

impl Client {
    /// `handler` as a [`Handler`] that first fetches the event's object (see
    /// [`Fetched`]). Register it with [`DispatcherBuilder::on`], or use
    /// [`DispatcherBuilder::on_fetched`].
    pub fn fetched<H: FetchedHandler>(&self, handler: H) -> Fetched<H> {
        Fetched {
            client: self.clone(),
            handler,
            parent_of: None,
            unresolved: false,
        }
    }
}

impl DispatcherBuilder {
    /// Runs `handler` for events of `object_type` named `event_type`, with the event's
    /// object fetched by `client` ([`Client::fetch`]): one request for overlapping events
    /// about one object, ahead of reconciliation sweeps in the rate budget. An object that
    /// cannot be resolved does not reach `handler` (see [`Fetched`]).
    ///
    /// ```no_run
    /// use monite_webhooks::client::{Client, Environment, Resolution};
    /// use monite_webhooks::{Dispatcher, Event, EventType, HandlerResult, ObjectType};
    ///
    /// async fn on_paid(event: Event, payable: Resolution) -> HandlerResult {
    ///     if let Some(payable) = payable.found() {
    ///         println!("{} paid {}", payable["id"], payable["amount"]);
    ///     }
    ///     Ok(())
    /// }
    ///
    /// # fn build() -> Result<(), monite_webhooks::Error> {
    /// let client = Client::builder(Environment::Sandbox)
    ///     .credentials("client id", "client secret")
    ///     .build()?;
    /// let dispatcher = Dispatcher::builder()
    ///     .on_fetched(&client, ObjectType::Payable, EventType::Paid, on_paid)
    ///     .build();
    /// # let _ = dispatcher; Ok(()) }
    /// ```
    ///
    /// # Panics
    /// As [`on`](Self::on); and if Monite has no `GET` for `object_type` (a handler that
    /// could never run is a wiring mistake).
    pub fn on_fetched(
        self,
        client: &Client,
        object_type: ObjectType,
        event_type: EventType,
        handler: impl FetchedHandler,
    ) -> Self {
        assert!(
            super::endpoint(&object_type).is_some(),
            "Monite has no GET for {object_type} objects: on_fetched cannot fetch them"
        );
        self.on(object_type, event_type, client.fetched(handler))
    }
}
