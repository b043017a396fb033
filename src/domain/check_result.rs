//! What a check run produces: a plain value the check module makes and the
//! registry stores. The JSON form is part of the interface (`warden check
//! --format json`, the API, the registry).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Outcome;

/// One evaluated check, in the shape of DESIGN §3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckResult {
    /// `<dataset>.<name>`.
    pub check: String,
    pub dataset: String,
    pub kind: String,
    pub column: Option<String>,
    /// The partition checked, or `None` for the whole relation.
    pub partition: Option<String>,
    pub outcome: Outcome,
    /// The observed value (row count, ratio, lag in seconds, …); `None` on error.
    pub observed: Option<f64>,
    /// The limits the check was held to, e.g. `{"max": 0.0}`.
    pub threshold: BTreeMap<String, serde_json::Value>,
    pub message: String,
    pub duration_ms: u64,
    /// The range an `anomaly` check expected, learned from its history;
    /// absent for other kinds and while learning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Expected>,
    /// How unusual the value was, in robust standard deviations (signed),
    /// with `expected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// The expected range of a value: `{"lower", "center", "upper"}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Expected {
    pub lower: f64,
    pub center: f64,
    pub upper: f64,
}

/// Counts per outcome, as printed in the JSON `summary`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Summary {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub error: usize,
}

impl Summary {
    pub fn of<'a>(results: impl IntoIterator<Item = &'a CheckResult>) -> Self {
        let mut s = Self::default();
        for r in results {
            match r.outcome {
                Outcome::Pass => s.pass += 1,
                Outcome::Warn => s.warn += 1,
                Outcome::Fail => s.fail += 1,
                Outcome::Error => s.error += 1,
            }
        }
        s
    }

    /// `warden check`'s exit status from outcomes alone: 0 none failed or
    /// errored, 1 a check failed, 3 none failed but one errored.
    pub fn exit_code(&self) -> u8 {
        if self.fail > 0 {
            1
        } else if self.error > 0 {
            3
        } else {
            0
        }
    }
}
