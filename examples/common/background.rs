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

    use monite_webhooks::client::{Client, ClientBuilder, Environment};
    #[cfg(any(feature = "postgres", feature = "redis"))]
    use monite_webhooks::fleet::Fleet;
    use monite_webhooks::reconcile::Reconciler;
    #[cfg(any(feature = "postgres", feature = "redis"))]
    use monite_webhooks::reconcile::ReconcilerBuilder;
    use monite_webhooks::watchdog::{WATCH_EVERY, Watchdog, WatchdogBuilder};
    use monite_webhooks::{BoxError, Receiver, ReceiverBuilder};

    use super::super::config::{duration_var, rate_var};
    use super::Background;

    /// How often the reconciler starts a cycle, unless `MONITE_RECONCILE_EVERY` says.
    const CYCLE_EVERY: Duration = Duration::from_secs(5 * 60);
    /// Requests per second to Monite for the whole fleet, unless `MONITE_MAX_RATE` says:
    /// a fifth of Monite's default limit, the rest left to the application.
    const MAX_RATE: f64 = 6.0;

    /// What the environment sets: `MONITE_RECONCILE_EVERY` (default `5m`),
    /// `MONITE_WATCH_EVERY` (default `1m`), `MONITE_MAX_RATE` (default 6) and
    /// `MONITE_FLEET_LEASE` (the leases' time to live, default `30s`).
    struct Settings {
        reconcile_every: Duration,
        watch_every: Duration,
        max_rate: f64,
        lease: Option<Duration>,
    }

    impl Settings {
        fn from_env() -> Result<Self, BoxError> {
            Ok(Self {
                reconcile_every: duration_var("MONITE_RECONCILE_EVERY")?.unwrap_or(CYCLE_EVERY),
                watch_every: duration_var("MONITE_WATCH_EVERY")?.unwrap_or(WATCH_EVERY),
                max_rate: rate_var("MONITE_MAX_RATE")?.unwrap_or(MAX_RATE),
                lease: duration_var("MONITE_FLEET_LEASE")?,
            })
        }
    }

    /// The client; with a fleet, its rate is the whole fleet's, shared through the store.
    fn client(settings: &Settings, shared: Option<&Shared>) -> Result<Client, BoxError> {
        let var = |name: &str| std::env::var(name).unwrap_or_default().trim().to_owned();
        let environment: Environment = var("MONITE_ENVIRONMENT").parse()?;
        let mut client = Client::builder(environment)
            .credentials(var("MONITE_CLIENT_ID"), var("MONITE_CLIENT_SECRET"))
            .max_rate(settings.max_rate);
        if let Some(shared) = shared {
            client = shared.budget(client);
        }
        Ok(client.build()?)
    }

    /// A report in the logs: which replica leads at `info`, trouble at `warn`.
    fn log(report: &dyn std::fmt::Display, leadership: bool) {
        if leadership {
            tracing::info!("{report}");
        } else {
            tracing::warn!("{report}");
        }
    }

    /// The receiver, and with `run` the reconciler and the watchdog started over it.
    pub(crate) async fn build(
        builder: ReceiverBuilder,
        run: bool,
    ) -> Result<(Receiver, Background), BoxError> {
        if !run {
            return Ok((builder.build(), Background::default()));
        }
        let settings = Settings::from_env()?;
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let shared = match (var("DATABASE_URL"), var("REDIS_URL")) {
            (Some(url), _) => Some(postgres(url.trim()).await?),
            (None, Some(url)) => Some(redis(url.trim()).await?),
            (None, None) => None,
        };
        let shared = shared.map(|shared| shared.lease(settings.lease));
        let client = client(&settings, shared.as_ref())?;
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
        if shared.is_none() {
            // Never the in-memory store with the reconciler (see the module's doc).
            tracing::warn!(
                "reconciler not started: set DATABASE_URL or REDIS_URL, so that what was \
                 handled is remembered across restarts; the subscription watchdog runs"
            );
        }
        let mut checks = Watchdog::builder(client.clone())
            .reenable(true)
            .every(settings.watch_every)
            .on_report(|report| {
                use monite_webhooks::watchdog::Report;
                let leadership = matches!(
                    report,
                    Report::LeadershipGained { .. } | Report::LeadershipLost { .. }
                );
                log(report, leadership);
            });
        let reconciler = match shared {
            Some(shared) => {
                let (with_fleet, reconciler) =
                    shared.lead_by_turns(client, receiver.clone(), checks, &settings)?;
                checks = with_fleet;
                Some(reconciler)
            }
            None => None,
        };
        let checks = checks.build()?;
        let _ = watchdog.set(checks.clone());
        let background = Background {
            reconciler: reconciler.as_ref().map(Reconciler::start),
            watchdog: Some(checks.start()),
        };
        if reconciler.is_some() {
            tracing::info!(
                reconcile_every = ?settings.reconcile_every,
                watch_every = ?settings.watch_every,
                "reconciler and subscription watchdog started"
            );
        } else {
            tracing::info!(
                watch_every = ?settings.watch_every,
                "subscription watchdog started"
            );
        }
        Ok((receiver, background))
    }

    /// The reconciler on this store's checkpoints, once the client is built, and the fleet
    /// every replica on this store shares.
    #[cfg(any(feature = "postgres", feature = "redis"))]
    struct Shared {
        reconciler: Box<dyn FnOnce(Client, Receiver) -> ReconcilerBuilder + Send>,
        fleet: Fleet,
    }

    /// A build without a shared store has no fleet.
    #[cfg(not(any(feature = "postgres", feature = "redis")))]
    enum Shared {}

    #[cfg(any(feature = "postgres", feature = "redis"))]
    impl Shared {
        /// With `MONITE_FLEET_LEASE`, the leases' time to live.
        fn lease(self, ttl: Option<Duration>) -> Self {
            match ttl {
                Some(ttl) => Self {
                    fleet: self.fleet.with_lease_ttl(ttl),
                    ..self
                },
                None => self,
            }
        }

        /// The client's rate shared by the fleet.
        fn budget(&self, client: ClientBuilder) -> ClientBuilder {
            client.fleet(&self.fleet)
        }

        /// The reconciler and the watchdog, each led by one replica of the fleet at a time.
        fn lead_by_turns(
            self,
            client: Client,
            receiver: Receiver,
            checks: WatchdogBuilder,
            settings: &Settings,
        ) -> Result<(WatchdogBuilder, Reconciler), BoxError> {
            let fleet = self.fleet;
            tracing::info!(
                replica = fleet.replica(),
                lease = ?fleet.lease_ttl(),
                max_rate = settings.max_rate,
                "one fleet with every replica on this store: one rate budget, one replica at \
                 a time sweeping, one checking the subscriptions"
            );
            let reconciler = (self.reconciler)(client, receiver)
                .fleet(fleet.clone())
                .every(settings.reconcile_every)
                .on_report(|report| {
                    use monite_webhooks::reconcile::Report;
                    let leadership = matches!(
                        report,
                        Report::LeadershipGained { .. } | Report::LeadershipLost { .. }
                    );
                    log(report, leadership);
                })
                .build()?;
            let checks = checks.fleet(fleet).deep_sweep_with(reconciler.clone());
            Ok((checks, reconciler))
        }
    }

    #[cfg(not(any(feature = "postgres", feature = "redis")))]
    impl Shared {
        fn lease(self, _: Option<Duration>) -> Self {
            match self {}
        }
        fn budget(&self, _: ClientBuilder) -> ClientBuilder {
            match *self {}
        }
        fn lead_by_turns(
            self,
            _: Client,
            _: Receiver,
            _: WatchdogBuilder,
            _: &Settings,
        ) -> Result<(WatchdogBuilder, Reconciler), BoxError> {
            match self {}
        }
    }

    #[cfg(any(feature = "postgres", feature = "redis"))]
    fn namespace() -> String {
        std::env::var("MONITE_WEBHOOK_NAMESPACE")
            .map(|n| n.trim().to_owned())
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| super::super::EXAMPLE_NAMESPACE.to_owned())
    }

    #[cfg(feature = "postgres")]
    async fn postgres(url: &str) -> Result<Shared, BoxError> {
        use monite_webhooks::reconcile::PostgresCheckpoints;
        tracing::info!("reconciler checkpoints and fleet: PostgreSQL (DATABASE_URL)");
        let store = monite_webhooks::PostgresStore::connect(url, &namespace()).await?;
        let checkpoints = PostgresCheckpoints::new(&store);
        // The checkpoints' tables and the fleet's, under the advisory lock.
        checkpoints.ensure_schema().await?;
        let fleet = Fleet::postgres(&store);
        let reconciler = move |client, receiver| Reconciler::builder(client, receiver, checkpoints);
        Ok(Shared {
            reconciler: Box::new(reconciler),
            fleet,
        })
    }

    #[cfg(feature = "redis")]
    async fn redis(url: &str) -> Result<Shared, BoxError> {
        use monite_webhooks::reconcile::RedisCheckpoints;
        tracing::info!("reconciler checkpoints and fleet: Redis (REDIS_URL)");
        let connection = redis::aio::ConnectionManager::new(redis::Client::open(url)?).await?;
        let namespace = namespace();
        let checkpoints = RedisCheckpoints::new(connection, &namespace);
        let store = monite_webhooks::RedisStore::connect(url, &namespace).await?;
        let fleet = Fleet::redis(&store);
        let reconciler = move |client, receiver| Reconciler::builder(client, receiver, checkpoints);
        Ok(Shared {
            reconciler: Box::new(reconciler),
            fleet,
        })
    }

    #[cfg(not(feature = "redis"))]
    async fn redis(_: &str) -> Result<Shared, BoxError> {
        Err("REDIS_URL is set, but this build has no Redis: add `--features redis`".into())
    }

    #[cfg(not(feature = "postgres"))]
    async fn postgres(_: &str) -> Result<Shared, BoxError> {
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
