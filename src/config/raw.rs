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
    /// Tokens accepted on `/api/v1` and the status page: a bare string
    /// (scopes `read`, `gate`, `publish`, named `token-<position>`) or
    /// `{ name, token, scopes }`. None means the API is open, which
    /// `warden run` allows on loopback only (see `allow_unauthenticated`).
    /// A token that is empty (a variable expanding to nothing) is an error.
    #[serde(default, deserialize_with = "present")]
    pub api_tokens: Option<Spanned<Option<Vec<Spanned<RawToken>>>>>,
    /// Whether `warden run` may listen beyond loopback with no token
    /// configured (the API then open to the network); default false.
    pub allow_unauthenticated: Option<Spanned<bool>>,
    /// Whether the status page is served without a token even when tokens
    /// are set; default false.
    pub public_status_page: Option<Spanned<bool>>,
    /// How long a claimed scheduled run stays leased to its agent without a
    /// renewal (renewed every third of it); another agent takes over a run
    /// whose lease lapsed unfinished. Default `30s`.
    pub run_lease: Option<Spanned<String>>,
    /// How many HTTP connections are open at once; further ones wait to be
    /// accepted until one closes; default 512.
    pub max_http_connections: Option<Spanned<i64>>,
    /// How long the registry keeps history, per kind of row.
    pub retention: Option<Spanned<RawRetention>>,
    /// Where OpenLineage run events go (Marquez, DataHub, …); none are sent
    /// without it.
    pub openlineage: Option<Spanned<RawOpenLineage>>,
}

/// `agent.openlineage`: the OpenLineage HTTP endpoint warden posts a
/// `RunEvent` to for each dataset run and each gate decision.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOpenLineage {
    /// The endpoint that takes `POST`ed events, e.g.
    /// `http://marquez:5000/api/v1/lineage` (required).
    pub url: Option<Spanned<String>>,
    /// Sent as `Authorization: Bearer <api_key>`; none when empty.
    pub api_key: Option<Spanned<String>>,
    /// The namespace of warden's jobs; default `warden`.
    pub namespace: Option<Spanned<String>>,
}

/// `agent.retention`: how long each kind of history is kept, as durations
/// (`400d`, `12w`); each key optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// Check results (the newest of each check is always kept); default 400d.
    pub results: Option<Spanned<String>>,
    /// Decided gates and partition transitions; default 400d.
    pub gates: Option<Spanned<String>>,
    /// Delivered notifications; default 30d.
    pub notifications: Option<Spanned<String>>,
    /// Resolved alerts and expired silences; default 90d.
    pub resolved_alerts: Option<Spanned<String>>,
}

/// One entry of `agent.api_tokens`.
#[derive(Debug)]
pub enum RawToken {
    /// The token itself, as a bare string; `None` when it is empty.
    Bare(Option<String>),
    /// `{ name, token, scopes }`.
    Full(Box<RawTokenEntry>),
}

/// `{ name, token, scopes }` in `agent.api_tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokenEntry {
    /// Recorded as the actor of every change made with the token; default
    /// `token-<position>`.
    pub name: Option<Spanned<String>>,
    /// The secret a client sends (required; usually `${VARIABLE}`).
    #[serde(default, deserialize_with = "present")]
    pub token: Option<Spanned<Option<String>>>,
    /// What the token may do: `read`, `gate`, `publish`, `admin`; default
    /// `[read, gate, publish]`.
    pub scopes: Option<Spanned<Vec<Spanned<String>>>>,
}

impl<'de> Deserialize<'de> for RawToken {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawToken;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a token, or { name, token, scopes }")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawToken, E> {
                Ok(RawToken::Bare(Some(v.to_owned())))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawToken, E> {
                Ok(RawToken::Bare(Some(v.to_string())))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawToken, E> {
                Ok(RawToken::Bare(Some(v.to_string())))
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<RawToken, E> {
                Ok(RawToken::Bare(None))
            }

            fn visit_none<E: serde::de::Error>(self) -> Result<RawToken, E> {
                Ok(RawToken::Bare(None))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawToken, A::Error> {
                RawTokenEntry::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|entry| RawToken::Full(Box::new(entry)))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

/// For an optional key whose value may be null: `Some` as soon as the key
/// is written, so that `key: ${EMPTY}` is told apart from no key at all.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
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
    /// Schemas whose every table is watched from the catalog.
    #[serde(default)]
    pub discover: Vec<Spanned<RawDiscover>>,
}

/// A check file read only far enough to find where each dataset starts, so
/// that each can then be read (and fail) on its own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheckFileOutline {
    /// Each dataset, unread.
    #[serde(default)]
    pub datasets: Vec<Spanned<IgnoredAny>>,
    /// The `discover:` entries, unread: accepted here, read with the whole file.
    #[serde(default)]
    #[allow(dead_code)]
    pub discover: Option<IgnoredAny>,
}

/// One entry of `discover:`: every table of a schema watched from the catalog.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDiscover {
    /// Name of a warehouse declared in `warden.yaml` (required).
    pub warehouse: Option<Spanned<String>>,
    /// The schema (PostgreSQL schema, MySQL or ClickHouse database, SQLite
    /// `main`) whose tables are watched (required).
    pub schema: Option<Spanned<String>>,
    /// Globs of table names watched; default `["*"]`.
    pub include: Option<Spanned<Vec<Spanned<String>>>>,
    /// Globs of table names left out, even when included.
    pub exclude: Option<Spanned<Vec<Spanned<String>>>>,
    /// Tier of every discovered dataset: 1 pages, 2 chat, 3 digest; default 3.
    pub tier: Option<Spanned<i64>>,
    /// Team or person responsible, shown in alerts.
    pub owner: Option<Spanned<String>>,
    /// Cron expression for reading the catalog; without it, on demand only.
    pub schedule: Option<Spanned<String>>,
    /// Which monitors each table gets: `freshness`, `volume`, `schema`;
    /// default all three.
    pub monitors: Option<Spanned<Vec<Spanned<String>>>>,
    /// The freshness monitor's limit.
    pub freshness: Option<Spanned<RawDiscoverFreshness>>,
    /// The volume monitor's limit.
    pub volume: Option<Spanned<RawDiscoverVolume>>,
    /// How long a dropped table is remembered after its alert; default `7d`.
    pub forget_after: Option<Spanned<String>>,
}

/// `freshness:` of a `discover:` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDiscoverFreshness {
    /// Longest time a table may go without a change, like `26h`.
    pub max_lag: Option<Spanned<String>>,
}

/// `volume:` of a `discover:` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDiscoverVolume {
    /// Largest drop of the row estimate between two runs that passes, as
    /// `50%` or `0.5`; default 50%. A drop to 0 always fails.
    pub max_drop: Option<Spanned<String>>,
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
