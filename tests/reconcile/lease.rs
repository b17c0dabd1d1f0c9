//! The fleet's lease over a real PostgreSQL and a real `redis-server`: two holders never
//! overlap, however many replicas race for it; a holder that stops renewing is replaced
//! once its time runs out, and the next one reads the state it wrote; a replaced holder is
//! fenced (its renewals and writes do nothing, its release frees nothing); a released lease
//! is taken at once, its state kept. And a reconciler per replica sweeps each entity once.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use monite_webhooks::fleet::Fleet;
use monite_webhooks::reconcile::{PostgresCheckpoints, Reconciler, RedisCheckpoints};
use monite_webhooks::{Idempotency, PostgresStore, RedisStore};
use support::client::{client, counting_receiver_over};
use support::fake_monite;
use support::pg::PgServer;
use support::redis::RedisServer;

/// The fleets of `count` replicas on one store, each named, with a lease of `ttl`.
async fn replicas(store: &Store, count: usize, ttl: Duration) -> Vec<Fleet> {
    let mut fleets = Vec::new();
    for i in 0..count {
        let fleet = match store {
            Store::Postgres(url) => {
                let store = PostgresStore::connect(url, "lease-test").await.unwrap();
                Fleet::postgres(&store)
            }
            Store::Redis(url) => {
                let store = RedisStore::connect(url, "lease-test").await.unwrap();
                Fleet::redis(&store)
            }
        };
        let fleet = fleet
            .with_replica(format!("replica-{i}"))
            .with_lease_ttl(ttl);
        fleet.ensure_schema().await.unwrap();
        fleets.push(fleet);
    }
    fleets
}

enum Store {
    Postgres(String),
    Redis(String),
}

/// Both stores, each of the test's own.
fn stores() -> (PgServer, RedisServer, Vec<Store>) {
    let pg = PgServer::start();
    let redis = RedisServer::start();
    let stores = vec![Store::Postgres(pg.url()), Store::Redis(redis.url())];
    (pg, redis, stores)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_holders_never_overlap() {
    let (_pg, _redis, stores) = stores();
    for store in &stores {
        let fleets = replicas(store, 4, Duration::from_secs(30)).await;
        let inside = Arc::new(AtomicUsize::new(0));
        let terms = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for fleet in fleets {
            let (inside, terms) = (inside.clone(), terms.clone());
            tasks.push(tokio::spawn(async move {
                let lease = fleet.lease("overlap");
                let mut held = 0;
                while held < 15 {
                    let Some(term) = lease.acquire().await.unwrap() else {
                        tokio::task::yield_now().await;
                        continue;
                    };
                    held += 1;
                    terms.fetch_add(1, Ordering::SeqCst);
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    assert!(lease.renew(&term).await.unwrap());
                    assert!(lease.save_state(&term, "working").await.unwrap());
                    tokio::task::yield_now().await;
                    assert_eq!(inside.fetch_sub(1, Ordering::SeqCst), 1, "two holders");
                    lease.release(&term).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(terms.load(Ordering::SeqCst), 60);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_stops_renewing_is_replaced_and_fenced() {
    let (_pg, _redis, stores) = stores();
    for store in &stores {
        let fleets = replicas(store, 2, Duration::from_secs(1)).await;
        let (a, b) = (fleets[0].lease("work"), fleets[1].lease("work"));
        let first = a.acquire().await.unwrap().unwrap();
        assert_eq!(first.taken_over_from(), None);
        assert!(a.save_state(&first, "entity 41 done").await.unwrap());
        assert_eq!(b.acquire().await.unwrap(), None, "held by a");
        assert_eq!(b.holder().await.unwrap().as_deref(), Some("replica-0"));
        // a stops renewing (killed): its time runs out on the store's clock.
        let mut second = None;
        for _ in 0..100 {
            second = b.acquire().await.unwrap();
            if second.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let second = second.expect("b takes the lease once a's ran out");
        assert_eq!(second.taken_over_from(), Some("replica-0"));
        assert_eq!(second.state(), Some("entity 41 done"));
        assert!(second.generation() > first.generation());
        // a comes back: fenced.
        assert!(!a.renew(&first).await.unwrap());
        assert!(!a.save_state(&first, "stale").await.unwrap());
        a.release(&first).await.unwrap();
        assert_eq!(b.holder().await.unwrap().as_deref(), Some("replica-1"));
        assert_eq!(a.acquire().await.unwrap(), None);
        assert!(b.save_state(&second, "entity 42 done").await.unwrap());
        // b releases: a takes it at once, not taken over, the state kept.
        b.release(&second).await.unwrap();
        let third = a.acquire().await.unwrap().unwrap();
        assert_eq!(third.taken_over_from(), None);
        assert_eq!(third.state(), Some("entity 42 done"));
        assert!(!b.renew(&second).await.unwrap());
    }
}

/// Three reconcilers, one per replica, on shared checkpoints (the fleet comes with them):
/// one leads, and each entity's events are listed once in the cycle.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_reconcilers_list_each_entity_once_per_cycle() {
    let (_pg, _redis, stores) = stores();
    for store in &stores {
        let (addr, fake) = fake_monite::start().await;
        fake.emulator().set_rate_limit(None);
        let entities = fake.add_entities(60);
        let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let reports = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        for i in 0..3 {
            let seen = reports.clone();
            let reconciler = reconciler(store, addr, &runs)
                .await
                .every(Duration::from_secs(3600))
                .on_report(move |report| seen.lock().unwrap().push(report.to_string()));
            let reconciler = match store {
                Store::Postgres(url) => {
                    let fleet =
                        Fleet::postgres(&PostgresStore::connect(url, "fleet").await.unwrap());
                    reconciler.fleet(fleet.with_replica(format!("replica-{i}")))
                }
                Store::Redis(url) => {
                    let fleet = Fleet::redis(&RedisStore::connect(url, "fleet").await.unwrap());
                    reconciler.fleet(fleet.with_replica(format!("replica-{i}")))
                }
            }
            .build()
            .unwrap();
            handles.push(reconciler.start());
        }
        // The first cycle ends once every entity's events were listed.
        for _ in 0..600 {
            if fake.events_listings().len() >= entities.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Time for a second listing, if any replica were to sweep again.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let reports = reports.lock().unwrap().clone();
        for handle in handles {
            handle.shutdown().await;
        }
        let mut listed: HashMap<String, usize> = HashMap::new();
        for entity in fake.events_listings() {
            *listed.entry(entity).or_default() += 1;
        }
        assert_eq!(listed.len(), entities.len(), "every entity swept");
        assert!(
            listed.values().all(|n| *n == 1),
            "an entity listed more than once: {listed:?}"
        );
        let led = reports
            .iter()
            .filter(|r| r.contains("leads the reconciler"))
            .count();
        assert_eq!(led, 1, "{reports:#?}");
    }
}

/// A reconciler on `store`'s shared checkpoints, deduplicating there, counting runs.
async fn reconciler(
    store: &Store,
    addr: std::net::SocketAddr,
    runs: &Arc<Mutex<HashMap<String, usize>>>,
) -> monite_webhooks::reconcile::ReconcilerBuilder {
    match store {
        Store::Postgres(url) => {
            let store = PostgresStore::connect(url, "fleet").await.unwrap();
            store.ensure_schema().await.unwrap();
            let checkpoints = PostgresCheckpoints::new(&store);
            checkpoints.ensure_schema().await.unwrap();
            let receiver = counting_receiver_over(runs, Idempotency::new(store));
            Reconciler::builder(client(addr), receiver, checkpoints)
        }
        Store::Redis(url) => {
            let store = RedisStore::connect(url, "fleet").await.unwrap();
            let connection =
                redis::aio::ConnectionManager::new(redis::Client::open(url.as_str()).unwrap())
                    .await
                    .unwrap();
            let receiver = counting_receiver_over(runs, Idempotency::new(store));
            Reconciler::builder(
                client(addr),
                receiver,
                RedisCheckpoints::new(connection, "fleet"),
            )
        }
    }
}

/// Two watchdogs, one per replica: one leads and acts once on a disabled subscription;
/// a failure the receiver recorded on the other reaches the leader's report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_watchdogs_act_once_and_the_followers_failures_reach_the_leader() {
    use monite_webhooks::watchdog::{Report, Watchdog};
    let (_pg, _redis, stores) = stores();
    for store in &stores {
        let (addr, fake) = fake_monite::start().await;
        let subscription = fake.seed("payable", "https://example.com/hook", "disabled");
        let fleets = replicas(store, 2, Duration::from_secs(30)).await;
        let reports: Arc<Mutex<Vec<Report>>> = Arc::default();
        let seen = reports.clone();
        let leader = Watchdog::builder(client(addr))
            .reenable(true)
            .every(Duration::from_millis(200))
            .fleet(fleets[0].clone())
            .on_report(move |r| seen.lock().unwrap().push(r.clone()))
            .start()
            .unwrap();
        let seen = reports.clone();
        let follower = Watchdog::builder(client(addr))
            .reenable(true)
            .every(Duration::from_millis(200))
            .fleet(fleets[1].clone())
            .on_report(move |r| seen.lock().unwrap().push(r.clone()))
            .build()
            .unwrap();
        let count = |reports: &[Report], what: fn(&Report) -> bool| {
            reports.iter().filter(|r| what(r)).count()
        };
        for _ in 0..200 {
            if fake.subscriptions()[0]["status"] == "enabled" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The follower checks by hand: the leader holds the lease, so it only passes its
        // failure on.
        follower.record_failure(&subscription);
        let check = follower.run_once().await.unwrap();
        assert_eq!(check.led_elsewhere.as_deref(), Some("replica-0"));
        assert!(check.disabled.is_empty());
        for _ in 0..200 {
            let failing = count(&reports.lock().unwrap(), |r| {
                matches!(r, Report::DeliveriesFailing { count: 1, .. })
            });
            if failing > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        leader.shutdown().await;
        let reports = reports.lock().unwrap().clone();
        let enables = fake
            .request_log()
            .iter()
            .filter(|r| r.ends_with("/enable"))
            .count();
        assert_eq!(enables, 1, "{reports:#?}");
        assert_eq!(
            count(&reports, |r| matches!(
                r,
                Report::SubscriptionReenabled { .. }
            )),
            1
        );
        assert_eq!(
            count(&reports, |r| matches!(
                r,
                Report::DeliveriesFailing { count: 1, .. }
            )),
            1,
            "{reports:#?}"
        );
    }
}

/// The lease's series: a term begun on a free lease, then one taken over from a holder
/// that stopped renewing; held while a pass runs, not after it gave the lease up; and
/// described by the crate's one `describe()`.
#[cfg(feature = "metrics")]
#[test]
fn leases_held_and_taken_over_are_counted() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use monite_webhooks::metrics as m;
    let pg = PgServer::start();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = Store::Postgres(pg.url());
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let (addr, fake) = fake_monite::start().await;
            fake.add_entities(2);
            let fleets = replicas(&store, 2, Duration::from_secs(1)).await;
            let runs = Arc::default();
            let first = reconciler(&store, addr, &runs)
                .await
                .fleet(fleets[0].clone())
                .build()
                .unwrap();
            assert_eq!(first.run_once().await.unwrap().led_elsewhere, None);
            // A holder that never renews nor releases: the next pass takes it over.
            let stale = fleets[1].lease("reconciler").acquire().await.unwrap();
            assert!(stale.is_some());
            tokio::time::sleep(Duration::from_millis(1_200)).await;
            assert_eq!(first.run_once().await.unwrap().led_elsewhere, None);
        });
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let value = |name: &str, how: Option<&str>| {
        snapshot
            .iter()
            .find(|(key, _, _, _)| {
                let key = key.key();
                key.name() == name
                    && key
                        .labels()
                        .any(|l| l.key() == "lease" && l.value() == "reconciler")
                    && how.is_none_or(|how| {
                        key.labels().any(|l| l.key() == "how" && l.value() == how)
                    })
            })
            .map(|entry| &entry.3)
    };
    assert_eq!(
        value(m::LEASE_ACQUIRED, Some("free")),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        value(m::LEASE_ACQUIRED, Some("taken_over")),
        Some(&DebugValue::Counter(1))
    );
    let held = value(m::LEASE_HELD, None);
    assert!(
        matches!(held, Some(DebugValue::Gauge(g)) if g.into_inner() == 0.0),
        "{held:?}"
    );
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        m::describe();
        metrics::gauge!(m::LEASE_HELD).set(1.0);
        metrics::counter!(m::LEASE_ACQUIRED).increment(1);
    });
    let text = handle.render();
    for name in [m::LEASE_HELD, m::LEASE_ACQUIRED] {
        assert!(
            text.lines()
                .any(|line| line.starts_with(&format!("# HELP {name} "))),
            "{name} has no help text in:\n{text}"
        );
    }
}
