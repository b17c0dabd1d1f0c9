//! Deliveries as Monite makes them: each recorded event POSTed to every enabled
//! subscription that covers it, signed with that subscription's secret; a failure retried
//! on Monite's schedule; after a week of failures the subscription disabled and its pending
//! attempts cancelled.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use jiff::{SignedDuration, Timestamp};

use super::state::{Attempt, Due, Shared, lock};
use crate::Secret;

/// Monite's retry intervals after the first attempt: 2, 5, 10, 15, 30 minutes, 1, 2, 4,
/// 8 hours, then every 8 hours.
pub const RETRY_INTERVALS: [Duration; 9] = [
    Duration::from_secs(2 * 60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(15 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(3600),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(4 * 3600),
    Duration::from_secs(8 * 3600),
];

/// How long a delivery is retried: after a week of failures, its subscription is disabled.
pub const RETRY_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// How many attempts at most are in flight at once.
const CONCURRENT_ATTEMPTS: usize = 64;

/// The offset from the first attempt of attempt `n` (0 is the first).
#[must_use]
pub fn attempt_offset(n: usize) -> Duration {
    let listed: Duration = RETRY_INTERVALS.iter().take(n).sum();
    let beyond = n.saturating_sub(RETRY_INTERVALS.len());
    // Every further attempt 8 hours after the one before.
    listed + RETRY_INTERVALS[RETRY_INTERVALS.len() - 1] * u32::try_from(beyond).unwrap_or(u32::MAX)
}

fn signed(duration: Duration) -> SignedDuration {
    SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
}

/// What falls due next, on the emulated clock.
fn next_due(shared: &Shared) -> Option<Timestamp> {
    lock(&shared.state)
        .deliveries
        .iter()
        .filter_map(|d| d.next.map(|(at, _)| at))
        .min()
}

/// The sender: makes attempts as they fall due on the emulated clock, until `stop`.
pub(super) async fn run(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let wait = match next_due(&shared) {
            Some(at) => shared.clock.wall_until(at),
            None => Duration::from_secs(3600),
        };
        if wait.is_zero() {
            let _turn = shared.sending.lock().await;
            let now = shared.clock.now();
            make_due(&shared, now).await;
            continue;
        }
        tokio::select! {
            () = shared.wake.notified() => {}
            () = tokio::time::sleep(wait.min(Duration::from_secs(1))) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Moves the clock forward by `by`, making every attempt that falls due on the way, in
/// order, each at its own time.
pub(super) async fn advance(shared: &Shared, by: Duration) {
    let _turn = shared.sending.lock().await;
    let target = shared
        .clock
        .now()
        .saturating_add(signed(by))
        .unwrap_or(Timestamp::MAX);
    while let Some(at) = next_due(shared).filter(|at| *at <= target) {
        shared.clock.advance_to(at);
        make_due(shared, at).await;
    }
    shared.clock.advance_to(target);
}

/// One attempt to make: the delivery, where, what, signed with which secret.
struct Send {
    delivery: usize,
    at: Timestamp,
    url: String,
    body: bytes::Bytes,
    secret: String,
}

/// Makes every attempt due at or before `now`, and disables the subscriptions whose week
/// of failures ends by then.
async fn make_due(shared: &Shared, now: Timestamp) {
    let sends: Vec<Send> = {
        let mut state = lock(&shared.state);
        let mut disable = Vec::new();
        let mut sends = Vec::new();
        for (index, delivery) in state.deliveries.iter_mut().enumerate() {
            match delivery.next {
                Some((at, Due::Disable)) if at <= now => {
                    delivery.next = None;
                    disable.extend(delivery.subscription_id.clone());
                }
                Some((at, Due::Attempt)) if at <= now => {
                    delivery.next = None;
                    sends.push((index, at));
                }
                _ => {}
            }
        }
        for id in disable {
            if let Some(subscription) = state.subscription_mut(&id) {
                subscription.enabled = false;
            }
            state.cancel_pending(&id);
        }
        sends
            .into_iter()
            .filter_map(|(index, at)| {
                let delivery = &state.deliveries[index];
                let subscription = delivery.subscription_id.as_deref()?;
                let secret = state
                    .subscriptions
                    .iter()
                    .find(|s| s.id == subscription && s.enabled)?
                    .secret
                    .clone();
                Some(Send {
                    delivery: index,
                    at,
                    url: delivery.url.clone(),
                    body: delivery.body.clone(),
                    secret,
                })
            })
            .collect()
    };
    let results: Vec<(Send, Attempt)> = futures_util::stream::iter(sends)
        .map(|send| async move {
            let attempt = attempt(shared, &send).await;
            (send, attempt)
        })
        .buffer_unordered(CONCURRENT_ATTEMPTS)
        .collect()
        .await;
    let mut state = lock(&shared.state);
    for (send, attempt) in results {
        let ok = attempt.status.is_some_and(|s| (200..300).contains(&s));
        let delivery = &mut state.deliveries[send.delivery];
        delivery.attempts.push(attempt);
        if ok {
            continue;
        }
        let first = delivery.attempts.first().map_or(send.at, |a| a.at);
        let offset = attempt_offset(delivery.attempts.len());
        delivery.next = Some(if offset < RETRY_WINDOW {
            (
                first
                    .saturating_add(signed(offset))
                    .unwrap_or(Timestamp::MAX),
                Due::Attempt,
            )
        } else {
            (
                first
                    .saturating_add(signed(RETRY_WINDOW))
                    .unwrap_or(Timestamp::MAX),
                Due::Disable,
            )
        });
    }
}

/// One POST of a delivery, signed at the wall clock's time of sending so that a receiver's
/// tolerance check holds whatever the emulated clock says.
async fn attempt(shared: &Shared, send: &Send) -> Attempt {
    let failed = |why: String| Attempt {
        at: send.at,
        status: None,
        response: Some(why),
    };
    let secret = match Secret::new(&send.secret) {
        Ok(secret) => secret,
        Err(e) => return failed(format!("the subscription's secret is unusable: {e}")),
    };
    let signature = super::super::sign(&secret, crate::clock::unix_now(), &send.body);
    let answer = shared
        .http
        .post(&send.url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("monite-signature", signature)
        .timeout(shared.delivery_timeout)
        .body(send.body.clone())
        .send()
        .await;
    match answer {
        Ok(answer) => {
            let status = answer.status().as_u16();
            let body = answer.text().await.unwrap_or_default();
            Attempt {
                at: send.at,
                status: Some(status),
                response: Some(body.chars().take(1000).collect()),
            }
        }
        Err(e) if e.is_timeout() => failed("timed out".to_owned()),
        Err(e) if e.is_connect() => failed("connection refused".to_owned()),
        Err(e) => failed(format!("no answer: {e}")),
    }
}
