//! The rate budget every call of a `Client` (and its clones) shares, against the fake
//! Monite, which enforces Monite's 30 requests per second with `429` and `Retry-After`.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::TryStreamExt as _;
use http::StatusCode;
use monite_webhooks::client::{Client, Environment, Timer};
use support::client::fault;
use support::fake_monite::{self, CLIENT_ID, CLIENT_SECRET};

fn client(addr: std::net::SocketAddr, max_rate: f64) -> monite_webhooks::client::ClientBuilder {
    Client::builder(Environment::Custom(format!("http://{addr}/v1")))
        .credentials(CLIENT_ID, CLIENT_SECRET)
        .max_rate(max_rate)
}

#[test]
fn the_client_is_shareable() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Client>();
}

/// Clones used from many tasks at once still share one budget: the fake never sees more
/// than the budget in any second, and so never throttles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_used_at_once_stay_within_one_shared_budget() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr, 20.0).build().unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    let all: Vec<_> = client
                        .webhook_subscriptions()
                        .list(Default::default())
                        .try_collect()
                        .await
                        .unwrap();
                    assert!(all.is_empty());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // 100 listings and one token request.
    assert!(fake.requests() >= 101);
    // A one-second window can hold the slots at both of its ends.
    let most = fake.max_requests_in_a_second();
    assert!(most <= 21, "{most} requests within one second, budget 20");
    assert_eq!(fake.throttled(), 0);
    assert_eq!(client.rate_limited_count(), 0);
}

/// A client set above Monite's limit is throttled, waits as told, and every call still
/// succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_the_limit_obeys_retry_after_and_succeeds() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr, 200.0).max_retries(10).build().unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    client
                        .webhook_subscriptions()
                        .list(Default::default())
                        .try_collect::<Vec<_>>()
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let throttled = fake.throttled();
    assert!(throttled > 0, "the fake never throttled a client at 200/s");
    assert_eq!(client.rate_limited_count(), throttled as u64);
}

/// A timer that never sleeps: it moves its clock on by what was asked, and records it.
#[derive(Clone)]
struct VirtualTimer {
    start: Instant,
    advanced: Arc<Mutex<Duration>>,
    sleeps: Arc<Mutex<Vec<Duration>>>,
}

impl VirtualTimer {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            advanced: Arc::default(),
            sleeps: Arc::default(),
        }
    }
}

impl Timer for VirtualTimer {
    fn now(&self) -> Instant {
        self.start + *self.advanced.lock().unwrap()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        *self.advanced.lock().unwrap() += duration;
        self.sleeps.lock().unwrap().push(duration);
        Box::pin(std::future::ready(()))
    }
}

/// `Retry-After: 3` is waited exactly, through the timer seam (no real sleep), and the
/// requests that follow keep the budget's spacing.
#[tokio::test]
async fn retry_after_is_waited_exactly_through_the_timer() {
    let (addr, fake) = fake_monite::start().await;
    let timer = VirtualTimer::new();
    let client = client(addr, 6.0).timer(timer.clone()).build().unwrap();
    // The token request first, so that the fault meets the listing.
    client
        .webhook_subscriptions()
        .list(Default::default())
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    timer.sleeps.lock().unwrap().clear();
    fake.inject(fault(
        "/v1/webhook_subscriptions",
        StatusCode::TOO_MANY_REQUESTS,
        Some(3),
    ));
    client
        .webhook_subscriptions()
        .list(Default::default())
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let sleeps = timer.sleeps.lock().unwrap().clone();
    assert!(
        sleeps.contains(&Duration::from_secs(3)),
        "Retry-After 3 not waited: {sleeps:?}"
    );
    let slept: Duration = sleeps.iter().sum();
    assert!(slept >= Duration::from_secs(3), "{sleeps:?}");
    assert_eq!(client.rate_limited_count(), 1);
}

/// At 6 requests per second, 13 requests take 2 s of the timer's time and no less.
#[tokio::test]
async fn requests_are_spaced_by_the_budget_on_the_timer() {
    let (addr, _fake) = fake_monite::start().await;
    let timer = VirtualTimer::new();
    let client = client(addr, 6.0).timer(timer.clone()).build().unwrap();
    for _ in 0..12 {
        client
            .webhook_subscriptions()
            .list(Default::default())
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
    }
    let elapsed = timer.now() - timer.start;
    // 13 requests (a token, 12 listings): 12 gaps of 1/6 s; real time passing between
    // requests counts too, on top.
    let gaps = Duration::from_secs(2);
    assert!(
        elapsed + Duration::from_millis(1) >= gaps,
        "{elapsed:?} on the timer for 13 requests at 6/s"
    );
    assert!(
        client.monite_now().is_some(),
        "the fake's Date was not kept"
    );
}
