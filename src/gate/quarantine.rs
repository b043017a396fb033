//! What happens when a gate quarantines a partition: the dataset's owner
//! should hear of it. The alerting component plugs in through
//! [`QuarantineHook`]; until it does, [`LogQuarantine`] writes a warning
//! (and the denial is counted in `warden_gate_decisions_total`).

use serde::Serialize;

use crate::registry::GateBasis;

/// A partition a gate just quarantined.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quarantine {
    pub dataset: String,
    pub partition: String,
    pub gate_id: String,
    pub run_id: String,
    /// `checks` for a breach; `error` or `timeout` when the gate could not
    /// judge the data.
    pub basis: GateBasis,
    pub reasons: Vec<String>,
    /// The dataset's `owner`, `tier` and `runbook`, when the dataset is
    /// still configured.
    pub owner: Option<String>,
    pub tier: Option<u8>,
    pub runbook: Option<String>,
}

/// Told about every quarantine, once, after it is recorded. Called on the
/// gate's task: slow work (sending anything) belongs on a task of its own.
pub trait QuarantineHook: Send + Sync {
    fn on_quarantine(&self, quarantine: &Quarantine);
}

/// The hook until alerting is wired in: a warning in the log.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogQuarantine;

impl QuarantineHook for LogQuarantine {
    fn on_quarantine(&self, q: &Quarantine) {
        tracing::warn!(
            dataset = %q.dataset,
            partition = %q.partition,
            gate_id = %q.gate_id,
            run_id = %q.run_id,
            basis = q.basis.as_str(),
            owner = q.owner.as_deref().unwrap_or("-"),
            reasons = %q.reasons.join("; "),
            "a partition was quarantined: its owner should review it"
        );
    }
}

impl<F> QuarantineHook for F
where
    F: Fn(&Quarantine) + Send + Sync,
{
    fn on_quarantine(&self, quarantine: &Quarantine) {
        self(quarantine)
    }
}
