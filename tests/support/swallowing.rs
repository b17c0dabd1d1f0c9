//! A transactional handler with the habit from autocommit code: on an event's first
//! attempt it runs one statement that fails or ends the transaction, and ignores the
//! result. Its writes (`effects`, one row per attempt) must then never commit with a
//! done mark.

#![allow(dead_code, reason = "each test uses what it needs")]
#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use monite_webhooks::idempotency::{Transactional, TxFuture};
use monite_webhooks::{Event, PostgresStore};
use sqlx::PgConnection;

/// `effects` (what each attempt wrote) and `ledger`, holding the row `'p'` that a second
/// insert of violates.
pub(crate) async fn create_tables(store: &PostgresStore) {
    for sql in [
        "CREATE TABLE effects (event_id text NOT NULL, attempt int NOT NULL)",
        "CREATE TABLE ledger (payable_id text PRIMARY KEY)",
        "INSERT INTO ledger VALUES ('p')",
    ] {
        sqlx::query(sql).execute(store.pool()).await.unwrap();
    }
}

/// The handler: each attempt writes its `effects` row; the first attempt of an event then
/// runs `swallowed(&event)` under a 100 ms lock timeout and goes on whatever it did.
pub(crate) fn handler(
    store: &PostgresStore,
    swallowed: fn(&Event) -> &'static str,
) -> Transactional<
    impl for<'a> Fn(Event, &'a mut PgConnection) -> TxFuture<'a> + Send + Sync + 'static,
> {
    let attempts: Arc<Mutex<HashMap<String, i32>>> = Arc::default();
    store.transactional(move |event: Event, tx| {
        let attempts = Arc::clone(&attempts);
        Box::pin(async move {
            let id = event.id().unwrap_or_default().to_owned();
            let attempt = {
                let mut attempts = attempts.lock().unwrap();
                let attempt = attempts.entry(id.clone()).or_default();
                *attempt += 1;
                *attempt
            };
            sqlx::query("INSERT INTO effects VALUES ($1, $2)")
                .bind(&id)
                .bind(attempt)
                .execute(&mut *tx)
                .await?;
            if attempt == 1 {
                sqlx::query("SET LOCAL lock_timeout = '100ms'")
                    .execute(&mut *tx)
                    .await?;
                let _ = sqlx::query(swallowed(&event)).execute(&mut *tx).await;
            }
            Ok(())
        })
    })
}
