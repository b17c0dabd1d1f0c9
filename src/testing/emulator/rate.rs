//! Monite's rate limit: at most so many requests in any one second, `429` with
//! `Retry-After` past it, `RateLimit-*` headers below it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Monite's documented limit, requests per second.
pub const DEFAULT_RATE_LIMIT: usize = 30;

/// The arrivals of the last second, and the most seen in any one second.
#[derive(Debug, Default)]
pub(super) struct Arrivals {
    recent: VecDeque<Instant>,
    most: usize,
}

impl Arrivals {
    /// Counts a request arriving now; answers how many arrived in the last second, it
    /// included.
    pub(super) fn arrive(&mut self, now: Instant) -> usize {
        while self
            .recent
            .front()
            .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(1))
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        self.most = self.most.max(self.recent.len());
        self.recent.len()
    }

    /// The most requests that arrived within any one second.
    pub(super) fn most(&self) -> usize {
        self.most
    }
}

/// The decision for one request under `limit`: `Err(())` past it, or the `RateLimit-*`
/// values (limit, remaining) below it.
pub(super) fn decide(
    limit: Option<usize>,
    in_last_second: usize,
) -> Result<Option<(usize, usize)>, ()> {
    match limit {
        None => Ok(None),
        Some(limit) if in_last_second > limit => Err(()),
        Some(limit) => Ok(Some((limit, limit - in_last_second))),
    }
}
