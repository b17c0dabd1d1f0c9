//! What both example servers share: configuration from the environment, and the handlers.

mod background;
mod config;
mod event_line;

pub(crate) use self::config::listen_addr;
use self::config::{DEVELOPMENT_SECRET, Secrets};
use self::event_line::print_handled;
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

/// The receiver, from the secrets in the environment, handling each event once through
/// PostgreSQL when `DATABASE_URL` is set (a `postgres://` URL), through Redis when
/// `REDIS_URL` is, in memory otherwise. With `MONITE_CLIENT_ID` and `MONITE_CLIENT_SECRET`
/// set (and `--features client`), the reconciler and the watchdog run in the background.
pub(crate) async fn receiver_from_env() -> Result<Receiver, BoxError> {
    let verifier = verifier_from_env()?;
    let url_from = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    // A shared store keeps each service's events apart by a namespace: name yours.
    let namespace = url_from("MONITE_WEBHOOK_NAMESPACE");
    let namespace = namespace.as_deref().map_or(EXAMPLE_NAMESPACE, str::trim);
    let idempotency = if let Some(url) = url_from("DATABASE_URL") {
        postgres(url.trim(), namespace).await?
    } else if let Some(url) = url_from("REDIS_URL") {
        redis(url.trim(), namespace).await?
    } else {
        tracing::info!(
            "idempotency: in memory (set DATABASE_URL or REDIS_URL to share it between replicas)"
        );
        Idempotency::new(MemoryStore::new())
    };
    let watchdog = background::watchdog()?;
    let mut builder = Receiver::builder(verifier, dispatcher()).idempotency(idempotency);
    #[allow(
        clippy::clone_on_copy,
        reason = "without `client` the watchdog is `Infallible`"
    )]
    let failures = watchdog.clone();
    if let Some(watchdog) = failures {
        // The receiver's own failures reach the watchdog, reported within a minute.
        builder = builder.on_failure(move |event, _| {
            if let Some(id) = event.webhook_subscription_id() {
                background::record_failure(&watchdog, id);
            }
        });
    }
    let receiver = builder.build();
    background::start(&receiver, watchdog).await?;
    Ok(receiver)
}

#[cfg(feature = "postgres")]
async fn postgres(url: &str, namespace: &str) -> Result<Idempotency, BoxError> {
    tracing::info!(namespace, "idempotency: PostgreSQL (DATABASE_URL)");
    let store = monite_webhooks::PostgresStore::connect(url, namespace).await?;
    store.ensure_schema().await?;
    Ok(Idempotency::new(store))
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
async fn postgres(_: &str, _: &str) -> Result<Idempotency, BoxError> {
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

/// Logs to stderr, at `info` unless `RUST_LOG` says otherwise.
pub(crate) fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}
