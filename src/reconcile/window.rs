//! The window one sweep of one entity covers: from its checkpoint less the lookback (events
//! committed late carry an earlier `created_at`) to Monite's time less a settling margin
//! (what Monite is still committing is left to the next sweep).

use std::fmt;
use std::time::Duration;

/// The span of `created_at` one sweep lists, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Window {
    /// `created_at__gte`.
    pub from: jiff::Timestamp,
    /// `created_at__lte`; the entity's checkpoint once every event in the window was handled.
    pub to: jiff::Timestamp,
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {}]", self.from, self.to)
    }
}

/// The lookback of the next sweep: the larger of `minimum` and twice the last sweep's
/// duration, so that an event committed while a long sweep ran is still inside the next.
#[must_use]
pub(super) fn lookback(minimum: Duration, last_sweep: Option<Duration>) -> Duration {
    last_sweep.map_or(minimum, |last| minimum.max(last.saturating_mul(2)))
}

/// The window after `checkpoint` (or from `first` for an entity without one), ending
/// `settle` before Monite's `now`; `None` when that end is not after the start.
#[must_use]
pub(super) fn window(
    checkpoint: Option<jiff::Timestamp>,
    first: jiff::Timestamp,
    lookback: Duration,
    now: jiff::Timestamp,
    settle: Duration,
) -> Option<Window> {
    let from = match checkpoint {
        Some(at) => at.checked_sub(signed(lookback)).ok()?,
        None => first,
    };
    let to = now.checked_sub(signed(settle)).ok()?;
    (to > from).then_some(Window { from, to })
}

/// `duration` for jiff's arithmetic, saturating.
pub(crate) fn signed(duration: Duration) -> jiff::SignedDuration {
    jiff::SignedDuration::try_from(duration).unwrap_or(jiff::SignedDuration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_window_starts_a_lookback_before_the_checkpoint_and_ends_before_monites_now() {
        let w = window(
            Some(at("2026-12-01T10:00:00Z")),
            at("2026-11-30T00:00:00Z"),
            Duration::from_secs(15 * 60),
            at("2026-12-01T10:05:00Z"),
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(w.from, at("2026-12-01T09:45:00Z"));
        assert_eq!(w.to, at("2026-12-01T10:04:30Z"));
    }

    #[test]
    fn an_entity_without_a_checkpoint_starts_at_the_first_time() {
        let w = window(
            None,
            at("2026-11-30T00:00:00Z"),
            Duration::from_secs(900),
            at("2026-12-01T00:00:00Z"),
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(w.from, at("2026-11-30T00:00:00Z"));
    }

    #[test]
    fn no_window_while_monites_time_is_within_the_margin() {
        let now = at("2026-12-01T00:00:00Z");
        assert_eq!(
            window(None, now, Duration::ZERO, now, Duration::from_secs(30)),
            None
        );
    }

    #[test]
    fn the_lookback_is_twice_a_long_last_sweep() {
        let minimum = Duration::from_secs(900);
        assert_eq!(lookback(minimum, None), minimum);
        assert_eq!(lookback(minimum, Some(Duration::from_secs(60))), minimum);
        assert_eq!(
            lookback(minimum, Some(Duration::from_secs(600))),
            Duration::from_secs(1200)
        );
    }
}
