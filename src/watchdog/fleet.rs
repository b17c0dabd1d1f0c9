//! The watchdog across replicas (features `postgres` or `redis`): one leads, under the
//! lease `watchdog`, and checks; each incident is acted on and reported once. Every
//! replica passes the receiver's failures it recorded to the fleet's counts
//! (`watchdog.failures`) every check's time (or a third of the lease, if shorter), and the
//! leader takes them all at each check. What the leader remembers between checks (when
//! each subscription was last seen enabled, whether failures were seen, the delivery
//! log's marks) is the lease's state, so a new leader neither reports an incident again
//! nor misses the end of one.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{Report, State, WatchCheck, Watchdog};
use crate::fleet::{Fleet, Leading, Lease, Tally, hold, lead_until};
use crate::stop::Stop;

/// The lease the watchdogs of a fleet lead by.
pub(super) const LEASE: &str = "watchdog";

/// What the watchdog keeps of its fleet.
pub(super) struct Shared {
    fleet: Fleet,
    lease: Lease,
    failures: Tally,
}

impl Shared {
    pub(super) fn new(fleet: Fleet) -> Self {
        Self {
            lease: fleet.lease(LEASE),
            failures: fleet.tally("watchdog.failures"),
            fleet,
        }
    }
}

/// The leader's memory, as the lease's state holds it; times in Unix microseconds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Memory {
    last_enabled: HashMap<String, i64>,
    was_failing: bool,
    log_cursor: usize,
    log_marks: HashMap<String, i64>,
    log_seen: HashMap<String, HashMap<String, i64>>,
}

fn micros(map: &HashMap<String, jiff::Timestamp>) -> HashMap<String, i64> {
    map.iter()
        .map(|(k, t)| (k.clone(), t.as_microsecond()))
        .collect()
}

fn times(map: HashMap<String, i64>) -> HashMap<String, jiff::Timestamp> {
    map.into_iter()
        .filter_map(|(k, us)| Some((k, jiff::Timestamp::from_microsecond(us).ok()?)))
        .collect()
}

impl Memory {
    fn of(state: &State) -> Self {
        Self {
            last_enabled: micros(&state.last_enabled),
            was_failing: state.was_failing,
            log_cursor: state.log_cursor,
            log_marks: micros(&state.log_marks),
            log_seen: state
                .log_seen
                .iter()
                .map(|(k, seen)| (k.clone(), micros(seen)))
                .collect(),
        }
    }

    fn restore(self, state: &mut State) {
        state.last_enabled = times(self.last_enabled);
        state.was_failing = self.was_failing;
        state.log_cursor = self.log_cursor;
        state.log_marks = times(self.log_marks);
        state.log_seen = self
            .log_seen
            .into_iter()
            .map(|(k, seen)| (k, times(seen)))
            .collect();
    }
}

impl Watchdog {
    /// Every replica's loop: passes its failures on, asks to lead, leads while it can.
    pub(super) async fn run_in_fleet(&self, shared: &Shared, stop: &Stop) {
        let pause = self.inner.every.min(shared.lease.ttl() / 3);
        loop {
            self.pass_failures(shared).await;
            match Leading::acquire(&shared.lease).await {
                Ok(Some(leading)) => self.lead(shared, leading, stop).await,
                Ok(None) => {}
                Err(e) => self.report(&Report::CheckFailed {
                    error: e.to_string(),
                }),
            }
            if stop.is_raised() || !stop.pause(pause).await {
                return;
            }
        }
    }

    /// One check, by hand: led if no other replica leads.
    pub(super) async fn run_once_in_fleet(&self, shared: &Shared) -> crate::Result<WatchCheck> {
        let Some(leading) = Leading::acquire(&shared.lease).await? else {
            self.pass_failures(shared).await;
            return Ok(WatchCheck {
                led_elsewhere: Some(shared.lease.holder().await?.unwrap_or_default()),
                ..WatchCheck::default()
            });
        };
        self.gained(shared, &leading);
        let checked = hold(&leading, self.led_check(shared, &leading)).await;
        leading.release().await;
        checked
    }

    async fn lead(&self, shared: &Shared, leading: Leading, stop: &Stop) {
        self.gained(shared, &leading);
        let work = async {
            while !stop.is_raised() && leading.holds() {
                if let Err(e) = self.led_check(shared, &leading).await {
                    self.report(&Report::CheckFailed {
                        error: e.to_string(),
                    });
                }
                if !leading.holds() || !stop.pause(self.inner.every).await {
                    break;
                }
            }
        };
        let reason = lead_until(&leading, stop, work).await;
        self.report(&Report::LeadershipLost {
            replica: shared.fleet.replica().to_owned(),
            reason,
        });
    }

    /// A check with every replica's failures, its memory written to the lease after.
    async fn led_check(&self, shared: &Shared, leading: &Leading) -> crate::Result<WatchCheck> {
        let mut failures = self.take_failures();
        match shared.failures.take().await {
            Ok(taken) => {
                for (id, count) in taken {
                    *failures.entry(id).or_default() += usize::try_from(count).unwrap_or(0);
                }
            }
            Err(e) => self.report(&Report::CheckFailed {
                error: e.to_string(),
            }),
        }
        let checked = self.check(failures).await;
        let memory = serde_json::to_string(&Memory::of(&self.lock())).unwrap_or_default();
        // A store that fails leaves the term to its deadline; a lost one ends the loop.
        let _ = leading.save(&memory).await;
        checked
    }

    fn gained(&self, shared: &Shared, leading: &Leading) {
        let term = leading.term();
        if let Some(memory) = term
            .state()
            .and_then(|text| serde_json::from_str::<Memory>(text).ok())
        {
            memory.restore(&mut self.lock());
        }
        self.report(&Report::LeadershipGained {
            replica: shared.fleet.replica().to_owned(),
            generation: term.generation(),
            taken_over_from: term.taken_over_from().map(str::to_owned),
        });
    }

    /// This replica's failures, to the fleet's counts; kept here if the store fails.
    async fn pass_failures(&self, shared: &Shared) {
        let failures = self.take_failures();
        if failures.is_empty() {
            return;
        }
        let counts: Vec<(String, u64)> = failures
            .iter()
            .map(|(id, n)| (id.clone(), u64::try_from(*n).unwrap_or(u64::MAX)))
            .collect();
        if shared.failures.add(&counts).await.is_err() {
            self.add_failures(failures);
        }
    }
}
