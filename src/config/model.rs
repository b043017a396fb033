//! The validated, typed configuration. Built only by [`super::load`]; nothing
//! downstream re-parses strings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;

use crate::check::spec::Dataset;
use crate::domain::{Scopes, TokenDigest};

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
    /// `discover:` entries from every check file that loaded.
    pub discover: Vec<crate::discover::Discover>,
    /// Path of the alert routes file, resolved against `base_dir`.
    pub alerts: Option<PathBuf>,
    /// The alert routes read from that file; empty (no receivers, nothing
    /// sent) when the configuration names none.
    pub routes: std::sync::Arc<super::routes::Routes>,
}

impl Config {
    pub fn dataset(&self, name: &str) -> Option<&Dataset> {
        self.datasets.iter().find(|d| d.name.as_str() == name)
    }

    /// The `discover:` entry a dataset named `dataset` was found by, if it
    /// is a discovered one (`<warehouse>.<schema>.<table>` of an entry).
    pub fn discovered_by(&self, dataset: &str) -> Option<&crate::discover::Discover> {
        self.discover.iter().find(|d| {
            dataset
                .strip_prefix(&d.group())
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|table| !table.is_empty() && !table.contains('.'))
        })
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
    /// Tokens accepted on `/api/v1` and the status page; empty means the
    /// API is open (on loopback only, unless `allow_unauthenticated`).
    pub api_tokens: Vec<ApiToken>,
    /// `warden run` may listen beyond loopback without tokens.
    pub allow_unauthenticated: bool,
    /// The status page is served without a token even when tokens are set.
    pub public_status_page: bool,
    /// How long a claimed scheduled run stays leased without a renewal.
    pub run_lease: std::time::Duration,
    /// How many HTTP connections are open at once.
    pub max_http_connections: usize,
    /// How long the registry keeps history.
    pub retention: Retention,
    /// Where OpenLineage events go; none are sent without it.
    pub openlineage: Option<OpenLineageConfig>,
}

pub use super::routes::receiver::OpenLineageConfig;

/// `agent.retention`: how long the agent keeps each kind of history before
/// its hourly prune deletes it. What is still needed is never deleted: the
/// newest result of each check, a partition's current row, open gates and
/// the gates partitions point at, firing or unnotified alerts, undelivered
/// notifications and the dead-letter list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Check results, by when they were recorded.
    pub results: Duration,
    /// Decided gates and partition transitions.
    pub gates: Duration,
    /// Delivered notifications, by when they were queued.
    pub notifications: Duration,
    /// Resolved alerts (once their resolve was notified) and silences
    /// that ended.
    pub resolved_alerts: Duration,
}

const DAY: u64 = 24 * 3600;

impl Default for Retention {
    fn default() -> Self {
        Self {
            results: Duration::from_secs(400 * DAY),
            gates: Duration::from_secs(400 * DAY),
            notifications: Duration::from_secs(30 * DAY),
            resolved_alerts: Duration::from_secs(90 * DAY),
        }
    }
}

/// One entry of `agent.api_tokens`. The token itself is kept only as its
/// digest, so no copy of the configuration can print it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Recorded as the actor of the changes made with it; `token-<position>`
    /// for a token written as a bare string.
    pub name: String,
    pub digest: TokenDigest,
    pub scopes: Scopes,
}

/// One entry of `warehouses:`: what the warehouse module needs to reach it.
pub use crate::warehouse::Settings as WarehouseConfig;

/// The settings of warehouse `name` at `url`: its messages show the URL
/// with the password replaced.
pub fn warehouse_settings(
    name: &str,
    url: &str,
    max_connections: u32,
    query_timeout: std::time::Duration,
) -> WarehouseConfig {
    WarehouseConfig {
        name: name.to_owned(),
        url: url.to_owned(),
        shown_url: crate::domain::redact_url(url),
        max_connections,
        query_timeout,
    }
}
