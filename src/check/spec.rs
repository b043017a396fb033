//! What a dataset's checks are, once validated: the watched relation, its
//! schedule and partitioning, and each check with its kind, severity and
//! filter. Built by `config`; read by the planner, the evaluator, the agent,
//! the gate and the status page.

use crate::domain::{CheckId, DatasetName, Granularity, Identifier, TableRef};
use crate::source::SourcePos;

use super::kind::CheckKind;

/// A dataset: one watched relation and its checks.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: DatasetName,
    /// Name of a warehouse of the configuration; validated to exist.
    pub warehouse: String,
    pub table: TableRef,
    /// 1 pages, 2 chat, 3 digest.
    pub tier: u8,
    pub owner: Option<String>,
    pub runbook: Option<String>,
    /// When the scheduler runs it; `None`: only on demand (`warden check`,
    /// `backfill`, gates).
    pub schedule: Option<Schedule>,
    pub partition: Option<PartitionSpec>,
    /// Relation the gate validates; defaults to `table`.
    pub gate_table: TableRef,
    /// Whether the gate allows a partition with no rows in `gate_table`
    /// (`gate.allow_empty`); otherwise an empty partition is a breach.
    pub gate_allow_empty: bool,
    /// For a dataset found by `discover:`, the group it belongs to:
    /// `<warehouse>.<schema>`; `None` for one written by hand.
    pub discovered: Option<String>,
    pub checks: Vec<CheckSpec>,
    pub pos: SourcePos,
}

/// A parsed cron schedule and the text it came from.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub expr: String,
    pub cron: croner::Cron,
}

/// How a dataset is partitioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSpec {
    pub column: Identifier,
    pub granularity: Granularity,
}

/// One check of a dataset, after `columns:` expansion.
#[derive(Debug, Clone)]
pub struct CheckSpec {
    /// `<dataset>.<name>`, unique across the configuration.
    pub id: CheckId,
    /// The `name` part of the id.
    pub name: String,
    pub kind: CheckKind,
    pub severity: Severity,
    /// Only blocking fail-severity checks can deny a gate.
    pub blocking: bool,
    /// Extra SQL filter written by the config author (`where:`).
    pub filter: Option<String>,
    pub pos: SourcePos,
}

impl CheckSpec {
    /// Checks that look at one partition when the dataset is partitioned.
    /// Freshness and schema always describe the whole relation.
    pub fn is_partition_scoped(&self) -> bool {
        self.kind.is_partition_scoped()
    }
}

/// What a breach of a check's limits is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = CheckSeverity)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Fail,
    Warn,
}
