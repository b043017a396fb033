//! Where a gate stands and what its decision rests on, as words: the rules
//! that move a gate live in `gate`, storing them is the registry's business.

use serde::Serialize;

/// Where a gate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GateStatus {
    /// Recorded, waiting for its turn on the partition.
    Queued,
    /// Checking the staged data.
    Running,
    /// Decided: the partition may be published.
    Allowed,
    /// Decided: the partition must not be published.
    Denied,
}

impl GateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Allowed => "allowed",
            Self::Denied => "denied",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Allowed, Self::Denied]
            .into_iter()
            .find(|status| status.as_str() == s)
    }

    /// Allowed or denied.
    pub fn is_decided(self) -> bool {
        matches!(self, Self::Allowed | Self::Denied)
    }
}

/// What a decision rests on, so a pipeline can tell a breach (do not retry)
/// from an error (retrying may help).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GateBasis {
    /// The checks' outcomes: an allow, or a denial for a breach.
    Checks,
    /// A check, the warehouse or the registry failed; or the agent stopped.
    Error,
    /// No decision within the gate's deadline (fail closed).
    Timeout,
    /// A person overrode a quarantine.
    Override,
}

impl GateBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Checks => "checks",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Override => "override",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Checks, Self::Error, Self::Timeout, Self::Override]
            .into_iter()
            .find(|basis| basis.as_str() == s)
    }
}
