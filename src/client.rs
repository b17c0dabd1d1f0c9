//! A client for Monite's API around webhooks: subscriptions and their secrets, the events
//! missed while a listener was down, and the delivery log.
//!
//! ```no_run
//! use futures_util::TryStreamExt as _;
//! use monite_webhooks::client::{Client, Environment, NewSubscription};
//! use monite_webhooks::ObjectType;
//!
//! # async fn run() -> Result<(), monite_webhooks::Error> {
//! let client = Client::builder(Environment::Sandbox)
//!     .credentials("client id", "client secret")
//!     .build()?;
//! let created = client
//!     .webhook_subscriptions()
//!     .create(&NewSubscription::new(ObjectType::Payable, "https://example.com/webhooks/monite"))
//!     .await?;
//! // Keep `created.secret` in your secret store: it is returned only now.
//! let all: Vec<_> = client.webhook_subscriptions().list(Default::default()).try_collect().await?;
//! # let _ = all; Ok(()) }
//! ```

mod models;
mod recover;

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt as _, stream};
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{Error, ErrorKind, Result};
use crate::event::Event;
use crate::receiver::Receiver;
use crate::signature::Secret;

pub use self::models::{
    ListQuery, NewSubscription, Order, SubscriptionStatus, SubscriptionUpdate,
    SubscriptionWithSecret, WebhookDelivery, WebhookSubscription,
};
use self::models::{Page, WithSecret};
pub use self::recover::{Recovery, RecoveryProgress};

/// The API version sent in `X-Monite-Version` unless another is chosen.
pub const DEFAULT_API_VERSION: &str = "2024-01-31";

/// Which Monite deployment to talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Environment {
    /// `https://api.sandbox.monite.com/v1`.
    Sandbox,
    /// Production in the EU, `https://api.monite.com/v1`.
    Eu,
    /// Production in North America, `https://us.api.monite.com/v1`.
    Na,
    /// Any other base URL, such as a local fake in tests.
    Custom(String),
}

impl Environment {
    /// The base URL, without a trailing slash.
    #[must_use]
    pub fn base_url(&self) -> &str {
        match self {
            Self::Sandbox => "https://api.sandbox.monite.com/v1",
            Self::Eu => "https://api.monite.com/v1",
            Self::Na => "https://us.api.monite.com/v1",
            Self::Custom(url) => url.trim_end_matches('/'),
        }
    }
}

/// Configures a [`Client`].
#[must_use]
pub struct ClientBuilder {
    environment: Environment,
    api_version: String,
    auth: Option<Auth>,
    max_retries: u32,
    timeout: Duration,
}

/// Talks to Monite's API. Cloning shares the connection pool and the cached token.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: String,
    api_version: String,
    auth: Auth,
    max_retries: u32,
}

enum Auth {
    Credentials {
        client_id: String,
        client_secret: Redacted,
        cached: tokio::sync::Mutex<Option<CachedToken>>,
    },
    Token(Redacted),
}

/// Text that never prints.
struct Redacted(String);

struct CachedToken {
    access_token: Redacted,
    refresh_at: Instant,
}

impl Client {
    /// Starts configuring a client for `environment`.
    pub fn builder(environment: Environment) -> ClientBuilder {
        ClientBuilder {
            environment,
            api_version: DEFAULT_API_VERSION.to_owned(),
            auth: None,
            max_retries: 3,
            timeout: Duration::from_secs(30),
        }
    }

    /// Webhook subscriptions (API 2024-01-31 and later).
    #[must_use]
    pub fn webhook_subscriptions(&self) -> Subscriptions<'_> {
        Subscriptions {
            client: self,
            path: "/webhook_subscriptions",
        }
    }

    /// The same operations on the legacy `webhook_settings` API (2022, 2023-09-01).
    #[must_use]
    pub fn webhook_settings(&self) -> Subscriptions<'_> {
        Subscriptions {
            client: self,
            path: "/webhook_settings",
        }
    }

    /// The events of one entity, kept by Monite for about three months.
    #[must_use]
    pub fn events(&self, entity_id: impl Into<String>) -> Events<'_> {
        Events {
            client: self,
            entity_id: entity_id.into(),
        }
    }

    /// The delivery log of one entity: every attempt to deliver an event to a subscription.
    #[must_use]
    pub fn webhook_deliveries(&self, entity_id: impl Into<String>) -> Deliveries<'_> {
        Deliveries {
            client: self,
            entity_id: entity_id.into(),
        }
    }

    /// Fetches an entity's events (by default all Monite still keeps) and runs each through
    /// `receiver`, with its router and idempotency store: an event that was also delivered
    /// runs its handlers once. See [`Recovery`].
    pub fn recover_missed_events<'a>(
        &'a self,
        receiver: &'a Receiver,
        entity_id: impl Into<String>,
    ) -> Recovery<'a> {
        Recovery::new(self, receiver, entity_id.into())
    }

    /// Sends a request with the bearer token and returns the body of a 2xx answer. A 401
    /// gets one fresh token (it may have been revoked or have expired early).
    async fn send(&self, request: &Request<'_>) -> Result<Bytes> {
        let mut renewed = false;
        loop {
            let token = self.token().await?;
            match self.attempt(request, Some(&token)).await {
                Err(e)
                    if e.api_status() == Some(StatusCode::UNAUTHORIZED)
                        && !renewed
                        && self.can_refresh() =>
                {
                    renewed = true;
                    self.forget_token().await;
                }
                answer => return answer,
            }
        }
    }

    /// Sends `request`, retrying 429 and 5xx answers and transport failures with back-off
    /// (honouring `Retry-After`), at most `max_retries` times.
    async fn attempt(&self, request: &Request<'_>, token: Option<&Redacted>) -> Result<Bytes> {
        let mut retries = 0;
        loop {
            let mut builder = self
                .inner
                .http
                .request(
                    request.method.clone(),
                    format!("{}{}", self.inner.base_url, request.path),
                )
                .header("X-Monite-Version", &self.inner.api_version);
            if let Some(token) = token {
                builder = builder.bearer_auth(&token.0);
            }
            if let Some(entity_id) = request.entity_id {
                builder = builder.header("X-Monite-Entity-Id", entity_id);
            }
            if !request.query.is_empty() {
                builder = builder.query(&request.query);
            }
            if let Some(body) = &request.body {
                builder = builder
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let answer = match builder.send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(response.headers());
                    response
                        .bytes()
                        .await
                        .map(|body| (status, retry_after, body))
                }
                Err(e) => Err(e),
            };
            let wait = match answer {
                Ok((status, _, body)) if status.is_success() => return Ok(body),
                Ok((status, retry_after, body)) => {
                    let retryable =
                        status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    if !retryable || retries >= self.inner.max_retries {
                        return Err(api_error(request, status, &body));
                    }
                    retry_after.unwrap_or_else(|| backoff(retries + 1))
                }
                Err(e) if retries < self.inner.max_retries && !e.is_builder() => {
                    backoff(retries + 1)
                }
                Err(e) => return Err(transport(request, e)),
            };
            retries += 1;
            tokio::time::sleep(wait).await;
        }
    }

    fn can_refresh(&self) -> bool {
        matches!(self.inner.auth, Auth::Credentials { .. })
    }

    async fn forget_token(&self) {
        if let Auth::Credentials { cached, .. } = &self.inner.auth {
            *cached.lock().await = None;
        }
    }

    /// The bearer token: the given one, or the cached one, fetched again a minute before it
    /// expires. Concurrent callers wait for one refresh rather than each making their own.
    async fn token(&self) -> Result<Redacted> {
        let (client_id, client_secret, cached) = match &self.inner.auth {
            Auth::Token(token) => return Ok(Redacted(token.0.clone())),
            Auth::Credentials {
                client_id,
                client_secret,
                cached,
            } => (client_id, client_secret, cached),
        };
        let mut cached = cached.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| t.refresh_at > Instant::now()) {
            return Ok(Redacted(token.access_token.0.clone()));
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: String,
            expires_in: u64,
        }
        let body = serde_json::json!({
            "client_id": client_id,
            "client_secret": client_secret.0,
            "grant_type": "client_credentials",
        });
        let request = Request::new(Method::POST, "/auth/token".to_owned()).json(&body);
        let response = self
            .attempt(&request, None)
            .await
            .map_err(|e| e.context("could not obtain an access token"))?;
        let token: TokenResponse = parse(&request, &response)?;
        // Refresh a minute early (or halfway, for short-lived tokens).
        let lifetime = Duration::from_secs(token.expires_in);
        let margin = Duration::from_secs(60).min(lifetime / 2);
        *cached = Some(CachedToken {
            access_token: Redacted(token.access_token.clone()),
            refresh_at: Instant::now() + lifetime - margin,
        });
        Ok(Redacted(token.access_token))
    }

    /// Sends a request and parses the answer as `T`.
    async fn send_parsed<T: serde::de::DeserializeOwned>(
        &self,
        request: &Request<'_>,
    ) -> Result<T> {
        let body = self.send(request).await?;
        parse(request, &body)
    }

    /// One page of a listing: the items, each with its raw JSON, and the next page's token.
    async fn page(&self, request: &Request<'_>) -> Result<(Vec<Bytes>, Option<String>)> {
        let body = self.send(request).await?;
        let page: Page<&RawValue> = parse(request, &body)?;
        // Each item is a slice of the page's body: events borrow from it, nothing is copied.
        let items = page
            .data
            .iter()
            .map(|raw| {
                let (start, end) = span_in(&body, raw.get().as_bytes()).ok_or_else(|| {
                    Error::new(ErrorKind::Api, "a page item was not found in the page")
                })?;
                Ok(body.slice(start as usize..end as usize))
            })
            .collect::<Result<Vec<_>>>()?;
        let next = page.next_pagination_token.filter(|t| !t.is_empty());
        Ok((items, next))
    }

    /// Every item of a listing, fetching pages as the stream is read.
    fn paginate<'a, T: Send + 'a>(
        &'a self,
        path: String,
        entity_id: Option<&'a str>,
        query: ListQuery,
        item: impl Fn(Bytes) -> Result<T> + Send + Sync + 'a,
    ) -> impl Stream<Item = Result<T>> + Send + 'a {
        let first = Cursor::First(query);
        let pages = stream::try_unfold(Some(first), move |cursor| {
            let path = path.clone();
            async move {
                let Some(cursor) = cursor else {
                    return Ok(None);
                };
                let (items, next) = self.page(&cursor.request(path, entity_id)).await?;
                Ok(Some((items, next.map(Cursor::Token))))
            }
        });
        pages
            .map_ok(|items| stream::iter(items.into_iter().map(Ok)))
            .try_flatten()
            .and_then(move |raw| std::future::ready(item(raw)))
    }
}

/// Where a listing goes on from.
enum Cursor {
    First(ListQuery),
    // Monite infers every other parameter from the token.
    Token(String),
}

impl Cursor {
    fn request<'a>(&self, path: String, entity_id: Option<&'a str>) -> Request<'a> {
        let query = match self {
            Self::First(query) => query.params.clone(),
            Self::Token(token) => vec![("pagination_token", token.clone())],
        };
        let mut request = Request::new(Method::GET, path).query(query);
        request.entity_id = entity_id;
        request
    }
}

/// One API request, kept whole so that it can be sent again.
struct Request<'a> {
    method: Method,
    path: String,
    entity_id: Option<&'a str>,
    query: Vec<(&'static str, String)>,
    body: Option<Bytes>,
}

impl<'a> Request<'a> {
    fn new(method: Method, path: String) -> Self {
        Self {
            method,
            path,
            entity_id: None,
            query: Vec::new(),
            body: None,
        }
    }

    fn entity(mut self, entity_id: &'a str) -> Self {
        self.entity_id = Some(entity_id);
        self
    }

    fn query(mut self, query: Vec<(&'static str, String)>) -> Self {
        self.query = query;
        self
    }

    fn json(mut self, body: &impl serde::Serialize) -> Self {
        // Our own request types always serialize.
        self.body = serde_json::to_vec(body).ok().map(Bytes::from);
        self
    }
}

/// `METHOD /path`, for error messages.
impl fmt::Display for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// Parses an answer; `what` (a request, a listing's path) is only formatted on failure.
fn parse<'a, T: Deserialize<'a>>(what: impl fmt::Display, body: &'a [u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        Error::new(
            ErrorKind::Api,
            format!("{what}: Monite's answer did not have the documented shape: {e}"),
        )
        .with_source(e)
    })
}

/// Monite's error bodies: `{"error": {"message"}}`, or a 422's `{"detail": [{"msg"}]}`.
fn api_error(request: &Request<'_>, status: StatusCode, body: &[u8]) -> Error {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: Option<Message>,
        detail: Option<Vec<Detail>>,
    }
    #[derive(Deserialize)]
    struct Message {
        message: String,
    }
    #[derive(Deserialize)]
    struct Detail {
        msg: String,
        #[serde(default)]
        loc: Vec<serde_json::Value>,
    }
    let message = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody {
            error: Some(error), ..
        }) => error.message,
        Ok(ErrorBody {
            detail: Some(details),
            ..
        }) => details
            .iter()
            .map(|d| {
                let at: Vec<String> = d
                    .loc
                    .iter()
                    .map(|l| l.to_string().trim_matches('"').to_owned())
                    .collect();
                format!("{}: {}", at.join("."), d.msg)
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    };
    Error::new(
        ErrorKind::Api,
        format!("{request} answered {status}: {message}"),
    )
    .with_api(status, message)
}

fn transport(request: &Request<'_>, error: reqwest::Error) -> Error {
    Error::new(
        ErrorKind::Transport,
        format!("{request} could not reach Monite: {error}"),
    )
    .with_source(error)
}

/// `Retry-After` in seconds, capped at a minute.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds.min(60)))
}

/// Exponential back-off from 250 ms, capped at 8 s, with full jitter so that many clients
/// retrying together spread out.
fn backoff(attempt: u32) -> Duration {
    let ceiling = Duration::from_millis(250)
        .saturating_mul(1 << attempt.min(5))
        .min(Duration::from_secs(8));
    let jitter = RandomState::new().hash_one(attempt) % 1000;
    ceiling.mul_f64(0.5 + jitter as f64 / 2000.0)
}

impl ClientBuilder {
    /// Partner credentials: the client gets a token with `client_credentials`, caches it and
    /// fetches a new one before it expires, and once more if Monite answers 401.
    pub fn credentials(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.auth = Some(Auth::Credentials {
            client_id: client_id.into(),
            client_secret: Redacted(client_secret.into()),
            cached: tokio::sync::Mutex::new(None),
        });
        self
    }

    /// A token you obtained yourself (partner or entity-user); it is used as is.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.auth = Some(Auth::Token(Redacted(token.into())));
        self
    }

    /// `X-Monite-Version`; defaults to [`DEFAULT_API_VERSION`].
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = version.into();
        self
    }

    /// How many times a 429, a 5xx or a transport failure is retried; defaults to 3.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The timeout of each request; defaults to 30 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    /// [`ErrorKind::Misconfigured`] without credentials or a token, or if the HTTP client
    /// cannot be built (no TLS roots, say).
    pub fn build(self) -> Result<Client> {
        let auth = self.auth.ok_or_else(|| {
            Error::new(
                ErrorKind::Misconfigured,
                "the client needs credentials or a token: ClientBuilder::credentials or ::token",
            )
        })?;
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .user_agent(concat!("monite-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Misconfigured,
                    format!("cannot build the HTTP client: {e}"),
                )
                .with_source(e)
            })?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base_url: self.environment.base_url().to_owned(),
                api_version: self.api_version,
                auth,
                max_retries: self.max_retries,
            }),
        })
    }
}

/// Webhook subscriptions, at `/webhook_subscriptions` or the legacy `/webhook_settings`.
#[derive(Debug, Clone, Copy)]
pub struct Subscriptions<'a> {
    client: &'a Client,
    path: &'static str,
}

impl Subscriptions<'_> {
    /// Creates a subscription; the answer carries its signing secret, returned only now.
    ///
    /// # Errors
    /// [`ErrorKind::Api`] with Monite's message (a 422 lists each invalid field), or
    /// [`ErrorKind::Transport`].
    pub async fn create(&self, subscription: &NewSubscription) -> Result<SubscriptionWithSecret> {
        let request = Request::new(Method::POST, self.path.to_owned()).json(subscription);
        let created: WithSecret = self.client.send_parsed(&request).await?;
        with_secret(created)
    }

    /// Every subscription, enabled or not, fetching pages as the stream is read.
    pub fn list(
        &self,
        query: ListQuery,
    ) -> impl Stream<Item = Result<WebhookSubscription>> + Send + '_ {
        let path = self.path;
        self.client
            .paginate(path.to_owned(), None, query, move |raw| parse(path, &raw))
    }

    /// One subscription (without its secret).
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub async fn get(&self, id: &str) -> Result<WebhookSubscription> {
        self.client
            .send_parsed(&Request::new(Method::GET, format!("{}/{id}", self.path)))
            .await
    }

    /// Changes a subscription.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub async fn update(
        &self,
        id: &str,
        update: &SubscriptionUpdate,
    ) -> Result<WebhookSubscription> {
        let request = Request::new(Method::PATCH, format!("{}/{id}", self.path)).json(update);
        self.client.send_parsed(&request).await
    }

    /// Deletes a subscription.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub async fn delete(&self, id: &str) -> Result<()> {
        let request = Request::new(Method::DELETE, format!("{}/{id}", self.path));
        self.client.send(&request).await.map(drop)
    }

    /// Enables a subscription, such as one Monite disabled after a week of failures.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub async fn enable(&self, id: &str) -> Result<WebhookSubscription> {
        let request = Request::new(Method::POST, format!("{}/{id}/enable", self.path));
        self.client.send_parsed(&request).await
    }

    /// Disables a subscription: Monite stops sending its events.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub async fn disable(&self, id: &str) -> Result<WebhookSubscription> {
        let request = Request::new(Method::POST, format!("{}/{id}/disable", self.path));
        self.client.send_parsed(&request).await
    }

    /// Replaces a subscription's secret. The old one stops working at once: deploy the new
    /// one beside it first (see [`Verifier::with_secret`](crate::Verifier::with_secret)).
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub async fn regenerate_secret(&self, id: &str) -> Result<SubscriptionWithSecret> {
        let request = Request::new(
            Method::POST,
            format!("{}/{id}/regenerate_secret", self.path),
        );
        let regenerated: WithSecret = self.client.send_parsed(&request).await?;
        with_secret(regenerated)
    }
}

fn with_secret(answer: WithSecret) -> Result<SubscriptionWithSecret> {
    let secret = Secret::new(&answer.secret)?.labeled(answer.subscription.id.clone());
    Ok(SubscriptionWithSecret {
        subscription: answer.subscription,
        secret,
    })
}

/// An entity's events (`GET /events`), as [`Event`]s: the same type the receiver hands to
/// handlers.
#[derive(Debug, Clone)]
pub struct Events<'a> {
    client: &'a Client,
    entity_id: String,
}

impl Events<'_> {
    /// Every event matching `query`, fetching pages as the stream is read.
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
    /// [`ErrorKind::Api`], [`ErrorKind::Transport`], or [`ErrorKind::NotAnEnvelope`] if the
    /// answer is not an event.
    pub async fn get(&self, id: &str) -> Result<Event> {
        let request = Request::new(Method::GET, format!("/events/{id}")).entity(&self.entity_id);
        Event::parse(self.client.send(&request).await?)
    }
}

/// An entity's delivery log (`GET /webhook_deliveries`).
#[derive(Debug, Clone)]
pub struct Deliveries<'a> {
    client: &'a Client,
    entity_id: String,
}

impl Deliveries<'_> {
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

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.inner.auth {
            Auth::Credentials { client_id, .. } => format!("credentials({client_id}, [redacted])"),
            Auth::Token(_) => "token([redacted])".to_owned(),
        };
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url)
            .field("api_version", &self.inner.api_version)
            .field("auth", &auth)
            .field("max_retries", &self.inner.max_retries)
            .finish()
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("environment", &self.environment)
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

/// Where `part`, a slice borrowed from `body`, sits in it.
fn span_in(body: &[u8], part: &[u8]) -> Option<(u32, u32)> {
    let start = part.as_ptr().addr().checked_sub(body.as_ptr().addr())?;
    let end = start.checked_add(part.len())?;
    if end > body.len() {
        return None;
    }
    Some((u32::try_from(start).ok()?, u32::try_from(end).ok()?))
}
