//! Accepting a verified delivery: one durable write, then the answer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::store::{Accepted, Delivery, InboxStore};
use crate::error::{BoxError, Error, ErrorKind, Result};
use crate::event::Event;
use crate::headers::{HeaderLookup, SIGNATURE_HEADER};
use crate::idempotency::KeyScope;

/// The headers kept with each delivery: enough to verify it again and to audit it.
const KEPT_HEADERS: [&str; 3] = [SIGNATURE_HEADER, "content-type", "user-agent"];

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What an inbox receiver ([`Receiver::inbox_builder`](crate::Receiver::inbox_builder))
/// writes verified deliveries to instead of running handlers: its store, erased.
///
/// The receiver then answers `202` once the delivery is written (`200` for one already
/// there, a duplicate) and `503` when the write fails; no handler runs before the answer.
/// Cloning shares the store.
#[derive(Clone)]
pub(crate) struct Inbox {
    store: Arc<dyn ErasedInbox>,
    // Set by the receiver from its `unhandled_status`, kept with each delivery.
    retry_unhandled: bool,
}

trait ErasedInbox: Send + Sync {
    fn accept<'a>(
        &'a self,
        delivery: &'a Delivery<'a>,
    ) -> BoxFuture<'a, Result<Accepted, BoxError>>;
}

impl<S: InboxStore> ErasedInbox for S {
    fn accept<'a>(
        &'a self,
        delivery: &'a Delivery<'a>,
    ) -> BoxFuture<'a, Result<Accepted, BoxError>> {
        Box::pin(InboxStore::accept(self, delivery))
    }
}

impl Inbox {
    /// Accepts deliveries into `store`.
    pub(crate) fn new(store: impl InboxStore) -> Self {
        Self {
            store: Arc::new(store),
            retry_unhandled: false,
        }
    }

    /// The same inbox for a receiver whose `unhandled_status` is `status`: a non-`2xx`
    /// one has the workers retry the events no handler takes.
    pub(crate) fn for_unhandled_status(mut self, status: http::StatusCode) -> Self {
        self.retry_unhandled = !status.is_success();
        self
    }

    /// Writes one verified event and the kept headers; answers whether it was new.
    ///
    /// # Errors
    /// [`ErrorKind::StoreUnavailable`] if the write failed: answer `503`, Monite retries.
    pub(crate) async fn accept<H: HeaderLookup + ?Sized>(
        &self,
        event: &Event,
        headers: &H,
    ) -> Result<Accepted> {
        let kept: Vec<(&'static str, String)> = KEPT_HEADERS
            .iter()
            .filter_map(|name| {
                let value = headers.header(name)?;
                Some((*name, String::from_utf8_lossy(value).into_owned()))
            })
            .collect();
        // Id-less 2022 envelopes are keyed by their body: a retry of one is the same bytes.
        let key = KeyScope::PerEvent.key(event, true).unwrap_or_default();
        let delivery = Delivery {
            key: &key,
            event,
            headers: &kept,
            retry_unhandled: self.retry_unhandled,
        };
        let started = std::time::Instant::now();
        let result = self.store.accept(&delivery).await;
        crate::observe::inbox::accepted(
            result
                .as_ref()
                .ok()
                .map(|accepted| *accepted == Accepted::Duplicate),
            started.elapsed(),
        );
        result.map_err(|source| {
            Error::new(
                ErrorKind::StoreUnavailable,
                format!("the inbox could not accept {key}: {source}"),
            )
            .with_source(source)
        })
    }
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox").finish_non_exhaustive()
    }
}
