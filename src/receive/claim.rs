//! The claim protocol: claim the event, run the handlers, then mark it done or release it;
//! and the guard that settles a claim whose delivery is dropped on the way.

use super::{Outcome, Receiver};
use crate::dispatch::Dispatched;
use crate::error::{Error, ErrorKind, Result};
use crate::event::Event;
use crate::idempotency::{Claim, ClaimToken, Idempotency, TAKEN_OVER};
use crate::observe;

impl Receiver {
    /// Tells the `on_failure` hook; its own panic must not turn into the request's.
    fn report_failure(&self, event: &Event, error: &Error) {
        if let Some(report) = &self.inner.on_failure {
            let reported =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| report(event, error)));
            if reported.is_err() {
                observe::store_trouble("(on_failure)", "the on_failure hook panicked");
            }
        }
    }

    /// Writes `event` to the inbox; a write that failed (`503`) is a failed delivery for
    /// the `on_failure` hook, as a handler's failure is.
    #[cfg(feature = "postgres")]
    pub(super) async fn accept_into<H: crate::headers::HeaderLookup + ?Sized>(
        &self,
        inbox: &crate::inbox::Inbox,
        event: &Event,
        headers: &H,
    ) -> Result<Outcome> {
        match inbox.accept(event, headers).await {
            Ok(crate::inbox::Accepted::Duplicate) => Ok(Outcome::Duplicate),
            Ok(_) => Ok(Outcome::Accepted),
            Err(error) => {
                self.report_failure(event, &error);
                Err(error)
            }
        }
    }

    pub(super) async fn claim_and_dispatch(&self, event: Event) -> Result<Outcome> {
        let dispatcher = &self.inner.dispatcher;
        let run = |event: Event| {
            // Kept only for the failure hook: an `Event` clone shares its body.
            let reported = self.inner.on_failure.as_ref().map(|_| event.clone());
            async move {
                let dispatched = dispatcher.dispatch(event);
                let result = observe::handler_run(dispatched, |d| *d == Dispatched::Handled).await;
                if let (Err(error), Some(event)) = (&result, &reported) {
                    self.report_failure(event, error);
                }
                result
            }
        };
        let Some(idempotency) = &self.inner.idempotency else {
            return acknowledge_unresolvable(run(event).await);
        };
        let Some(key) = idempotency.key(&event) else {
            // An id-less 2022 envelope with no deduplication window: at least once.
            return acknowledge_unresolvable(run(event).await);
        };
        let token = self
            .inner
            .claim_tokens
            .as_ref()
            .map_or_else(ClaimToken::new, |next| next());
        // The guard exists before the claim is sent: a delivery dropped while the claim is on
        // its way, or a claim that fails after the store applied it, must not leave the key
        // held for the whole lease.
        let mut held = HeldClaim {
            idempotency,
            key: &key,
            token,
            stage: Stage::Claiming,
        };
        let claim = match idempotency.claim(&key, &token).await {
            Ok(claim) => claim,
            Err(source) => {
                held.release_detached();
                let error = Error::new(
                    ErrorKind::StoreUnavailable,
                    format!("the idempotency store could not claim {key}: {source}"),
                )
                .with_source(source);
                self.report_failure(&event, &error);
                return Err(error);
            }
        };
        match claim {
            Claim::Acquired => held.stage = Stage::Running,
            Claim::Done => {
                held.stage = Stage::Settled;
                return Ok(Outcome::Duplicate);
            }
            Claim::InFlight => {
                held.stage = Stage::Settled;
                return Err(Error::new(
                    ErrorKind::InFlight,
                    format!("{key} is being handled by another delivery"),
                ));
            }
        }
        let result = acknowledge_unresolvable(run(event).await);
        let handled = match &result {
            Ok(Outcome::Unhandled(_)) => self.inner.unhandled_status.is_success(),
            Ok(_) => true,
            Err(_) => false,
        };
        if handled {
            held.complete().await;
        } else {
            // A failure, or an unhandled event answered non-2xx so that Monite retries it:
            // the retry must find the key free, not done.
            held.release().await;
        }
        result
    }
}

/// An event a handler called unresolvable, already reported through `on_failure`, is done:
/// retrying it would fail the same way for a week.
fn acknowledge_unresolvable(result: Result<crate::dispatch::Dispatched>) -> Result<Outcome> {
    match result {
        Err(error) if error.kind() == ErrorKind::Unresolvable => Ok(Outcome::Handled),
        other => other.map(Outcome::from),
    }
}

/// A delivery's claim, from before it is sent until it is settled. Dropped unsettled (the
/// caller hung up, a handler panicked), it ends the claim as its stage requires.
struct HeldClaim<'a> {
    idempotency: &'a Idempotency,
    key: &'a str,
    token: ClaimToken,
    stage: Stage,
}

/// Where a delivery is in the claim protocol, and so what dropping it must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The claim is on its way: it may reach the store, so release it.
    Claiming,
    /// The handlers are running: they have not succeeded, so release the claim for a retry.
    Running,
    /// The handlers succeeded: the event must end done, never free, or a retry runs them a
    /// second time.
    Handled,
    /// Nothing left to do.
    Settled,
}

impl HeldClaim<'_> {
    async fn complete(mut self) {
        // From here the event is handled whatever happens: answer 200 either way, and if
        // this call is dropped or fails, the store finishes the mark in the background.
        self.stage = Stage::Handled;
        let key = self.key;
        match self.idempotency.complete(key, &self.token).await {
            Ok(true) => self.stage = Stage::Settled,
            Ok(false) => {
                observe::store_trouble(key, TAKEN_OVER);
                self.stage = Stage::Settled;
            }
            Err(e) => {
                observe::store_trouble(key, &format!("marking done failed, retrying: {e}"));
                // `Drop` hands the mark over to the store's detached completion.
            }
        }
    }

    async fn release(mut self) {
        if let Err(e) = self.idempotency.release(self.key, &self.token).await {
            // The lease runs out on its own; until then retries get 409.
            observe::store_trouble(self.key, &format!("releasing the claim failed: {e}"));
        }
        self.stage = Stage::Settled;
    }

    fn release_detached(&mut self) {
        self.idempotency.release_detached(self.key, &self.token);
        self.stage = Stage::Settled;
    }
}

impl Drop for HeldClaim<'_> {
    fn drop(&mut self) {
        match self.stage {
            Stage::Claiming | Stage::Running => self.release_detached(),
            Stage::Handled => self.idempotency.complete_detached(self.key, &self.token),
            Stage::Settled => {}
        }
    }
}
