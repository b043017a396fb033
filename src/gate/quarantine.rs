//! What happens around a quarantine besides its alert. The quarantine's
//! alert is recorded with the gate's decision, in the same registry
//! transaction (`gate::ledger`); [`QuarantineHook`] is told afterwards, so
//! the agent can log it and resolve the alert when the partition passes after
//! all (a release). On its own the service uses [`LogQuarantine`], a warning
//! in the log (the denial is counted in `warden_gate_decisions_total` either
//! way).

use serde::Serialize;

use crate::domain::GateBasis;

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

/// A partition that passed: a gate allowed it, or a person overrode its
/// quarantine. It may or may not have been quarantined before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Release {
    pub dataset: String,
    pub partition: String,
    /// The gate that allowed it, or that the override applies to.
    pub gate_id: Option<String>,
    /// `gate`, or who overrode the quarantine.
    pub by: String,
}

/// Told about every quarantine, once, after it is recorded, and about every
/// partition that passes. Called on the gate's task: slow work (sending
/// anything) belongs on a task of its own.
pub trait QuarantineHook: Send + Sync {
    fn on_quarantine(&self, quarantine: &Quarantine);

    /// A partition passed; a quarantine alert of it can resolve.
    fn on_release(&self, _release: &Release) {}

    /// A gate's decision was recorded (allowed or denied, whatever the
    /// basis); lineage events follow it.
    fn on_decided(&self, _gate: &crate::registry::GateRecord) {}
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
