//! The rate budget: one schedule shared by every request a [`Client`](super::Client) and its
//! clones send, so a process stays under its share of Monite's limit (30 requests/s by
//! default) however many tasks use it; `Retry-After` holds every caller back, and a
//! `RateLimit-Remaining` running low spreads what is left until the reset.
//!
//! Two lanes share the schedule. Every request takes the next free slot, in the order they
//! ask, except that a request in the lane ahead (a fetch of the object a live event is
//! about) takes the earliest slot still waiting in the other lane, whose holders each move
//! one slot back: a fetch never waits behind a reconciliation sweep's queue.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::HeaderMap;

/// The default budget: a fifth of Monite's default limit of 30 requests per second.
pub const DEFAULT_MAX_RATE: f64 = 6.0;

/// A `Retry-After` longer than this is not waited out: the request fails instead.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// Below this share of `RateLimit-Limit` left, requests are spread over what remains until
/// `RateLimit-Reset`.
const LOW_REMAINING: f64 = 0.2;

/// Where the client reads the time and waits: the real clock and tokio's timer by default
/// ([`TokioTimer`]); a test or a simulation passes its own to
/// [`ClientBuilder::timer`](super::ClientBuilder::timer).
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::sync::{Arc, Mutex};
/// use std::time::{Duration, Instant};
/// use monite_webhooks::client::{Client, Environment, Timer};
///
/// /// A clock that jumps ahead instead of waiting: a simulation runs in no time.
/// #[derive(Clone)]
/// struct Jumping(Arc<Mutex<Instant>>);
///
/// impl Timer for Jumping {
///     fn now(&self) -> Instant {
///         *self.0.lock().unwrap()
///     }
///     fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
///         *self.0.lock().unwrap() += duration;
///         Box::pin(std::future::ready(()))
///     }
/// }
///
/// # fn build() -> Result<(), monite_webhooks::Error> {
/// let client = Client::builder(Environment::Sandbox)
///     .credentials("client id", "client secret")
///     .timer(Jumping(Arc::new(Mutex::new(Instant::now()))))
///     .build()?;
/// # let _ = client; Ok(()) }
/// # build().unwrap();
/// ```
pub trait Timer: Send + Sync + 'static {
    /// Now, on a monotonic clock.
    fn now(&self) -> Instant;
    /// Waits `duration`.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// The real monotonic clock and `tokio::time::sleep`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioTimer;

impl Timer for TokioTimer {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The shared schedule: each request reserves the next free slot, `1 / rate` after the one
/// before (no burst, so no second ever holds more than `rate` requests, plus the one on its
/// boundary).
pub(super) struct Budget {
    interval: Duration,
    state: Mutex<State>,
    rate_limited: AtomicU64,
}

struct State {
    /// The earliest instant the next request may go.
    next_free: Option<Instant>,
    /// No request before this (a `Retry-After`, or a quota spent until its reset).
    hold_until: Option<Instant>,
    /// The gap between requests while the quota runs low; at least `interval`.
    stretched: Option<(Duration, Instant)>,
    /// Slots of the ordinary lane still waiting, earliest first: a ticket and its instant.
    queued: VecDeque<(u64, Instant)>,
    next_ticket: u64,
}

/// What one answer told the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Observed {
    /// The answer's `Retry-After`.
    pub(super) retry_after: Option<Duration>,
    /// The hold it set on every caller, if any.
    pub(super) hold: Option<Hold>,
}

/// A hold on every caller: no request for `wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hold {
    pub(super) wait: Duration,
    /// A `429` (else the quota spent until its reset).
    pub(super) rate_limited: bool,
}

/// A slot held in the ordinary lane, which a request ahead may move back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ticket(u64);

impl Budget {
    /// `max_rate` requests per second (at least one per hour).
    pub(super) fn new(max_rate: f64) -> Self {
        let rate = if max_rate.is_finite() && max_rate > 0.0 {
            max_rate
        } else {
            DEFAULT_MAX_RATE
        };
        Self {
            interval: Duration::from_secs_f64((1.0 / rate).min(3600.0)),
            state: Mutex::new(State {
                next_free: None,
                hold_until: None,
                stretched: None,
                queued: VecDeque::new(),
                next_ticket: 0,
            }),
            rate_limited: AtomicU64::new(0),
        }
    }

    /// How long to wait before sending, having reserved a slot: call, then sleep that long.
    #[cfg(test)]
    pub(super) fn reserve(&self, now: Instant) -> Duration {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.next_slot(&mut state, now) - now
    }

    /// Reserves a slot in the ordinary lane: sleep the wait, then ask [`Budget::recheck`]
    /// whether a request ahead moved the slot back.
    pub(super) fn reserve_queued(&self, now: Instant) -> (Ticket, Duration) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let at = self.next_slot(&mut state, now);
        forget_due(&mut state.queued, now);
        let ticket = state.next_ticket;
        state.next_ticket = ticket.wrapping_add(1);
        if at > now {
            state.queued.push_back((ticket, at));
        }
        (Ticket(ticket), at - now)
    }

    /// How much longer `ticket` waits: zero once its slot has come.
    pub(super) fn recheck(&self, ticket: Ticket, now: Instant) -> Duration {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(index) = state.queued.iter().position(|(t, _)| *t == ticket.0) else {
            return Duration::ZERO;
        };
        let at = state.queued[index].1;
        if at > now {
            return at - now;
        }
        state.queued.remove(index);
        Duration::ZERO
    }

    /// Reserves a slot in the lane ahead: the earliest one an ordinary request is still
    /// waiting for, if any (that request and those after it move one slot back), else the
    /// next free one. Returns how long to wait.
    pub(super) fn reserve_ahead(&self, now: Instant) -> Duration {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut at = self.next_slot(&mut state, now);
        forget_due(&mut state.queued, now);
        // Each waiting slot passes to the next; the last waiter takes the new slot.
        for (_, slot) in state.queued.iter_mut().rev() {
            std::mem::swap(slot, &mut at);
        }
        at - now
    }

    /// Takes the next free slot (no request sooner than `hold_until`), one gap after it.
    fn next_slot(&self, state: &mut State, now: Instant) -> Instant {
        let gap = match state.stretched {
            Some((gap, until)) if now < until => gap,
            _ => self.interval,
        };
        let mut at = now;
        for bound in [state.next_free, state.hold_until].into_iter().flatten() {
            at = at.max(bound);
        }
        state.next_free = Some(at + gap);
        at
    }

    /// Takes what an answer's headers say about the quota: a 429's `Retry-After` holds
    /// every caller back; a low `RateLimit-Remaining` spreads the rest until the reset.
    /// Returns the `Retry-After` wait, if the answer had one, and the hold it set, if any
    /// (for the fleet's budget to hold every replica back too).
    pub(super) fn observe(&self, now: Instant, status: u16, headers: &HeaderMap) -> Observed {
        let retry_after = retry_after(headers);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if status == 429 {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
            // Without `Retry-After`, hold back one second: Monite's quota is per second.
            let wait = retry_after
                .unwrap_or(Duration::from_secs(1))
                .min(MAX_RETRY_AFTER);
            let until = now + wait;
            state.hold_until = Some(state.hold_until.map_or(until, |h| h.max(until)));
            return Observed {
                retry_after,
                hold: Some(Hold {
                    wait,
                    rate_limited: true,
                }),
            };
        }
        let mut hold = None;
        if let (Some(remaining), Some(reset)) =
            (number(headers, "ratelimit-remaining"), reset_in(headers))
        {
            let limit = number(headers, "ratelimit-limit").unwrap_or(30.0).max(1.0);
            if remaining < 1.0 {
                let until = now + reset;
                state.hold_until = Some(state.hold_until.map_or(until, |h| h.max(until)));
                hold = Some(Hold {
                    wait: reset,
                    rate_limited: false,
                });
            } else if remaining / limit < LOW_REMAINING {
                let gap = reset.div_f64(remaining).max(self.interval);
                state.stretched = Some((gap, now + reset));
            }
        }
        Observed { retry_after, hold }
    }

    /// 429 answers seen so far.
    pub(super) fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// The budget, in requests per second.
    pub(super) fn max_rate(&self) -> f64 {
        1.0 / self.interval.as_secs_f64()
    }
}

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budget")
            .field("max_rate", &self.max_rate())
            .finish_non_exhaustive()
    }
}

/// Slots whose time has come are being used (or were given up): none is moved back.
fn forget_due(queued: &mut VecDeque<(u64, Instant)>, now: Instant) {
    while queued.front().is_some_and(|(_, at)| *at <= now) {
        queued.pop_front();
    }
}

/// `Retry-After` as seconds or as an HTTP-date (RFC 9110), the latter measured against the
/// answer's own `Date` so that a clock apart from Monite's changes nothing.
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = http_date(text)?;
    let now = headers
        .get("date")
        .and_then(|v| v.to_str().ok())
        .and_then(http_date)
        .unwrap_or_else(jiff::Timestamp::now);
    Some(at.duration_since(now).try_into().unwrap_or(Duration::ZERO))
}

/// An HTTP-date (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(super) fn http_date(text: &str) -> Option<jiff::Timestamp> {
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(text.trim())
        .ok()
}

/// `RateLimit-Reset` as seconds until the reset or as the Unix time of it (the draft
/// allows both; a number past 10⁹ is a time), the latter measured against the answer's
/// own `Date`, as [`retry_after`] does, so that a clock apart from Monite's changes nothing.
fn reset_in(headers: &HeaderMap) -> Option<Duration> {
    let value = number(headers, "ratelimit-reset")?;
    let seconds = if value >= 1e9 {
        let now = headers
            .get("date")
            .and_then(|v| v.to_str().ok())
            .and_then(http_date)
            .unwrap_or_else(jiff::Timestamp::now);
        value - now.as_millisecond() as f64 / 1000.0
    } else {
        value
    };
    Some(Duration::from_secs_f64(seconds.clamp(0.0, 3600.0)))
}

fn number(headers: &HeaderMap, name: &str) -> Option<f64> {
    let value: f64 = headers.get(name)?.to_str().ok()?.trim().parse().ok()?;
    value.is_finite().then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn slots_are_one_interval_apart_whoever_asks() {
        let budget = Budget::new(5.0);
        let start = Instant::now();
        let waits: Vec<_> = (0..4).map(|_| budget.reserve(start)).collect();
        assert_eq!(waits, [0, 200, 400, 600].map(Duration::from_millis));
        // Later callers after a quiet spell start at once again.
        assert_eq!(
            budget.reserve(start + Duration::from_secs(10)),
            Duration::ZERO
        );
    }

    #[test]
    fn a_request_ahead_takes_the_earliest_waiting_slot() {
        let budget = Budget::new(5.0);
        let start = Instant::now();
        let (first, wait) = budget.reserve_queued(start);
        assert_eq!(wait, Duration::ZERO);
        let (second, wait) = budget.reserve_queued(start);
        assert_eq!(wait, Duration::from_millis(200));
        let (third, _) = budget.reserve_queued(start);
        // Ahead of the two still waiting: the second's slot; they move back one each.
        assert_eq!(budget.reserve_ahead(start), Duration::from_millis(200));
        assert_eq!(budget.recheck(first, start), Duration::ZERO);
        let later = start + Duration::from_millis(200);
        assert_eq!(budget.recheck(second, later), Duration::from_millis(200));
        assert_eq!(budget.recheck(third, later), Duration::from_millis(400));
        assert_eq!(
            budget.recheck(second, start + Duration::from_millis(400)),
            Duration::ZERO
        );
        // Nothing waiting: the next free slot, as any request.
        let quiet = start + Duration::from_secs(10);
        assert_eq!(budget.reserve_ahead(quiet), Duration::ZERO);
    }

    #[test]
    fn retry_after_in_seconds_holds_every_caller_back() {
        let budget = Budget::new(100.0);
        let now = Instant::now();
        let said = budget.observe(now, 429, &headers(&[("retry-after", "7")]));
        assert_eq!(said.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(
            said.hold,
            Some(Hold {
                wait: Duration::from_secs(7),
                rate_limited: true
            })
        );
        assert_eq!(budget.reserve(now), Duration::from_secs(7));
        assert_eq!(budget.rate_limited(), 1);
    }

    #[test]
    fn retry_after_as_an_http_date_counts_from_the_answers_date() {
        let h = headers(&[
            ("retry-after", "Wed, 02 Dec 2026 00:00:30 GMT"),
            ("date", "Wed, 02 Dec 2026 00:00:03 GMT"),
        ]);
        assert_eq!(retry_after(&h), Some(Duration::from_secs(27)));
    }

    #[test]
    fn a_quota_running_low_spreads_the_rest_until_the_reset() {
        let budget = Budget::new(6.0);
        let now = Instant::now();
        let h = headers(&[
            ("ratelimit-limit", "30"),
            ("ratelimit-remaining", "2"),
            ("ratelimit-reset", "1"),
        ]);
        budget.observe(now, 200, &h);
        budget.reserve(now);
        assert_eq!(budget.reserve(now), Duration::from_millis(500));
        let spent = headers(&[("ratelimit-remaining", "0"), ("ratelimit-reset", "3")]);
        let later = now + Duration::from_secs(5);
        let said = budget.observe(later, 200, &spent);
        assert_eq!(
            said.hold.map(|h| (h.wait, h.rate_limited)),
            Some((Duration::from_secs(3), false))
        );
        assert_eq!(budget.reserve(later), Duration::from_secs(3));
    }

    #[test]
    fn a_reset_given_as_a_unix_time_counts_from_the_answers_date() {
        // Monite's clock an hour ahead of ours: the reset is 5 s away on its clock.
        let h = headers(&[
            ("ratelimit-reset", "1796169605"),
            ("date", "Wed, 02 Dec 2026 00:00:00 GMT"),
        ]);
        let date: jiff::Timestamp = "2026-12-02T00:00:00Z".parse().unwrap();
        assert_eq!(date.as_second(), 1_796_169_600);
        assert_eq!(reset_in(&h), Some(Duration::from_secs(5)));
    }

    #[test]
    fn a_reset_given_as_a_unix_time_is_read_as_one() {
        let at = jiff::Timestamp::now().as_second() + 20;
        let h = headers(&[("ratelimit-reset", &at.to_string())]);
        let reset = reset_in(&h).unwrap();
        assert!(reset <= Duration::from_secs(20) && reset >= Duration::from_secs(18));
    }
}
