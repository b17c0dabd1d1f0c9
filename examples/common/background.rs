//! With `MONITE_CLIENT_ID` and `MONITE_CLIENT_SECRET` set (and `MONITE_ENVIRONMENT` as for
//! the CLI: `sandbox`, `eu`, `na` or a base URL), the reconciler and the subscription
//! watchdog run in the background, their reports in the logs. Checkpoints go to
//! PostgreSQL when `DATABASE_URL` is set, to Redis when `REDIS_URL` is. Without either the
//! idempotency store is in memory, so only the watchdog runs: a reconciler over it would
//! run the last lookback's events again after every restart.

use monite_webhooks::{BoxError, Receiver, ReceiverBuilder};

/// Whether the environment asks for the background tasks.
pub(crate) fn wanted() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    set("MONITE_CLIENT_ID") && set("MONITE_CLIENT_SECRET")
}

#[cfg(feature = "client")]
mod running {
    use std::time::Duration;

    use monite_webhooks::client::reconcile::{Reconciler, WATCH_EVERY, Watchdog};
    use monite_webhooks::client::{Client, Environment};
    use monite_webhooks::{BoxError, Receiver};

    /// How often the reconciler starts a cycle.
    const CYCLE_EVERY: Duration = Duration::from_secs(5 * 60);

    pub(crate) fn client() -> Result<Client, BoxError> {
        let var = |name: &str| std::env::var(name).unwrap_or_default().trim().to_owned();
        let environment: Environment = var("MONITE_ENVIRONMENT").parse()?;
        Ok(Client::builder(environment)
            .credentials(var("MONITE_CLIENT_ID"), var("MONITE_CLIENT_SECRET"))
            .build()?)
    }

    pub(crate) fn watchdog(client: Client) -> Watchdog {
        Watchdog::new(client)
            .reenable(true)
            .on_report(|report| tracing::warn!("{report}"))
    }

    pub(crate) async fn start(
        receiver: Receiver,
        client: Client,
        watchdog: Watchdog,
    ) -> Result<(), BoxError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let builder = match (var("DATABASE_URL"), var("REDIS_URL")) {
            (Some(url), _) => postgres(receiver, client.clone(), url.trim()).await?,
            (None, Some(url)) => redis(receiver, client.clone(), url.trim()).await?,
            (None, None) => {
                // Never the in-memory store with the reconciler (see the module's doc).
                tracing::warn!(
                    "reconciler not started: set DATABASE_URL or REDIS_URL, so that what was \
                     handled is remembered across restarts; the subscription watchdog runs"
                );
                tokio::spawn(async move { watchdog.run(WATCH_EVERY).await });
                return Ok(());
            }
        };
        let reconciler = builder
            .on_report(|report| tracing::warn!("{report}"))
            .build()?;
        let watchdog = watchdog.deep_sweep_with(reconciler.clone());
        tokio::spawn(async move { reconciler.run(CYCLE_EVERY).await });
        tokio::spawn(async move { watchdog.run(WATCH_EVERY).await });
        tracing::info!("reconciler (every 5 min) and subscription watchdog (every minute) started");
        Ok(())
    }

    #[cfg(feature = "postgres")]
    async fn postgres(
        receiver: Receiver,
        client: Client,
        url: &str,
    ) -> Result<monite_webhooks::client::reconcile::ReconcilerBuilder, BoxError> {
        use monite_webhooks::client::reconcile::PostgresCheckpoints;
        tracing::info!("reconciler checkpoints: PostgreSQL (DATABASE_URL)");
        let namespace = std::env::var("MONITE_WEBHOOK_NAMESPACE")
            .unwrap_or_else(|_| super::super::EXAMPLE_NAMESPACE.to_owned());
        let store = monite_webhooks::PostgresStore::connect(url, namespace.trim()).await?;
        let checkpoints = PostgresCheckpoints::new(&store);
        checkpoints.ensure_schema().await?;
        Ok(Reconciler::builder(client, receiver, checkpoints))
    }

    #[cfg(feature = "redis")]
    async fn redis(
        receiver: Receiver,
        client: Client,
        url: &str,
    ) -> Result<monite_webhooks::client::reconcile::ReconcilerBuilder, BoxError> {
        use monite_webhooks::client::reconcile::RedisCheckpoints;
        tracing::info!("reconciler checkpoints: Redis (REDIS_URL)");
        let connection = redis::aio::ConnectionManager::new(redis::Client::open(url)?).await?;
        let namespace = std::env::var("MONITE_WEBHOOK_NAMESPACE")
            .unwrap_or_else(|_| super::super::EXAMPLE_NAMESPACE.to_owned());
        let checkpoints = RedisCheckpoints::new(connection, namespace.trim());
        Ok(Reconciler::builder(client, receiver, checkpoints))
    }

    #[cfg(not(feature = "redis"))]
    async fn redis(
        _: Receiver,
        _: Client,
        _: &str,
    ) -> Result<monite_webhooks::client::reconcile::ReconcilerBuilder, BoxError> {
        Err("REDIS_URL is set, but this build has no Redis: add `--features redis`".into())
    }

    #[cfg(not(feature = "postgres"))]
    async fn postgres(
        _: Receiver,
        _: Client,
        _: &str,
    ) -> Result<monite_webhooks::client::reconcile::ReconcilerBuilder, BoxError> {
        Err(
            "DATABASE_URL is set, but this build has no PostgreSQL: add `--features postgres`"
                .into(),
        )
    }
}

/// The watchdog to record the receiver's failures into, when the background tasks run.
#[cfg(feature = "client")]
pub(crate) type Watchdog = monite_webhooks::client::reconcile::Watchdog;
/// Without `client` there is no watchdog.
#[cfg(not(feature = "client"))]
pub(crate) type Watchdog = std::convert::Infallible;

/// The watchdog, if the environment asks for the background tasks.
fn watchdog() -> Result<Option<Watchdog>, BoxError> {
    if !wanted() {
        return Ok(None);
    }
    #[cfg(feature = "client")]
    return Ok(Some(running::watchdog(running::client()?)));
    #[cfg(not(feature = "client"))]
    Err("MONITE_CLIENT_ID is set, but this build has no API client: add `--features client`".into())
}

/// Records a failed delivery of `subscription_id` with the watchdog.
fn record_failure(watchdog: &Watchdog, subscription_id: &str) {
    #[cfg(feature = "client")]
    watchdog.record_failure(subscription_id);
    #[cfg(not(feature = "client"))]
    let _ = (watchdog, subscription_id);
}

/// Starts the reconciler and the watchdog over `receiver`.
async fn start(receiver: &Receiver, watchdog: Option<Watchdog>) -> Result<(), BoxError> {
    let Some(watchdog) = watchdog else {
        return Ok(());
    };
    #[cfg(feature = "client")]
    return running::start(receiver.clone(), running::client()?, watchdog).await;
    #[cfg(not(feature = "client"))]
    {
        let _ = receiver;
        match watchdog {}
    }
}

/// Builds the receiver. When the environment asks for the background tasks, the
/// receiver's own failures reach the watchdog (reported within a minute) and, with
/// `run`, the reconciler and the watchdog start over it.
pub(crate) async fn build_receiver(
    mut builder: ReceiverBuilder,
    run: bool,
) -> Result<Receiver, BoxError> {
    let watchdog = watchdog()?;
    #[allow(
        clippy::clone_on_copy,
        reason = "without `client` the watchdog is `Infallible`"
    )]
    if let Some(watchdog) = watchdog.clone() {
        builder = builder.on_failure(move |event, _| {
            if let Some(id) = event.webhook_subscription_id() {
                record_failure(&watchdog, id);
            }
        });
    }
    let receiver = builder.build();
    if run {
        start(&receiver, watchdog).await?;
    }
    Ok(receiver)
}
