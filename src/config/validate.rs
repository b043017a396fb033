//! Raw structs to typed config: every value parsed once (durations, cron,
//! identifiers, thresholds), defaults applied, relative paths resolved. Every
//! problem is collected, not only the first, so a user fixes a file in one go.

mod checks;
mod discover;
mod tokens;
pub(crate) mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use serde_saphyr::Spanned;

use super::raw::{
    RawAgent, RawDataset, RawMain, RawOpenLineage, RawPartition, RawRetention, RawWarehouse,
};
use super::{AgentConfig, OpenLineageConfig, Retention, WarehouseConfig};
use crate::check::{CheckSpec, Dataset, PartitionSpec, Severity};
use crate::domain::{DatasetName, Granularity, Identifier};
use crate::source::Problems;
use crate::source::values::{
    check_plain_name, parse_duration, parse_listen, parse_table, parse_timezone, positive,
};
use crate::source::{Diagnostic, SourceFile, SourcePos, did_you_mean, one_of};
use values::{parse_cron, registry_url, warehouse_url};

pub use discover::discover;
pub use values::clean;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";
pub const DEFAULT_REGISTRY: &str = "sqlite://warden.db";
pub const DEFAULT_MAX_CONCURRENT_CHECKS: usize = 8;
pub const DEFAULT_MAX_HTTP_CONNECTIONS: usize = 512;
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4;
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_TIER: u8 = 2;
/// `agent.run_lease`: the default, and the range it may take (a lease
/// shorter than a few seconds would lapse under an ordinary registry
/// hiccup; one longer than ten minutes leaves a dead agent's runs waiting).
pub const DEFAULT_RUN_LEASE: Duration = Duration::from_secs(30);
const MIN_RUN_LEASE: Duration = Duration::from_secs(3);
const MAX_RUN_LEASE: Duration = Duration::from_secs(600);

// ---------------------------------------------------------------- warden.yaml

/// What `warden.yaml` yields, as far as it is valid.
#[derive(Debug)]
pub struct MainParts {
    pub agent: AgentConfig,
    /// The warehouses that are valid.
    pub warehouses: BTreeMap<String, WarehouseConfig>,
    /// Every warehouse name declared, valid or not, so that datasets naming a
    /// broken warehouse are not also told that it does not exist.
    pub warehouse_names: Vec<String>,
    /// `checks:` globs and where each was written.
    pub check_globs: Vec<(String, SourcePos)>,
    pub alerts: Option<PathBuf>,
}

/// Validates `warden.yaml`; `base_dir` (absolute) resolves relative paths.
pub fn main_config(
    raw: &RawMain,
    src: &SourceFile,
    base_dir: &Path,
) -> (MainParts, Vec<Diagnostic>) {
    let mut p = Problems::new(src);
    let agent = agent(raw.agent.as_ref().map(|a| &a.value), &mut p, base_dir);

    let mut entries: Vec<_> = raw.warehouses.iter().flat_map(|w| w.value.iter()).collect();
    entries.sort_by_key(|(name, _)| (name.referenced.line(), name.referenced.column()));
    let mut warehouses = BTreeMap::new();
    let mut warehouse_names = Vec::new();
    for (name, wh) in entries {
        warehouse_names.push(name.value.clone());
        if let Some(w) = warehouse(name, &wh.value, &mut p, base_dir) {
            warehouses.insert(name.value.clone(), w);
        }
    }

    let check_globs = raw
        .checks
        .iter()
        .flat_map(|c| c.value.iter())
        .filter_map(|g| {
            if g.value.trim().is_empty() {
                p.at(g, "`checks`: a pattern cannot be empty");
                return None;
            }
            if let Err(e) = glob::Pattern::new(&g.value) {
                p.at(
                    g,
                    format!("`checks`: `{}` is not a valid glob: {}", g.value, e.msg),
                );
                return None;
            }
            Some((g.value.clone(), src.pos_of(g)))
        })
        .collect();

    let alerts = raw.alerts.as_ref().and_then(|a| {
        p.parse(a, "alerts", |s| {
            let path = base_dir.join(s);
            if s.trim().is_empty() {
                Err("a path cannot be empty".into())
            } else if !path.is_file() {
                Err(format!("file `{s}` does not exist"))
            } else {
                Ok(clean(&path))
            }
        })
    });

    let parts = MainParts {
        agent,
        warehouses,
        warehouse_names,
        check_globs,
        alerts,
    };
    (parts, p.list)
}

fn agent(raw: Option<&RawAgent>, p: &mut Problems<'_>, base_dir: &Path) -> AgentConfig {
    let listen = raw
        .and_then(|a| a.listen.as_ref())
        .and_then(|l| p.parse(l, "listen", |s| parse_listen(s)))
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let registry = match raw.and_then(|a| a.registry.as_ref()) {
        Some(r) => p.parse(r, "registry", |s| registry_url(s, base_dir)),
        None => registry_url(DEFAULT_REGISTRY, base_dir).ok(),
    }
    .unwrap_or_default();
    let timezone = raw
        .and_then(|a| a.timezone.as_ref())
        .and_then(|t| p.parse(t, "timezone", |s| parse_timezone(s)))
        .unwrap_or(Tz::UTC);
    let max_concurrent_checks = raw
        .and_then(|a| a.max_concurrent_checks.as_ref())
        .and_then(|m| {
            p.parse(m, "max_concurrent_checks", |&n| {
                positive(n).map(|n| n as usize)
            })
        })
        .unwrap_or(DEFAULT_MAX_CONCURRENT_CHECKS);
    let api_tokens = tokens::api_tokens(raw.and_then(|a| a.api_tokens.as_ref()), p);
    let run_lease = raw
        .and_then(|a| a.run_lease.as_ref())
        .and_then(|l| {
            p.parse(l, "run_lease", |s| {
                parse_duration(s).and_then(|d| {
                    if (MIN_RUN_LEASE..=MAX_RUN_LEASE).contains(&d) {
                        Ok(d)
                    } else {
                        Err(format!(
                            "`{s}` is out of range: a run lease is from {} to {}",
                            crate::format::duration(MIN_RUN_LEASE.as_secs_f64()),
                            crate::format::duration(MAX_RUN_LEASE.as_secs_f64())
                        ))
                    }
                })
            })
        })
        .unwrap_or(DEFAULT_RUN_LEASE);
    let max_http_connections = raw
        .and_then(|a| a.max_http_connections.as_ref())
        .and_then(|m| {
            p.parse(m, "max_http_connections", |&n| {
                positive(n).and_then(|n| {
                    usize::try_from(n)
                        .ok()
                        .filter(|&n| n <= MAX_HTTP_CONNECTIONS)
                        .ok_or_else(|| format!("{n} is more than {MAX_HTTP_CONNECTIONS}"))
                })
            })
        })
        .unwrap_or(DEFAULT_MAX_HTTP_CONNECTIONS);
    let retention = retention(raw.and_then(|a| a.retention.as_ref()), p);
    let openlineage = raw
        .and_then(|a| a.openlineage.as_ref())
        .and_then(|o| openlineage(o, p));
    let flag = |value: Option<&Spanned<bool>>| value.is_some_and(|v| v.value);
    AgentConfig {
        listen,
        registry,
        timezone,
        max_concurrent_checks,
        api_tokens,
        allow_unauthenticated: flag(raw.and_then(|a| a.allow_unauthenticated.as_ref())),
        public_status_page: flag(raw.and_then(|a| a.public_status_page.as_ref())),
        run_lease,
        max_http_connections,
        retention,
        openlineage,
    }
}

/// The namespace of warden's jobs when `agent.openlineage.namespace` is not set.
pub const DEFAULT_OPENLINEAGE_NAMESPACE: &str = "warden";

/// `agent.openlineage`: an http(s) `url` (required; never shown, as it may
/// hold a token), an `api_key` (empty: none) and a `namespace`.
fn openlineage(raw: &Spanned<RawOpenLineage>, p: &mut Problems<'_>) -> Option<OpenLineageConfig> {
    let o = &raw.value;
    let url = p
        .required_in(&o.url, "openlineage.url", raw)
        .and_then(|u| {
            p.parse(u, "openlineage.url", |s| {
                let s = s.trim();
                match reqwest::Url::parse(s) {
                    Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                        Ok(s.to_owned())
                    }
                    Ok(_) => Err("must be an http:// or https:// URL with a host, such as \
                                  http://marquez:5000/api/v1/lineage (the value is not shown, as it may hold a token)"
                        .to_owned()),
                    Err(_) if s.is_empty() => Err("the URL cannot be empty".to_owned()),
                    Err(e) => Err(format!(
                        "not a URL: {e} (the value is not shown, as it may hold a token)"
                    )),
                }
            })
        });
    let api_key = o
        .api_key
        .as_ref()
        .map(|k| k.value.trim())
        .filter(|k| !k.is_empty())
        .map(crate::domain::Secret::new);
    let namespace = p.parse_or(
        &o.namespace,
        "openlineage.namespace",
        DEFAULT_OPENLINEAGE_NAMESPACE.to_owned(),
        |s| {
            let s = s.trim();
            if s.is_empty() {
                Err("a namespace cannot be empty".to_owned())
            } else if s.chars().any(char::is_whitespace) {
                Err(format!(
                    "`{s}` holds white space; use a name such as `warden` or `warden-prod`"
                ))
            } else {
                Ok(s.to_owned())
            }
        },
    );
    Some(OpenLineageConfig {
        url: url?,
        api_key,
        namespace: namespace?,
    })
}

/// The most connections `agent.max_http_connections` may allow: beyond it a
/// process runs out of file descriptors before the cap means anything.
const MAX_HTTP_CONNECTIONS: usize = 65_536;

/// The shortest retention of anything.
const MIN_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// The shortest retention of results: longer than the longest baseline a
/// check compares with (`row_count_change` `vs: 7d`).
const MIN_RESULTS_RETENTION: Duration = Duration::from_secs(8 * 24 * 3600);

/// `agent.retention`: each key a duration of at least a day; a key left out
/// keeps its default.
fn retention(raw: Option<&Spanned<RawRetention>>, p: &mut Problems<'_>) -> Retention {
    let defaults = Retention::default();
    let Some(raw) = raw.map(|r| &r.value) else {
        return defaults;
    };
    let mut one = |value: &Option<Spanned<String>>, key: &str, default: Duration| {
        let least = if key == "results" {
            MIN_RESULTS_RETENTION
        } else {
            MIN_RETENTION
        };
        p.parse_or(value, &format!("retention.{key}"), default, |s| {
            let d = parse_duration(s)?;
            if d < least {
                Err(format!(
                    "`{s}` is too short; keep {key} at least {}{}",
                    humantime::format_duration(least),
                    if key == "results" {
                        " (row_count_change compares with a week ago)"
                    } else {
                        ""
                    }
                ))
            } else {
                Ok(d)
            }
        })
        .unwrap_or(default)
    };
    Retention {
        results: one(&raw.results, "results", defaults.results),
        gates: one(&raw.gates, "gates", defaults.gates),
        notifications: one(&raw.notifications, "notifications", defaults.notifications),
        resolved_alerts: one(
            &raw.resolved_alerts,
            "resolved_alerts",
            defaults.resolved_alerts,
        ),
    }
}

fn warehouse(
    name: &Spanned<String>,
    raw: &RawWarehouse,
    p: &mut Problems<'_>,
    base_dir: &Path,
) -> Option<WarehouseConfig> {
    let at = p.src.pos_of(name);
    let before = p.list.len();
    p.parse(name, "warehouses", |s| check_plain_name(s, "warehouse"));
    let url = p
        .required(&raw.url, "url", &at)
        .and_then(|u| p.parse(u, "url", |s| warehouse_url(s, base_dir)));
    let max_connections = p.parse_or(
        &raw.max_connections,
        "max_connections",
        DEFAULT_MAX_CONNECTIONS,
        |&n| positive(n).and_then(|n| u32::try_from(n).map_err(|_| format!("{n} is too large"))),
    );
    let query_timeout = p.parse_or(
        &raw.query_timeout,
        "query_timeout",
        DEFAULT_QUERY_TIMEOUT,
        |s| parse_duration(s),
    );
    if p.list.len() > before {
        return None;
    }
    Some(super::model::warehouse_settings(
        &name.value,
        &url?,
        max_connections?,
        query_timeout?,
    ))
}

// ---------------------------------------------------------------- check files

/// What a dataset is checked against.
pub struct DatasetContext<'a> {
    pub src: &'a SourceFile,
    /// Every warehouse declared in `warden.yaml`.
    pub warehouses: &'a [String],
}

/// Validates one dataset; all of its problems, or the dataset.
pub fn dataset(
    raw: &Spanned<RawDataset>,
    cx: &DatasetContext<'_>,
) -> Result<Dataset, Vec<Diagnostic>> {
    let mut p = Problems::new(cx.src);
    let pos = cx.src.pos_of(raw);
    let r = &raw.value;

    let name = p.required(&r.name, "name", &pos).and_then(|n| {
        p.parse(n, "name", |s| {
            DatasetName::parse(s.trim()).map_err(|e| e.to_string())
        })
    });
    let warehouse = p
        .required(&r.warehouse, "warehouse", &pos)
        .and_then(|w| p.parse(w, "warehouse", |s| known_warehouse(s, cx.warehouses)));
    let table = p
        .required(&r.table, "table", &pos)
        .and_then(|t| p.parse(t, "table", |s| parse_table(s)));
    let tier = p.parse_or(&r.tier, "tier", DEFAULT_TIER, |&t| match t {
        1..=3 => Ok(t as u8),
        _ => Err(format!(
            "{t} is not a tier; expected 1 (page), 2 (chat) or 3 (digest)"
        )),
    });
    let owner = non_empty(&r.owner);
    let runbook = non_empty(&r.runbook);
    // Without a schedule the dataset runs only on demand.
    let schedule = match &r.schedule {
        None => Some(None),
        Some(s) => p.parse(s, "schedule", |s| parse_cron(s)).map(Some),
    };
    let partition = match &r.partition {
        None => Some(None),
        Some(part) => partition(part, &mut p).map(Some),
    };
    let gate_table = match &r.gate {
        None => Some(None),
        // `gate: {}` says nothing; `gate: { allow_empty: true }` gates `table`.
        Some(g) if g.value.allow_empty.is_some() && g.value.table.is_none() => Some(None),
        Some(g) => p
            .required(&g.value.table, "gate.table", &cx.src.pos_of(g))
            .and_then(|t| p.parse(t, "table", |s| parse_table(s)))
            .map(Some),
    };
    let gate_allow_empty = r
        .gate
        .as_ref()
        .and_then(|g| g.value.allow_empty.as_ref())
        .is_some_and(|a| a.value);

    let problems_before_checks = p.list.len();
    let checks = checks::of_dataset(
        r.checks.as_deref().unwrap_or_default(),
        name.as_ref(),
        &mut p,
    );

    // Judged on valid checks only: a check with a mistake is reported as such.
    if let Some(g) = &r.gate
        && p.list.len() == problems_before_checks
        && !decides_a_gate(&checks, r.partition.is_some())
    {
        p.at(
            g,
            "`gate`: no blocking fail-severity check looks at a partition, so nothing could \
             deny the gate; add one (e.g. `row_count: { min: 1 }`) or remove `gate`",
        );
    }

    if !p.is_empty() {
        return Err(p.list);
    }
    let (
        Some(name),
        Some(warehouse),
        Some(table),
        Some(tier),
        Some(schedule),
        Some(partition),
        Some(gate_table),
    ) = (
        name, warehouse, table, tier, schedule, partition, gate_table,
    )
    else {
        return Err(p.list);
    };
    Ok(Dataset {
        name,
        warehouse,
        gate_table: gate_table.unwrap_or_else(|| table.clone()),
        gate_allow_empty,
        discovered: None,
        table,
        tier,
        owner,
        runbook,
        schedule,
        partition,
        checks,
        pos,
    })
}

/// `s` if it names a warehouse of `warehouses`, else why not.
pub(super) fn known_warehouse(s: &str, warehouses: &[String]) -> Result<String, String> {
    let s = s.trim();
    if warehouses.iter().any(|w| w == s) {
        return Ok(s.to_owned());
    }
    let hint = did_you_mean(s, warehouses.iter().map(String::as_str));
    if !hint.is_empty() {
        Err(format!("unknown warehouse `{s}`{hint}"))
    } else if warehouses.is_empty() {
        Err(format!(
            "unknown warehouse `{s}` (warden.yaml declares none)"
        ))
    } else {
        let names: Vec<&str> = warehouses.iter().map(String::as_str).collect();
        Err(format!(
            "unknown warehouse `{s}` (warden.yaml declares {})",
            one_of(&names)
        ))
    }
}

/// Whether some check can deny a gate: blocking, fail severity, and looking
/// at the partition asked about (for a partitioned dataset, a
/// partition-scoped check; otherwise any).
fn decides_a_gate(checks: &[CheckSpec], partitioned: bool) -> bool {
    checks.iter().any(|c| {
        c.blocking && c.severity == Severity::Fail && (!partitioned || c.is_partition_scoped())
    })
}

fn non_empty(value: &Option<Spanned<String>>) -> Option<String> {
    value
        .as_ref()
        .map(|v| v.value.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn partition(raw: &Spanned<RawPartition>, p: &mut Problems<'_>) -> Option<PartitionSpec> {
    let at = p.src.pos_of(raw);
    let column = p
        .required(&raw.value.column, "partition.column", &at)
        .and_then(|c| p.parse(c, "column", |s| Identifier::parse(s.trim())));
    let granularity = p
        .required(&raw.value.granularity, "partition.granularity", &at)
        .and_then(|g| p.parse(g, "granularity", |s| Granularity::parse(s.trim())));
    Some(PartitionSpec {
        column: column?,
        granularity: granularity?,
    })
}

#[cfg(test)]
mod dataset_tests {
    use super::*;

    /// Every problem of the datasets in `yaml`, as `line:col: message`.
    fn problems(yaml: &str) -> Vec<String> {
        let src = SourceFile::expand(Path::new("c.yaml"), yaml, &|_| None).unwrap();
        let (raws, diags) = crate::config::parse::datasets(&src);
        assert!(diags.is_empty(), "{diags:?}");
        let warehouses = vec!["main".to_owned()];
        let cx = DatasetContext {
            src: &src,
            warehouses: &warehouses,
        };
        raws.iter()
            .flat_map(|r| dataset(r, &cx).err().unwrap_or_default())
            .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
            .collect()
    }

    #[test]
    fn a_gate_needs_a_check_that_can_deny_it() {
        let yaml = r#"datasets:
  - name: a
    warehouse: main
    table: t
    schedule: "@daily"
    partition: { column: d, granularity: day }
    gate: { allow_empty: true }
    checks:
      - row_count: { min: 1, severity: warn }
      - null_rate: { column: c, max: 0, blocking: false }
      - freshness: { column: d, max_lag: 1h }
"#;
        let got = problems(yaml);
        assert_eq!(
            got[0],
            "7:11: `gate`: no blocking fail-severity check looks at a partition, so nothing could \
             deny the gate; add one (e.g. `row_count: { min: 1 }`) or remove `gate`"
        );
        assert_eq!(got.len(), 1, "{got:?}");

        let yaml = r#"datasets:
  - name: b
    warehouse: main
    table: t
    schedule: "@daily"
    gate: { table: s, allow_empty: maybe }
    checks:
      - row_count: { min: 1 }
"#;
        let src = SourceFile::expand(Path::new("c.yaml"), yaml, &|_| None).unwrap();
        let (_, diags) = crate::config::parse::datasets(&src);
        let got: Vec<String> = diags.iter().map(ToString::to_string).collect();
        assert_eq!(got, ["c.yaml:6:36: `allow_empty`: expected true or false"]);
    }

    #[test]
    fn a_gate_may_allow_empty_partitions() {
        let yaml = r#"datasets:
  - name: a
    warehouse: main
    table: t
    schedule: "@daily"
    partition: { column: d, granularity: day }
    gate: { allow_empty: true }
    checks:
      - row_count: { min: 1 }
  - name: b
    warehouse: main
    table: t
    schedule: "@daily"
    gate: { table: s }
    checks:
      - sql: { name: x, query: "SELECT 0", max: 0 }
"#;
        let src = SourceFile::expand(Path::new("c.yaml"), yaml, &|_| None).unwrap();
        let (raws, diags) = crate::config::parse::datasets(&src);
        assert!(diags.is_empty(), "{diags:?}");
        let warehouses = vec!["main".to_owned()];
        let cx = DatasetContext {
            src: &src,
            warehouses: &warehouses,
        };
        let a = dataset(&raws[0], &cx).unwrap();
        assert!(a.gate_allow_empty);
        assert_eq!(a.gate_table, a.table);
        let b = dataset(&raws[1], &cx).unwrap();
        assert!(!b.gate_allow_empty);
        assert_eq!(b.gate_table.to_string(), "s");
    }

    #[test]
    fn every_semantic_problem_is_reported() {
        let yaml = r#"datasets:
  - name: bad name
    warehouse: main
    table: a.b.c
    schedule: "@daily"
    partition: { column: d }
    gate: {}
    checks:
      - row_count: { min: 10, max: 5 }
      - null_rate: { column: a, columns: [b], max: 1% }
      - null_rate: { column: a }
      - freshness: { column: ts, max_lag: 1h, by: "08:00" }
      - freshness: { column: ts, by: "8am", expect: tomorrow }
      - freshness: { column: ts }
      - schema: { columns: [{ name: a, type: int }, { name: a }], on_added: warning }
      - unique: { columns: [] }
      - sql: { query: "SELECT 1", min: 2, max: 1 }
      - row_count: { severity: critical, where: "", min: -1 }
      - null_rate: { columns: [x, y], max: 0, name: nulls }
      - unique: { columns: [id, "id;drop"] }
"#;
        assert_eq!(
            problems(yaml),
            [
                "2:11: `name`: dataset name `bad name` may only hold letters, digits, `_` and `-`, starting with a letter or `_`",
                "4:12: `table`: `a.b.c` is not a table like `orders` or `analytics.orders`: `b.c` is not a plain SQL identifier (letters, digits, `_`, `$`; not starting with a digit)",
                "6:16: `partition.granularity` is required",
                "7:11: `gate.table` is required",
                "9:27: `min` (10) is greater than `max` (5)",
                "10:42: use either `column` or `columns`, not both",
                "11:9: `max` is required",
                "12:43: `max_lag` cannot be combined with `by`/`expect`; use one form or the other",
                "13:38: `by`: `8am` is not a time of day like \"08:00\"",
                "13:53: `expect`: `tomorrow` is not `today` or `yesterday`",
                "14:9: `max_lag`, or `by` with `expect`, is required",
                "15:53: `columns`: column `a` is listed twice",
                "15:77: `on_added`: `warning` is not `warn`, `fail` or `ignore`; did you mean `warn`?",
                "16:28: `columns` needs at least one column",
                "17:9: `name` is required for sql checks",
                "17:40: `min` (2) is greater than `max` (1)",
                "18:32: `severity`: `critical` is not a severity; expected `fail` or `warn`",
                "18:49: `where`: the filter cannot be empty",
                "18:58: `min`: cannot be negative (got -1)",
                "19:31: `name` cannot be given to a check over several `columns` (each column gets its own check, named null_rate_<column>)",
                "20:33: `columns`: `id;drop` is not a plain SQL identifier (letters, digits, `_`, `$`; not starting with a digit)",
            ]
        );
    }
}
