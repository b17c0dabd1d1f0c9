//! What the backlog hook hears: a backlog older than a threshold.

use std::sync::Arc;
use std::time::Duration;

/// How often the workers of one process read the backlog, at most.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

pub(crate) type OnBacklog = Arc<dyn Fn(&Backlog) + Send + Sync>;

/// A backlog older than the threshold, as the
/// [`on_backlog`](super::WorkersBuilder::on_backlog) hook sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Backlog {
    /// Events pending, first attempts and retries.
    pub pending: i64,
    /// How long ago the oldest of them was received.
    pub oldest: Duration,
}
