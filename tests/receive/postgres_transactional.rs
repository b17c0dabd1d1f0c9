//! Transactional handlers against a real PostgreSQL: the handler's row and the event's done
//! mark commit together, whatever the front store does and however deliveries interleave.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::fixture::{self, deliver, deliver_until_not_in_flight, fresh_id};

use http::StatusCode;
use monite_webhooks::idempotency::{Claim, ClaimToken};
use monite_webhooks::{
    BoxError, Dispatcher, Event, Idempotency, IdempotencyStore, MemoryStore, ObjectType,
    PostgresStore, Receiver, Verifier,
};
use sqlx::PgPool;
use support::pg::PgServer;
use support::swallowing;
use tokio::sync::Semaphore;

/// The service: a `payments` table of its own, written by a transactional handler.
#[derive(Clone)]
struct Service {
    store: PostgresStore,
    // How often the handler's body started, per event id: rolled-back runs count too.
    runs: Arc<Mutex<HashMap<String, usize>>>,
    gate: Arc<Semaphore>,
}

impl Service {
    async fn start(server: &PgServer) -> Self {
        let store = PostgresStore::connect(&server.url(), "test").await.unwrap();
        store.ensure_schema().await.unwrap();
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS payments (event_id text NOT NULL, run int NOT NULL)",
        )
        .execute(store.pool())
        .await
        .unwrap();
        Self {
            store,
            runs: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        }
    }

    fn pool(&self) -> &PgPool {
        self.store.pool()
    }

    fn runs(&self, id: &str) -> usize {
        self.runs.lock().unwrap().get(id).copied().unwrap_or(0)
    }

    async fn rows(&self, id: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM payments WHERE event_id = $1")
            .bind(id)
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    /// A receiver whose payable handler is transactional, with `front` in front.
    fn receiver(&self, front: Option<Idempotency>) -> Receiver {
        let service = self.clone();
        let handler = self.store.transactional(move |event: Event, tx| {
            let service = service.clone();
            Box::pin(async move { service.handle(event, tx).await })
        });
        let dispatcher = Dispatcher::builder()
            .on_object(ObjectType::Payable, handler)
            .build();
        let builder =
            Receiver::builder(Verifier::new(fixture::secret(fixture::CURRENT)), dispatcher);
        match front {
            Some(front) => builder.idempotency(front),
            None => builder.without_idempotency(),
        }
        .build()
    }

    async fn handle(&self, event: Event, tx: &mut sqlx::PgConnection) -> Result<(), BoxError> {
        let id = event.id().unwrap().to_owned();
        let run = {
            let mut runs = self.runs.lock().unwrap();
            let run = runs.entry(id.clone()).or_default();
            *run += 1;
            *run
        };
        sqlx::query("INSERT INTO payments (event_id, run) VALUES ($1, $2)")
            .bind(&id)
            .bind(i32::try_from(run).unwrap())
            .execute(&mut *tx)
            .await?;
        match event.action() {
            "payable.fails_once" if run == 1 => return Err("the ledger said no".into()),
            "payable.panics_once" if run == 1 => panic!("bug in the handler"),
            "payable.gated" => self.gate.acquire().await.unwrap().forget(),
            "payable.gated_fails" => {
                self.gate.acquire().await.unwrap().forget();
                if run == 1 {
                    return Err("failed after a long wait".into());
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn body(id: &str, action: &str) -> String {
    format!(
        r#"{{"id":"{id}","object_type":"payable","action":"{action}","object":{{"id":"p"}},"webhook_subscription_id":"sub-1"}}"#
    )
}

async fn wait_for_runs(service: &Service, id: &str, runs: usize) {
    for _ in 0..500 {
        if service.runs(id) >= runs {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{id} ran {} times, expected {runs}", service.runs(id));
}

/// A front store whose process "dies" after the handler committed and before the event is
/// marked done in it: `complete` never reaches the store.
#[derive(Clone)]
struct DiesBeforeComplete<S>(S);

impl<S: IdempotencyStore> IdempotencyStore for DiesBeforeComplete<S> {
    async fn claim(
        &self,
        key: &str,
        token: &ClaimToken,
        lease: Duration,
    ) -> Result<Claim, BoxError> {
        self.0.claim(key, token, lease).await
    }

    async fn complete(&self, _: &str, _: &ClaimToken, _: Duration) -> Result<bool, BoxError> {
        Err("the process died before marking the event done".into())
    }

    async fn release(&self, key: &str, token: &ClaimToken) -> Result<(), BoxError> {
        self.0.release(key, token).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handlers_row_and_the_done_mark_commit_together() {
    let server = PgServer::start();
    let service = Service::start(&server).await;
    let receiver = service.receiver(Some(Idempotency::new(service.store.clone())));

    // Handled once; duplicates answer 200 and write nothing.
    let id = fresh_id();
    for _ in 0..3 {
        assert_eq!(
            deliver(&receiver, &body(&id, "payable.created")).await,
            StatusCode::OK
        );
    }
    assert_eq!((service.runs(&id), service.rows(&id).await), (1, 1));

    // An error rolls back the row and the claim: 500, and the retry writes the one row.
    let id = fresh_id();
    let failing = body(&id, "payable.fails_once");
    assert_eq!(
        deliver(&receiver, &failing).await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(service.rows(&id).await, 0, "a failed handler's row stayed");
    assert_eq!(deliver(&receiver, &failing).await, StatusCode::OK);
    assert_eq!(deliver(&receiver, &failing).await, StatusCode::OK);
    assert_eq!((service.runs(&id), service.rows(&id).await), (2, 1));

    // So does a panic.
    let id = fresh_id();
    let panicking = body(&id, "payable.panics_once");
    assert_eq!(
        deliver(&receiver, &panicking).await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        service.rows(&id).await,
        0,
        "a panicking handler's row stayed"
    );
    assert_eq!(deliver(&receiver, &panicking).await, StatusCode::OK);
    assert_eq!((service.runs(&id), service.rows(&id).await), (2, 1));

    // So does a delivery dropped mid-handler (the caller hung up): the retry writes the row.
    let id = fresh_id();
    let gated = body(&id, "payable.gated");
    let dropped = {
        let (receiver, gated) = (receiver.clone(), gated.clone());
        tokio::spawn(async move { deliver(&receiver, &gated).await })
    };
    wait_for_runs(&service, &id, 1).await;
    dropped.abort();
    assert!(dropped.await.unwrap_err().is_cancelled());
    service.gate.add_permits(1);
    let status = deliver_until_not_in_flight(&receiver, &gated).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((service.runs(&id), service.rows(&id).await), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_but_not_marked_done_in_front_answers_200_without_running_again() {
    let server = PgServer::start();
    let service = Service::start(&server).await;
    let lease = Duration::from_millis(300);

    // A PostgreSQL front store whose complete is lost: the claim stays until its lease ends.
    let dying = service.receiver(Some(
        Idempotency::new(DiesBeforeComplete(service.store.clone())).with_lease(lease),
    ));
    let restarted = service.receiver(Some(
        Idempotency::new(service.store.clone()).with_lease(lease),
    ));
    let id = fresh_id();
    assert_eq!(
        deliver(&dying, &body(&id, "payable.created")).await,
        StatusCode::OK
    );
    assert_eq!(
        deliver(&restarted, &body(&id, "payable.created")).await,
        StatusCode::CONFLICT,
        "the dead delivery's claim holds until its lease ends"
    );
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    assert_eq!(
        deliver(&restarted, &body(&id, "payable.created")).await,
        StatusCode::OK
    );
    assert_eq!((service.runs(&id), service.rows(&id).await), (1, 1));

    // An in-memory front store dies with its process: the new process's empty store claims
    // the event, and the inbox answers that it is done.
    let id = fresh_id();
    let first = service.receiver(Some(Idempotency::new(MemoryStore::new())));
    assert_eq!(
        deliver(&first, &body(&id, "payable.created")).await,
        StatusCode::OK
    );
    let second = service.receiver(Some(Idempotency::new(MemoryStore::new())));
    assert_eq!(
        deliver(&second, &body(&id, "payable.created")).await,
        StatusCode::OK
    );
    assert_eq!((service.runs(&id), service.rows(&id).await), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_runs_out_mid_transaction_never_doubles_the_effect() {
    let server = PgServer::start();
    let service = Service::start(&server).await;
    let lease = Duration::from_millis(200);
    let receiver = service.receiver(Some(
        Idempotency::new(service.store.clone()).with_lease(lease),
    ));

    for (action, first_commits) in [("payable.gated", true), ("payable.gated_fails", false)] {
        let id = fresh_id();
        let first = {
            let (receiver, body) = (receiver.clone(), body(&id, action));
            tokio::spawn(async move { deliver(&receiver, &body).await })
        };
        wait_for_runs(&service, &id, 1).await;
        tokio::time::sleep(lease + Duration::from_millis(100)).await;

        // The front claim has expired: the second delivery takes it, then waits on the
        // first one's uncommitted inbox row instead of running the handler.
        let second = {
            let (receiver, body) = (receiver.clone(), body(&id, action));
            tokio::spawn(async move { deliver(&receiver, &body).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !second.is_finished(),
            "{action}: the second delivery did not wait"
        );
        assert_eq!(
            service.runs(&id),
            1,
            "{action}: ran beside an open transaction"
        );

        service.gate.add_permits(1);
        let first = first.await.unwrap();
        if !first_commits {
            // The second delivery now runs the handler, which waits at the gate too.
            service.gate.add_permits(1);
        }
        let second = second.await.unwrap();
        if first_commits {
            assert_eq!(
                (first, second),
                (StatusCode::OK, StatusCode::OK),
                "{action}"
            );
            assert_eq!(service.runs(&id), 1, "{action}");
        } else {
            // The first rolled back: the second ran the handler, once.
            assert_eq!(
                (first, second),
                (StatusCode::INTERNAL_SERVER_ERROR, StatusCode::OK),
                "{action}"
            );
            assert_eq!(service.runs(&id), 2, "{action}");
        }
        assert_eq!(service.rows(&id).await, 1, "{action}: rows");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_front_store_concurrent_duplicates_still_write_once() {
    let server = PgServer::start();
    let service = Service::start(&server).await;
    let receiver = service.receiver(None);
    let ids: Vec<String> = (0..5).map(|_| fresh_id()).collect();
    let deliveries: Vec<_> = (0..10)
        .flat_map(|_| ids.iter())
        .map(|id| {
            let (receiver, body) = (receiver.clone(), body(id, "payable.created"));
            tokio::spawn(async move { deliver(&receiver, &body).await })
        })
        .collect();
    for delivery in deliveries {
        // Duplicates wait for the first transaction, then find the event done.
        assert_eq!(delivery.await.unwrap(), StatusCode::OK);
    }
    for id in &ids {
        assert_eq!((service.runs(id), service.rows(id).await), (1, 1), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_handled_rows_are_pruned() {
    let server = PgServer::start();
    let service = Service::start(&server).await;
    let store = service.store.clone().with_prune_interval(Duration::ZERO);
    let handler = store
        .transactional(|_: Event, _| Box::pin(async { Ok(()) }))
        .with_retention(Duration::from_millis(100));
    let receiver = Receiver::builder(
        Verifier::new(fixture::secret(fixture::CURRENT)),
        Dispatcher::builder()
            .on_object(ObjectType::Payable, handler)
            .build(),
    )
    .without_idempotency()
    .build();
    let inbox_rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM monite_webhook_handled")
            .fetch_one(service.pool())
            .await
            .unwrap()
    };
    assert_eq!(
        deliver(&receiver, &body(&fresh_id(), "payable.created")).await,
        StatusCode::OK
    );
    assert_eq!(inbox_rows().await, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        deliver(&receiver, &body(&fresh_id(), "payable.created")).await,
        StatusCode::OK
    );
    for _ in 0..100 {
        if inbox_rows().await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        inbox_rows().await,
        1,
        "the old row stayed, or the new one went"
    );
}

/// F2: a handler that swallows a failed statement leaves its transaction aborted, and
/// PostgreSQL answers the `COMMIT` of an aborted transaction with `ROLLBACK`, no error.
/// Whatever aborted it (a unique violation, a division by zero, a lock timeout) or ended it
/// (a raw `ROLLBACK`), nothing was written, so the delivery is a handler failure: `500`,
/// nothing marked done, and Monite's retry runs the handler again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_that_did_not_commit_is_never_acknowledged() {
    let server = PgServer::start();
    let store = PostgresStore::connect(&server.url(), "test").await.unwrap();
    store.ensure_schema().await.unwrap();
    swallowing::create_tables(&store).await;
    // Holds a row lock on the ledger's row, so the lock-timeout handler times out.
    let mut locker = store.pool().begin().await.unwrap();
    sqlx::query("SELECT * FROM ledger FOR UPDATE")
        .execute(&mut *locker)
        .await
        .unwrap();

    // The habit from autocommit code: "this may fail, and that's fine".
    let handler = swallowing::handler(&store, |event| match event.action() {
        "payable.created" => "INSERT INTO ledger VALUES ('p')",
        "payable.updated" => "SELECT 1 / 0",
        "payable.paid" => "SELECT * FROM ledger FOR UPDATE",
        _ => "ROLLBACK",
    });
    let receiver = Receiver::builder(
        Verifier::new(fixture::secret(fixture::CURRENT)),
        Dispatcher::builder()
            .on_object(ObjectType::Payable, handler)
            .build(),
    )
    .idempotency(Idempotency::new(store.clone()))
    .build();

    for action in [
        "payable.created",
        "payable.updated",
        "payable.paid",
        "payable.rejected",
    ] {
        let id = fresh_id();
        let body = format!(
            r#"{{"id":"{id}","object_type":"payable","action":"{action}","object":{{"id":"p"}},"webhook_subscription_id":"sub-1"}}"#
        );
        let status = deliver(&receiver, &body).await;
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{action}: acknowledged"
        );
        // Monite retries; the second attempt swallows nothing and commits.
        assert_eq!(
            deliver_until_not_in_flight(&receiver, &body).await,
            StatusCode::OK,
            "{action}: the retry"
        );
        let committed: Vec<i32> =
            sqlx::query_scalar("SELECT attempt FROM effects WHERE event_id = $1")
                .bind(&id)
                .fetch_all(store.pool())
                .await
                .unwrap();
        assert_eq!(committed, [2], "{action}: what committed");
        let inbox: i64 =
            sqlx::query_scalar("SELECT count(*) FROM monite_webhook_handled WHERE key = $1")
                .bind(format!("test:evt:{id}"))
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(inbox, 1, "{action}: the done mark");
    }
    locker.rollback().await.unwrap();
}

/// "Try this statement" inside a transactional handler: a savepoint (`tx.begin()`) rolls
/// back the failed statement alone, and the rest commits with the done mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_savepoint_lets_a_handler_try_a_statement() {
    use sqlx::Connection as _;

    let server = PgServer::start();
    let store = PostgresStore::connect(&server.url(), "test").await.unwrap();
    store.ensure_schema().await.unwrap();
    for sql in [
        "CREATE TABLE effects (event_id text NOT NULL)",
        "CREATE TABLE ledger (payable_id text PRIMARY KEY)",
        "INSERT INTO ledger VALUES ('p')",
    ] {
        sqlx::query(sql).execute(store.pool()).await.unwrap();
    }
    let handler = store.transactional(|event: Event, tx| {
        Box::pin(async move {
            sqlx::query("INSERT INTO effects VALUES ($1)")
                .bind(event.id())
                .execute(&mut *tx)
                .await?;
            let mut attempt = tx.begin().await?;
            match sqlx::query("INSERT INTO ledger VALUES ($1)")
                .bind(event.object_id())
                .execute(&mut *attempt)
                .await
            {
                Ok(_) => attempt.commit().await?,
                Err(_) => attempt.rollback().await?, // already there: fine
            }
            Ok(())
        })
    });
    let receiver = Receiver::builder(
        Verifier::new(fixture::secret(fixture::CURRENT)),
        Dispatcher::builder()
            .on_object(ObjectType::Payable, handler)
            .build(),
    )
    .idempotency(Idempotency::new(store.clone()))
    .build();
    let id = fresh_id();
    let body = format!(
        r#"{{"id":"{id}","object_type":"payable","action":"payable.created","object":{{"id":"p"}},"webhook_subscription_id":"sub-1"}}"#
    );
    assert_eq!(deliver(&receiver, &body).await, StatusCode::OK);
    let effects: i64 = sqlx::query_scalar("SELECT count(*) FROM effects WHERE event_id = $1")
        .bind(&id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(effects, 1);
}
