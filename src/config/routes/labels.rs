//! What an alert is known by to routes and silences: its labels and its
//! severity. Plain values, read by the routes file's matchers and built by
//! the alert manager.

use serde::{Deserialize, Serialize};

use crate::domain::Outcome;

/// How urgent an alert is, in PagerDuty's words.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[schema(as = AlertSeverity)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A fail-severity check fails, or a partition is quarantined.
    Critical,
    /// A check cannot be evaluated, or a warehouse is down.
    Error,
    /// A warn-severity check breaches its limits.
    Warning,
    /// Nothing is wrong; kept for receivers that want every level.
    Info,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Self::Critical, Self::Error, Self::Warning, Self::Info];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "info",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The severity of a check alert with this (failing) outcome.
    pub fn of_outcome(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Fail => Self::Critical,
            Outcome::Error => Self::Error,
            Outcome::Warn => Self::Warning,
            Outcome::Pass => Self::Info,
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The alert kinds that are not check kinds, as `kind` labels.
pub const WAREHOUSE_KIND: &str = "warehouse";
pub const QUARANTINE_KIND: &str = "quarantine";

/// What routes and silences match on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Labels {
    /// The check kind (`row_count`, `freshness`, …), `warehouse` or `quarantine`.
    pub kind: String,
    /// The check id, for check alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouse: Option<String>,
    /// 1 pages, 2 goes to chat, 3 to the digest.
    pub tier: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub severity: Severity,
}
