//! The baseline for `benches/http_load.sh`: a bare axum handler that reads the body and
//! answers 200, with no verification, parsing or dispatch. What the receiver is compared to.
//!
//! ```sh
//! BARE_ADDR=127.0.0.1:3902 cargo run --release --example bare_axum_baseline --features axum
//! ```

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = Router::new().route(
        "/webhooks/monite",
        post(|body: Bytes| async move {
            std::hint::black_box(body);
            StatusCode::OK
        }),
    );
    let addr = std::env::var("BARE_ADDR").unwrap_or_else(|_| "127.0.0.1:3902".to_owned());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
