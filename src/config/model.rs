//! The validated, typed configuration. Built only by [`super::load`]; nothing
//! downstream re-parses strings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveTime;
use chrono_tz::Tz;

use crate::domain::{CheckId, DatasetName, Granularity, Identifier, Ratio, TableRef};
use crate::source::SourcePos;

/// The whole configuration: `warden.yaml` plus every check file it names.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `warden.yaml` this was loaded from.
    pub path: PathBuf,
    /// Directory of `warden.yaml`; relative paths are resolved against it.
    pub base_dir: PathBuf,
    pub agent: AgentConfig,
    pub warehouses: BTreeMap<String, WarehouseConfig>,
    /// Datasets from every check file that loaded, in file order.
    pub datasets: Vec<Dataset>,
    /// Path of the alert routes file, resolved against `base_dir`.
    pub alerts: Option<PathBuf>,
    /// The alert routes read from that file; empty (no receivers, nothing
    /// sent) when the configuration names none.
    pub routes: std::sync::Arc<crate::alert::Routes>,
}

impl Config {
    pub fn dataset(&self, name: &str) -> Option<&Dataset> {
        self.datasets.iter().find(|d| d.name.as_str() == name)
    }

    /// The id of every configured check, to tell stored results of checks
    /// still configured from those of removed ones in one pass.
    pub fn check_ids(&self) -> std::collections::HashSet<&str> {
        self.datasets
            .iter()
            .flat_map(|d| &d.checks)
            .map(|c| c.id.as_str())
            .collect()
    }
}

/// The `agent:` section.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Address of the HTTP API, status page and `/metrics`.
    pub listen: String,
    /// Registry URL with relative SQLite paths resolved: `sqlite:///abs/warden.db` or `postgres://…`.
    pub registry: String,
    /// Zone for cron schedules, deadlines and timestamps stored without a zone.
    pub timezone: Tz,
    /// How many checks may run at once across all warehouses.
    pub max_concurrent_checks: usize,
    /// Bearer tokens accepted on `/api/v1`; empty means the API is open.
    pub api_tokens: Vec<String>,
}

/// One entry of `warehouses:`.
#[derive(Debug, Clone)]
pub struct WarehouseConfig {
    pub name: String,
    /// Connection URL; relative SQLite paths already resolved against the config directory.
    pub url: String,
    pub max_connections: u32,
    pub query_timeout: Duration,
}

/// A dataset: one watched relation and its checks.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: DatasetName,
    /// Key into [`Config::warehouses`]; validated to exist.
    pub warehouse: String,
    pub table: TableRef,
    /// 1 pages, 2 chat, 3 digest.
    pub tier: u8,
    pub owner: Option<String>,
    pub runbook: Option<String>,
    pub schedule: Schedule,
    pub partition: Option<PartitionSpec>,
    /// Relation the gate validates; defaults to `table`.
    pub gate_table: TableRef,
    pub checks: Vec<CheckSpec>,
    pub pos: SourcePos,
}

/// A parsed cron schedule and the text it came from.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub expr: String,
    pub cron: croner::Cron,
}

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
        !matches!(
            self.kind,
            CheckKind::Freshness { .. } | CheckKind::Schema { .. }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Fail,
    Warn,
}

/// What a check measures and the limits it is held to.
#[derive(Debug, Clone)]
pub enum CheckKind {
    RowCount {
        min: Option<u64>,
        max: Option<u64>,
    },
    RowCountChange {
        vs: ChangeBaseline,
        max_drop: Option<Ratio>,
        max_growth: Option<Ratio>,
    },
    NullRate {
        column: Identifier,
        max: Ratio,
    },
    Freshness {
        column: Identifier,
        rule: FreshnessRule,
    },
    Schema {
        /// Expected columns; `None` compares against the stored baseline.
        columns: Option<Vec<ExpectedColumn>>,
        on_added: DriftAction,
        on_removed: DriftAction,
        on_type_changed: DriftAction,
    },
    Unique {
        columns: Vec<Identifier>,
        max: u64,
    },
    Sql {
        query: String,
        min: Option<f64>,
        max: Option<f64>,
    },
}

impl CheckKind {
    /// The `kind` string used in JSON, metrics and alerts.
    pub fn name(&self) -> &'static str {
        match self {
            Self::RowCount { .. } => "row_count",
            Self::RowCountChange { .. } => "row_count_change",
            Self::NullRate { .. } => "null_rate",
            Self::Freshness { .. } => "freshness",
            Self::Schema { .. } => "schema",
            Self::Unique { .. } => "unique",
            Self::Sql { .. } => "sql",
        }
    }

    /// The column the check is about, when it is about one.
    pub fn column(&self) -> Option<&Identifier> {
        match self {
            Self::NullRate { column, .. } | Self::Freshness { column, .. } => Some(column),
            Self::Unique { columns, .. } if columns.len() == 1 => columns.first(),
            _ => None,
        }
    }
}

/// `row_count_change.vs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeBaseline {
    /// The previous recorded run (unpartitioned) or the previous partition.
    Previous,
    /// One day earlier.
    Day,
    /// Seven days earlier.
    Week,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FreshnessRule {
    /// now − MAX(column) must not exceed this.
    MaxLag(Duration),
    /// By `by` (local time) each day, MAX(column) must have reached `expect`.
    Deadline { by: NaiveTime, expect: Expect },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Today,
    Yesterday,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedColumn {
    pub name: String,
    /// Normalised type name (see `warehouse::types::normalise`); `None` accepts any type.
    pub data_type: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftAction {
    Warn,
    Fail,
    Ignore,
}
