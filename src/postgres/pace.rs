//! A gate that opens at most once per interval across the tasks of a process: how often a
//! store deletes expired rows, and how often the inbox's workers rescue lapsed leases,
//! prune and sample the backlog.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub(crate) struct Pace {
    interval_ms: u64,
    epoch: Instant,
    // Milliseconds since `epoch` of the last opening, plus one; 0 before the first.
    last: AtomicU64,
}

impl Pace {
    pub(crate) fn every(interval: Duration) -> Self {
        Self {
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            epoch: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// True for the one caller that takes this interval's turn; the first call always is.
    pub(crate) fn due(&self) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = self.last.load(Ordering::Relaxed);
        (last == 0 || now.saturating_sub(last) >= self.interval_ms)
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Makes the next call due at once: the work it paces is not finished.
    pub(crate) fn again(&self) {
        self.last.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_once_per_interval() {
        let pace = Pace::every(Duration::from_secs(3600));
        assert!(pace.due(), "the first call");
        assert!(!pace.due(), "within the interval");
        pace.again();
        assert!(pace.due(), "after again");
        let always = Pace::every(Duration::ZERO);
        assert!(
            always.due() && always.due(),
            "a zero interval is always due"
        );
    }
}
