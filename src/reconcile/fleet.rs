//! The reconciler across replicas (features `postgres` or `redis`): one leads, under the
//! lease `reconciler`, and sweeps every entity once per cycle; the others wait to take
//! over. Why a leader and not a lease per entity: the sweep is bound by the rate budget
//! the fleet shares, not by any replica's CPU, so splitting it buys no speed, and one
//! leader lists the entities once per cycle instead of once per replica.
//!
//! The cycle's progress is the lease's state: when the cycle started (Monite's time), whether
//! it is deep, the cold entities' turn it began at, and the last entity done, the entities
//! being swept in the order of their ids. The leader writes it after each entity; a replica
//! that takes over resumes the cycle after that entity, so each entity's events are listed
//! once per cycle whoever leads, and a leader killed in the middle of a sweep costs one
//! lease's time. A deep sweep asked of a replica that does not lead reaches the leader
//! through the fleet's counts (`reconciler.deep`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{CycleSummary, Reconciler, Report, Resume};
use crate::fleet::{Fleet, Leading, Lease, Tally, hold, lead_until};
use crate::stop::Stop;

/// The lease the reconcilers of a fleet lead by.
pub(super) const LEASE: &str = "reconciler";

/// What the reconciler keeps of its fleet.
pub(super) struct Shared {
    pub(super) fleet: Fleet,
    lease: Lease,
    deep: Tally,
}

impl Shared {
    pub(super) fn new(fleet: Fleet) -> Self {
        Self {
            lease: fleet.lease(LEASE),
            deep: fleet.tally("reconciler.deep"),
            fleet,
        }
    }
}

/// Where the cycle stands, as the lease's state holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Progress {
    /// Monite's time when the cycle started, in Unix microseconds.
    pub(super) started: Option<i64>,
    /// Whether the cycle is deep.
    pub(super) deep: bool,
    /// The cold entities' turn the cycle began at.
    pub(super) cursor: usize,
    /// The last entity done (swept, or failed and left to the next cycle).
    pub(super) last: Option<String>,
    /// Whether the cycle ended.
    pub(super) done: bool,
}

/// A cycle led under a term.
pub(super) struct Lead {
    leading: Leading,
    progress: Mutex<Progress>,
}

impl Lead {
    fn new(leading: Leading) -> Self {
        let progress = leading
            .term()
            .state()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        Self {
            leading,
            progress: Mutex::new(progress),
        }
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cycle a former leader (or this one, stopped) left unfinished, to resume.
    pub(super) fn unfinished(&self) -> Option<Resume> {
        let progress = self.progress();
        (progress.started.is_some() && !progress.done).then(|| Resume {
            deep: progress.deep,
            cursor: progress.cursor,
            last: progress.last.clone(),
        })
    }

    /// Whether this replica still leads.
    pub(super) fn holds(&self) -> bool {
        self.leading.holds()
    }

    /// A new cycle, written before any entity is swept; whether this replica still leads.
    pub(super) async fn begin(&self, started: jiff::Timestamp, deep: bool, cursor: usize) -> bool {
        *self.progress() = Progress {
            started: Some(started.as_microsecond()),
            deep,
            cursor,
            last: None,
            done: false,
        };
        self.save().await
    }

    /// `entity_id` done; whether this replica still leads.
    pub(super) async fn done_with(&self, entity_id: &str) -> bool {
        self.progress().last = Some(entity_id.to_owned());
        self.save().await
    }

    /// The cycle ended; whether this replica still leads.
    pub(super) async fn end(&self) -> bool {
        self.progress().done = true;
        self.save().await
    }

    /// A store that fails leaves the term holding until its deadline: only a lost term
    /// stops the cycle.
    async fn save(&self) -> bool {
        let text = serde_json::to_string(&*self.progress()).unwrap_or_default();
        match self.leading.save(&text).await {
            Ok(saved) => saved,
            Err(_) => self.leading.holds(),
        }
    }

    /// How long before the next cycle is due, by Monite's clock.
    fn due_in(&self, now: Option<jiff::Timestamp>, every: Duration) -> Duration {
        due_in(&self.progress(), now, every)
    }
}

/// How long before the cycle after `progress` is due: at once when none ran, one is
/// unfinished, or Monite's time is unknown; otherwise `every` after the last one started.
fn due_in(progress: &Progress, now: Option<jiff::Timestamp>, every: Duration) -> Duration {
    let (Some(started), Some(now)) = (progress.started, now) else {
        return Duration::ZERO;
    };
    if !progress.done {
        return Duration::ZERO;
    }
    let since = now.as_microsecond().saturating_sub(started);
    let since = Duration::from_micros(u64::try_from(since).unwrap_or(0));
    every.saturating_sub(since)
}

impl Reconciler {
    /// Every replica's loop: asks to lead every third of the lease, leads while it can.
    pub(super) async fn run_in_fleet(&self, shared: &Shared, stop: &Stop) {
        let pause = shared.lease.ttl() / 3;
        loop {
            self.pass_deep_request(shared).await;
            match Leading::acquire(&shared.lease).await {
                Ok(Some(leading)) => self.lead(shared, leading, stop).await,
                Ok(None) => {}
                Err(e) => self.report(&Report::SweepStale {
                    entity_id: "*".to_owned(),
                    error: e.to_string(),
                }),
            }
            if stop.is_raised() || !stop.pause(pause).await {
                return;
            }
        }
    }

    /// One cycle, by hand: led if no other replica leads, else none.
    pub(super) async fn run_once_in_fleet(&self, shared: &Shared) -> crate::Result<CycleSummary> {
        let Some(leading) = Leading::acquire(&shared.lease).await? else {
            return Ok(CycleSummary {
                led_elsewhere: Some(shared.lease.holder().await?.unwrap_or_default()),
                ..CycleSummary::default()
            });
        };
        self.gained(shared, &leading);
        self.take_deep_requests(shared).await;
        let lead = Lead::new(leading.clone());
        let cycle = hold(&leading, self.cycle(None, Some(&lead))).await;
        leading.release().await;
        cycle
    }

    /// Leads until the term is lost or the reconciler stops; then gives the lease up.
    async fn lead(&self, shared: &Shared, leading: Leading, stop: &Stop) {
        self.gained(shared, &leading);
        let lead = Lead::new(leading.clone());
        let every = self.inner.settings.every;
        let pause = shared.lease.ttl() / 3;
        let work = async {
            // After a cycle that failed as a whole: not before a pace's time.
            let mut retry_at: Option<Instant> = None;
            while !stop.is_raised() && leading.holds() {
                self.take_deep_requests(shared).await;
                let now = self.inner.client.monite_now();
                let mut wait = lead.due_in(now, every);
                if let Some(at) = retry_at {
                    wait = wait.max(at.saturating_duration_since(Instant::now()));
                }
                if !wait.is_zero() {
                    if !stop.pause(wait.min(pause)).await {
                        break;
                    }
                    continue;
                }
                retry_at = None;
                if let Err(e) = self.cycle(Some(stop), Some(&lead)).await {
                    retry_at = Some(Instant::now() + every);
                    self.report(&Report::SweepStale {
                        entity_id: "*".to_owned(),
                        error: e.to_string(),
                    });
                }
            }
        };
        let reason = lead_until(&leading, stop, work).await;
        self.report(&Report::LeadershipLost {
            replica: shared.fleet.replica().to_owned(),
            reason,
        });
    }

    fn gained(&self, shared: &Shared, leading: &Leading) {
        let term = leading.term();
        self.report(&Report::LeadershipGained {
            replica: shared.fleet.replica().to_owned(),
            generation: term.generation(),
            taken_over_from: term.taken_over_from().map(str::to_owned),
        });
    }

    /// A deep sweep asked of this replica, for whichever leads.
    async fn pass_deep_request(&self, shared: &Shared) {
        if !std::mem::take(&mut self.state().deep_requested) {
            return;
        }
        if shared.deep.add(&[("deep".to_owned(), 1)]).await.is_err() {
            self.state().deep_requested = true;
        }
    }

    /// The deep sweeps other replicas asked for.
    async fn take_deep_requests(&self, shared: &Shared) {
        if let Ok(asked) = shared.deep.take().await
            && !asked.is_empty()
        {
            self.state().deep_requested = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_cycle_is_due_a_pace_after_the_last_started_by_monites_clock() {
        let every = Duration::from_secs(300);
        let now = Some(at("2026-12-06T10:02:00Z"));
        let mut progress = Progress::default();
        assert_eq!(due_in(&progress, now, every), Duration::ZERO, "none ran");
        progress.started = Some(at("2026-12-06T10:00:00Z").as_microsecond());
        assert_eq!(due_in(&progress, now, every), Duration::ZERO, "unfinished");
        progress.done = true;
        assert_eq!(due_in(&progress, now, every), Duration::from_secs(180));
        assert_eq!(
            due_in(&progress, None, every),
            Duration::ZERO,
            "time unknown"
        );
        let late = Some(at("2026-12-06T10:06:00Z"));
        assert_eq!(due_in(&progress, late, every), Duration::ZERO);
    }

    #[test]
    fn the_progress_reads_back_as_written() {
        let progress = Progress {
            started: Some(1_765_000_000_000_000),
            deep: true,
            cursor: 41,
            last: Some("e0000000-0000-4000-8000-000000000041".to_owned()),
            done: false,
        };
        let text = serde_json::to_string(&progress).unwrap();
        assert_eq!(serde_json::from_str::<Progress>(&text).unwrap(), progress);
        // Text another version wrote that this one cannot read starts a new cycle.
        assert!(serde_json::from_str::<Progress>("{\"started\": \"soon\"}").is_err());
    }
}
