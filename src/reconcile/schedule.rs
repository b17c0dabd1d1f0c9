//! Which entities a cycle sweeps: every entity active in the last day ("hot": swept every
//! cycle, so every few minutes), and the others in turn, a slice per cycle; all of them in
//! a deep sweep.

use std::collections::HashMap;
use std::time::Duration;

/// An entity is hot while its last event is younger than this.
pub const HOT_FOR: Duration = Duration::from_secs(24 * 60 * 60);

/// How often hot entities are swept when cycles start this often: by default a cycle takes
/// no more entities than the rate budget sweeps in this time.
pub const HOT_EVERY: Duration = Duration::from_secs(5 * 60);

/// The share of a cycle's requests planned for first pages; the rest is left for longer
/// windows, entity listing and retries.
const PLANNED_SHARE: f64 = 0.8;

/// How many entities without recent activity one cycle sweeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum ColdPerCycle {
    /// At most this many.
    Fixed(usize),
    /// What is left of [`HOT_EVERY`] at this many requests per second once the hot
    /// entities are swept (one request each, planned at [`PLANNED_SHARE`]); at least one.
    Budget(f64),
}

impl ColdPerCycle {
    fn count(self, hot: usize) -> usize {
        match self {
            Self::Fixed(count) => count,
            Self::Budget(rate) => {
                let planned = rate * HOT_EVERY.as_secs_f64() * PLANNED_SHARE;
                // Saturating float-to-int cast: a huge budget means "all of them".
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let planned = planned as usize;
                planned.saturating_sub(hot).max(1)
            }
        }
    }
}

/// The entities of one cycle, in the order listed: the hot ones, then `cold_per_cycle` of
/// the others from `cursor` on (wrapping). Returns them and the next cursor.
pub(super) fn pick(
    entities: &[String],
    last_activity: &HashMap<String, jiff::Timestamp>,
    now: jiff::Timestamp,
    cold_per_cycle: ColdPerCycle,
    cursor: usize,
) -> (Vec<String>, usize) {
    let hot_since = now
        .checked_sub(super::window::signed(HOT_FOR))
        .unwrap_or(now);
    let is_hot = |id: &String| last_activity.get(id).is_some_and(|at| *at >= hot_since);
    let (hot, cold): (Vec<&String>, Vec<&String>) = entities.iter().partition(|id| is_hot(id));
    let mut picked: Vec<String> = hot.into_iter().cloned().collect();
    if cold.is_empty() {
        return (picked, 0);
    }
    let take = cold_per_cycle.count(picked.len()).min(cold.len());
    let start = cursor % cold.len();
    picked.extend((0..take).map(|i| cold[(start + i) % cold.len()].clone()));
    (picked, (start + take) % cold.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_entities_every_cycle_the_others_in_turn() {
        let ids: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let now: jiff::Timestamp = "2026-12-02T00:00:00Z".parse().unwrap();
        let active = HashMap::from([("c".to_owned(), now)]);
        let (first, cursor) = pick(&ids, &active, now, ColdPerCycle::Fixed(2), 0);
        assert_eq!(first, ["c", "a", "b"]);
        let (second, cursor) = pick(&ids, &active, now, ColdPerCycle::Fixed(2), cursor);
        assert_eq!(second, ["c", "d", "a"]);
        assert_eq!(cursor, 1);
    }

    #[test]
    fn by_default_a_cycle_takes_what_the_budget_sweeps_in_five_minutes() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("e{i}")).collect();
        let now: jiff::Timestamp = "2026-12-02T00:00:00Z".parse().unwrap();
        let active: HashMap<String, jiff::Timestamp> =
            ids[..400].iter().map(|id| (id.clone(), now)).collect();
        // 6 requests/s over 5 minutes, 80 % planned: 1,440 entities, 400 of them hot.
        let (picked, cursor) = pick(&ids, &active, now, ColdPerCycle::Budget(6.0), 0);
        assert_eq!(picked.len(), 1_440);
        assert!(ids[..400].iter().all(|id| picked.contains(id)));
        assert_eq!(cursor, 1_040);
        // Every cold entity is reached within ceil(9,600 / 1,040) = 10 cycles: 50 minutes.
        let mut cursor = 0;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10 {
            let (picked, next) = pick(&ids, &active, now, ColdPerCycle::Budget(6.0), cursor);
            seen.extend(picked);
            cursor = next;
        }
        assert_eq!(seen.len(), ids.len());
        // A small partner: every entity, every cycle.
        let (all, _) = pick(&ids[..1_000], &active, now, ColdPerCycle::Budget(6.0), 0);
        assert_eq!(all.len(), 1_000);
    }
}
