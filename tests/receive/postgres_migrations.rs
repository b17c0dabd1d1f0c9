//! The PostgreSQL tables' numbered migrations against a real PostgreSQL: a fresh database
//! gets every migration once, recorded; a database an older version made with
//! `CREATE … IF NOT EXISTS` is upgraded with its rows kept; a replica of the older
//! version keeps working through the old name; replicas starting at once migrate once.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::StatusCode;
use monite_webhooks::idempotency::{Claim, ClaimToken};
use monite_webhooks::inbox::PostgresInbox;
use monite_webhooks::reconcile::{CheckpointStore, PostgresCheckpoints};
use monite_webhooks::{Dispatcher, Event, IdempotencyStore, ObjectType, PostgresStore, Receiver};
use sqlx::{Connection as _, PgPool};
use support::fixture::{self, deliver};
use support::pg::PgServer;

/// What a version before numbered migrations created, copied from it: the store's two
/// tables, the inbox's tables as they first were (no `retry_unhandled`, no autovacuum
/// settings), and the checkpoints' one table for every prefix.
const OLD_SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS monite_webhook_claims (
    key text PRIMARY KEY,
    token text,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS monite_webhook_claims_expires_at ON monite_webhook_claims (expires_at);
CREATE TABLE IF NOT EXISTS monite_webhook_inbox (
    key text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS monite_webhook_inbox_expires_at ON monite_webhook_inbox (expires_at);
CREATE TABLE IF NOT EXISTS monite_webhook_inbox_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedup_key text NOT NULL UNIQUE,
    namespace text NOT NULL,
    event_id text,
    subscription_id text,
    entity_id text,
    object_type text NOT NULL,
    event text NOT NULL,
    body bytea NOT NULL,
    headers jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    state text NOT NULL DEFAULT 'pending',
    priority smallint NOT NULL DEFAULT 0,
    attempt integer NOT NULL DEFAULT 0,
    attempt_base integer NOT NULL DEFAULT 0,
    lapses integer NOT NULL DEFAULT 0,
    run_at timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz,
    locked_by text,
    last_error text,
    done_at timestamptz
);
CREATE INDEX IF NOT EXISTS monite_webhook_inbox_events_ready ON monite_webhook_inbox_events (namespace, priority DESC, run_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS monite_webhook_inbox_events_leased ON monite_webhook_inbox_events (namespace, locked_until) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS monite_webhook_inbox_events_dead ON monite_webhook_inbox_events (namespace) WHERE state = 'dead';
CREATE INDEX IF NOT EXISTS monite_webhook_inbox_events_entity ON monite_webhook_inbox_events (namespace, entity_id, id) WHERE state IN ('pending', 'running');
CREATE TABLE IF NOT EXISTS monite_webhook_inbox_attempts (
    event_row bigint NOT NULL REFERENCES monite_webhook_inbox_events (id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    worker text,
    outcome text NOT NULL,
    error text,
    duration_ms bigint,
    finished_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS monite_webhook_inbox_attempts_event_row ON monite_webhook_inbox_attempts (event_row);
CREATE TABLE IF NOT EXISTS monite_webhook_inbox_events_paused (namespace text PRIMARY KEY);
CREATE TABLE IF NOT EXISTS monite_webhooks_checkpoints (
    namespace text NOT NULL,
    entity_id text NOT NULL,
    checkpoint_us bigint NOT NULL,
    PRIMARY KEY (namespace, entity_id)
)";

/// The older version's transactional handler's first statement, on the old table name.
const OLD_HANDLED_CLAIM: &str = "INSERT INTO monite_webhook_inbox AS i (key, expires_at) \
     VALUES ($1, now() + $2 * interval '1 millisecond') \
     ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at \
     WHERE i.expires_at <= now() \
     RETURNING 1";

/// Every migration there is, as `<prefix>_migrations` records them.
const ALL_MIGRATIONS: [(&str, i32, &str); 10] = [
    ("checkpoints", 1, "checkpoints"),
    ("checkpoints", 2, "copy_shared_table"),
    ("fleet", 1, "budget"),
    ("fleet", 2, "leases"),
    ("fleet", 3, "tallies"),
    ("idempotency", 1, "claims"),
    ("idempotency", 2, "handled"),
    ("inbox", 1, "events"),
    ("inbox", 2, "retry_unhandled"),
    ("inbox", 3, "autovacuum"),
];

async fn ensure_all(store: &PostgresStore) {
    store.ensure_schema().await.unwrap();
    PostgresInbox::new(store).ensure_schema().await.unwrap();
    PostgresCheckpoints::new(store)
        .ensure_schema()
        .await
        .unwrap();
}

async fn recorded(pool: &PgPool, table: &str) -> Vec<(String, i32, String)> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT component, version, name FROM {table} ORDER BY component, version"
    )))
    .fetch_all(pool)
    .await
    .unwrap()
}

fn expected() -> Vec<(String, i32, String)> {
    ALL_MIGRATIONS
        .iter()
        .map(|(c, v, n)| ((*c).to_owned(), *v, (*n).to_owned()))
        .collect()
}

async fn relkind(pool: &PgPool, name: &str) -> Option<String> {
    sqlx::query_scalar("SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)")
        .bind(name)
        .fetch_optional(pool)
        .await
        .unwrap()
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap()
}

fn body(id: &str) -> String {
    format!(
        r#"{{"id":"{id}","object_type":"payable","action":"payable.created","object":{{"id":"p"}},"webhook_subscription_id":"sub-1"}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_database_records_every_migration_once() {
    let server = PgServer::start();
    let store = PostgresStore::connect(&server.url(), "test").await.unwrap();
    let pool = store.pool().clone();
    ensure_all(&store).await;
    assert_eq!(
        recorded(&pool, "monite_webhook_migrations").await,
        expected()
    );
    let applied = "SELECT count(*) FROM monite_webhook_migrations WHERE applied_at <= now()";
    assert_eq!(count(&pool, applied).await, 10);
    let first: Vec<String> = sqlx::query_scalar(
        "SELECT applied_at::text FROM monite_webhook_migrations ORDER BY component, version",
    )
    .fetch_all(&pool)
    .await
    .unwrap();

    // Again, from every component: nothing runs, nothing is recorded twice.
    ensure_all(&store).await;
    let again: Vec<String> = sqlx::query_scalar(
        "SELECT applied_at::text FROM monite_webhook_migrations ORDER BY component, version",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(first, again, "a migration ran twice");

    for (name, kind) in [
        ("monite_webhook_claims", "r"),
        ("monite_webhook_handled", "r"),
        ("monite_webhook_inbox", "v"),
        ("monite_webhook_inbox_events", "r"),
        ("monite_webhook_inbox_attempts", "r"),
        ("monite_webhook_inbox_events_paused", "r"),
        ("monite_webhook_checkpoints", "r"),
        ("monite_webhook_fleet_leases", "r"),
        ("monite_webhook_fleet_tallies", "r"),
    ] {
        assert_eq!(relkind(&pool, name).await.as_deref(), Some(kind), "{name}");
    }
    assert_eq!(relkind(&pool, "monite_webhooks_checkpoints").await, None);

    // Every component honours the prefix, a schema's too, with a record of its own.
    sqlx::query("CREATE SCHEMA billing")
        .execute(&pool)
        .await
        .unwrap();
    let billing = store.clone().with_table_prefix("billing.monite").unwrap();
    ensure_all(&billing).await;
    assert_eq!(
        recorded(&pool, "billing.monite_migrations").await,
        expected()
    );
    for name in ["claims", "handled", "inbox_events", "checkpoints"] {
        let table = format!("billing.monite_{name}");
        assert_eq!(
            relkind(&pool, &table).await.as_deref(),
            Some("r"),
            "{table}"
        );
    }
    let checkpoints = PostgresCheckpoints::new(&billing);
    let at: monite_webhooks::jiff::Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
    checkpoints.save("entity", at).await.unwrap();
    assert_eq!(
        count(&pool, "SELECT count(*) FROM billing.monite_checkpoints").await,
        1
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM monite_webhook_checkpoints").await,
        0
    );

    // The SQL for an owner's own migrations runs on a fresh database, and again.
    let mine = store.clone().with_table_prefix("mine").unwrap();
    let schema = [
        mine.schema_sql().to_owned(),
        PostgresInbox::new(&mine).schema_sql().to_owned(),
        PostgresCheckpoints::new(&mine).schema_sql().to_owned(),
    ]
    .concat();
    for _ in 0..2 {
        sqlx::raw_sql(sqlx::AssertSqlSafe(schema.clone()))
            .execute(&pool)
            .await
            .unwrap();
    }
    assert_eq!(relkind(&pool, "mine_handled").await.as_deref(), Some("r"));
    assert_eq!(relkind(&pool, "mine_inbox").await.as_deref(), Some("v"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_schema_is_upgraded_with_its_rows_kept() {
    let server = PgServer::start();
    let pool = PgPool::connect(&server.url()).await.unwrap();
    sqlx::raw_sql(OLD_SCHEMA).execute(&pool).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO monite_webhook_claims VALUES \
           ('test:evt:done', NULL, now() + interval '1 day'), \
           ('test:evt:held', 'a-token', now() + interval '1 day'); \
         INSERT INTO monite_webhook_inbox VALUES ('test:evt:committed', now() + interval '1 day'); \
         INSERT INTO monite_webhook_inbox_events (dedup_key, namespace, event_id, object_type, \
           event, body, headers) \
         VALUES ('test:evt:waiting', 'test', 'waiting', 'payable', 'payable.created', \
           '\\x7b7d', '{}'); \
         INSERT INTO monite_webhook_inbox_events_paused VALUES ('test'); \
         INSERT INTO monite_webhooks_checkpoints VALUES \
           ('test', 'entity-1', 1764547200000000), ('other', 'entity-2', 1764547200000001)",
    )
    .execute(&pool)
    .await
    .unwrap();

    let store = PostgresStore::new(pool.clone(), "test").unwrap();
    ensure_all(&store).await;
    assert_eq!(
        recorded(&pool, "monite_webhook_migrations").await,
        expected()
    );

    // The claims: a done event is still done, a held one still held.
    let token = ClaimToken::new();
    let lease = Duration::from_secs(60);
    assert_eq!(
        store.claim("evt:done", &token, lease).await.unwrap(),
        Claim::Done
    );
    assert_eq!(
        store.claim("evt:held", &token, lease).await.unwrap(),
        Claim::InFlight
    );

    // The handled row moved with its table: the event's handler does not run again.
    assert_eq!(
        relkind(&pool, "monite_webhook_handled").await.as_deref(),
        Some("r")
    );
    assert_eq!(
        relkind(&pool, "monite_webhook_inbox").await.as_deref(),
        Some("v")
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM monite_webhook_handled").await,
        1
    );
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let handler = store.transactional(move |_: Event, _| {
        counted.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    });
    let receiver = Receiver::builder(
        monite_webhooks::Verifier::new(fixture::secret(fixture::CURRENT)),
        Dispatcher::builder()
            .on_object(ObjectType::Payable, handler)
            .build(),
    )
    .without_idempotency()
    .build();
    assert_eq!(deliver(&receiver, &body("committed")).await, StatusCode::OK);
    assert_eq!(runs.load(Ordering::SeqCst), 0, "a handled event ran again");
    assert_eq!(deliver(&receiver, &body("new")).await, StatusCode::OK);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM monite_webhook_handled").await,
        2
    );

    // The inbox: its event and pause kept, the column and the settings added.
    let waiting: (String, bool) = sqlx::query_as(
        "SELECT state, retry_unhandled FROM monite_webhook_inbox_events \
         WHERE dedup_key = 'test:evt:waiting'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(waiting, ("pending".to_owned(), false));
    let options: Vec<String> = sqlx::query_scalar(
        "SELECT unnest(reloptions) FROM pg_class \
         WHERE oid = 'monite_webhook_inbox_events'::regclass ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        options,
        [
            "autovacuum_vacuum_scale_factor=0",
            "autovacuum_vacuum_threshold=1000"
        ]
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM monite_webhook_inbox_events_paused"
        )
        .await,
        1
    );

    // The checkpoints: copied, every namespace's, and the shared table left as it was.
    let checkpoints = PostgresCheckpoints::new(&store);
    let kept = checkpoints.load("entity-1").await.unwrap().unwrap();
    assert_eq!(kept.as_microsecond(), 1_764_547_200_000_000);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM monite_webhook_checkpoints").await,
        2
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM monite_webhooks_checkpoints").await,
        2,
        "the shared table lost rows"
    );
}

// A replica of the older version, still running while a new one migrates, keeps writing
// the old name: its rows land in the renamed table, and a duplicate still waits on its
// uncommitted row, whichever version delivers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_replica_keeps_writing_through_the_old_name() {
    let server = PgServer::start();
    let pool = PgPool::connect(&server.url()).await.unwrap();
    sqlx::raw_sql(OLD_SCHEMA).execute(&pool).await.unwrap();
    // The old replica's connection, its statement prepared before the upgrade.
    let mut old = sqlx::PgConnection::connect(&server.url()).await.unwrap();
    let claimed = |key: &'static str| sqlx::query(OLD_HANDLED_CLAIM).bind(key).bind(60_000_i64);
    assert!(
        claimed("test:evt:before")
            .fetch_optional(&mut old)
            .await
            .unwrap()
            .is_some()
    );

    let store = PostgresStore::new(pool.clone(), "test").unwrap();
    store.ensure_schema().await.unwrap();

    // The same prepared statement after the rename: it reaches the new table.
    assert!(
        claimed("test:evt:after")
            .fetch_optional(&mut old)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        claimed("test:evt:before")
            .fetch_optional(&mut old)
            .await
            .unwrap()
            .is_none(),
        "the old replica took a handled event for new"
    );
    let handled: Vec<String> =
        sqlx::query_scalar("SELECT key FROM monite_webhook_handled ORDER BY key")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(handled, ["test:evt:after", "test:evt:before"]);

    // The old replica holds an event's row, uncommitted; a new replica's transactional
    // handler for the same event waits for it, then finds the event handled.
    let mut old_tx = old.begin().await.unwrap();
    assert!(
        sqlx::query(OLD_HANDLED_CLAIM)
            .bind("test:evt:racing")
            .bind(60_000_i64)
            .fetch_optional(&mut *old_tx)
            .await
            .unwrap()
            .is_some()
    );
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let handler = store.transactional(move |_: Event, _| {
        counted.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    });
    let receiver = Receiver::builder(
        monite_webhooks::Verifier::new(fixture::secret(fixture::CURRENT)),
        Dispatcher::builder()
            .on_object(ObjectType::Payable, handler)
            .build(),
    )
    .without_idempotency()
    .build();
    let new = tokio::spawn(async move { deliver(&receiver, &body("racing")).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!new.is_finished(), "the new replica did not wait");
    old_tx.commit().await.unwrap();
    assert_eq!(new.await.unwrap(), StatusCode::OK);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "the event ran on both replicas"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_at_once_migrate_once() {
    for old in [false, true] {
        let server = PgServer::start();
        let pool = PgPool::connect(&server.url()).await.unwrap();
        if old {
            sqlx::raw_sql(OLD_SCHEMA).execute(&pool).await.unwrap();
        }
        let starts: Vec<_> = (0..8)
            .map(|_| {
                let url = server.url();
                tokio::spawn(async move {
                    let store = PostgresStore::connect(&url, "test").await.unwrap();
                    ensure_all(&store).await;
                })
            })
            .collect();
        for start in starts {
            start.await.unwrap();
        }
        assert_eq!(
            recorded(&pool, "monite_webhook_migrations").await,
            expected(),
            "old schema: {old}"
        );
        assert_eq!(
            relkind(&pool, "monite_webhook_handled").await.as_deref(),
            Some("r")
        );
    }
}

/// The owner's own tables, made by replicas starting at the same instant: under the
/// advisory lock, every replica comes up (`IF NOT EXISTS` alone, run by two at once, fails
/// one of them on `pg_type_typname_nsp_index`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn own_schemas_made_by_replicas_at_once_all_succeed() {
    let server = PgServer::start();
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let url = server.url();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let store = PostgresStore::connect(&url, "test").await.unwrap();
                barrier.wait().await;
                store
                    .ensure_own_schema(
                        "CREATE TABLE IF NOT EXISTS handled_events (event_id text NOT NULL); \
                         CREATE INDEX IF NOT EXISTS handled_events_id ON handled_events (event_id)",
                    )
                    .await
            })
        })
        .collect();
    for start in starts {
        start.await.unwrap().unwrap();
    }
    let pool = PgPool::connect(&server.url()).await.unwrap();
    assert_eq!(relkind(&pool, "handled_events").await.as_deref(), Some("r"));
    // A statement PostgreSQL refuses is an error, not a panic, and says why.
    let store = PostgresStore::connect(&server.url(), "test").await.unwrap();
    let refused = store.ensure_own_schema("CREATE TABLE (").await.unwrap_err();
    assert_eq!(refused.kind(), monite_webhooks::ErrorKind::StoreUnavailable);
}
