//! With `MONITE_CLIENT_ID` and `MONITE_CLIENT_SECRET` set (and `MONITE_ENVIRONMENT` as for
//! the CLI: `sandbox`, `eu`, `na` or a base URL), the reconciler and the subscription
//! watchdog run in the background, their reports in the logs. Checkpoints go to
//! PostgreSQL when `DATABASE_URL` is set, to Redis when `REDIS_URL` is. Without either the
//! idempotency store is in memory, so only the watchdog runs: a reconciler over it would
//! run the last lookback's events again after every restart. Both stop with the server
//! ([`Background::shutdown`]): the entity being swept finishes and its checkpoint is saved.

use monite_webhooks::{BoxError, Receiver, ReceiverBuilder};

/// Whether the environment asks for the background tasks.
pub(crate) fn wanted() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    set("MONITE_CLIENT_ID") && set("MONITE_CLIENT_SECRET")
}

/// The reconciler and the watchdog, when they run.
#[derive(Default)]
pub(crate) struct Background {
    #[cfg(feature = "client")]
    reconciler: Option<monite_webhooks::reconcile::ReconcilerHandle>,
    #[cfg(feature = "client")]
    watchdog: Option<monite_webhooks::watchdog::WatchdogHandle>,
}

impl Background {
    /// Stops the reconciler (the entity being swept finishes, the checkpoints reached are
    /// saved) and the watchdog (the check in progress finishes), both at once.
    pub(crate) async fn shutdown(self) {
        #[cfg(feature = "client")]
        {
            let stopped = match (&self.reconciler, &self.watchdog) {
                (None, None) => return,
                (Some(_), _) => "reconciler and subscription watchdog",
                (None, Some(_)) => "subscription watchdog",
            };
            let reconciler = async {
                if let Some(reconciler) = self.reconciler {
                    reconciler.shutdown().await;
                }
            };
            let watchdog = async {
                if let Some(watchdog) = self.watchdog {
                    watchdog.shutdown().await;
                }
            };
            tokio::join!(reconciler, watchdog);
            tracing::info!("background stopped: {stopped}");
        }
    }
}

#[cfg(feature = "client")]
mod running {
    use std::sync::{Arc, OnceLock};
    use std::time::Duration;

    use monite_webhooks::client::{Client, Environment};
    use monite_webhooks::reconcile::Reconciler;
    use monite_webhooks::watchdog::{WATCH_EVERY, Watchdog};
    use monite_webhooks::{BoxError, Receiver, ReceiverBuilder};

    use super::Background;

    /// How often the reconciler starts a cycle.
    const CYCLE_EVERY: Duration = Duration::from_secs(5 * 60);

    fn client() -> Result<Client, BoxError> {
        let var = |name: &str| std::env::var(name).unwrap_or_default().trim().to_owned();
        let environment: Environment = var("MONITE_ENVIRONMENT").parse()?;
        Ok(Client::builder(environment)
            .credentials(var("MONITE_CLIENT_ID"), var("MONITE_CLIENT_SECRET"))
            .build()?)
    }

    /// The receiver, and with `run` the reconciler and the watchdog started over it.
    pub(crate) async fn build(
        builder: ReceiverBuilder,
        run: bool,
    ) -> Result<(Receiver, Background), BoxError> {
        if !run {
            return Ok((builder.build(), Background::default()));
        }
        let client = client()?;
        // The watchdog needs the reconciler (for deep sweeps), which needs the receiver:
        // the receiver's failures go to the watchdog once it is built, before any request.
        let watchdog: Arc<OnceLock<Watchdog>> = Arc::default();
        let recording = Arc::clone(&watchdog);
        let receiver = builder
            .on_failure(move |event, _| {
                if let (Some(watchdog), Some(id)) =
                    (recording.get(), event.webhook_subscription_id())
                {
                    watchdog.record_failure(id);
                }
            })
            .build();
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let reconciler = match (var("DATABASE_URL"), var("REDIS_URL")) {
            (Some(url), _) => Some(postgres(receiver.clone(), client.clone(), url.trim()).await?),
            (None, Some(url)) => Some(redis(receiver.clone(), client.clone(), url.trim()).await?),
            (None, None) => {
                // Never the in-memory store with the reconciler (see the module's doc).
                tracing::warn!(
                    "reconciler not started: set DATABASE_URL or REDIS_URL, so that what was \
                     handled is remembered across restarts; the subscription watchdog runs"
                );
                None
            }
        };
        let reconciler = reconciler
            .map(|builder| {
                builder
                    .every(CYCLE_EVERY)
                    .on_report(|report| tracing::warn!("{report}"))
                    .build()
            })
            .transpose()?;
        let mut checks = Watchdog::builder(client)
            .reenable(true)
            .every(WATCH_EVERY)
            .on_report(|report| tracing::warn!("{report}"));
        if let Some(reconciler) = &reconciler {
            checks = checks.deep_sweep_with(reconciler.clone());
        }
        let checks = checks.build()?;
        let _ = watchdog.set(checks.clone());
        let background = Background {
            reconciler: reconciler.as_ref().map(Reconciler::start),
            watchdog: Some(checks.start()),
        };
        if reconciler.is_some() {
            tracing::info!(
                "reconciler (every 5 min) and subscription watchdog (every minute) started"
            );
        } else {
            tracing::info!("subscription watchdog (every minute) started");
        }
        Ok((receiver, background))
    }

    #[cfg(feature = "postgres")]
    async fn postgres(
        receiver: Receiver,
        client: Client,
        url: &str,
    ) -> Result<monite_webhooks::reconcile::ReconcilerBuilder, BoxError> {
        use monite_webhooks::reconcile::PostgresCheckpoints;
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
    ) -> Result<monite_webhooks::reconcile::ReconcilerBuilder, BoxError> {
        use monite_webhooks::reconcile::RedisCheckpoints;
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
    ) -> Result<monite_webhooks::reconcile::ReconcilerBuilder, BoxError> {
        Err("REDIS_URL is set, but this build has no Redis: add `--features redis`".into())
    }

    #[cfg(not(feature = "postgres"))]
    async fn postgres(
        _: Receiver,
        _: Client,
        _: &str,
    ) -> Result<monite_webhooks::reconcile::ReconcilerBuilder, BoxError> {
        Err(
            "DATABASE_URL is set, but this build has no PostgreSQL: add `--features postgres`"
                .into(),
        )
    }
}

/// Builds the receiver. When the environment asks for the background tasks and `run` is
/// set, the reconciler and the watchdog start over it, and the receiver's own failures
/// reach the watchdog (reported within a minute).
pub(crate) async fn build_receiver(
    builder: ReceiverBuilder,
    run: bool,
) -> Result<(Receiver, Background), BoxError> {
    if !wanted() {
        return Ok((builder.build(), Background::default()));
    }
    #[cfg(feature = "client")]
    return running::build(builder, run).await;
    #[cfg(not(feature = "client"))]
    {
        let _ = (builder, run);
        Err(
            "MONITE_CLIENT_ID is set, but this build has no API client: add `--features client`"
                .into(),
        )
    }
}
