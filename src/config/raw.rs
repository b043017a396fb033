//! The YAML as written: serde structs that mirror `warden.yaml` and check
//! files key for key, with unknown keys refused and every value spanned so
//! that [`super::validate`] can point at it.
//!
//! Each check kind's settings are declared in its own file under
//! `crate::check::kind`.
//!
//! Values that need parsing (durations, cron, thresholds, enums) are kept as
//! strings here: their problems are then found by validation, which reports
//! all of them at once, instead of by serde, which stops at the first.

use std::collections::HashMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

use crate::check::kind::RawCheck;

/// `warden.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMain {
    /// Settings of the agent process itself.
    pub agent: Option<Spanned<RawAgent>>,
    /// Warehouses by name; datasets refer to them by that name.
    pub warehouses: Option<Spanned<HashMap<Spanned<String>, Spanned<RawWarehouse>>>>,
    /// Globs of check files, relative to `warden.yaml`'s directory.
    pub checks: Option<Spanned<Vec<Spanned<String>>>>,
    /// Path of the alert routes file, relative to `warden.yaml`'s directory.
    pub alerts: Option<Spanned<String>>,
}

/// `agent:` in `warden.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    /// `host:port` of the HTTP API, status page and `/metrics`; default `127.0.0.1:9464`.
    pub listen: Option<Spanned<String>>,
    /// Registry URL: `sqlite://warden.db` (default; relative to `warden.yaml`) or `postgres://…`.
    pub registry: Option<Spanned<String>>,
    /// IANA time zone for cron schedules and deadlines; default `UTC`.
    pub timezone: Option<Spanned<String>>,
    /// How many checks may run at once across all warehouses; default 8.
    pub max_concurrent_checks: Option<Spanned<i64>>,
    /// Bearer tokens accepted on `/api/v1`; empty entries are dropped, none means open.
    pub api_tokens: Option<Vec<Spanned<Option<String>>>>,
}

/// One entry of `warehouses:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWarehouse {
    /// Connection URL: `postgres://`, `mysql://` or `sqlite://` (required).
    pub url: Option<Spanned<String>>,
    /// Size of the connection pool; default 4.
    pub max_connections: Option<Spanned<i64>>,
    /// Longest a check query may run, as a duration like `60s`; default `60s`.
    pub query_timeout: Option<Spanned<String>>,
}

/// A check file: the datasets it declares.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheckFile {
    /// The datasets declared in this file.
    #[serde(default)]
    pub datasets: Vec<Spanned<RawDataset>>,
}

/// A check file read only far enough to find where each dataset starts, so
/// that each can then be read (and fail) on its own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheckFileOutline {
    /// Each dataset, unread.
    #[serde(default)]
    pub datasets: Vec<Spanned<IgnoredAny>>,
}

/// One entry of `datasets:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDataset {
    /// Logical name used in the API, metrics and alerts (required).
    pub name: Option<Spanned<String>>,
    /// Name of a warehouse declared in `warden.yaml` (required).
    pub warehouse: Option<Spanned<String>>,
    /// Watched relation, `table` or `schema.table` (required).
    pub table: Option<Spanned<String>>,
    /// 1 pages, 2 goes to chat, 3 goes to the daily digest; default 2.
    pub tier: Option<Spanned<i64>>,
    /// Team or person responsible, shown in alerts.
    pub owner: Option<Spanned<String>>,
    /// Link shown in alerts.
    pub runbook: Option<Spanned<String>>,
    /// Cron expression with 5 fields, or `@hourly`, `@daily`…; without it the
    /// dataset runs only on demand.
    pub schedule: Option<Spanned<String>>,
    /// How the relation is partitioned, when it is.
    pub partition: Option<Spanned<RawPartition>>,
    /// What the publication gate validates.
    pub gate: Option<Spanned<RawGate>>,
    /// The checks, each a one-key map from kind to settings.
    pub checks: Option<Vec<Spanned<RawCheck>>>,
}

/// `partition:` of a dataset.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPartition {
    /// Column holding the partition's date or timestamp (required).
    pub column: Option<Spanned<String>>,
    /// `day` or `hour` (required).
    pub granularity: Option<Spanned<String>>,
}

/// `gate:` of a dataset.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGate {
    /// Relation the gate validates (the staged data); default: the dataset's `table`.
    pub table: Option<Spanned<String>>,
    /// Whether the gate may allow a partition with no rows in `table`;
    /// default false (an empty partition is a breach).
    pub allow_empty: Option<Spanned<bool>>,
}
