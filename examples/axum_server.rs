//! A Monite webhook receiver on axum, at `POST /webhooks/monite`.
//!
//! ```sh
//! MONITE_WEBHOOK_SECRET=whsec_... cargo run --example axum_server --features axum
//! cargo run --example axum_server --features axum -- --dev   # the development secret
//! ```
//!
//! With `--features metrics` too, `GET /metrics` serves the receiver's counters in the
//! Prometheus text format.
//!
//! Set `DATABASE_URL` (a `postgres://` URL, built with `--features axum,postgres`) or
//! `REDIS_URL` (`--features axum,redis`) to share idempotency between replicas, with
//! `MONITE_WEBHOOK_NAMESPACE` naming the service. With `DATABASE_URL` the handler is
//! transactional: it records each event in `handled_events`. `MONITE_WEBHOOK_INBOX=postgres`
//! acknowledges once a delivery is written and handles it with `MONITE_WEBHOOK_WORKERS`
//! workers (default 4; 0 accepts only); `--workers-only` runs the workers without HTTP. Prints one JSON line per handled event on
//! stdout; logs go to stderr. Stops gracefully
//! on Ctrl-C or SIGTERM, finishing the requests in flight.

#![allow(
    clippy::print_stdout,
    reason = "the example reports handled events on stdout"
)]

mod common;

use axum::Router;

#[tokio::main]
async fn main() -> Result<(), monite_webhooks::BoxError> {
    common::init_logging();
    let service = common::service_from_env().await?;
    if service.workers_only {
        tracing::info!("--workers-only: running the inbox workers, no HTTP");
        common::shutdown_signal().await;
        service.shutdown().await;
        tracing::info!("stopped");
        return Ok(());
    }
    let app = Router::new()
        .route(
            "/webhooks/monite",
            monite_webhooks::axum::route(service.receiver.clone()),
        )
        .route("/health", axum::routing::get(|| async { "ok" }));
    #[cfg(feature = "metrics")]
    let app = app.route("/metrics", prometheus()?);

    let listener = tokio::net::TcpListener::bind(common::listen_addr()?).await?;
    tracing::info!(
        "listening on http://{}/webhooks/monite",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(common::shutdown_signal())
        .await?;
    service.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Installs the Prometheus recorder and answers `GET /metrics` with what it recorded.
#[cfg(feature = "metrics")]
fn prometheus() -> Result<axum::routing::MethodRouter, Box<dyn std::error::Error + Send + Sync>> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    // Every series of the crate: the receiver's, and the inbox's with `postgres`.
    monite_webhooks::metrics::describe();
    Ok(axum::routing::get(move || {
        let handle = handle.clone();
        async move {
            handle.run_upkeep();
            handle.render()
        }
    }))
}
