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
//!
//! To set up one endpoint for every object type (or some), with each subscription's secret
//! kept in a [`Keyring`](crate::Keyring) file as soon as Monite returns it, see
//! [`Subscriptions::ensure_with`]; to rotate a secret, [`Subscriptions::rotate_secret`].
//!
//! # Retries
//!
//! Reads (`GET`), updates (`PATCH`), deletes and the requests whose repetition changes
//! nothing (enable, disable, a token) are retried on 429, 5xx and transport failures.
//! Creating a subscription and regenerating its secret are retried only where Monite
//! certainly did not act: the connection could not be made, or a 429 said when to come back
//! (`Retry-After`). Anything else (a 5xx, a timeout, a connection lost after the request was
//! sent) is reported: the subscription may exist, with a secret that was returned only
//! once, so list the subscriptions before creating it again.
//!
//! # Pagination
//!
//! Listings follow `next_pagination_token` until a page has none. A token Monite gives a
//! second time, or [`MAX_EMPTY_PAGES`] empty pages in a row that each point to another,
//! stop the listing with [`ErrorKind::Api`]: either would otherwise never end.

mod auth;
mod deliveries;
mod ensure;
mod entities;
mod events;
pub mod fetch;
mod models;
mod pagination;
mod rate;
mod recover;
mod request;
mod send;
mod subscriptions;
pub(crate) mod tls;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::receive::Receiver;

use self::auth::Auth;
use self::rate::Budget;
use self::request::Redacted;

pub use self::deliveries::Deliveries;
pub use self::ensure::{EnsureSummary, Ensured, SecretStatus, SubscriptionPlan};
pub use self::entities::{Entities, Entity};
pub use self::events::Events;
pub use self::fetch::{Fetch, Resolution};
pub use self::models::{
    ListQuery, NewSubscription, Order, SubscriptionStatus, SubscriptionUpdate,
    SubscriptionWithSecret, WebhookDelivery, WebhookSubscription,
};
pub use self::pagination::MAX_EMPTY_PAGES;
pub use self::rate::{DEFAULT_MAX_RATE, MAX_RETRY_AFTER, Timer, TokioTimer};
pub use self::recover::{
    DEFAULT_IN_FLIGHT_WAIT, OnUnparsable, Recovery, RecoveryProgress, UnparsableEvent,
};
pub use self::subscriptions::Subscriptions;

/// The API version sent in `X-Monite-Version` unless another is chosen.
///
/// 2024-05-25, the newest version Monite documents, and the one whose OpenAPI document this
/// crate's models are checked against. Its webhook endpoints have the same shapes as
/// 2024-01-31's (only more object types, which parse either way), and the newer version
/// stays supported longer. Choose another with [`ClientBuilder::api_version`].
pub const DEFAULT_API_VERSION: &str = "2024-05-25";

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

/// Reads `MONITE_ENVIRONMENT`'s values: `sandbox` (and the empty string), `eu` or
/// `production`, `na` or `us`, or a base URL (`http://` or `https://`).
///
/// ```
/// use monite_webhooks::client::Environment;
///
/// assert_eq!("EU".parse::<Environment>().unwrap(), Environment::Eu);
/// assert_eq!(
///     "http://127.0.0.1:8080/v1".parse::<Environment>().unwrap().base_url(),
///     "http://127.0.0.1:8080/v1"
/// );
/// assert!("staging".parse::<Environment>().is_err());
/// ```
impl std::str::FromStr for Environment {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        let name = name.trim();
        Ok(match name.to_ascii_lowercase().as_str() {
            "" | "sandbox" => Self::Sandbox,
            "eu" | "production" => Self::Eu,
            "na" | "us" => Self::Na,
            url if url.starts_with("http://") || url.starts_with("https://") => {
                Self::Custom(name.to_owned())
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::Misconfigured,
                    format!("MONITE_ENVIRONMENT {name:?} is not sandbox, eu, na or a base URL"),
                ));
            }
        })
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
    max_rate: f64,
    timer: Arc<dyn Timer>,
    #[cfg(any(feature = "postgres", feature = "redis"))]
    fleet: Option<crate::fleet::Fleet>,
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
    budget: Budget,
    /// The fleet's budget, drawn from after `budget`: none without a fleet.
    #[cfg(any(feature = "postgres", feature = "redis"))]
    shared: Option<crate::fleet::SharedBudget>,
    timer: Arc<dyn Timer>,
    /// Monite's `Date` from the last answer that had one, and when it came.
    monite_clock: Mutex<Option<(jiff::Timestamp, Instant)>>,
    /// Object fetches under way, shared by overlapping callers.
    in_flight: fetch::InFlight,
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
            max_rate: DEFAULT_MAX_RATE,
            timer: Arc::new(TokioTimer),
            #[cfg(any(feature = "postgres", feature = "redis"))]
            fleet: None,
        }
    }

    /// Webhook subscriptions (API 2024-01-31 and later).
    #[must_use]
    pub fn webhook_subscriptions(&self) -> Subscriptions<'_> {
        Subscriptions::new(self, "/webhook_subscriptions")
    }

    /// The same operations on the legacy `webhook_settings` API (2022, 2023-09-01).
    #[must_use]
    pub fn webhook_settings(&self) -> Subscriptions<'_> {
        Subscriptions::new(self, "/webhook_settings")
    }

    /// The events of one entity, kept by Monite for about three months.
    #[must_use]
    pub fn events(&self, entity_id: impl Into<String>) -> Events<'_> {
        Events::new(self, entity_id.into())
    }

    /// The partner's entities.
    #[must_use]
    pub fn entities(&self) -> Entities<'_> {
        Entities::new(self)
    }

    /// The delivery log of one entity: every attempt to deliver an event to a subscription.
    #[must_use]
    pub fn webhook_deliveries(&self, entity_id: impl Into<String>) -> Deliveries<'_> {
        Deliveries::new(self, entity_id.into())
    }

    /// Monite's time now: its last `Date` header plus the time since, on the client's
    /// [`Timer`]. `None` before the first answer. Sweep windows end here, not on the local
    /// clock, so a clock set apart from Monite's misses nothing.
    #[must_use]
    pub fn monite_now(&self) -> Option<jiff::Timestamp> {
        let seen = *self
            .inner
            .monite_clock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (date, at) = seen?;
        let elapsed = self.inner.timer.now().saturating_duration_since(at);
        date.checked_add(jiff::SignedDuration::try_from(elapsed).ok()?)
            .ok()
    }

    /// Now, on the client's [`Timer`]: what the reconciler schedules by, so that a test or a
    /// simulation moves its days as it moves the rate budget's seconds.
    pub(crate) fn timer_now(&self) -> std::time::Instant {
        self.inner.timer.now()
    }

    /// How many times Monite answered 429 to this client and its clones.
    #[must_use]
    pub fn rate_limited_count(&self) -> u64 {
        self.inner.budget.rate_limited()
    }

    /// The budget shared by this client and its clones, in requests per second.
    #[must_use]
    pub fn max_rate(&self) -> f64 {
        self.inner.budget.max_rate()
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
}

impl ClientBuilder {
    /// Partner credentials: the client gets a token with `client_credentials`, caches it and
    /// fetches a new one before it expires, and once more if Monite answers 401.
    pub fn credentials(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.auth = Some(Auth::credentials(client_id.into(), client_secret.into()));
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

    /// How many times a failed request is retried where retrying is safe (see the
    /// [module documentation](self#retries)); defaults to 3.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The timeout of each request; defaults to 30 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// At most this many requests per second, shared by the client and its clones (every
    /// call, token requests and retries included); defaults to [`DEFAULT_MAX_RATE`], a
    /// fifth of Monite's default limit. Requests wait their turn; none is refused. With a
    /// fleet (`fleet`, features `postgres` or `redis`), the rate of every replica
    /// together.
    pub fn max_rate(mut self, requests_per_second: f64) -> Self {
        self.max_rate = requests_per_second;
        self
    }

    /// Where the client reads the time and waits (rate budget, back-off, `Retry-After`);
    /// defaults to [`TokioTimer`].
    pub fn timer(mut self, timer: impl Timer) -> Self {
        self.timer = Arc::new(timer);
        self
    }

    /// Shares the rate budget with every replica on `fleet`'s store: [`max_rate`] becomes
    /// the rate of the whole fleet (give every replica the same), and a `429`'s
    /// `Retry-After` seen by any replica holds them all back. Without it the budget is
    /// this process's alone, as before.
    ///
    /// Each request first takes its turn in this process's budget (its two lanes, as
    /// without a fleet), then a slot of the fleet's schedule, kept in the store on the
    /// store's clock: see [`fleet`](crate::fleet#the-rate-budget) for the schedule, its
    /// lanes, and why a replica that dies holds no share. Run
    /// [`Fleet::ensure_schema`](crate::fleet::Fleet::ensure_schema) before the first
    /// request (on PostgreSQL).
    ///
    /// If the store fails or does not answer within 5 s, the request is not sent and fails
    /// with [`ErrorKind::StoreUnavailable`]: a budget that cannot be read cannot be kept,
    /// and every caller (a sweep, the watchdog, a handler's fetch) already retries later.
    ///
    /// ```no_run
    /// use monite_webhooks::PostgresStore;
    /// use monite_webhooks::client::{Client, Environment};
    /// use monite_webhooks::fleet::Fleet;
    /// # async fn run(pool: sqlx::PgPool) -> Result<(), monite_webhooks::Error> {
    /// let fleet = Fleet::postgres(&PostgresStore::new(pool, "billing")?);
    /// fleet.ensure_schema().await?;
    /// // Six requests per second for all the replicas together.
    /// let client = Client::builder(Environment::Sandbox)
    ///     .credentials("client id", "client secret")
    ///     .max_rate(6.0)
    ///     .fleet(&fleet)
    ///     .build()?;
    /// # let _ = client; Ok(()) }
    /// ```
    ///
    /// [`max_rate`]: Self::max_rate
    #[cfg(any(feature = "postgres", feature = "redis"))]
    pub fn fleet(mut self, fleet: &crate::fleet::Fleet) -> Self {
        self.fleet = Some(fleet.clone());
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
                "the client was built with neither credentials nor a token",
            )
        })?;
        let tls = tls::config().map_err(|e| {
            Error::new(
                ErrorKind::Misconfigured,
                format!("cannot set up TLS for the HTTP client: {e}"),
            )
            .with_source(e)
        })?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
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
        let budget = Budget::new(self.max_rate);
        Ok(Client {
            inner: Arc::new(Inner {
                #[cfg(any(feature = "postgres", feature = "redis"))]
                shared: self
                    .fleet
                    .as_ref()
                    .map(|fleet| crate::fleet::SharedBudget::new(fleet, budget.max_rate())),
                http,
                base_url: self.environment.base_url().to_owned(),
                api_version: self.api_version,
                auth,
                max_retries: self.max_retries,
                budget,
                timer: self.timer,
                monite_clock: Mutex::new(None),
                in_flight: fetch::InFlight::default(),
            }),
        })
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url)
            .field("api_version", &self.inner.api_version)
            .field("auth", &self.inner.auth)
            .field("max_retries", &self.inner.max_retries)
            .field("budget", &self.inner.budget)
            .field("fleet", &self.fleet_budget())
            .finish()
    }
}

impl Client {
    /// The fleet's budget, if the client shares one, for `Debug`.
    fn fleet_budget(&self) -> Option<&dyn fmt::Debug> {
        #[cfg(any(feature = "postgres", feature = "redis"))]
        if let Some(shared) = &self.inner.shared {
            return Some(shared);
        }
        None
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
