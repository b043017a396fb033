//! Raw structs to typed config: every value parsed once (durations, cron,
//! identifiers, thresholds), defaults applied, relative paths resolved. Every
//! problem is collected, not only the first, so a user fixes a file in one go.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use chrono::NaiveTime;
use chrono_tz::Tz;
use serde_saphyr::Spanned;

use super::diagnostic::{Diagnostic, did_you_mean, one_of};
use super::parse::SourceFile;
use super::raw::{
    RawAgent, RawCheck, RawColumn, RawDataset, RawFreshness, RawMain, RawNullRate, RawPartition,
    RawRowCount, RawRowCountChange, RawSchema, RawSql, RawUnique, RawWarehouse,
};
use super::{
    AgentConfig, ChangeBaseline, CheckKind, CheckSpec, Dataset, DriftAction, Expect,
    ExpectedColumn, FreshnessRule, PartitionSpec, Schedule, Severity, SourcePos, WarehouseConfig,
};
use crate::domain::{CheckId, DatasetName, Granularity, Identifier, Ratio, TableRef};
use crate::warehouse::{Engine, types};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";
pub const DEFAULT_REGISTRY: &str = "sqlite://warden.db";
pub const DEFAULT_MAX_CONCURRENT_CHECKS: usize = 8;
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4;
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_TIER: u8 = 2;

/// Problems found so far in one file.
struct Problems<'a> {
    src: &'a SourceFile,
    list: Vec<Diagnostic>,
}

impl<'a> Problems<'a> {
    fn new(src: &'a SourceFile) -> Self {
        Self {
            src,
            list: Vec::new(),
        }
    }

    fn at<T>(&mut self, value: &Spanned<T>, message: impl Into<String>) {
        self.list.push(self.src.diag(&value.referenced, message));
    }

    fn at_pos(&mut self, pos: &SourcePos, message: impl Into<String>) {
        self.list.push(Diagnostic::at(pos, message));
    }

    /// `value`, or a "`key` is required" problem at `pos`.
    fn required<'v, T>(
        &mut self,
        value: &'v Option<Spanned<T>>,
        key: &str,
        pos: &SourcePos,
    ) -> Option<&'v Spanned<T>> {
        if value.is_none() {
            self.at_pos(pos, format!("`{key}` is required"));
        }
        value.as_ref()
    }

    /// `parse(value)`, or a "`key`: why" problem at the value.
    fn parse<R, T>(
        &mut self,
        value: &Spanned<R>,
        key: &str,
        parse: impl FnOnce(&R) -> Result<T, String>,
    ) -> Option<T> {
        match parse(&value.value) {
            Ok(v) => Some(v),
            Err(why) => {
                self.at(value, format!("`{key}`: {why}"));
                None
            }
        }
    }

    /// Like [`Self::parse`] for an optional key: `Some(default)` when absent,
    /// `None` when present but invalid.
    fn parse_or<R, T>(
        &mut self,
        value: &Option<Spanned<R>>,
        key: &str,
        default: T,
        parse: impl FnOnce(&R) -> Result<T, String>,
    ) -> Option<T> {
        match value {
            None => Some(default),
            Some(v) => self.parse(v, key, parse),
        }
    }

    /// Like [`Self::parse_or`] without a default: `Some(None)` when absent.
    fn parse_opt<R, T>(
        &mut self,
        value: &Option<Spanned<R>>,
        key: &str,
        parse: impl FnOnce(&R) -> Result<T, String>,
    ) -> Option<Option<T>> {
        match value {
            None => Some(None),
            Some(v) => self.parse(v, key, parse).map(Some),
        }
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

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
    let api_tokens = raw
        .and_then(|a| a.api_tokens.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|t| t.value.as_deref().map(str::trim).filter(|t| !t.is_empty()))
        .map(str::to_owned)
        .collect();
    AgentConfig {
        listen,
        registry,
        timezone,
        max_concurrent_checks,
        api_tokens,
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
    Some(WarehouseConfig {
        name: name.value.clone(),
        url: url?,
        max_connections: max_connections?,
        query_timeout: query_timeout?,
    })
}

/// `host:port`, with a numeric port.
fn parse_listen(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(s.to_owned());
    }
    match s.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty() && !host.contains(':') && port.parse::<u16>().is_ok() =>
        {
            Ok(s.to_owned())
        }
        _ => Err(format!("`{s}` is not an address like 127.0.0.1:9464")),
    }
}

fn parse_timezone(s: &str) -> Result<Tz, String> {
    s.trim().parse::<Tz>().map_err(|_| {
        let names = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name());
        match did_you_mean(s, names) {
            hint if hint.is_empty() => {
                format!("unknown time zone `{s}` (expected an IANA name like Europe/Paris)")
            }
            hint => format!("unknown time zone `{s}`{hint}"),
        }
    })
}

/// The registry URL, with a relative SQLite path resolved against `base_dir`.
fn registry_url(s: &str, base_dir: &Path) -> Result<String, String> {
    match Engine::from_url(s.trim()) {
        Some(Engine::Sqlite) => Ok(resolve_sqlite(s.trim(), base_dir)),
        Some(Engine::Postgres) => Ok(s.trim().to_owned()),
        Some(Engine::MySql) => Err("the registry can be SQLite or PostgreSQL, not MySQL".into()),
        None => Err(format!(
            "`{s}` is not a URL like sqlite://warden.db or postgres://host/db"
        )),
    }
}

/// A warehouse URL, with a relative SQLite path resolved against `base_dir`.
fn warehouse_url(s: &str, base_dir: &Path) -> Result<String, String> {
    let s = s.trim();
    match Engine::from_url(s) {
        Some(Engine::Sqlite) => Ok(resolve_sqlite(s, base_dir)),
        Some(_) => Ok(s.to_owned()),
        None => match s.split_once("://") {
            Some((scheme, _)) => Err(format!(
                "unsupported scheme `{scheme}` (expected postgres://, mysql:// or sqlite://){}",
                did_you_mean(
                    scheme,
                    ["postgres", "postgresql", "mysql", "mariadb", "sqlite"]
                )
            )),
            None => Err(format!(
                "`{s}` is not a URL like postgres://host/db, mysql://host/db or sqlite://file.db"
            )),
        },
    }
}

/// `sqlite://rel.db?mode=ro` → `sqlite:///base/dir/rel.db?mode=ro`; absolute
/// paths and `:memory:` are left alone.
fn resolve_sqlite(url: &str, base_dir: &Path) -> String {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    if path.is_empty() || path.starts_with(':') || Path::new(path).is_absolute() {
        return url.to_owned();
    }
    let resolved = clean(&base_dir.join(path));
    match query {
        Some(q) => format!("sqlite://{}?{q}", resolved.display()),
        None => format!("sqlite://{}", resolved.display()),
    }
}

/// `path` without `.` components (`/a/./b` → `/a/b`).
pub fn clean(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
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
    let warehouse = p.required(&r.warehouse, "warehouse", &pos).and_then(|w| {
        p.parse(w, "warehouse", |s| {
            let s = s.trim();
            if cx.warehouses.iter().any(|w| w == s) {
                return Ok(s.to_owned());
            }
            let hint = did_you_mean(s, cx.warehouses.iter().map(String::as_str));
            if !hint.is_empty() {
                Err(format!("unknown warehouse `{s}`{hint}"))
            } else if cx.warehouses.is_empty() {
                Err(format!(
                    "unknown warehouse `{s}` (warden.yaml declares none)"
                ))
            } else {
                let names: Vec<&str> = cx.warehouses.iter().map(String::as_str).collect();
                Err(format!(
                    "unknown warehouse `{s}` (warden.yaml declares {})",
                    one_of(&names)
                ))
            }
        })
    });
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
    let schedule = p
        .required(&r.schedule, "schedule", &pos)
        .and_then(|s| p.parse(s, "schedule", |s| parse_cron(s)));
    let partition = match &r.partition {
        None => Some(None),
        Some(part) => partition(part, &mut p).map(Some),
    };
    let gate_table = match &r.gate {
        None => Some(None),
        Some(g) => p
            .required(&g.value.table, "gate.table", &cx.src.pos_of(g))
            .and_then(|t| p.parse(t, "table", |s| parse_table(s)))
            .map(Some),
    };

    let checks = checks(
        r.checks.as_deref().unwrap_or_default(),
        name.as_ref(),
        &mut p,
    );

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

fn parse_table(s: &str) -> Result<TableRef, String> {
    let s = s.trim();
    TableRef::parse(s)
        .map_err(|e| format!("`{s}` is not a table like `orders` or `analytics.orders`: {e}"))
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

/// A cron expression: 5 fields or a nickname; seconds are not accepted.
fn parse_cron(s: &str) -> Result<Schedule, String> {
    const NICKNAMES: [&str; 6] = [
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@hourly",
    ];
    let expr = s.trim();
    if expr.starts_with('@') {
        if !NICKNAMES.iter().any(|n| n.eq_ignore_ascii_case(expr)) {
            return Err(format!(
                "unknown schedule `{expr}` (expected one of {}){}",
                NICKNAMES.join(", "),
                did_you_mean(expr, NICKNAMES)
            ));
        }
    } else {
        let fields = expr.split_whitespace().count();
        if fields != 5 {
            return Err(format!(
                "`{expr}` has {fields} fields; a cron expression has 5 (minute hour day-of-month month day-of-week), or use @hourly, @daily…"
            ));
        }
    }
    let parser = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .build();
    let cron = parser
        .parse(expr)
        .map_err(|e| format!("invalid cron expression `{expr}`: {}", cron_error(&e)))?;
    Ok(Schedule {
        expr: expr.to_owned(),
        cron,
    })
}

fn cron_error(e: &croner::errors::CronError) -> String {
    use croner::errors::CronError;
    match e {
        CronError::InvalidPattern(m)
        | CronError::IllegalCharacters(m)
        | CronError::ComponentError(m) => m.trim_end_matches('.').to_lowercase(),
        other => other.to_string(),
    }
}

/// A duration like `60s`, `6h`, `7d` or `1h 30m`; zero is refused.
fn parse_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s.trim()) {
        Ok(d) if d.is_zero() => Err(format!("`{s}` must be longer than zero")),
        Ok(d) => Ok(d),
        Err(_) => Err(format!("`{s}` is not a duration like 60s, 6h or 7d")),
    }
}

fn positive(n: i64) -> Result<u64, String> {
    u64::try_from(n)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("must be at least 1 (got {n})"))
}

fn non_negative(n: i64) -> Result<u64, String> {
    u64::try_from(n).map_err(|_| format!("cannot be negative (got {n})"))
}

/// Warehouse names appear in metrics labels and messages: keep them plain.
fn check_plain_name(s: &str, what: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} name `{s}` may only hold letters, digits, `_` and `-`, starting with a letter or `_`"
        ))
    }
}

// ---------------------------------------------------------------- checks

/// A check before its id is known.
struct Draft {
    name: String,
    /// Where the name was written, or the check when derived.
    name_pos: SourcePos,
    kind: CheckKind,
    severity: Severity,
    blocking: bool,
    filter: Option<String>,
    pos: SourcePos,
}

fn checks(
    raw: &[Spanned<RawCheck>],
    dataset: Option<&DatasetName>,
    p: &mut Problems<'_>,
) -> Vec<CheckSpec> {
    let mut out = Vec::new();
    let mut seen: HashMap<String, SourcePos> = HashMap::new();
    for check in raw {
        for draft in check_drafts(check, p) {
            if let Some(first) = seen.get(&draft.name) {
                let id =
                    dataset.map_or_else(|| draft.name.clone(), |d| format!("{d}.{}", draft.name));
                p.at_pos(
                    &draft.name_pos,
                    format!("duplicate check id `{id}` (first defined at {first}); give one of them a different `name`"),
                );
                continue;
            }
            seen.insert(draft.name.clone(), draft.name_pos.clone());
            let Some(dataset) = dataset else { continue };
            match CheckId::new(dataset, &draft.name) {
                Ok(id) => out.push(CheckSpec {
                    id,
                    name: draft.name,
                    kind: draft.kind,
                    severity: draft.severity,
                    blocking: draft.blocking,
                    filter: draft.filter,
                    pos: draft.pos,
                }),
                Err(e) => p.at_pos(&draft.name_pos, format!("`name`: {e}")),
            }
        }
    }
    out
}

/// One check entry: one draft, or one per column for `null_rate: {columns: …}`.
fn check_drafts(check: &Spanned<RawCheck>, p: &mut Problems<'_>) -> Vec<Draft> {
    let pos = p.src.pos_of(check);
    let kind_name = check.value.kind();
    let common = check.value.common();
    let before = p.list.len();

    let severity = p.parse_or(
        &common.severity.cloned(),
        "severity",
        Severity::Fail,
        |s| match s.trim() {
            "fail" => Ok(Severity::Fail),
            "warn" => Ok(Severity::Warn),
            other => Err(format!(
                "`{other}` is not a severity; expected `fail` or `warn`{}",
                did_you_mean(other, ["fail", "warn"])
            )),
        },
    );
    let blocking = common.blocking.is_none_or(|b| b.value);
    let filter = p.parse_opt(&common.filter.cloned(), "where", |s| {
        let s = s.trim();
        if s.is_empty() {
            Err("the filter cannot be empty".to_owned())
        } else {
            Ok(s.to_owned())
        }
    });
    let explicit_name = common
        .name
        .map(|n| (n.value.trim().to_owned(), p.src.pos_of(n)));

    // (name suffix derived from the column(s), kind)
    let kinds: Vec<(Option<String>, CheckKind)> = match &check.value {
        RawCheck::RowCount(c) => row_count(c, p).map(|k| (None, k)).into_iter().collect(),
        RawCheck::RowCountChange(c) => row_count_change(c, p)
            .map(|k| (None, k))
            .into_iter()
            .collect(),
        RawCheck::NullRate(c) => null_rate(c, &pos, explicit_name.is_some(), p),
        RawCheck::Freshness(c) => freshness(c, &pos, p).into_iter().collect(),
        RawCheck::Schema(c) => schema(c, p).map(|k| (None, k)).into_iter().collect(),
        RawCheck::Unique(c) => unique(c, &pos, p).into_iter().collect(),
        RawCheck::Sql(c) => {
            if explicit_name.is_none() {
                p.at_pos(&pos, "`name` is required for sql checks");
            }
            sql(c, &pos, p).map(|k| (None, k)).into_iter().collect()
        }
    };

    if p.list.len() > before {
        return Vec::new();
    }
    let (Some(severity), Some(filter)) = (severity, filter) else {
        return Vec::new();
    };
    kinds
        .into_iter()
        .map(|(suffix, kind)| {
            let (name, name_pos) = match (&explicit_name, suffix) {
                (Some((name, at)), _) => (name.clone(), at.clone()),
                (None, Some(suffix)) => (format!("{kind_name}_{suffix}"), pos.clone()),
                (None, None) => (kind_name.to_owned(), pos.clone()),
            };
            Draft {
                name,
                name_pos,
                kind,
                severity,
                blocking,
                filter: filter.clone(),
                pos: pos.clone(),
            }
        })
        .collect()
}

fn row_count(c: &RawRowCount, p: &mut Problems<'_>) -> Option<CheckKind> {
    let min = p.parse_opt(&c.min, "min", |&n| non_negative(n));
    let max = p.parse_opt(&c.max, "max", |&n| non_negative(n));
    let (min, max) = (min?, max?);
    if let (Some(lo), Some(hi), Some(at)) = (min, max, c.min.as_ref())
        && lo > hi
    {
        p.at(at, format!("`min` ({lo}) is greater than `max` ({hi})"));
        return None;
    }
    Some(CheckKind::RowCount { min, max })
}

fn row_count_change(c: &RawRowCountChange, p: &mut Problems<'_>) -> Option<CheckKind> {
    let vs = p.parse_or(&c.vs, "vs", ChangeBaseline::Previous, |s| match s.trim() {
        "previous" => Ok(ChangeBaseline::Previous),
        "1d" => Ok(ChangeBaseline::Day),
        "7d" => Ok(ChangeBaseline::Week),
        other => Err(format!(
            "`{other}` is not a baseline; expected `previous`, `1d` or `7d`"
        )),
    });
    // A drop cannot exceed 100%; growth can.
    let max_drop = p.parse_opt(&c.max_drop, "max_drop", |s| {
        Ratio::parse(s, true).map_err(|e| e.to_string())
    });
    let max_growth = p.parse_opt(&c.max_growth, "max_growth", |s| {
        Ratio::parse(s, false).map_err(|e| e.to_string())
    });
    Some(CheckKind::RowCountChange {
        vs: vs?,
        max_drop: max_drop?,
        max_growth: max_growth?,
    })
}

fn null_rate(
    c: &RawNullRate,
    pos: &SourcePos,
    named: bool,
    p: &mut Problems<'_>,
) -> Vec<(Option<String>, CheckKind)> {
    let max = p.required(&c.max, "max", pos).and_then(|m| {
        p.parse(m, "max", |s| {
            Ratio::parse(s, true).map_err(|e| e.to_string())
        })
    });
    let columns: Vec<Identifier> = match (&c.column, &c.columns) {
        (Some(_), Some(cols)) => {
            p.at(cols, "use either `column` or `columns`, not both");
            Vec::new()
        }
        (Some(col), None) => p
            .parse(col, "column", |s| Identifier::parse(s.trim()))
            .into_iter()
            .collect(),
        (None, Some(cols)) => {
            let list = identifiers(cols, "columns", p);
            if named && list.len() > 1 {
                p.at(cols, "`name` cannot be given to a check over several `columns` (each column gets its own check, named null_rate_<column>)");
            }
            list
        }
        (None, None) => {
            p.at_pos(pos, "`column` or `columns` is required");
            Vec::new()
        }
    };
    let Some(max) = max else { return Vec::new() };
    columns
        .into_iter()
        .map(|column| {
            (
                Some(column.as_str().to_owned()),
                CheckKind::NullRate { column, max },
            )
        })
        .collect()
}

fn freshness(
    c: &RawFreshness,
    pos: &SourcePos,
    p: &mut Problems<'_>,
) -> Option<(Option<String>, CheckKind)> {
    let column = p
        .required(&c.column, "column", pos)
        .and_then(|col| p.parse(col, "column", |s| Identifier::parse(s.trim())));
    let rule = match (&c.max_lag, &c.by, &c.expect) {
        (Some(lag), None, None) => p
            .parse(lag, "max_lag", |s| parse_duration(s))
            .map(FreshnessRule::MaxLag),
        (Some(lag), _, _) => {
            p.at(
                lag,
                "`max_lag` cannot be combined with `by`/`expect`; use one form or the other",
            );
            None
        }
        (None, Some(by), Some(expect)) => {
            let by = p.parse(by, "by", |s| parse_time_of_day(s));
            let expect = p.parse(expect, "expect", |s| match s.trim() {
                "today" => Ok(Expect::Today),
                "yesterday" => Ok(Expect::Yesterday),
                other => Err(format!("`{other}` is not `today` or `yesterday`")),
            });
            Some(FreshnessRule::Deadline {
                by: by?,
                expect: expect?,
            })
        }
        (None, Some(_), None) => {
            p.at_pos(
                pos,
                "`expect` (`today` or `yesterday`) is required with `by`",
            );
            None
        }
        (None, None, Some(expect)) => {
            p.at(
                expect,
                "`by` (a time like \"08:00\") is required with `expect`",
            );
            None
        }
        (None, None, None) => {
            p.at_pos(pos, "`max_lag`, or `by` with `expect`, is required");
            None
        }
    };
    let column = column?;
    Some((
        Some(column.as_str().to_owned()),
        CheckKind::Freshness {
            column,
            rule: rule?,
        },
    ))
}

/// `HH:MM`, 24-hour clock.
fn parse_time_of_day(s: &str) -> Result<NaiveTime, String> {
    let s = s.trim();
    let well_formed = s.len() == 5 && s.as_bytes()[2] == b':';
    match NaiveTime::parse_from_str(s, "%H:%M") {
        Ok(t) if well_formed => Ok(t),
        _ => Err(format!("`{s}` is not a time of day like \"08:00\"")),
    }
}

fn schema(c: &RawSchema, p: &mut Problems<'_>) -> Option<CheckKind> {
    let columns = match &c.columns {
        None => Some(None),
        Some(cols) if cols.value.is_empty() => {
            p.at(
                cols,
                "`columns` cannot be empty; leave it out to compare against the first schema seen",
            );
            None
        }
        Some(cols) => {
            let before = p.list.len();
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            for col in &cols.value {
                if let Some(c) = expected_column(col, p) {
                    if !seen.insert(c.name.clone()) {
                        p.at(
                            col,
                            format!("`columns`: column `{}` is listed twice", c.name),
                        );
                    }
                    out.push(c);
                }
            }
            (p.list.len() == before).then_some(Some(out))
        }
    };
    let action = |key: &str, value: &Option<Spanned<String>>, default, p: &mut Problems<'_>| {
        p.parse_or(value, key, default, |s| match s.trim() {
            "warn" => Ok(DriftAction::Warn),
            "fail" => Ok(DriftAction::Fail),
            "ignore" => Ok(DriftAction::Ignore),
            other => Err(format!(
                "`{other}` is not `warn`, `fail` or `ignore`{}",
                did_you_mean(other, ["warn", "fail", "ignore"])
            )),
        })
    };
    let on_added = action("on_added", &c.on_added, DriftAction::Warn, p);
    let on_removed = action("on_removed", &c.on_removed, DriftAction::Fail, p);
    let on_type_changed = action("on_type_changed", &c.on_type_changed, DriftAction::Fail, p);
    Some(CheckKind::Schema {
        columns: columns?,
        on_added: on_added?,
        on_removed: on_removed?,
        on_type_changed: on_type_changed?,
    })
}

fn expected_column(col: &Spanned<RawColumn>, p: &mut Problems<'_>) -> Option<ExpectedColumn> {
    let at = p.src.pos_of(col);
    let name = p.required(&col.value.name, "name", &at).and_then(|n| {
        p.parse(n, "name", |s| {
            let s = s.trim();
            if s.is_empty() {
                Err("a column name cannot be empty".to_owned())
            } else {
                Ok(s.to_owned())
            }
        })
    });
    let data_type = p.parse_opt(&col.value.data_type, "type", |s| {
        if s.trim().is_empty() {
            Err("a type cannot be empty".to_owned())
        } else {
            Ok(types::normalise(s))
        }
    });
    Some(ExpectedColumn {
        name: name?,
        data_type: data_type?,
    })
}

fn unique(
    c: &RawUnique,
    pos: &SourcePos,
    p: &mut Problems<'_>,
) -> Option<(Option<String>, CheckKind)> {
    let columns = p.required(&c.columns, "columns", pos).map(|cols| {
        if cols.value.is_empty() {
            p.at(cols, "`columns` needs at least one column");
        }
        identifiers(cols, "columns", p)
    });
    let max = p.parse_or(&c.max, "max", 0, |&n| non_negative(n));
    let columns = columns.filter(|c| !c.is_empty())?;
    let suffix = columns
        .iter()
        .map(Identifier::as_str)
        .collect::<Vec<_>>()
        .join("_");
    Some((Some(suffix), CheckKind::Unique { columns, max: max? }))
}

fn sql(c: &RawSql, pos: &SourcePos, p: &mut Problems<'_>) -> Option<CheckKind> {
    let query = p.required(&c.query, "query", pos).and_then(|q| {
        p.parse(q, "query", |s| {
            let s = s.trim();
            if s.is_empty() {
                Err("the query cannot be empty".to_owned())
            } else {
                Ok(s.to_owned())
            }
        })
    });
    let finite = |v: &f64| {
        if v.is_finite() {
            Ok(*v)
        } else {
            Err(format!("{v} is not a finite number"))
        }
    };
    let min = p.parse_opt(&c.min, "min", finite);
    let max = p.parse_opt(&c.max, "max", finite);
    let (min, max) = (min?, max?);
    if let (Some(lo), Some(hi), Some(at)) = (min, max, c.min.as_ref())
        && lo > hi
    {
        p.at(at, format!("`min` ({lo}) is greater than `max` ({hi})"));
        return None;
    }
    Some(CheckKind::Sql {
        query: query?,
        min,
        max,
    })
}

/// A list of column names, each a plain identifier, none twice.
fn identifiers(
    cols: &Spanned<Vec<Spanned<String>>>,
    key: &str,
    p: &mut Problems<'_>,
) -> Vec<Identifier> {
    let mut out: Vec<Identifier> = Vec::new();
    for col in &cols.value {
        if let Some(id) = p.parse(col, key, |s| Identifier::parse(s.trim())) {
            if out.contains(&id) {
                p.at(col, format!("`{key}`: column `{id}` is listed twice"));
            } else {
                out.push(id);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_takes_five_fields_or_a_nickname() {
        assert_eq!(parse_cron("*/15 * * * *").unwrap().expr, "*/15 * * * *");
        assert!(parse_cron("@hourly").is_ok());
        assert!(parse_cron("@Daily").is_ok());
        assert_eq!(
            parse_cron("0 */15 * * * *").unwrap_err(),
            "`0 */15 * * * *` has 6 fields; a cron expression has 5 (minute hour day-of-month month day-of-week), or use @hourly, @daily…"
        );
        assert!(
            parse_cron("@dayly")
                .unwrap_err()
                .ends_with("did you mean `@daily`?")
        );
        assert_eq!(
            parse_cron("61 * * * *").unwrap_err(),
            "invalid cron expression `61 * * * *`: number out of bounds"
        );
    }

    #[test]
    fn durations_and_times() {
        assert_eq!(parse_duration("6h").unwrap(), Duration::from_secs(6 * 3600));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("6").is_err());
        assert_eq!(
            parse_time_of_day("08:00").unwrap(),
            NaiveTime::from_hms_opt(8, 0, 0).unwrap()
        );
        assert!(parse_time_of_day("8:00").is_err());
        assert!(parse_time_of_day("25:00").is_err());
    }

    #[test]
    fn sqlite_paths_resolve_against_the_config_directory() {
        let base = Path::new("/etc/warden");
        assert_eq!(
            resolve_sqlite("sqlite://warden.db", base),
            "sqlite:///etc/warden/warden.db"
        );
        assert_eq!(
            resolve_sqlite("sqlite:./data/w.db?mode=ro", base),
            "sqlite:///etc/warden/data/w.db?mode=ro"
        );
        assert_eq!(
            resolve_sqlite("sqlite:///var/lib/w.db?mode=rwc", base),
            "sqlite:///var/lib/w.db?mode=rwc"
        );
        assert_eq!(resolve_sqlite("sqlite::memory:", base), "sqlite::memory:");
        assert!(registry_url("mysql://x/y", base).is_err());
        assert_eq!(
            registry_url("postgres://h/db", base).unwrap(),
            "postgres://h/db"
        );
        assert!(
            warehouse_url("postgress://h/db", base)
                .unwrap_err()
                .ends_with("did you mean `postgres`?")
        );
    }

    #[test]
    fn listen_addresses() {
        assert!(parse_listen("127.0.0.1:9464").is_ok());
        assert!(parse_listen("[::1]:9464").is_ok());
        assert!(parse_listen("localhost:80").is_ok());
        assert!(parse_listen("localhost").is_err());
        assert!(parse_listen(":::80").is_err());
    }

    #[test]
    fn time_zones_suggest_a_spelling() {
        assert_eq!(
            parse_timezone("Europe/Paris").unwrap(),
            chrono_tz::Europe::Paris
        );
        assert!(
            parse_timezone("Europe/Pari")
                .unwrap_err()
                .ends_with("did you mean `Europe/Paris`?")
        );
    }
}

#[cfg(test)]
mod dataset_tests {
    use super::*;

    /// Every problem of the datasets in `yaml`, as `line:col: message`.
    fn problems(yaml: &str) -> Vec<String> {
        let src = SourceFile::from_text(Path::new("c.yaml"), yaml, &|_| None).unwrap();
        let (raws, diags) = src.parse_datasets();
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
