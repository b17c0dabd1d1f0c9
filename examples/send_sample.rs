//! Sends one signed sample event to a running receiver, as Monite would.
//!
//! ```sh
//! cargo run --example send_sample                       # to http://127.0.0.1:3000/webhooks/monite
//! cargo run --example send_sample -- 127.0.0.1:3000 counterpart.created
//! ```
//!
//! Signs with `MONITE_WEBHOOK_SECRET` (the first one, if several) or the servers'
//! development secret, over plain HTTP/1.1 on a `TcpStream`: no HTTP client needed.

#![allow(clippy::print_stdout, reason = "the example shows the server's answer")]

use std::io::{Read, Write};
use std::net::TcpStream;

use monite_webhooks::Secret;
use monite_webhooks::testing::sign;

const DEVELOPMENT_SECRET: &str = "whsec_development_only_do_not_use_in_production";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let action = args
        .next()
        .unwrap_or_else(|| "entity.onboarding_requirements.updated".to_owned());
    let object_type = action.split('.').next().unwrap_or_default().to_owned();

    let configured = std::env::var("MONITE_WEBHOOK_SECRET").unwrap_or_default();
    let secret_text = configured
        .split(',')
        .next()
        .map(str::trim)
        .unwrap_or_default();
    let secret = Secret::new(if secret_text.is_empty() {
        DEVELOPMENT_SECRET
    } else {
        secret_text
    })?;

    let id = format!(
        "{:032x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    );
    let body = serde_json::json!({
        "id": format!("{}-{}-{}-{}-{}", &id[0..8], &id[8..12], &id[12..16], &id[16..20], &id[20..32]),
        "created_at": "2024-03-04T20:06:48.593225+00:00",
        "action": action,
        "api_version": "2024-01-31",
        "entity_id": "c381e88f-7019-4f06-9fbb-3bab8d88348a",
        "description": "sample event sent by examples/send_sample.rs",
        "object": {"id": "587fd280-3b1a-4ad4-8e00-75a8c2cd789a"},
        "object_type": object_type,
        "webhook_subscription_id": "f3c64af7-4a2f-4ed2-8160-d66b6a8ac4ba",
    })
    .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let signature = sign(&secret, now, body.as_bytes());

    let mut stream = TcpStream::connect(&addr)?;
    write!(
        stream,
        "POST /webhooks/monite HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Monite-Signature: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status_line = response.lines().next().unwrap_or_default();
    let answer = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    println!("sent {action} to {addr}: {status_line} ({answer})");
    Ok(())
}
