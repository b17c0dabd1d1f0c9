//! What both example servers share: configuration from the environment, and the handlers.

mod background;
mod config;
mod event_line;
mod signal;

pub(crate) use self::config::listen_addr;
use self::config::{DEVELOPMENT_SECRET, Secrets};
use self::event_line::print_handled;
pub(crate) use self::signal::shutdown_signal;
use monite_webhooks::{
    BoxError, Dispatcher, Event, EventType, Idempotency, MemoryStore, ObjectType, Receiver,
    Unhandled, Verifier,
};

/// The verifier, from the secrets the environment configures; the development secret only
/// on explicit opt-in. Logs which it is.
fn verifier_from_env() -> Result<Verifier, BoxError> {
    let secrets = Secrets::from_env(true)?;
    match &secrets {
        Secrets::Configured(keyring) => tracing::info!(
            subscriptions = keyring.len(),
            unkeyed = keyring.unkeyed().len(),
            "secrets from the environment"
        ),
        Secrets::Development => tracing::warn!(
            "--dev: accepting deliveries signed with the development secret \
             {DEVELOPMENT_SECRET}; never expose this server"
        ),
    }
    secrets.verifier()
}

/// The namespace of the example's keys in a shared store, unless `MONITE_WEBHOOK_NAMESPACE`
/// names another: a service of yours names itself.
const EXAMPLE_NAMESPACE: &str = "monite-webhooks-example";

/// What a server runs: the receiver, and with `MONITE_WEBHOOK_INBOX=postgres` the inbox
/// workers (`MONITE_WEBHOOK_WORKERS`, default 4; 0 accepts only).
pub(crate) struct Service {
    pub(crate) receiver: Receiver,
    /// `--workers-only`: run the workers, serve no HTTP.
    pub(crate) workers_only: bool,
    #[cfg(feature = "postgres")]
    workers: Option<monite_webhooks::inbox::WorkersHandle>,
    /// The reconciler and the watchdog, when the environment asks for them.
    background: background::Background,
}

impl Service {
    /// Stops the workers, letting running handlers finish, and the reconciler and the
    /// watchdog, letting the entity being swept and the check in progress finish.
    pub(crate) async fn shutdown(self) {
        let background = self.background.shutdown();
        #[cfg(feature = "postgres")]
        let workers = async {
            if let Some(workers) = self.workers {
                workers.shutdown().await;
            }
        };
        #[cfg(not(feature = "postgres"))]
        let workers = async {};
        tokio::join!(background, workers);
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The service, from the secrets in the environment, handling each event once through
/// PostgreSQL when `DATABASE_URL` is set (a `postgres://` URL; its handler is then
/// transactional, recording each event in `handled_events`), through Redis when
/// `REDIS_URL` is, in memory otherwise.
pub(crate) async fn service_from_env() -> Result<Service, BoxError> {
    let workers_only = std::env::args().skip(1).any(|arg| arg == "--workers-only");
    let inbox = var("MONITE_WEBHOOK_INBOX");
    // A shared store keeps each service's events apart by a namespace: name yours.
    let namespace = var("MONITE_WEBHOOK_NAMESPACE");
    let namespace = namespace.as_deref().unwrap_or(EXAMPLE_NAMESPACE);
    match (inbox.as_deref(), var("DATABASE_URL")) {
        (None, _) if workers_only => {
            Err("--workers-only needs MONITE_WEBHOOK_INBOX=postgres".into())
        }
        (None, _) => {
            let (receiver, background) = receiver_from_env(namespace).await?;
            Ok(Service {
                receiver,
                workers_only,
                #[cfg(feature = "postgres")]
                workers: None,
                background,
            })
        }
        (Some("postgres"), Some(url)) => inbox_service(&url, namespace, workers_only).await,
        (Some("postgres"), None) => Err("MONITE_WEBHOOK_INBOX=postgres needs DATABASE_URL".into()),
        (Some(other), _) => {
            Err(format!("MONITE_WEBHOOK_INBOX={other:?}: the only inbox is `postgres`").into())
        }
    }
}

#[cfg(feature = "postgres")]
async fn inbox_service(
    url: &str,
    namespace: &str,
    workers_only: bool,
) -> Result<Service, BoxError> {
    use monite_webhooks::inbox::{PostgresInbox, Workers};
    let count: usize = match var("MONITE_WEBHOOK_WORKERS") {
        Some(n) => n
            .parse()
            .map_err(|e| format!("MONITE_WEBHOOK_WORKERS={n:?}: {e}"))?,
        None => monite_webhooks::inbox::DEFAULT_CONCURRENCY,
    };
    let connected = postgres_store(url, namespace).await?;
    // The workers' own pool, sized by the guide's rule (a connection per handler, plus the
    // listener's and headroom for heartbeats); the receiver accepts on the inbox's own
    // pool, so slow handlers never make a delivery wait for a connection.
    let size = u32::try_from(count)
        .unwrap_or(u32::MAX)
        .saturating_add(monite_webhooks::inbox::WORKER_POOL_HEADROOM);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(std::time::Duration::from_secs(2))
        .connect_lazy_with((*connected.pool().connect_options()).clone());
    connected.pool().close().await;
    let store = monite_webhooks::PostgresStore::new(pool, namespace)?;
    let inbox = PostgresInbox::new(&store);
    inbox.ensure_schema().await?;
    tracing::info!(
        namespace,
        workers = count,
        workers_only,
        "inbox: PostgreSQL (DATABASE_URL)"
    );
    let workers = if count > 0 {
        let workers = Workers::builder(inbox.clone(), transactional_dispatcher(&store))
            .concurrency(count)
            .start()?;
        Some(workers)
    } else {
        None
    };
    let builder = Receiver::inbox_builder(verifier_from_env()?, inbox);
    // Swept events are accepted into the inbox like deliveries, deduplicated there; a
    // delivery the inbox could not write (503) reaches the watchdog through `on_failure`,
    // and a handler's failure in the workers does not (they retry it themselves).
    let (receiver, background) = background::build_receiver(builder, !workers_only).await?;
    Ok(Service {
        receiver,
        workers_only,
        workers,
        background,
    })
}

#[cfg(not(feature = "postgres"))]
async fn inbox_service(_: &str, _: &str, _: bool) -> Result<Service, BoxError> {
    Err("MONITE_WEBHOOK_INBOX=postgres, but this build has no PostgreSQL: add `--features postgres`".into())
}

/// The receiver, handling each event once through PostgreSQL when `DATABASE_URL` is set,
/// through Redis when `REDIS_URL` is, in memory otherwise. With `MONITE_CLIENT_ID` and
/// `MONITE_CLIENT_SECRET` set (and `--features client`), the reconciler and the watchdog
/// run in the background.
async fn receiver_from_env(
    namespace: &str,
) -> Result<(Receiver, background::Background), BoxError> {
    let verifier = verifier_from_env()?;
    let (idempotency, dispatcher) = if let Some(url) = var("DATABASE_URL") {
        postgres(&url, namespace).await?
    } else if let Some(url) = var("REDIS_URL") {
        (redis(&url, namespace).await?, dispatcher())
    } else {
        tracing::info!(
            "idempotency: in memory (set DATABASE_URL or REDIS_URL to share it between replicas \
             and run the reconciler)"
        );
        (Idempotency::new(MemoryStore::new()), dispatcher())
    };
    let builder = Receiver::builder(verifier, dispatcher).idempotency(idempotency);
    background::build_receiver(builder, true).await
}

/// With PostgreSQL, the handler is transactional.
#[cfg(feature = "postgres")]
async fn postgres(url: &str, namespace: &str) -> Result<(Idempotency, Dispatcher), BoxError> {
    tracing::info!(namespace, "idempotency: PostgreSQL (DATABASE_URL)");
    let store = postgres_store(url, namespace).await?;
    let dispatcher = transactional_dispatcher(&store);
    Ok((Idempotency::new(store), dispatcher))
}

/// The store, its tables, and the example's own `handled_events` (no unique constraint:
/// a double effect would show as two rows).
#[cfg(feature = "postgres")]
async fn postgres_store(
    url: &str,
    namespace: &str,
) -> Result<monite_webhooks::PostgresStore, BoxError> {
    let store = monite_webhooks::PostgresStore::connect(url, namespace).await?;
    store.ensure_schema().await?;
    // Under the lock the crate's own tables are made under: replicas started together
    // would otherwise race on `IF NOT EXISTS`, and all but one fail.
    store
        .ensure_own_schema(
            "CREATE TABLE IF NOT EXISTS handled_events (event_id text NOT NULL, object_type text, \
             event text, handled_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    Ok(store)
}

/// Every event recorded in `handled_events` in a transaction with its done mark; the JSON
/// line printed once that committed.
#[cfg(feature = "postgres")]
fn transactional_dispatcher(store: &monite_webhooks::PostgresStore) -> Dispatcher {
    use monite_webhooks::Handler as _;
    let record = std::sync::Arc::new(store.transactional(|event: Event, tx| {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO handled_events (event_id, object_type, event) VALUES ($1, $2, $3)",
            )
            .bind(event.id())
            .bind(event.object_type().as_str())
            .bind(event.event_type().as_str())
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }));
    Dispatcher::builder()
        .fallback(move |event: Event, _: Unhandled| {
            let record = std::sync::Arc::clone(&record);
            async move {
                record.call(event.clone()).await?;
                print_handled(&event);
                Ok::<(), BoxError>(())
            }
        })
        .build()
}

#[cfg(feature = "redis")]
async fn redis(url: &str, namespace: &str) -> Result<Idempotency, BoxError> {
    tracing::info!(namespace, "idempotency: Redis (REDIS_URL)");
    let store = monite_webhooks::RedisStore::connect(url, namespace).await?;
    Ok(Idempotency::new(store))
}

// A URL set for a store this build lacks is refused: falling back to memory would quietly
// run events twice across replicas.
#[cfg(not(feature = "postgres"))]
async fn postgres(_: &str, _: &str) -> Result<(Idempotency, Dispatcher), BoxError> {
    Err(
        "DATABASE_URL is set, but this build has no PostgreSQL store: add `--features postgres`"
            .into(),
    )
}

#[cfg(not(feature = "redis"))]
async fn redis(_: &str, _: &str) -> Result<Idempotency, BoxError> {
    Err("REDIS_URL is set, but this build has no Redis store: add `--features redis`".into())
}

/// One handler for a documented event, to show routing, and a fallback for every other.
fn dispatcher() -> Dispatcher {
    Dispatcher::builder()
        .on(
            ObjectType::Entity,
            EventType::OnboardingRequirementsUpdated,
            |event: Event| async move {
                print_handled(&event);
            },
        )
        .fallback(|event: Event, _: Unhandled| async move { print_handled(&event) })
        .build()
}

/// Logs to stderr, at `info` unless `RUST_LOG` says otherwise: one JSON object per line
/// with `RUST_LOG_FORMAT=json`, otherwise text, coloured only when stderr is a terminal (a
/// file or a log collector gets no escape codes).
pub(crate) fn init_logging() {
    use std::io::IsTerminal as _;

    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        );
    match std::env::var("RUST_LOG_FORMAT").as_deref() {
        Ok("json") => logs.json().init(),
        Ok("text") | Err(_) => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        Ok(other) => {
            logs.with_ansi(std::io::stderr().is_terminal()).init();
            tracing::warn!("RUST_LOG_FORMAT={other:?} is neither `json` nor `text`: logging text");
        }
    }
}
