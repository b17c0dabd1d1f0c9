//! A Monite webhook receiver on actix-web, at `POST /webhooks/monite`.
//!
//! ```sh
//! MONITE_WEBHOOK_SECRET=whsec_... cargo run --example actix_server --features actix-web
//! cargo run --example actix_server --features actix-web -- --dev   # the development secret
//! ```
//!
//! Set `DATABASE_URL` (a `postgres://` URL, built with `--features actix-web,postgres`) or
//! `REDIS_URL` (`--features actix-web,redis`) to share idempotency between replicas, with
//! `MONITE_WEBHOOK_NAMESPACE` naming the service. Prints one JSON line per handled event on
//! stdout; logs go to stderr. It stops gracefully on Ctrl-C or SIGTERM in every mode,
//! finishing the requests in flight and stopping the inbox workers.

#![allow(
    clippy::print_stdout,
    reason = "the example reports handled events on stdout"
)]

mod common;

use actix_web::{App, HttpServer, web};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_logging();
    let addr = common::listen_addr()?;
    actix_web::rt::System::new().block_on(async move {
        let service = common::service_from_env()
            .await
            .map_err(std::io::Error::other)?;
        if service.workers_only {
            tracing::info!("--workers-only: running the inbox workers, no HTTP");
            // SIGTERM too, not Ctrl-C alone: killed without `shutdown`, the claimed batch
            // stays `running` until its leases lapse, each lapse counted toward `dead`.
            common::shutdown_signal().await;
            service.shutdown().await;
            return Ok(());
        }
        let receiver = service.receiver.clone();
        let server = HttpServer::new(move || {
            App::new()
                .service(monite_webhooks::actix::resource(
                    "/webhooks/monite",
                    receiver.clone(),
                ))
                .route("/health", web::get().to(|| async { "ok" }))
        })
        .bind(addr)?
        .shutdown_timeout(30)
        .run();
        tracing::info!("listening on http://{addr}/webhooks/monite");
        server.await?;
        service.shutdown().await;
        Ok::<(), std::io::Error>(())
    })?;
    tracing::info!("stopped");
    Ok(())
}
