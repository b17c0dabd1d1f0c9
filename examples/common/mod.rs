//! What both example servers share: configuration from the environment, and the handlers.

mod event_line;

use std::net::SocketAddr;

use self::event_line::print_handled;
use monite_webhooks::{
    BoxError, Dispatcher, Event, EventType, Idempotency, Keyring, MemoryStore, ObjectType,
    PostgresStore, Receiver, RedisStore, Secret, Unhandled, Verifier,
};

/// The secret written here, for trying the server on your own machine: accepted only with
/// `--dev` (or `MONITE_WEBHOOK_DEV=1`) and no configured secret, never silently.
pub(crate) const DEVELOPMENT_SECRET: &str = "whsec_development_only_do_not_use_in_production";

/// Whether the development secret was asked for, with `--dev` or `MONITE_WEBHOOK_DEV=1`.
fn development_opt_in() -> bool {
    std::env::args().skip(1).any(|arg| arg == "--dev")
        || std::env::var("MONITE_WEBHOOK_DEV").is_ok_and(|v| v.trim() == "1")
}

/// The verifier, from the secrets the environment configures (`Keyring::from_env`:
/// `MONITE_WEBHOOK_SECRETS` pairs, a `MONITE_WEBHOOK_KEYRING` file, `MONITE_WEBHOOK_SECRET`);
/// the development secret only on explicit opt-in.
fn verifier_from_env() -> Result<Verifier, BoxError> {
    let keyring = Keyring::from_env()?;
    if !keyring.is_empty() {
        tracing::info!(
            subscriptions = keyring.len(),
            unkeyed = keyring.unkeyed().len(),
            "secrets from the environment"
        );
        return Ok(Verifier::from_keyring(keyring));
    }
    if development_opt_in() {
        tracing::warn!(
            "--dev: accepting deliveries signed with the development secret \
             {DEVELOPMENT_SECRET}; never expose this server"
        );
        return Ok(Verifier::new(
            Secret::new(DEVELOPMENT_SECRET)?.labeled("development"),
        ));
    }
    Err(
        "no secret configured: set MONITE_WEBHOOK_SECRETS=<subscription_id>=<secret>,... \
         (one pair per subscription), MONITE_WEBHOOK_KEYRING=<keyring file>, or \
         MONITE_WEBHOOK_SECRET=<secret>; or pass --dev to accept the development secret \
         written in examples/common/mod.rs"
            .into(),
    )
}

/// The receiver, from the secrets in the environment, handling each event once through
/// PostgreSQL when `DATABASE_URL` is set (a `postgres://` URL), through Redis when
/// `REDIS_URL` is, in memory otherwise.
pub(crate) async fn receiver_from_env() -> Result<Receiver, BoxError> {
    let verifier = verifier_from_env()?;
    let url_from = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let idempotency = if let Some(url) = url_from("DATABASE_URL") {
        tracing::info!("idempotency: PostgreSQL (DATABASE_URL)");
        let store = PostgresStore::connect(url.trim()).await?;
        store.ensure_schema().await?;
        Idempotency::new(store)
    } else if let Some(url) = url_from("REDIS_URL") {
        tracing::info!("idempotency: Redis (REDIS_URL)");
        Idempotency::new(RedisStore::connect(url.trim()).await?)
    } else {
        tracing::info!(
            "idempotency: in memory (set DATABASE_URL or REDIS_URL to share it between replicas)"
        );
        Idempotency::new(MemoryStore::new())
    };
    Ok(Receiver::builder(verifier, dispatcher())
        .idempotency(idempotency)
        .build())
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

/// `MONITE_WEBHOOK_ADDR`, or `127.0.0.1:3000`.
pub(crate) fn listen_addr() -> Result<SocketAddr, std::net::AddrParseError> {
    std::env::var("MONITE_WEBHOOK_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".to_owned())
        .parse()
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
