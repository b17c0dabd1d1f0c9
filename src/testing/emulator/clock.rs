//! The emulator's own clock: it starts at the wall clock, runs `time_scale` times as fast,
//! and jumps forward on demand, so that a week of retries takes a moment.

use std::sync::Mutex;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};

/// Emulated time: the wall clock at start, plus the scaled time run since, plus every jump.
#[derive(Debug)]
pub(super) struct EmulatedClock {
    origin: Timestamp,
    started: Instant,
    scale: f64,
    jumped: Mutex<SignedDuration>,
}

impl EmulatedClock {
    pub(super) fn new(scale: f64) -> Self {
        Self {
            origin: Timestamp::now(),
            started: Instant::now(),
            scale,
            jumped: Mutex::new(SignedDuration::ZERO),
        }
    }

    /// Now, on the emulated clock.
    pub(super) fn now(&self) -> Timestamp {
        let run = std::time::Duration::try_from_secs_f64(
            self.started.elapsed().as_secs_f64() * self.scale,
        )
        .unwrap_or(std::time::Duration::MAX);
        let run = SignedDuration::try_from(run).unwrap_or(SignedDuration::MAX);
        let jumped = *self.jumped.lock().unwrap_or_else(|e| e.into_inner());
        self.origin
            .checked_add(run.saturating_add(jumped))
            .unwrap_or(Timestamp::MAX)
    }

    /// Moves the clock forward to `at`; never backward.
    pub(super) fn advance_to(&self, at: Timestamp) {
        let now = self.now();
        if at > now {
            let mut jumped = self.jumped.lock().unwrap_or_else(|e| e.into_inner());
            *jumped = jumped.saturating_add(at.duration_since(now));
        }
    }

    /// How long, on the wall clock, until the emulated clock reads `at` (zero if it has).
    pub(super) fn wall_until(&self, at: Timestamp) -> std::time::Duration {
        let ahead = at.duration_since(self.now());
        if ahead.is_negative() || ahead.is_zero() {
            return std::time::Duration::ZERO;
        }
        std::time::Duration::try_from_secs_f64(ahead.as_secs_f64() / self.scale)
            .unwrap_or(std::time::Duration::MAX)
    }
}

/// `at` as Monite writes `created_at`: RFC 3339, microseconds, `+00:00`.
pub(super) fn rfc3339(at: Timestamp) -> String {
    at.round(jiff::Unit::Microsecond)
        .unwrap_or(at)
        .strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string()
}

/// `at` as an HTTP `Date` header value (RFC 9110).
pub(super) fn http_date(at: Timestamp) -> String {
    jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&at)
        .unwrap_or_default()
}
