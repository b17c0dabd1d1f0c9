//! `InboxState`: where an event of the inbox is in its life.

use std::fmt;

/// Where an event of the inbox is: waiting for a worker, held by one, handled, or given up
/// on. As the stores write it (`pending`, `running`, `done`, `dead`); a state a later
/// version writes reads as [`Unknown`](Self::Unknown) and prints back unchanged.
///
/// ```
/// use monite_webhooks::inbox::InboxState;
///
/// let state: InboxState = "dead".parse().unwrap();
/// assert_eq!(state, InboxState::Dead);
/// assert_eq!(state.as_str(), "dead");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InboxState {
    /// Waiting for a worker: a first attempt, or a retry after a failed one (due once its
    /// not-before time has passed).
    Pending,
    /// Held by a worker under a lease.
    Running,
    /// Handled; kept for a while as the key that answers Monite's retries as duplicates.
    Done,
    /// Out of attempts, or poison: no worker takes it until it is requeued by hand.
    Dead,
    /// A state this version of the crate does not know, as the store wrote it.
    Unknown(Box<str>),
}

impl InboxState {
    /// The states this version of the crate knows.
    pub const KNOWN: [Self; 4] = [Self::Pending, Self::Running, Self::Done, Self::Dead];

    /// The state as the stores write it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Done => "done",
            Self::Dead => "dead",
            Self::Unknown(state) => state,
        }
    }
}

impl From<&str> for InboxState {
    fn from(state: &str) -> Self {
        match state {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "done" => Self::Done,
            "dead" => Self::Dead,
            other => Self::Unknown(other.into()),
        }
    }
}

impl std::str::FromStr for InboxState {
    type Err = std::convert::Infallible;

    fn from_str(state: &str) -> Result<Self, Self::Err> {
        Ok(Self::from(state))
    }
}

impl fmt::Display for InboxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for InboxState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_known_or_not() {
        for state in InboxState::KNOWN {
            assert_eq!(InboxState::from(state.as_str()), state);
        }
        let later = InboxState::from("cancelled");
        assert_eq!(later, InboxState::Unknown("cancelled".into()));
        assert_eq!(later.to_string(), "cancelled");
    }
}
