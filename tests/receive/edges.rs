//! "2xx only when handled, each event once" at the edges of the claim protocol: a delivery
//! dropped (by an abort, or a timeout above the receiver) or failing at each `.await` of
//! claim, handler and done mark, against a real Redis and a real PostgreSQL.
//!
//! Each test makes the store slow or unreachable at one precise step, the way a busy pool,
//! a paused or restarted Redis, or a lock does in production, then delivers again as
//! Monite retries and counts the handler's runs.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]
#![cfg(any(feature = "redis", feature = "postgres"))]

use crate::support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use http::StatusCode;
use monite_webhooks::{Dispatcher, Event, Idempotency, ObjectType, Receiver, Verifier};
use support::fixture::{self, deliver, deliver_until_not_in_flight, fresh_id};

/// How the request is dropped while the receiver awaits the store.
#[derive(Debug, Clone, Copy)]
enum HangUp {
    /// The connection closed: the server drops the request's future.
    Abort,
    /// A timeout above the receiver (a proxy's, a `tower` layer's) fired.
    Timeout,
}

const HANG_UPS: [HangUp; 2] = [HangUp::Abort, HangUp::Timeout];

type Hook = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A handler that counts its runs and, on its first, runs `hook` (which makes the store slow
/// for what comes next) before it succeeds.
#[derive(Clone)]
struct Probe {
    runs: Arc<AtomicUsize>,
    returned: Arc<AtomicBool>,
    hook: Hook,
}

impl Probe {
    fn new(
        hook: impl Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync + 'static,
    ) -> Self {
        Self {
            runs: Arc::default(),
            returned: Arc::default(),
            hook: Arc::new(hook),
        }
    }

    fn idle() -> Self {
        Self::new(|| Box::pin(async {}))
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    fn receiver(&self, idempotency: Idempotency, spawn: bool) -> Receiver {
        let probe = self.clone();
        let dispatcher = Dispatcher::builder()
            .on_object(ObjectType::Payable, move |_: Event| {
                let probe = probe.clone();
                async move {
                    if probe.runs.fetch_add(1, Ordering::SeqCst) == 0 {
                        (probe.hook)().await;
                    }
                    probe.returned.store(true, Ordering::SeqCst);
                    Ok::<(), std::io::Error>(())
                }
            })
            .build();
        let builder =
            Receiver::builder(Verifier::new(fixture::secret(fixture::CURRENT)), dispatcher)
                .idempotency(idempotency);
        let builder = if spawn {
            builder.spawn_handlers(|task| {
                tokio::spawn(task);
            })
        } else {
            builder
        };
        builder.build()
    }

    /// Delivers `body` and hangs up `after` the handler returned (or, with `after` `None`,
    /// 200 ms after the delivery started, before any handler ran).
    async fn deliver_and_hang_up(
        &self,
        receiver: &Receiver,
        body: &str,
        how: HangUp,
        after: Option<Duration>,
    ) {
        let (receiver, body) = (receiver.clone(), body.to_owned());
        let delivery = async move { deliver(&receiver, &body).await };
        let when = {
            let returned = self.returned.clone();
            async move {
                match after {
                    Some(after) => {
                        while !returned.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        tokio::time::sleep(after).await;
                    }
                    None => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        };
        match how {
            HangUp::Abort => {
                let delivery = tokio::spawn(delivery);
                when.await;
                delivery.abort();
                assert!(
                    delivery.await.unwrap_err().is_cancelled(),
                    "answered before the hang-up"
                );
            }
            HangUp::Timeout => {
                tokio::select! {
                    status = delivery => panic!("answered {status} before the hang-up"),
                    () = when => {}
                }
            }
        }
    }
}

fn body(id: &str) -> String {
    format!(
        r#"{{"id":"{id}","object_type":"payable","action":"payable.created","object":{{"id":"p"}},"webhook_subscription_id":"sub-1"}}"#
    )
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use crate::support::redis::RedisServer;
    use monite_webhooks::RedisStore;

    /// What a Redis restart or failover does to a live connection: the scripts are gone
    /// (the next call gets `NOSCRIPT` and must load them again), and commands wait.
    fn restart_like_pause(server: &RedisServer, millis: u64) {
        assert_eq!(server.cli(&["SCRIPT", "FLUSH"]), "OK");
        assert_eq!(
            server.cli(&["CLIENT", "PAUSE", &millis.to_string(), "ALL"]),
            "OK"
        );
    }

    async fn store(server: &RedisServer) -> RedisStore {
        RedisStore::connect(&server.url(), "test").await.unwrap()
    }

    /// One delivery of another event, so the store's scripts are loaded on the server, as
    /// they are on a receiver that has been running: the next call is one `EVALSHA`.
    async fn warm_up(receiver: &Receiver, probe: &Probe) {
        assert_eq!(deliver(receiver, &body(&fresh_id())).await, StatusCode::OK);
        probe.runs.store(0, Ordering::SeqCst);
    }

    /// F1: the handler succeeded, then the request was dropped while the done mark waited on
    /// Redis. The mark must still land: Monite's retry gets `200`, and no second run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropped_while_marking_done_runs_the_handler_once() {
        for how in HANG_UPS {
            let server = Arc::new(RedisServer::start());
            let probe = {
                let server = server.clone();
                Probe::new(move || {
                    restart_like_pause(&server, 1500);
                    Box::pin(async {})
                })
            };
            let receiver = probe.receiver(Idempotency::new(store(&server).await), false);
            let id = fresh_id();
            probe
                .deliver_and_hang_up(&receiver, &body(&id), how, Some(Duration::from_millis(200)))
                .await;
            tokio::time::sleep(Duration::from_millis(1600)).await; // the pause is over
            assert_eq!(
                deliver_until_not_in_flight(&receiver, &body(&id)).await,
                StatusCode::OK
            );
            assert_eq!(probe.runs(), 1, "{how:?}: the handler ran to success twice");
        }
    }

    /// F8: the claim reached Redis, then the request was dropped before its answer came
    /// back. The claim must be released, not left to block Monite's retries for the lease.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropped_while_claiming_leaves_the_key_free() {
        for how in HANG_UPS {
            let server = RedisServer::start();
            let probe = Probe::idle();
            let receiver = probe.receiver(Idempotency::new(store(&server).await), false);
            warm_up(&receiver, &probe).await;
            let id = fresh_id();
            server.cli(&["CLIENT", "PAUSE", "1000", "ALL"]);
            probe
                .deliver_and_hang_up(&receiver, &body(&id), how, None)
                .await;
            tokio::time::sleep(Duration::from_millis(900)).await; // the claim has now run
            assert_eq!(
                deliver_until_not_in_flight(&receiver, &body(&id)).await,
                StatusCode::OK,
                "{how:?}: the dropped claim still holds the key"
            );
            assert_eq!(probe.runs(), 1);
        }
    }

    /// F8: the claim timed out (the receiver answered `503`) but Redis applied it later. The
    /// claim must be released, so the retry runs the handler.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claim_that_errors_is_released() {
        let server = RedisServer::start();
        let probe = Probe::idle();
        let receiver = probe.receiver(Idempotency::new(store(&server).await), false);
        warm_up(&receiver, &probe).await;
        let id = fresh_id();
        server.cli(&["CLIENT", "PAUSE", "3000", "ALL"]); // longer than the 2 s response timeout
        assert_eq!(
            deliver(&receiver, &body(&id)).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(probe.runs(), 0);
        tokio::time::sleep(Duration::from_millis(1200)).await; // the pause is over
        assert_eq!(
            deliver_until_not_in_flight(&receiver, &body(&id)).await,
            StatusCode::OK
        );
        assert_eq!(probe.runs(), 1);
    }

    /// F9: the handler succeeded and the done mark failed (a response timeout after a
    /// restart flushed the scripts). The mark is retried in the background, so a delivery
    /// after the lease finds the event done: with a spawner and a caller who hung up, and
    /// without one (the caller got `200`; a replay or a reconciliation comes later).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_done_mark_is_retried() {
        for spawn in [true, false] {
            let server = Arc::new(RedisServer::start());
            let probe = {
                let server = server.clone();
                Probe::new(move || {
                    restart_like_pause(&server, 3000); // longer than the 2 s response timeout
                    Box::pin(async {})
                })
            };
            let lease = Duration::from_secs(6);
            let receiver = probe.receiver(
                Idempotency::new(store(&server).await).with_lease(lease),
                spawn,
            );
            let id = fresh_id();
            if spawn {
                probe
                    .deliver_and_hang_up(&receiver, &body(&id), HangUp::Abort, Some(Duration::ZERO))
                    .await;
            } else {
                assert_eq!(deliver(&receiver, &body(&id)).await, StatusCode::OK);
            }
            tokio::time::sleep(lease + Duration::from_millis(500)).await;
            assert_eq!(
                deliver_until_not_in_flight(&receiver, &body(&id)).await,
                StatusCode::OK
            );
            assert_eq!(
                probe.runs(),
                1,
                "spawn {spawn}: the handler ran again after the lease"
            );
        }
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use crate::support::pg::PgServer;
    use monite_webhooks::PostgresStore;
    use sqlx::PgPool;
    use sqlx::pool::PoolConnection;
    use sqlx::postgres::PgPoolOptions;
    use std::sync::Mutex;

    /// A store over a pool of one connection, so that a test can make it busy.
    async fn store(server: &PgServer, acquire_timeout: Duration) -> PostgresStore {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(acquire_timeout)
            .connect(&server.url())
            .await
            .unwrap();
        let store = PostgresStore::new(pool, "test").unwrap();
        store.ensure_schema().await.unwrap();
        store
    }

    type Stash = Arc<Mutex<Option<PoolConnection<sqlx::Postgres>>>>;

    /// A probe whose first run takes the pool's only connection and keeps it in `stash`:
    /// the done mark then waits for the pool, as under load.
    fn busy_pool_probe(pool: &PgPool, stash: &Stash) -> Probe {
        let (pool, stash) = (pool.clone(), stash.clone());
        Probe::new(move || {
            let (pool, stash) = (pool.clone(), stash.clone());
            Box::pin(async move {
                let connection = pool.acquire().await.unwrap();
                *stash.lock().unwrap() = Some(connection);
            })
        })
    }

    /// F1 (the review's appendix A): the done mark waits for a pooled connection, and the
    /// request is dropped. The mark must still land: Monite's retry gets `200`, one run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropped_while_marking_done_runs_the_handler_once() {
        let server = PgServer::start();
        for how in HANG_UPS {
            let store = store(&server, Duration::from_secs(30)).await;
            let stash = Stash::default();
            let probe = busy_pool_probe(store.pool(), &stash);
            let receiver = probe.receiver(Idempotency::new(store.clone()), false);
            let id = fresh_id();
            probe
                .deliver_and_hang_up(&receiver, &body(&id), how, Some(Duration::from_millis(100)))
                .await;
            drop(stash.lock().unwrap().take());
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(
                deliver_until_not_in_flight(&receiver, &body(&id)).await,
                StatusCode::OK
            );
            assert_eq!(probe.runs(), 1, "{how:?}: the handler ran to success twice");
        }
    }

    /// F8: the claim's `INSERT` reached PostgreSQL and waited on a row lock; the request was
    /// dropped, then the insert went through. The claim must be released, not left to block
    /// Monite's retries for the lease.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropped_while_claiming_leaves_the_key_free() {
        let server = PgServer::start();
        for how in HANG_UPS {
            let store = store(&server, Duration::from_secs(30)).await;
            let probe = Probe::idle();
            let receiver = probe.receiver(Idempotency::new(store.clone()), false);
            let id = fresh_id();
            // Another session holds the key's row, uncommitted: the claim waits on it.
            let other = PgPool::connect(&server.url()).await.unwrap();
            let mut blocker = other.begin().await.unwrap();
            sqlx::query(
                "INSERT INTO monite_webhook_claims (key, token, expires_at) VALUES ($1, 'other', now())",
            )
            .bind(format!("test:evt:{id}"))
            .execute(&mut *blocker)
            .await
            .unwrap();
            probe
                .deliver_and_hang_up(&receiver, &body(&id), how, None)
                .await;
            blocker.rollback().await.unwrap(); // the dropped claim's insert now takes the key
            assert_eq!(
                deliver_until_not_in_flight(&receiver, &body(&id)).await,
                StatusCode::OK,
                "{how:?}: the dropped claim still holds the key"
            );
            assert_eq!(probe.runs(), 1);
        }
    }

    /// F9: the done mark failed (no pooled connection within the acquire timeout). It is
    /// retried in the background, so a delivery after the lease finds the event done.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_done_mark_is_retried() {
        let server = PgServer::start();
        for spawn in [true, false] {
            let store = store(&server, Duration::from_millis(300)).await;
            let stash = Stash::default();
            let probe = busy_pool_probe(store.pool(), &stash);
            let lease = Duration::from_secs(3);
            let receiver = probe.receiver(Idempotency::new(store.clone()).with_lease(lease), spawn);
            let id = fresh_id();
            let freed = {
                let stash = stash.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(1000)).await;
                    drop(stash.lock().unwrap().take());
                })
            };
            if spawn {
                probe
                    .deliver_and_hang_up(&receiver, &body(&id), HangUp::Abort, Some(Duration::ZERO))
                    .await;
            } else {
                assert_eq!(deliver(&receiver, &body(&id)).await, StatusCode::OK);
            }
            freed.await.unwrap();
            tokio::time::sleep(lease + Duration::from_millis(500)).await;
            assert_eq!(
                deliver_until_not_in_flight(&receiver, &body(&id)).await,
                StatusCode::OK
            );
            assert_eq!(
                probe.runs(),
                1,
                "spawn {spawn}: the handler ran again after the lease"
            );
        }
    }
}
