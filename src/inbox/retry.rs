//! When a failed event is tried again: a schedule of delays, a maximum number of attempts,
//! and jitter through a seam tests replace.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use super::store::AfterFailure;

/// Attempts before an event goes `dead` by default: about River's 25.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 25;

/// Spreads a delay so that events failed together do not come back together.
///
/// Implemented for every `Fn(Duration) -> Duration`; tests give the identity.
pub trait Jitter: Send + Sync + 'static {
    /// The delay to wait instead of `delay`.
    fn jitter(&self, delay: Duration) -> Duration;
}

impl<F: Fn(Duration) -> Duration + Send + Sync + 'static> Jitter for F {
    fn jitter(&self, delay: Duration) -> Duration {
        self(delay)
    }
}

/// The default jitter: a random delay between 75% and 125% of the scheduled one, from
/// the standard library's randomly keyed hasher (no random-number crate needed).
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomJitter;

impl Jitter for RandomJitter {
    fn jitter(&self, delay: Duration) -> Duration {
        let mut hasher = std::hash::RandomState::new().build_hasher();
        hasher.write_u64(delay.as_nanos() as u64);
        // 0..=1000 thousandths of the half-width around the delay.
        let thousandths = hasher.finish() % 1001;
        let quarter = delay / 4;
        // Saturating: `delay + quarter` overflows for delays near `Duration::MAX`.
        let spread = (quarter.saturating_mul(2)).mul_f64(thousandths as f64 / 1000.0);
        delay.saturating_sub(quarter).saturating_add(spread)
    }
}

/// The delays between attempts and how many attempts an event gets.
///
/// The `n`-th failure waits the `n`-th delay of the schedule (the last one repeats), then
/// jitter; after `max_attempts` attempts the event is `dead`. The default doubles from 5
/// seconds up to an hour, then hourly, for 25 attempts: about a day.
///
/// ```
/// use std::time::Duration;
/// use monite_webhooks::inbox::RetrySchedule;
///
/// let schedule = RetrySchedule::new([Duration::from_secs(10), Duration::from_secs(60)], 5)
///     .with_jitter(|delay| delay);
/// assert_eq!(schedule.delays().len(), 2);
/// ```
#[derive(Clone)]
pub struct RetrySchedule {
    delays: Arc<[Duration]>,
    max_attempts: u32,
    jitter: Arc<dyn Jitter>,
}

impl RetrySchedule {
    /// Waits the given delays in turn (the last repeats; none means no wait), at most
    /// `max_attempts` attempts in all (at least 1).
    pub fn new(delays: impl IntoIterator<Item = Duration>, max_attempts: u32) -> Self {
        Self {
            delays: delays.into_iter().collect(),
            max_attempts: max_attempts.max(1),
            jitter: Arc::new(RandomJitter),
        }
    }

    /// Replaces the jitter (default [`RandomJitter`]); `|delay| delay` for none.
    #[must_use]
    pub fn with_jitter(mut self, jitter: impl Jitter) -> Self {
        self.jitter = Arc::new(jitter);
        self
    }

    /// The scheduled delays, before jitter.
    #[must_use]
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// How many attempts an event gets.
    #[must_use]
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// What follows the failure of attempt number `attempt` (from 1). A jitter that panics
    /// gives way to the scheduled delay, unjittered.
    #[must_use]
    pub fn after_failure(&self, attempt: i32) -> AfterFailure {
        let attempt = u32::try_from(attempt).unwrap_or(0).max(1);
        if attempt >= self.max_attempts {
            return AfterFailure::Dead;
        }
        let index = usize::try_from(attempt - 1).unwrap_or(usize::MAX);
        let delay = self
            .delays
            .get(index)
            .or(self.delays.last())
            .copied()
            .unwrap_or_default();
        // A panic here would unwind through the worker settling the event.
        let jittered = catch_unwind(AssertUnwindSafe(|| self.jitter.jitter(delay)));
        AfterFailure::RetryIn(jittered.unwrap_or(delay))
    }
}

impl Default for RetrySchedule {
    fn default() -> Self {
        let doubling = (0..10).map(|n| Duration::from_secs(5 << n).min(Duration::from_secs(3600)));
        Self::new(doubling, DEFAULT_MAX_ATTEMPTS)
    }
}

impl fmt::Debug for RetrySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetrySchedule")
            .field("delays", &self.delays)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_repeats_its_last_delay_then_buries() {
        let schedule = RetrySchedule::new([Duration::from_secs(1), Duration::from_secs(7)], 4)
            .with_jitter(|delay| delay);
        assert_eq!(
            schedule.after_failure(1),
            AfterFailure::RetryIn(Duration::from_secs(1))
        );
        assert_eq!(
            schedule.after_failure(2),
            AfterFailure::RetryIn(Duration::from_secs(7))
        );
        assert_eq!(
            schedule.after_failure(3),
            AfterFailure::RetryIn(Duration::from_secs(7))
        );
        assert_eq!(schedule.after_failure(4), AfterFailure::Dead);
    }

    #[test]
    fn random_jitter_saturates_near_the_largest_delay() {
        for delay in [
            Duration::MAX,
            Duration::MAX / 4 * 3,
            Duration::MAX - Duration::from_secs(1),
        ] {
            for _ in 0..100 {
                let jittered = RandomJitter.jitter(delay);
                assert!(
                    jittered >= delay - delay / 4,
                    "{delay:?} became {jittered:?}"
                );
            }
        }
    }

    #[test]
    fn a_panicking_jitter_gives_way_to_the_scheduled_delay() {
        let schedule = RetrySchedule::new([Duration::from_secs(1)], 3)
            .with_jitter(|delay: Duration| delay - Duration::from_secs(10));
        assert_eq!(
            schedule.after_failure(1),
            AfterFailure::RetryIn(Duration::from_secs(1))
        );
    }

    #[test]
    fn random_jitter_stays_within_a_quarter() {
        for _ in 0..1000 {
            let jittered = RandomJitter.jitter(Duration::from_secs(100));
            assert!((75..=125).contains(&jittered.as_secs()), "{jittered:?}");
        }
    }
}
