//! One entity's sweep: its window listed oldest first and each event run through the
//! receiver (as recovery does, so an event also delivered runs once). Pagination tokens
//! live only for the sweep; one that fails with a 4xx (expired) starts the window again.

use std::sync::{Arc, Mutex};

use http::StatusCode;

use super::window::Window;
use crate::client::{Client, RecoveryProgress};
use crate::error::Result;
use crate::receive::Receiver;

/// How many times a window is started again after a pagination token failed.
const MAX_RESTARTS: usize = 3;

/// What one entity's sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SweepOutcome {
    /// Pages fetched, over every start of the window.
    pub pages: usize,
    /// Events whose handlers ran now: missed by the webhooks.
    pub handled: usize,
    /// Events already handled (delivered, or swept before).
    pub duplicates: usize,
    /// Events no handler took.
    pub unhandled: usize,
    /// Events the parser refused: not dispatched, reported, and not holding the
    /// checkpoint back (they would hold it forever).
    pub unparsable: usize,
    /// Times the window was started again after a pagination token failed.
    pub restarts: usize,
}

/// Sweeps `window` of `entity_id`. `Ok` only when every event of it was dispatched.
///
/// # Errors
/// The first error that stopped it (Monite, a handler, the store); the caller keeps the
/// entity's checkpoint where it was.
pub(super) async fn sweep(
    client: &Client,
    receiver: &Receiver,
    entity_id: &str,
    window: Window,
    page_size: u8,
) -> Result<SweepOutcome> {
    let mut outcome = SweepOutcome::default();
    loop {
        // The last page's progress: what a run that fails later had handled already.
        let last = Arc::new(Mutex::new(RecoveryProgress::default()));
        let seen = last.clone();
        let run = client
            .recover_missed_events(receiver, entity_id)
            .created_at_or_after(window.from)
            .created_at_or_before(window.to)
            .page_size(page_size)
            .on_progress(move |progress: &RecoveryProgress| progress.clone_into(&mut lock(&seen)))
            .run()
            .await;
        let done = match &run {
            Ok(progress) => progress.clone(),
            Err(_) => lock(&last).clone(),
        };
        outcome.pages += done.pages;
        outcome.handled += done.handled;
        outcome.duplicates += done.duplicates;
        outcome.unhandled += done.unhandled;
        outcome.unparsable += done.unparsable.len();
        let pages_done = done.pages;
        match run {
            Ok(_) => return Ok(outcome),
            // A page after the first failed with a 4xx: its token expired or was refused.
            // What was handled stays handled; the next start skips it as duplicates.
            Err(e)
                if pages_done > 0
                    && token_refused(e.api_status())
                    && outcome.restarts < MAX_RESTARTS =>
            {
                outcome.restarts += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

fn token_refused(status: Option<StatusCode>) -> bool {
    status.is_some_and(|s| {
        s.is_client_error() && s != StatusCode::TOO_MANY_REQUESTS && s != StatusCode::UNAUTHORIZED
    })
}

fn lock(last: &Mutex<RecoveryProgress>) -> std::sync::MutexGuard<'_, RecoveryProgress> {
    last.lock().unwrap_or_else(|e| e.into_inner())
}
