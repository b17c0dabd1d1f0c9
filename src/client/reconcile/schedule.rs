//! Which entities a cycle sweeps: every entity active in the last day ("hot": swept every
//! cycle, so every few minutes), and the others in turn, a slice per cycle; all of them in
//! a deep sweep.

use std::collections::HashMap;
use std::time::Duration;

/// An entity is hot while its last event is younger than this.
pub const HOT_FOR: Duration = Duration::from_secs(24 * 60 * 60);

/// The entities of one cycle, in the order listed: the hot ones, then `cold_per_cycle` of
/// the others from `cursor` on (wrapping). Returns them and the next cursor.
pub(super) fn pick(
    entities: &[String],
    last_activity: &HashMap<String, jiff::Timestamp>,
    now: jiff::Timestamp,
    cold_per_cycle: usize,
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
    let take = cold_per_cycle.min(cold.len());
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
        let (first, cursor) = pick(&ids, &active, now, 2, 0);
        assert_eq!(first, ["c", "a", "b"]);
        let (second, cursor) = pick(&ids, &active, now, 2, cursor);
        assert_eq!(second, ["c", "d", "a"]);
        assert_eq!(cursor, 1);
    }
}
