//! The publication states a partition goes through (stage → validate →
//! publish), as words: which moves are legal is `gate::partition_state`'s
//! business, storing them the registry's.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a partition stands on its way to consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PartitionState {
    /// A gate is checking the staged data.
    Validating,
    /// The gate allowed it (or a person overrode a quarantine); it may be
    /// published.
    Passed,
    /// The gate denied it; it waits for a fix (a new gate) or an override.
    Quarantined,
    /// Consumers read it.
    Published,
}

impl PartitionState {
    pub const ALL: [PartitionState; 4] = [
        Self::Validating,
        Self::Passed,
        Self::Quarantined,
        Self::Published,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validating => "validating",
            Self::Passed => "passed",
            Self::Quarantined => "quarantined",
            Self::Published => "published",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }
}

impl fmt::Display for PartitionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
