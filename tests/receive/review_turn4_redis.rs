//! Review turn 4, R8b: `redact_url` keeps a Redis unix-socket URL's `?pass=` (redis-rs reads
//! the password from `pass`, not `password`), so the connect error prints the password.
//!
//! cargo test --features redis --test receive receive::review_turn4_redis:: -- --nocapture

#[tokio::test]
async fn r8b_a_unix_socket_redis_url_is_printed_with_its_password() {
    let error = monite_webhooks::RedisStore::connect(
        "redis+unix:///nonexistent/redis.sock?db=0&pass=hunter2-secret",
        "billing",
    )
    .await
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    eprintln!("R8b error: {error}");
    assert!(
        !error.contains("hunter2-secret"),
        "the password is printed: {error}"
    );
}
