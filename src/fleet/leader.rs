//! Leading under a lease: the term held, the local deadline before which it surely holds,
//! and the renewal that runs beside the work.
//!
//! The deadline is measured on this replica's monotonic clock from the moment each
//! renewal was *sent*: the store set the expiry from its own now, which is later, so the
//! lease holds at least until then. The holder stops at a sixth of the time to live before
//! that, so a leader that cannot renew stops before its lease runs out and another takes
//! it; work in progress (one entity's sweep, one check) finishes, and the generation fences
//! whatever it writes to the lease afterwards.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Lease, Term};
use crate::error::Result;
use crate::observe;
use crate::stop::Stop;

/// The term this replica leads under; cloning shares it.
#[derive(Clone)]
pub(crate) struct Leading {
    lease: Lease,
    shared: Arc<Mutex<Shared>>,
}

struct Shared {
    term: Term,
    /// Leads while now is before this and the term was not lost.
    until: Instant,
    lost: Option<String>,
}

impl Leading {
    /// Acquires `lease`, if nobody else holds it: the term and its deadline.
    ///
    /// # Errors
    /// The store's.
    pub(crate) async fn acquire(lease: &Lease) -> Result<Option<Self>> {
        let sent = Instant::now();
        let Some(term) = timed(lease, lease.acquire()).await?? else {
            return Ok(None);
        };
        observe::lease::acquired(lease.name(), term.taken_over_from().is_some());
        Ok(Some(Self {
            lease: lease.clone(),
            shared: Arc::new(Mutex::new(Shared {
                until: deadline(sent, lease.ttl()),
                term,
                lost: None,
            })),
        }))
    }

    /// The term led under.
    pub(crate) fn term(&self) -> Term {
        self.lock().term.clone()
    }

    /// Whether this replica still surely holds the lease.
    pub(crate) fn holds(&self) -> bool {
        let shared = self.lock();
        shared.lost.is_none() && Instant::now() < shared.until
    }

    /// Why it no longer leads, once it does not.
    pub(crate) fn lost_because(&self) -> Option<String> {
        let shared = self.lock();
        if let Some(why) = &shared.lost {
            return Some(why.clone());
        }
        (Instant::now() >= shared.until)
            .then(|| "the lease could not be renewed in time".to_owned())
    }

    /// Writes `state` for the next holder, renewing the term; `false` when the term is
    /// lost (another replica acquired the lease), and from then on [`holds`](Self::holds)
    /// is `false`.
    ///
    /// # Errors
    /// The store's; the term holds until its deadline.
    pub(crate) async fn save(&self, state: &str) -> Result<bool> {
        let term = self.term();
        let sent = Instant::now();
        let saved = timed(&self.lease, self.lease.save_state(&term, state)).await??;
        self.answered(saved, sent);
        Ok(saved)
    }

    /// Renews every third of the time to live until the term is lost; then returns.
    /// Never returns while it holds: run it beside the work, and drop it with the work.
    pub(crate) async fn hold(&self) {
        let every = self.lease.ttl() / 3;
        loop {
            tokio::time::sleep(every).await;
            if !self.holds() {
                break;
            }
            let term = self.term();
            let sent = Instant::now();
            // A failed attempt: the next is a third later; the deadline stops the work first.
            if let Ok(Ok(renewed)) = timed(&self.lease, self.lease.renew(&term)).await {
                self.answered(renewed, sent);
            }
            if !self.holds() {
                break;
            }
        }
        let why = self.lost_because().unwrap_or_default();
        self.lose(why);
    }

    /// Gives the lease up for the next holder, if it still holds it.
    pub(crate) async fn release(&self) {
        let term = self.term();
        let held = self.holds();
        self.lose("it stopped".to_owned());
        if held {
            let _ = timed(&self.lease, self.lease.release(&term)).await;
        }
    }

    fn answered(&self, renewed: bool, sent: Instant) {
        if renewed {
            let mut shared = self.lock();
            if shared.lost.is_none() {
                shared.until = shared.until.max(deadline(sent, self.lease.ttl()));
            }
        } else {
            self.lose("another replica acquired the lease".to_owned());
        }
    }

    fn lose(&self, why: String) {
        let mut shared = self.lock();
        if shared.lost.is_none() {
            shared.lost = Some(why);
            observe::lease::lost(self.lease.name());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs `work` while `leading` renews its term beside it; the work decides when to stop
/// (it looks at [`Leading::holds`] between its steps), and the renewal ends with it.
pub(crate) async fn hold<T>(leading: &Leading, work: impl Future<Output = T>) -> T {
    use futures_util::future::{Either, select};
    let work = std::pin::pin!(work);
    let renewal = std::pin::pin!(leading.hold());
    match select(work, renewal).await {
        Either::Left((done, _)) => done,
        Either::Right(((), work)) => work.await,
    }
}

/// Leads with `work` until it ends (it looks at [`Leading::holds`] and `stop` between its
/// steps); then gives the lease up if `stop` was raised, and answers why this replica no
/// longer leads.
pub(crate) async fn lead_until(
    leading: &Leading,
    stop: &Stop,
    work: impl Future<Output = ()>,
) -> String {
    hold(leading, work).await;
    if stop.is_raised() {
        leading.release().await;
    }
    leading
        .lost_because()
        .unwrap_or_else(|| "it stopped".to_owned())
}

/// When a term renewed at `sent` surely still holds until.
fn deadline(sent: Instant, ttl: Duration) -> Instant {
    sent + ttl - ttl / 6
}

/// A store call given a third of the time to live: a hung store must not hold the
/// holder past its deadline.
async fn timed<T>(lease: &Lease, call: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(lease.ttl() / 3, call)
        .await
        .map_err(|_| {
            crate::Error::new(
                crate::ErrorKind::StoreUnavailable,
                "the fleet's store did not answer within a third of the lease",
            )
        })
}
