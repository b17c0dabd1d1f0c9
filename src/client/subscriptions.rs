//! `/webhook_subscriptions` (and the legacy `/webhook_settings`): subscriptions and their
//! one-time secrets.

use futures_util::Stream;
use http::Method;

use super::Client;
use super::models::{
    ListQuery, NewSubscription, SubscriptionUpdate, SubscriptionWithSecret, WebhookSubscription,
    WithSecret,
};
use super::request::{Request, parse, segment};
use crate::error::{Error, ErrorKind, Result};
use crate::signature::Secret;

/// Webhook subscriptions, at `/webhook_subscriptions` or the legacy `/webhook_settings`.
#[derive(Debug, Clone, Copy)]
pub struct Subscriptions<'a> {
    client: &'a Client,
    path: &'static str,
}

impl<'a> Subscriptions<'a> {
    pub(super) fn new(client: &'a Client, path: &'static str) -> Self {
        Self { client, path }
    }

    /// `/webhook_subscriptions/{id}` and what follows, with `id` escaped.
    fn at(&self, id: &str, action: &str) -> Result<String> {
        Ok(format!("{}/{}{action}", self.path, segment(id)?))
    }

    /// Creates a subscription; the answer carries its signing secret, returned only now.
    ///
    /// Sent again only where Monite certainly did not receive it (see the
    /// [module documentation](super#retries)): after a 5xx or a lost connection the
    /// subscription may exist, so this reports the failure rather than risk a second one
    /// whose secret is never seen. If the answer came but part of it could not be read, the
    /// secret is returned all the same, with [`SubscriptionWithSecret::incomplete`] set.
    ///
    /// # Errors
    /// [`ErrorKind::Api`] with Monite's message (a 422 lists each invalid field), or
    /// [`ErrorKind::Transport`].
    pub async fn create(&self, subscription: &NewSubscription) -> Result<SubscriptionWithSecret> {
        let request = Request::new(Method::POST, self.path.to_owned()).json(subscription);
        let answer = self.client.send(&request).await?;
        with_secret(&request, &answer, Some(subscription))
    }

    /// Every subscription, enabled or not, fetching pages as the stream is read.
    pub fn list(
        &self,
        query: ListQuery,
    ) -> impl Stream<Item = Result<WebhookSubscription>> + Send + 'a {
        let path = self.path;
        self.client
            .paginate(path.to_owned(), None, query, move |raw| parse(path, &raw))
    }

    /// One subscription (without its secret).
    ///
    /// # Errors
    /// As [`create`](Self::create), and [`ErrorKind::Misconfigured`] for an id that cannot
    /// be a path segment (empty, `.` or `..`).
    pub async fn get(&self, id: &str) -> Result<WebhookSubscription> {
        let request = Request::new(Method::GET, self.at(id, "")?);
        self.client.send_parsed(&request).await
    }

    /// Changes a subscription.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub async fn update(
        &self,
        id: &str,
        update: &SubscriptionUpdate,
    ) -> Result<WebhookSubscription> {
        let request = Request::new(Method::PATCH, self.at(id, "")?).json(update);
        self.client.send_parsed(&request).await
    }

    /// Deletes a subscription. A retry that finds it gone, after an attempt that may have
    /// deleted it, counts as deleted.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub async fn delete(&self, id: &str) -> Result<()> {
        let request = Request::new(Method::DELETE, self.at(id, "")?);
        self.client.send(&request).await.map(drop)
    }

    /// Enables a subscription, such as one Monite disabled after a week of failures.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub async fn enable(&self, id: &str) -> Result<WebhookSubscription> {
        let request = Request::new(Method::POST, self.at(id, "/enable")?).replay_safe();
        self.client.send_parsed(&request).await
    }

    /// Disables a subscription: Monite stops sending its events.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub async fn disable(&self, id: &str) -> Result<WebhookSubscription> {
        let request = Request::new(Method::POST, self.at(id, "/disable")?).replay_safe();
        self.client.send_parsed(&request).await
    }

    /// Replaces a subscription's secret. The old one stops working at once: deploy the new
    /// one beside it first (see [`Verifier::with_secret`](crate::Verifier::with_secret)).
    /// Retried and read as [`create`](Self::create) is.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub async fn regenerate_secret(&self, id: &str) -> Result<SubscriptionWithSecret> {
        let request = Request::new(Method::POST, self.at(id, "/regenerate_secret")?);
        let answer = self.client.send(&request).await?;
        with_secret(&request, &answer, None)
    }
}

fn with_secret(
    request: &Request<'_>,
    answer: &[u8],
    asked: Option<&NewSubscription>,
) -> Result<SubscriptionWithSecret> {
    let answer = WithSecret::read(answer, asked).map_err(|why| {
        Error::new(
            ErrorKind::Api,
            format!("{request}: Monite's answer had no readable secret: {why}"),
        )
    })?;
    // Trimmed, not refused: the subscription exists (or its secret changed) by now, and this
    // text is the only copy; whitespace around it (a newline) is not part of the secret.
    let mut secret = Secret::new(answer.secret.trim()).map_err(|e| {
        e.context(&format!(
            "{request}: Monite carried it out, but the secret it returned is unusable"
        ))
    })?;
    if !answer.subscription.id.is_empty() {
        secret = secret.labeled(answer.subscription.id.clone());
    }
    Ok(SubscriptionWithSecret {
        subscription: answer.subscription,
        secret,
        incomplete: answer.incomplete,
    })
}
