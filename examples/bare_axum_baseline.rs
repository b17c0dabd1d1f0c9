//! The baselines for `benches/http_load.sh`, with no code from this crate:
//!
//! - `/bare`: reads the body and answers 200. No verification, parsing or dispatch.
//! - `/hmac_floor`: also checks the signature the cheapest correct way: the `t` and `v1`
//!   of `Monite-Signature`, pre-keyed HMAC-SHA256 over `t.body`, a constant-time compare.
//!   No timestamp check, envelope parse, dispatch or idempotency. What any correct
//!   verifier must spend per request; `verify/hmac_sha256_limit` in HTTP.
//!
//! ```sh
//! BARE_ADDR=127.0.0.1:3902 MONITE_WEBHOOK_SECRET=whsec_... \
//!     cargo run --release --example bare_axum_baseline --features axum
//! ```

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("MONITE_WEBHOOK_SECRET").unwrap_or_default();
    let keyed = HmacSha256::new_from_slice(secret.as_bytes())?;
    let app = Router::new()
        .route(
            "/bare",
            post(|body: Bytes| async move {
                std::hint::black_box(body);
                StatusCode::OK
            }),
        )
        .route(
            "/hmac_floor",
            post(move |headers: HeaderMap, body: Bytes| {
                let keyed = keyed.clone();
                async move { hmac_floor(keyed, &headers, &body) }
            }),
        );
    let addr = std::env::var("BARE_ADDR").unwrap_or_else(|_| "127.0.0.1:3902".to_owned());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// 200 when the one `v1` in `t=<t>,v1=<hex>` is the HMAC of `t.body`, 401 otherwise.
fn hmac_floor(mut mac: HmacSha256, headers: &HeaderMap, body: &[u8]) -> StatusCode {
    let header = headers
        .get("monite-signature")
        .map_or(&b""[..], |value| value.as_bytes());
    let Some((t, v1)) = header
        .strip_prefix(b"t=")
        .and_then(|rest| rest.split_at_checked(rest.iter().position(|&b| b == b',')?))
    else {
        return StatusCode::BAD_REQUEST;
    };
    let Some(tag) = v1.strip_prefix(b",v1=").and_then(decode_hex) else {
        return StatusCode::BAD_REQUEST;
    };
    mac.update(t);
    mac.update(b".");
    mac.update(body);
    match mac.verify_slice(&tag) {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::UNAUTHORIZED,
    }
}

fn decode_hex(hex: &[u8]) -> Option<[u8; 32]> {
    let mut out = [0; 32];
    if hex.len() != 64 {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}
