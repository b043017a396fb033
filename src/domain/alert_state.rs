//! Where an alert stands and what it is about, as words: the state machine
//! that moves an alert is `alert::state`, storing it the registry's.

use serde::Serialize;

/// Where an alert stands: `ok → pending → firing → resolved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Passing, or never failed.
    Ok,
    /// Failing, fewer times in a row than `consecutive_failures`.
    Pending,
    /// Failing long enough to notify.
    Firing,
    /// Was firing, passes again.
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Pending => "pending",
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Ok, Self::Pending, Self::Firing, Self::Resolved]
            .into_iter()
            .find(|state| state.as_str() == s)
    }
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// A check (and partition) that fails, warns or cannot be evaluated.
    Check,
    /// A warehouse that does not answer.
    Warehouse,
    /// A partition the gate quarantined.
    Quarantine,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Check => "check",
            Self::Warehouse => "warehouse",
            Self::Quarantine => "quarantine",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Check, Self::Warehouse, Self::Quarantine]
            .into_iter()
            .find(|kind| kind.as_str() == s)
    }
}
