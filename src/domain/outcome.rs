//! The outcome of one check: the verdict every part of warden speaks (check
//! evaluation, history in the registry, alerts, the gate, the CLI).

use serde::{Deserialize, Serialize};

/// The outcome of one check. `Error` means it could not be evaluated; it is
/// never reported as a pass.
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
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Warn,
    Fail,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Fail => "fail",
            Self::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pass" => Some(Self::Pass),
            "warn" => Some(Self::Warn),
            "fail" => Some(Self::Fail),
            "error" => Some(Self::Error),
            _ => None,
        }
    }

    pub const ALL: [Outcome; 4] = [Self::Pass, Self::Warn, Self::Fail, Self::Error];
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
