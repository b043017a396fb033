//! The checks of a dataset: one draft per check (or per column, for
//! `null_rate: {columns: …}`), then ids from names, with duplicates refused.

use std::collections::{HashMap, HashSet};

use serde_saphyr::Spanned;

use super::Problems;
use super::values::{non_negative, parse_duration, parse_time_of_day};
use crate::config::diagnostic::did_you_mean;
use crate::config::raw::{
    RawCheck, RawColumn, RawFreshness, RawNullRate, RawRowCount, RawRowCountChange, RawSchema,
    RawSql, RawUnique,
};
use crate::config::{
    ChangeBaseline, CheckKind, CheckSpec, DriftAction, Expect, ExpectedColumn, FreshnessRule,
    Severity, SourcePos,
};
use crate::domain::{CheckId, DatasetName, Identifier, Ratio};
use crate::warehouse::types;

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

/// The checks of dataset `dataset` (when its name is valid), each with its id.
pub fn of_dataset(
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
