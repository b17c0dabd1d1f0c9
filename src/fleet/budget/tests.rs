//! The shared budget over a real PostgreSQL and a real `redis-server`, several replicas
//! (each its own [`Fleet`] on its own connection) reserving at once: the store's clock
//! alone places the slots.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use std::future::Future;
use std::time::Duration;

use super::{Answer, HEADROOM_SLOTS, Lane, SharedBudget};
use crate::fleet::Fleet;

/// `replicas` fleets on one store, each with its own connection, from `connect`.
async fn replicas<F, Fut>(replicas: usize, connect: F) -> Vec<Fleet>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Fleet>,
{
    let mut fleets = Vec::new();
    for i in 0..replicas {
        fleets.push(connect().await.with_replica(format!("replica-{i}")));
    }
    fleets
}

/// Every replica reserves `each` live slots at once: the slots, on the store's clock, are
/// all one interval apart or more, and each wait is its slot measured from the store's
/// now.
async fn slots_from_every_replica_are_one_interval_apart(fleets: &[Fleet]) {
    // 50 per second: 20 ms apart.
    let budgets: Vec<_> = fleets.iter().map(|f| SharedBudget::new(f, 50.0)).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for budget in budgets {
        tasks.spawn(async move {
            let mut slots = Vec::new();
            for _ in 0..10 {
                match budget.ask(Lane::Live).await.unwrap() {
                    Answer::Slot { wait, slot_us } => slots.push((wait, slot_us)),
                    Answer::Later(wait) => panic!("a live request told to wait {wait:?}"),
                }
            }
            slots
        });
    }
    let mut slots: Vec<(Duration, i64)> = tasks.join_all().await.into_iter().flatten().collect();
    slots.sort_by_key(|(_, at)| *at);
    assert_eq!(slots.len(), fleets.len() * 10);
    for pair in slots.windows(2) {
        let gap = pair[1].1 - pair[0].1;
        assert!(gap >= 20_000, "slots {gap} µs apart at 50/s: {slots:?}");
    }
    // Reserved back to back, the last slot is about `n - 1` intervals past the first, and
    // its wait says so (the asks took far less than a second).
    let (first, last) = (slots[0].1, slots[slots.len() - 1].1);
    assert_eq!(last - first, (slots.len() as i64 - 1) * 20_000);
    let longest = slots.iter().map(|(wait, _)| *wait).max().unwrap();
    assert!(longest > Duration::from_millis(400), "{longest:?}");
}

/// The background lane books at most the headroom; a live request is still given a slot,
/// right after what is booked, and background requests then wait behind it too.
async fn live_requests_go_ahead_of_background_ones(fleets: &[Fleet]) {
    // One per second: the few milliseconds the asks take change no answer.
    let sweeping = SharedBudget::new(&fleets[0], 1.0);
    let fetching = SharedBudget::new(&fleets[1], 1.0);
    for _ in 0..=HEADROOM_SLOTS {
        assert!(matches!(
            sweeping.ask(Lane::Background).await.unwrap(),
            Answer::Slot { .. }
        ));
    }
    // Booked: now, +1 s and +2 s; the next free slot is 3 s away, past the headroom.
    let Answer::Later(later) = sweeping.ask(Lane::Background).await.unwrap() else {
        panic!("the background lane booked past its headroom");
    };
    assert!(later > Duration::from_millis(900) && later <= Duration::from_secs(1));
    let Answer::Slot { wait, .. } = fetching.ask(Lane::Live).await.unwrap() else {
        panic!("a live request was refused a slot");
    };
    assert!(wait > Duration::from_millis(2900) && wait <= Duration::from_secs(3));
    // The live slot pushed the schedule one slot further for the background lane.
    let Answer::Later(later) = sweeping.ask(Lane::Background).await.unwrap() else {
        panic!("the background lane booked past its headroom");
    };
    assert!(later > Duration::from_millis(1900) && later <= Duration::from_secs(2));
}

/// A hold from one replica (a `429`'s `Retry-After`) places every replica's next slot at
/// its end, in both lanes; a shorter hold after it changes nothing.
async fn a_hold_from_one_replica_holds_every_replica(fleets: &[Fleet]) {
    let budgets: Vec<_> = fleets.iter().map(|f| SharedBudget::new(f, 100.0)).collect();
    budgets[0].hold(Duration::from_secs(30)).await.unwrap();
    budgets[0].hold(Duration::from_secs(1)).await.unwrap();
    let Answer::Slot { wait, .. } = budgets[1].ask(Lane::Live).await.unwrap() else {
        panic!("a live request was refused a slot");
    };
    assert!(wait > Duration::from_secs(29) && wait <= Duration::from_secs(30));
    let Answer::Later(later) = budgets[2].ask(Lane::Background).await.unwrap() else {
        panic!("a background request booked during a hold");
    };
    assert!(later > Duration::from_secs(29), "{later:?}");
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use crate::PostgresStore;
    use monite_webhooks_testkit::pg::PgServer;

    async fn fleets(server: &PgServer, namespace: &str) -> Vec<Fleet> {
        let url = server.url();
        let fleets = replicas(3, || async {
            Fleet::postgres(&PostgresStore::connect(&url, namespace).await.unwrap())
        })
        .await;
        // Every replica at once, as they start.
        let schemas = fleets.iter().map(Fleet::ensure_schema);
        for result in futures_util::future::join_all(schemas).await {
            result.unwrap();
        }
        fleets
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_schedule_is_shared_through_postgres() {
        let server = PgServer::start();
        slots_from_every_replica_are_one_interval_apart(&fleets(&server, "slots").await).await;
        live_requests_go_ahead_of_background_ones(&fleets(&server, "lanes").await).await;
        a_hold_from_one_replica_holds_every_replica(&fleets(&server, "hold").await).await;
    }
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use crate::RedisStore;
    use monite_webhooks_testkit::redis::RedisServer;

    async fn fleets(server: &RedisServer, namespace: &str) -> Vec<Fleet> {
        let url = server.url();
        replicas(3, || async {
            Fleet::redis(&RedisStore::connect(&url, namespace).await.unwrap())
        })
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_schedule_is_shared_through_redis() {
        let server = RedisServer::start();
        slots_from_every_replica_are_one_interval_apart(&fleets(&server, "slots").await).await;
        live_requests_go_ahead_of_background_ones(&fleets(&server, "lanes").await).await;
        a_hold_from_one_replica_holds_every_replica(&fleets(&server, "hold").await).await;
    }
}
