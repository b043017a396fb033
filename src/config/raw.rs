//! The YAML as written: serde structs that mirror `warden.yaml` and check
//! files key for key, with unknown keys refused and every value spanned so
//! that [`super::validate`] can point at it.
//!
//! Values that need parsing (durations, cron, thresholds, enums) are kept as
//! strings here: their problems are then found by validation, which reports
//! all of them at once, instead of by serde, which stops at the first.

use std::collections::HashMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

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
    /// Cron expression with 5 fields, or `@hourly`, `@daily`… (required).
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
}

/// One check: the map's single key is the kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum RawCheck {
    /// `count(*)` within `min` and `max`.
    RowCount(RawRowCount),
    /// Change of `count(*)` against a baseline.
    RowCountChange(RawRowCountChange),
    /// Share of NULLs in a column.
    NullRate(RawNullRate),
    /// Age of the newest row.
    Freshness(RawFreshness),
    /// Columns and types against expected ones or a baseline.
    Schema(RawSchema),
    /// Duplicate keys.
    Unique(RawUnique),
    /// A custom query returning one number.
    Sql(RawSql),
}

/// The kinds of check, as written in YAML.
pub const CHECK_KINDS: [&str; 7] = [
    "row_count",
    "row_count_change",
    "null_rate",
    "freshness",
    "schema",
    "unique",
    "sql",
];

/// The keys every check kind accepts.
#[derive(Debug, Clone, Copy)]
pub struct RawCommon<'a> {
    pub name: Option<&'a Spanned<String>>,
    pub severity: Option<&'a Spanned<String>>,
    pub blocking: Option<&'a Spanned<bool>>,
    pub filter: Option<&'a Spanned<String>>,
}

impl RawCheck {
    /// The kind as written in YAML.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RowCount(_) => "row_count",
            Self::RowCountChange(_) => "row_count_change",
            Self::NullRate(_) => "null_rate",
            Self::Freshness(_) => "freshness",
            Self::Schema(_) => "schema",
            Self::Unique(_) => "unique",
            Self::Sql(_) => "sql",
        }
    }

    /// The keys shared by every kind.
    pub fn common(&self) -> RawCommon<'_> {
        match self {
            Self::RowCount(c) => c.common(),
            Self::RowCountChange(c) => c.common(),
            Self::NullRate(c) => c.common(),
            Self::Freshness(c) => c.common(),
            Self::Schema(c) => c.common(),
            Self::Unique(c) => c.common(),
            Self::Sql(c) => c.common(),
        }
    }
}

/// Declares the settings struct of one check kind: its own keys, then the
/// keys every kind accepts (kept in one place so that they cannot drift).
macro_rules! check_settings {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            /// Check name, unique within the dataset; default `kind` or `kind_column`.
            pub name: Option<Spanned<String>>,
            /// `fail` (default) or `warn`.
            pub severity: Option<Spanned<String>>,
            /// Whether a failure can deny the gate; default true.
            pub blocking: Option<Spanned<bool>>,
            /// Extra SQL filter on the relation, written by the config author.
            #[serde(rename = "where")]
            pub filter: Option<Spanned<String>>,
        }

        impl $name {
            fn common(&self) -> RawCommon<'_> {
                RawCommon {
                    name: self.name.as_ref(),
                    severity: self.severity.as_ref(),
                    blocking: self.blocking.as_ref(),
                    filter: self.filter.as_ref(),
                }
            }
        }
    };
}

check_settings! {
    /// `row_count:` settings.
    RawRowCount {
        /// Fewest rows accepted.
        min: Option<Spanned<i64>>,
        /// Most rows accepted.
        max: Option<Spanned<i64>>,
    }
}

check_settings! {
    /// `row_count_change:` settings.
    RawRowCountChange {
        /// Baseline: `previous` (default), `1d` or `7d`.
        vs: Option<Spanned<String>>,
        /// Largest accepted drop, as `0.3` or `"30%"`.
        max_drop: Option<Spanned<String>>,
        /// Largest accepted growth, as `2` or `"200%"`.
        max_growth: Option<Spanned<String>>,
    }
}

check_settings! {
    /// `null_rate:` settings.
    RawNullRate {
        /// The column; or use `columns`.
        column: Option<Spanned<String>>,
        /// Several columns, one check each.
        columns: Option<Spanned<Vec<Spanned<String>>>>,
        /// Largest accepted share of NULLs, as `0.05` or `"5%"` (required).
        max: Option<Spanned<String>>,
    }
}

check_settings! {
    /// `freshness:` settings: `max_lag`, or `by` with `expect`.
    RawFreshness {
        /// Timestamp or date column whose maximum is the newest data (required).
        column: Option<Spanned<String>>,
        /// Largest accepted age of the newest row, as a duration like `6h`.
        max_lag: Option<Spanned<String>>,
        /// Local time of day (`"08:00"`) by which the data must have arrived.
        by: Option<Spanned<String>>,
        /// Which day's data must be there by then: `today` or `yesterday`.
        expect: Option<Spanned<String>>,
    }
}

check_settings! {
    /// `schema:` settings.
    RawSchema {
        /// Expected columns; without them the first schema seen becomes the baseline.
        columns: Option<Spanned<Vec<Spanned<RawColumn>>>>,
        /// What a column that appeared does: `warn` (default), `fail` or `ignore`.
        on_added: Option<Spanned<String>>,
        /// What a column that disappeared does: `fail` (default), `warn` or `ignore`.
        on_removed: Option<Spanned<String>>,
        /// What a column whose type changed does: `fail` (default), `warn` or `ignore`.
        on_type_changed: Option<Spanned<String>>,
    }
}

/// One expected column of a `schema` check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawColumn {
    /// Column name as the catalog reports it (required).
    pub name: Option<Spanned<String>>,
    /// Column type in any engine's spelling (`int8`, `bigint`…); any type when absent.
    #[serde(rename = "type")]
    pub data_type: Option<Spanned<String>>,
}

check_settings! {
    /// `unique:` settings.
    RawUnique {
        /// The key's columns (required, at least one).
        columns: Option<Spanned<Vec<Spanned<String>>>>,
        /// Most duplicate rows accepted; default 0.
        max: Option<Spanned<i64>>,
    }
}

check_settings! {
    /// `sql:` settings.
    RawSql {
        /// The query; its single row's first column is the observed value (required).
        query: Option<Spanned<String>>,
        /// Smallest accepted value.
        min: Option<Spanned<f64>>,
        /// Largest accepted value.
        max: Option<Spanned<f64>>,
    }
}
