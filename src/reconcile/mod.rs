//! Continuous reconciliation: every entity's events swept from `GET /events` through the
//! receiver's own handlers and idempotency store, so that every event Monite recorded is
//! handled, once, whether or not its webhook arrived.
//!
//! Each cycle lists the entities (`GET /entities`, or the ones given), picks the hot ones
//! and a turn of the others ([`schedule`](self)), and sweeps each over its [`Window`]:
//! from its checkpoint less the lookback to Monite's time (its `Date` header) less 30 s,
//! `sort=created_at&order=asc`. A checkpoint moves to the window's end only once every
//! event of the window was dispatched; an entity whose sweep fails keeps its checkpoint
//! and the others go on. Pagination tokens are never stored. Once a day
//! ([`ReconcilerBuilder::deep_every`]), and after [`Reconciler::request_deep_sweep`] (an
//! outage was found), a cycle sweeps every entity reaching back [`DEEP_DEPTH`] (bounded by
//! the store's retention); the first daily one comes a day after start. An entity whose
//! deep sweep fails (or is not reached: the cycle was dropped) owes one: each later cycle
//! sweeps it deep until one succeeds, and the others go back to their usual windows.
//!
//! The receiver's idempotency store must outlive the process (see
//! [`ReconcilerBuilder::allow_process_local_store`]), and checkpoint stores that defer
//! their writes ([`FileCheckpoints`]) are flushed at the end of each cycle and at least
//! every [`CHECKPOINT_FLUSH_EVERY`] within one: a crash loses only the checkpoints saved
//! since, which makes the next sweeps look further back, never skip.
//!
//! Replicas that share PostgreSQL or Redis sweep by turns (`ReconcilerBuilder::fleet`,
//! by default with `PostgresCheckpoints` and `RedisCheckpoints`): one leads under a
//! lease and sweeps each entity once per cycle, and a replica that takes over resumes the
//! cycle where the last leader stopped. Without a shared store a process sweeps alone.
//!
//! What it cannot do: bring back events Monite never recorded (while a subscription was
//! disabled), or events whose `created_at` is `null` (no time filter matches them).
//!
//! One cycle by hand or from cron, with [`Reconciler::run_once`]; or one every
//! [`every`](ReconcilerBuilder::every) in the background, with [`Reconciler::start`], until
//! [`ReconcilerHandle::shutdown`] (which lets the entity being swept finish and saves the
//! checkpoints reached).
//!
//! ```no_run
//! use std::time::Duration;
//! use monite_webhooks::client::{Client, Environment};
//! use monite_webhooks::reconcile::{FileCheckpoints, Reconciler};
//! # async fn run(receiver: monite_webhooks::Receiver) -> Result<(), monite_webhooks::Error> {
//! let client = Client::builder(Environment::Eu).credentials("id", "secret").build()?;
//! let reconciler = Reconciler::builder(client, receiver, FileCheckpoints::open("checkpoints")?)
//!     .every(Duration::from_secs(5 * 60))
//!     .on_report(|report| eprintln!("{report}"))
//!     .build()?;
//! let cycle = reconciler.run_once().await?;
//! println!("{} entities swept, {} events recovered", cycle.swept, cycle.handled);
//!
//! let running = reconciler.start();
//! // ... until the process is asked to stop:
//! running.shutdown().await;
//! # Ok(()) }
//! ```

mod builder;
mod checkpoint;
#[cfg(any(feature = "postgres", feature = "redis"))]
mod fleet;
mod handle;
mod report;
mod schedule;
mod sweep;
mod window;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::TryStreamExt as _;

use crate::client::{Client, Entity, ListQuery};
use crate::error::{Error, ErrorKind, Result};
use crate::observe;
use crate::receive::Receiver;
use crate::stop::Stop;

#[cfg(any(feature = "postgres", feature = "redis"))]
use self::fleet::Lead;
pub(crate) use self::window::signed;

pub use self::builder::ReconcilerBuilder;
#[cfg(feature = "postgres")]
pub use self::checkpoint::PostgresCheckpoints;
#[cfg(feature = "redis")]
pub use self::checkpoint::RedisCheckpoints;
pub use self::checkpoint::{CheckpointStore, FileCheckpoints, MemoryCheckpoints, StoreFuture};
pub use self::handle::ReconcilerHandle;
pub use self::report::Report;
pub use self::schedule::{HOT_EVERY, HOT_FOR};
pub use self::sweep::SweepOutcome;
pub use self::window::Window;

/// The least lookback: late commits up to this old are still found.
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(15 * 60);
/// How far before Monite's time a window ends: what is being committed is left for later.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(30);
/// Where an entity without a checkpoint starts: this long before Monite's time.
pub const DEFAULT_FIRST_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// How far back a deep sweep reaches: past Monite's week of retries.
pub const DEEP_DEPTH: Duration = Duration::from_secs(8 * 24 * 60 * 60);
/// How often a deep sweep runs on its own, by default ([`ReconcilerBuilder::deep_every`]).
pub const DEEP_EVERY: Duration = Duration::from_secs(24 * 60 * 60);
/// Within a long cycle, checkpoints saved to a store that defers its writes are flushed at
/// least this often (and at the end of each cycle).
pub const CHECKPOINT_FLUSH_EVERY: Duration = Duration::from_secs(60);

type OnReport = Arc<dyn Fn(&Report) + Send + Sync>;

/// Sweeps every entity's events through a receiver; cloning shares its state.
#[derive(Clone)]
pub struct Reconciler {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    receiver: Receiver,
    checkpoints: Box<dyn CheckpointStore>,
    settings: Settings,
    retention: Duration,
    state: Mutex<State>,
    /// The replicas this one leads by turns with; `None`: alone.
    #[cfg(any(feature = "postgres", feature = "redis"))]
    fleet: Option<fleet::Shared>,
}

/// Without a shared store there is no leader: a cycle is never led.
#[cfg(not(any(feature = "postgres", feature = "redis")))]
enum Lead {}

#[cfg(not(any(feature = "postgres", feature = "redis")))]
impl Lead {
    fn unfinished(&self) -> Option<Resume> {
        match *self {}
    }
    fn holds(&self) -> bool {
        match *self {}
    }
    #[allow(clippy::unused_async, reason = "the led form's signature")]
    async fn begin(&self, _: jiff::Timestamp, _: bool, _: usize) -> bool {
        match *self {}
    }
    #[allow(clippy::unused_async, reason = "the led form's signature")]
    async fn done_with(&self, _: &str) -> bool {
        match *self {}
    }
    #[allow(clippy::unused_async, reason = "the led form's signature")]
    async fn end(&self) -> bool {
        match *self {}
    }
}

/// A cycle a former leader left unfinished: resumed after `last`, entities in id order.
struct Resume {
    deep: bool,
    cursor: usize,
    last: Option<String>,
}

/// What the builder sets.
struct Settings {
    lookback: Duration,
    settle: Duration,
    first: First,
    entities: Option<Vec<String>>,
    /// `None`: from the rate budget.
    cold_per_cycle: Option<usize>,
    page_size: u8,
    deep_every: Duration,
    /// How often [`Reconciler::start`] starts a cycle.
    every: Duration,
    on_report: Option<OnReport>,
}

/// Where an entity without a checkpoint starts.
#[derive(Debug, Clone, Copy)]
enum First {
    Ago(Duration),
    At(jiff::Timestamp),
}

#[derive(Default)]
struct State {
    last_duration: HashMap<String, Duration>,
    last_activity: HashMap<String, jiff::Timestamp>,
    last_error: HashMap<String, String>,
    /// When the last deep cycle started.
    last_deep: Option<Instant>,
    deep_requested: bool,
    /// Entities owed a deep window: each of a deep cycle until its deep sweep succeeds.
    deep_owed: HashSet<String>,
    cursor: usize,
    rate_limited_seen: u64,
}

/// What one cycle did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CycleSummary {
    /// Entities whose window was swept to its end (checkpoint saved).
    pub swept: usize,
    /// Entities whose sweep failed, with why; their checkpoints stayed.
    pub failed: Vec<(String, String)>,
    /// Events whose handlers ran now (missed by the webhooks).
    pub handled: usize,
    /// Events already handled.
    pub duplicates: usize,
    /// Events the parser refused.
    pub unparsable: usize,
    /// Whether this cycle started a deep sweep of every entity (entities whose deep sweep
    /// failed before are swept deep in later cycles too, without setting this).
    pub deep: bool,
    /// With a fleet, [`run_once`](Reconciler::run_once) swept nothing: this replica (named
    /// here) held the lease.
    pub led_elsewhere: Option<String>,
}

/// One entity's standing, for `reconcile status`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntityStatus {
    /// The entity.
    pub entity_id: String,
    /// Its checkpoint.
    pub checkpoint: jiff::Timestamp,
    /// The last error of its sweep in this process, if the last sweep failed.
    pub last_error: Option<String>,
}

impl Reconciler {
    /// Starts configuring a reconciler that sweeps with `client` into `receiver`, keeping
    /// checkpoints in `checkpoints`.
    pub fn builder(
        client: Client,
        receiver: Receiver,
        checkpoints: impl CheckpointStore,
    ) -> ReconcilerBuilder {
        ReconcilerBuilder::new(client, receiver, Box::new(checkpoints))
    }

    /// Makes the next cycle a deep sweep: after an outage (a subscription re-enabled, the
    /// receiver's failures cleared).
    pub fn request_deep_sweep(&self) {
        self.state().deep_requested = true;
    }

    /// Every checkpoint, with the last error of each entity's sweep in this process.
    ///
    /// # Errors
    /// [`ErrorKind::Checkpoints`] if the store cannot be read.
    pub async fn status(&self) -> Result<Vec<EntityStatus>> {
        let all = self.inner.checkpoints.all().await?;
        let state = self.state();
        Ok(all
            .into_iter()
            .map(|(entity_id, checkpoint)| EntityStatus {
                last_error: state.last_error.get(&entity_id).cloned(),
                entity_id,
                checkpoint,
            })
            .collect())
    }

    /// One cycle, for tests, a run by hand or cron: lists the entities, sweeps those due,
    /// saves each checkpoint reached.
    ///
    /// # Errors
    /// Only what stops the whole cycle: the entities cannot be listed, Monite's time is
    /// unknown. An entity whose sweep fails is in [`CycleSummary::failed`] (and reported
    /// as [`Report::SweepStale`]); the others go on.
    ///
    /// With a fleet (`ReconcilerBuilder::fleet`), it leads for the cycle: it resumes the
    /// cycle a former leader left unfinished, or starts one, then gives the lease up; while
    /// another replica leads it sweeps nothing and names it in
    /// [`CycleSummary::led_elsewhere`].
    pub async fn run_once(&self) -> Result<CycleSummary> {
        #[cfg(any(feature = "postgres", feature = "redis"))]
        if let Some(shared) = &self.inner.fleet {
            return self.run_once_in_fleet(shared).await;
        }
        self.cycle(None, None).await
    }

    /// Starts a cycle every [`every`](ReconcilerBuilder::every) (or at once when one took
    /// longer) in a task on the current tokio runtime, until
    /// [`ReconcilerHandle::shutdown`]. A cycle that fails as a whole is reported as
    /// [`Report::SweepStale`] (entity `*`) and the next one goes on. Dropping the handle
    /// leaves the task running.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(&self) -> ReconcilerHandle {
        ReconcilerHandle::start(self.clone())
    }

    /// One cycle; with `stop`, each entity is swept only while it is not raised, and the
    /// checkpoints reached are flushed all the same.
    ///
    /// Led (`lead`), the entities are swept in the order of their ids and the progress
    /// written after each, so that a replica taking over resumes after the last done; a
    /// cycle left unfinished is resumed, not started again.
    async fn cycle(&self, stop: Option<&Stop>, lead: Option<&Lead>) -> Result<CycleSummary> {
        let clock = observe::reconcile::cycle_started();
        let entities = self.entities().await?;
        let now = self.monite_now().await?;
        let resume = lead.and_then(Lead::unfinished);
        let mut began_at_cursor = 0;
        let (deep, mut picked) = {
            let mut state = self.state();
            if let Some(resume) = &resume {
                // The former leader's cycle: its depth and its turn of the cold entities.
                state.cursor = resume.cursor;
                if resume.deep {
                    state.last_deep = Some(self.inner.client.timer_now());
                    let listed: HashSet<&String> = entities.iter().collect();
                    state.deep_owed.retain(|id| listed.contains(id));
                    state.deep_owed.extend(entities.iter().cloned());
                }
                let picked = self.pick(&entities, &mut state, now, resume.deep);
                (resume.deep, picked)
            } else {
                began_at_cursor = state.cursor;
                // The first deep sweep comes a day after start (or on request): a run started
                // by hand or by cron keeps to its own first window.
                // On the client's timer, as the rate budget: a simulated day passes as fast.
                let started = self.inner.client.timer_now();
                let since = *state.last_deep.get_or_insert(started);
                let due =
                    started.saturating_duration_since(since) >= self.inner.settings.deep_every;
                let deep = state.deep_requested || due;
                state.deep_requested = false;
                let listed: HashSet<&String> = entities.iter().collect();
                // An entity no longer listed (deleted) owes nothing.
                state.deep_owed.retain(|id| listed.contains(id));
                if deep {
                    // Counted from the start, whatever the cycle's outcome: one failing entity
                    // must not make every later cycle deep. Every entity owes its deep window
                    // until its own deep sweep succeeds, so a cycle dropped half-way leaves the
                    // rest owed.
                    state.last_deep = Some(started);
                    state.deep_owed.extend(entities.iter().cloned());
                }
                (deep, self.pick(&entities, &mut state, now, deep))
            }
        };
        let mut cycle = CycleSummary {
            deep,
            ..CycleSummary::default()
        };
        if let Some(lead) = lead {
            picked.sort();
            picked.dedup();
            match resume.as_ref().map(|r| r.last.as_ref()) {
                // Resumed: after the last entity done, if any was.
                Some(Some(last)) => picked.retain(|id| id > last),
                Some(None) => {}
                // A new cycle, written before its first entity.
                None if !lead.begin(now, deep, began_at_cursor).await => return Ok(cycle),
                None => {}
            }
        }
        let mut last_flush = self.inner.client.timer_now();
        let mut stopped = false;
        for entity_id in &picked {
            // Between entities only: the one being swept finishes, its checkpoint saved.
            if stop.is_some_and(Stop::is_raised) || lead.is_some_and(|l| !l.holds()) {
                stopped = true;
                break;
            }
            let owed = self.state().deep_owed.contains(entity_id);
            let swept = self.sweep_entity(entity_id, owed).await;
            observe::reconcile::swept(
                swept.is_ok(),
                swept.as_ref().map_or(0, |o| o.handled + o.duplicates),
            );
            match swept {
                Ok(outcome) => {
                    if owed {
                        self.state().deep_owed.remove(entity_id);
                    }
                    cycle.swept += 1;
                    cycle.handled += outcome.handled;
                    cycle.duplicates += outcome.duplicates;
                    cycle.unparsable += outcome.unparsable;
                }
                Err(e) => {
                    let error = e.to_string();
                    self.state()
                        .last_error
                        .insert(entity_id.clone(), error.clone());
                    self.report(&Report::SweepStale {
                        entity_id: entity_id.clone(),
                        error: error.clone(),
                    });
                    cycle.failed.push((entity_id.clone(), error));
                }
            }
            let tick = self.inner.client.timer_now();
            if tick.saturating_duration_since(last_flush) >= CHECKPOINT_FLUSH_EVERY {
                self.flush_or_report(&mut cycle).await;
                last_flush = tick;
            }
            // The shared stores write each checkpoint in `save`: once it is written, the
            // entity is done for whoever leads next.
            if let Some(lead) = lead
                && !lead.done_with(entity_id).await
            {
                stopped = true;
                break;
            }
        }
        self.flush_or_report(&mut cycle).await;
        if let Some(lead) = lead
            && !stopped
        {
            lead.end().await;
        }
        observe::reconcile::cycle_ended(clock, cycle.failed.is_empty() && !stopped);
        let throttled = self.inner.client.rate_limited_count();
        let new = throttled - std::mem::replace(&mut self.state().rate_limited_seen, throttled);
        if new > 0 {
            self.report(&Report::RateLimited { count: new });
        }
        Ok(cycle)
    }

    /// Writes the checkpoints a store keeps pending ([`CheckpointStore::flush`]); the
    /// reconciler does so after each cycle and every [`CHECKPOINT_FLUSH_EVERY`] within one.
    ///
    /// # Errors
    /// [`ErrorKind::Checkpoints`] if they cannot be written; they stay pending.
    pub async fn flush_checkpoints(&self) -> Result<()> {
        self.inner.checkpoints.flush().await
    }

    /// A failed flush: reported, and counted in the cycle as a failure of every entity
    /// (`*`), since no checkpoint it moved is safe yet.
    async fn flush_or_report(&self, cycle: &mut CycleSummary) {
        if let Err(e) = self.flush_checkpoints().await {
            let error = e.to_string();
            self.report(&Report::SweepStale {
                entity_id: "*".to_owned(),
                error: error.clone(),
            });
            cycle.failed.push(("*".to_owned(), error));
        }
    }

    /// The entities of a cycle: all of them in a deep one; otherwise the hot ones and a
    /// turn of the others, then those that owe a deep window.
    fn pick(
        &self,
        entities: &[String],
        state: &mut State,
        now: jiff::Timestamp,
        deep: bool,
    ) -> Vec<String> {
        if deep {
            return entities.to_vec();
        }
        let (mut picked, cursor) = schedule::pick(
            entities,
            &state.last_activity,
            now,
            self.inner.settings.cold_per_cycle.map_or_else(
                || schedule::ColdPerCycle::Budget(self.inner.client.max_rate()),
                schedule::ColdPerCycle::Fixed,
            ),
            state.cursor,
        );
        state.cursor = cursor;
        let chosen: HashSet<&String> = picked.iter().collect();
        let mut owed: Vec<String> = state
            .deep_owed
            .iter()
            .filter(|id| !chosen.contains(id))
            .cloned()
            .collect();
        owed.sort();
        picked.extend(owed);
        picked
    }

    /// Cycles every `every` until `stop` is raised: what [`start`](Self::start)
    /// spawns.
    async fn run_until(self, stop: Stop) {
        #[cfg(any(feature = "postgres", feature = "redis"))]
        if let Some(shared) = &self.inner.fleet {
            return self.run_in_fleet(shared, &stop).await;
        }
        loop {
            let started = Instant::now();
            if let Err(e) = self.cycle(Some(&stop), None).await {
                self.report(&Report::SweepStale {
                    entity_id: "*".to_owned(),
                    error: e.to_string(),
                });
            }
            let pause = self.inner.settings.every.saturating_sub(started.elapsed());
            if stop.is_raised() || !stop.pause(pause).await {
                return;
            }
        }
    }

    /// Sweeps one entity's window and saves its checkpoint when every event was handled.
    /// A store that defers its writes ([`FileCheckpoints`]) keeps the save pending until
    /// [`flush_checkpoints`](Self::flush_checkpoints), which [`run_once`](Self::run_once)
    /// calls for you.
    ///
    /// # Errors
    /// The sweep's or the checkpoint store's; the checkpoint then stays where it was.
    pub async fn sweep_entity(&self, entity_id: &str, deep: bool) -> Result<SweepOutcome> {
        let inner = &self.inner;
        let now = self.monite_now().await?;
        let checkpoint = inner.checkpoints.load(entity_id).await?;
        let last = self.state().last_duration.get(entity_id).copied();
        let lookback = window::lookback(inner.settings.lookback, last).min(inner.retention);
        let first = match inner.settings.first {
            First::Ago(ago) => now.checked_sub(signed(ago)).unwrap_or(now),
            First::At(at) => at,
        };
        let Some(mut window) =
            window::window(checkpoint, first, lookback, now, inner.settings.settle)
        else {
            return Ok(SweepOutcome::default());
        };
        let horizon = now.checked_sub(signed(inner.retention)).unwrap_or(now);
        if deep {
            let depth = DEEP_DEPTH.min(inner.retention);
            let deep_from = now.checked_sub(signed(depth)).unwrap_or(now);
            window.from = window.from.min(deep_from.max(horizon));
        }
        if window.from < horizon {
            self.report(&Report::GapBeyondRetention {
                entity_id: entity_id.to_owned(),
                from: window.from,
                horizon,
            });
        }
        let started = Instant::now();
        let outcome = sweep::sweep(
            &inner.client,
            &inner.receiver,
            entity_id,
            window,
            inner.settings.page_size,
        )
        .await?;
        inner.checkpoints.save(entity_id, window.to).await?;
        let mut state = self.state();
        state
            .last_duration
            .insert(entity_id.to_owned(), started.elapsed());
        state.last_error.remove(entity_id);
        if outcome.handled + outcome.duplicates > 0 {
            state.last_activity.insert(entity_id.to_owned(), window.to);
        }
        drop(state);
        if outcome.handled > 0 {
            self.report(&Report::EventsRecovered {
                entity_id: entity_id.to_owned(),
                count: outcome.handled,
                window,
            });
        }
        Ok(outcome)
    }
}

impl Reconciler {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn report(&self, report: &Report) {
        observe::reconcile::report(report);
        if let Some(on_report) = &self.inner.settings.on_report {
            on_report(report);
        }
    }

    async fn entities(&self) -> Result<Vec<String>> {
        if let Some(fixed) = &self.inner.settings.entities {
            return Ok(fixed.clone());
        }
        let all: Vec<_> = self
            .inner
            .client
            .entities()
            .list(ListQuery::new().limit(100))
            .try_collect()
            .await?;
        Ok(all
            .into_iter()
            .filter(Entity::is_live)
            .map(|e| e.id)
            .collect())
    }

    /// Monite's time; one cheap request first if no answer told it yet (any answer has a
    /// `Date`, even a refusal, so its outcome does not matter).
    async fn monite_now(&self) -> Result<jiff::Timestamp> {
        if let Some(now) = self.inner.client.monite_now() {
            return Ok(now);
        }
        let entities = self.inner.client.entities();
        let first = entities.list(ListQuery::new().limit(1));
        let _ = std::pin::pin!(first).try_next().await;
        self.inner.client.monite_now().ok_or_else(|| {
            Error::new(
                ErrorKind::Api,
                "Monite's time is unknown: no answer had a Date header",
            )
        })
    }
}

impl fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reconciler")
            .field("lookback", &self.inner.settings.lookback)
            .field("settle", &self.inner.settings.settle)
            .field("retention", &self.inner.retention)
            .field("every", &self.inner.settings.every)
            .finish_non_exhaustive()
    }
}
