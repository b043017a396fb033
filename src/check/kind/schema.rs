//! `schema`: the relation's columns and types against expected ones, or
//! against a baseline (the first schema seen, stored in the registry). Each
//! kind of difference (added, removed, type changed) warns, fails or is
//! ignored as configured. Schema describes the whole relation.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::json;
use serde_saphyr::Spanned;

use futures::future::BoxFuture;

use super::{BaselineCx, CheckKind, Common, Judge, Kind, Settings, Thresholds, mismatch};
use crate::check::evaluate::{Baselines, Status, Verdict};
use crate::check::observation::{ObserveError, Observed};
use crate::check::planner::{PlanCx, Read};
use crate::check::stored_column;
use crate::registry::StoredColumn;
use crate::source::{Problems, SourcePos, did_you_mean};
use crate::warehouse::{CatalogColumn, types};

/// Who records a first-seen schema as a dataset's baseline.
const FIRST_SEEN: &str = "warden (first seen schema)";

/// `schema:` settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// Expected columns; without them the first schema seen becomes the baseline.
    pub columns: Option<Spanned<Vec<Spanned<RawColumn>>>>,
    /// What a column that appeared does: `warn` (default), `fail` or `ignore`.
    pub on_added: Option<Spanned<String>>,
    /// What a column that disappeared does: `fail` (default), `warn` or `ignore`.
    pub on_removed: Option<Spanned<String>>,
    /// What a column whose type changed does: `fail` (default), `warn` or `ignore`.
    pub on_type_changed: Option<Spanned<String>>,
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

/// The relation's columns against expected ones or the stored baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// Expected columns; `None` compares against the stored baseline.
    pub columns: Option<Vec<ExpectedColumn>>,
    pub on_added: DriftAction,
    pub on_removed: DriftAction,
    pub on_type_changed: DriftAction,
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

impl DriftAction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Warn => "warn",
            Self::Fail => "fail",
            Self::Ignore => "ignore",
        }
    }
}

impl Schema {
    pub const NAME: &'static str = "schema";

    /// Whether the check compares against the stored baseline (it has no
    /// expected `columns`).
    pub fn uses_baseline(&self) -> bool {
        self.columns.is_none()
    }
}

impl Settings for Raw {
    fn name(&self) -> &'static str {
        Schema::NAME
    }

    fn common(&self) -> Common<'_> {
        Common {
            name: self.name.as_ref(),
            severity: self.severity.as_ref(),
            blocking: self.blocking.as_ref(),
            filter: self.filter.as_ref(),
        }
    }

    fn validate(
        &self,
        _at: &SourcePos,
        _named: bool,
        p: &mut Problems<'_>,
    ) -> Vec<(Option<String>, CheckKind)> {
        let columns = match &self.columns {
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
        let on_added = action("on_added", &self.on_added, DriftAction::Warn, p);
        let on_removed = action("on_removed", &self.on_removed, DriftAction::Fail, p);
        let on_type_changed = action(
            "on_type_changed",
            &self.on_type_changed,
            DriftAction::Fail,
            p,
        );
        let (Some(columns), Some(on_added), Some(on_removed), Some(on_type_changed)) =
            (columns, on_added, on_removed, on_type_changed)
        else {
            return Vec::new();
        };
        vec![(
            None,
            CheckKind::Schema(Schema {
                columns,
                on_added,
                on_removed,
                on_type_changed,
            }),
        )]
    }
}

/// A stored baseline column as the catalog reports one.
fn catalog_column(c: StoredColumn) -> CatalogColumn {
    CatalogColumn {
        name: c.name,
        raw_type: c.data_type.clone(),
        data_type: c.data_type,
    }
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

impl Kind for Schema {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    /// The stored schema, for a check without `columns`.
    fn fetch_baseline<'a>(
        &'a self,
        cx: BaselineCx<'a>,
        out: &'a mut Baselines,
    ) -> Option<BoxFuture<'a, Result<(), String>>> {
        if !self.uses_baseline() {
            return None;
        }
        Some(Box::pin(async move {
            match cx.registry.schema_baseline(cx.dataset).await {
                Ok(Some(columns)) => {
                    let columns = columns.into_iter().map(catalog_column).collect();
                    out.schemas.insert(cx.id.clone(), columns);
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(e) => Err(format!("schema baseline unavailable: {e}")),
            }
        }))
    }

    /// The first schema seen becomes the dataset's baseline.
    fn store_baseline<'a>(
        &'a self,
        cx: BaselineCx<'a>,
        observed: &'a Observed,
        baselines: &'a Baselines,
    ) -> Option<BoxFuture<'a, ()>> {
        if !self.uses_baseline() || baselines.schemas.contains_key(cx.id) {
            return None;
        }
        let Observed::Columns { columns } = observed else {
            return None;
        };
        Some(Box::pin(async move {
            let stored: Vec<StoredColumn> = columns.iter().map(stored_column).collect();
            if let Err(e) = cx
                .registry
                .set_schema_baseline(cx.dataset, &stored, FIRST_SEEN)
                .await
            {
                tracing::warn!(dataset = %cx.dataset, error = %e, "could not store the first-seen schema");
            }
        }))
    }

    fn is_partition_scoped(&self) -> bool {
        false
    }

    fn plan(&self, _cx: &mut PlanCx<'_>) -> Result<Read, ObserveError> {
        Ok(Read::Catalog)
    }

    fn thresholds(&self, t: &mut Thresholds) {
        t.insert("on_added".into(), json!(self.on_added.as_str()));
        t.insert("on_removed".into(), json!(self.on_removed.as_str()));
        t.insert(
            "on_type_changed".into(),
            json!(self.on_type_changed.as_str()),
        );
    }

    fn judge(&self, observed: &Observed, cx: &Judge<'_>, _t: &mut Thresholds) -> Verdict {
        let Observed::Columns { columns: actual } = observed else {
            return mismatch(Self::NAME, observed);
        };
        let actions = DriftActions {
            added: self.on_added,
            removed: self.on_removed,
            type_changed: self.on_type_changed,
        };
        match &self.columns {
            Some(expected) => {
                let expected: Vec<(String, Option<String>)> = expected
                    .iter()
                    .map(|c| (c.name.clone(), c.data_type.clone()))
                    .collect();
                schema(&expected, actual, actions, "the expected schema")
            }
            None => match cx.baselines.schemas.get(cx.id) {
                None => Verdict::new(
                    false,
                    Some(0.0),
                    format!(
                        "no baseline yet; the current schema ({} columns) becomes the baseline",
                        actual.len()
                    ),
                ),
                Some(stored) => {
                    let expected: Vec<(String, Option<String>)> = stored
                        .iter()
                        .map(|c| (c.name.clone(), Some(c.data_type.clone())))
                        .collect();
                    schema(&expected, actual, actions, "the baseline")
                }
            },
        }
    }
}

/// Drift of `actual` from a stored baseline under the default actions
/// (an added column warns, a removed or retyped one fails): what a
/// discovered table's schema monitor reports.
pub(crate) fn drift_from_baseline(stored: &[StoredColumn], actual: &[CatalogColumn]) -> Verdict {
    let expected: Vec<(String, Option<String>)> = stored
        .iter()
        .map(|c| (c.name.clone(), Some(c.data_type.clone())))
        .collect();
    let actions = DriftActions {
        added: DriftAction::Warn,
        removed: DriftAction::Fail,
        type_changed: DriftAction::Fail,
    };
    schema(&expected, actual, actions, "the baseline")
}

#[derive(Debug, Clone, Copy)]
struct DriftActions {
    added: DriftAction,
    removed: DriftAction,
    type_changed: DriftAction,
}

/// Compares the relation's columns with `expected` (name, normalised type or
/// any). Names compare case-insensitively; types after normalisation.
fn schema(
    expected: &[(String, Option<String>)],
    actual: &[CatalogColumn],
    actions: DriftActions,
    against: &str,
) -> Verdict {
    let mut differences: Vec<(DriftAction, String)> = Vec::new();
    for (name, ty) in expected {
        match actual.iter().find(|c| c.name.eq_ignore_ascii_case(name)) {
            None => differences.push((actions.removed, format!("column `{name}` was removed"))),
            Some(column) => {
                if let Some(ty) = ty {
                    let want = types::normalise(ty);
                    if want != column.data_type {
                        differences.push((
                            actions.type_changed,
                            format!(
                                "column `{name}` changed type from {want} to {}",
                                column.data_type
                            ),
                        ));
                    }
                }
            }
        }
    }
    for column in actual {
        if !expected
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(&column.name))
        {
            differences.push((
                actions.added,
                format!("column `{}` ({}) was added", column.name, column.data_type),
            ));
        }
    }
    differences.retain(|(action, _)| *action != DriftAction::Ignore);
    if differences.is_empty() {
        return Verdict::new(
            false,
            Some(0.0),
            format!("{} columns match {against}", actual.len()),
        );
    }
    let status = if differences.iter().any(|(a, _)| *a == DriftAction::Fail) {
        Status::Breach
    } else {
        Status::Warn
    };
    let count = differences.len();
    let list = differences
        .into_iter()
        .map(|(_, d)| d)
        .collect::<Vec<_>>()
        .join("; ");
    let noun = if count == 1 {
        "difference"
    } else {
        "differences"
    };
    Verdict {
        status,
        observed: Some(count as f64),
        message: format!("{count} {noun} from {against}: {list}"),
        expected: None,
        score: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_drift_follows_each_action() {
        let actual = vec![
            CatalogColumn::new("id", "int8"),
            CatalogColumn::new("note", "varchar(10)"),
        ];
        let expected = vec![
            ("ID".to_owned(), Some("bigint".to_owned())),
            ("gone".to_owned(), None),
        ];
        let all = |a| DriftActions {
            added: a,
            removed: a,
            type_changed: a,
        };
        let v = schema(&expected, &actual, all(DriftAction::Ignore), "x");
        assert_eq!((v.status, v.observed), (Status::Pass, Some(0.0)));
        let v = schema(&expected, &actual, all(DriftAction::Warn), "x");
        assert_eq!(v.status, Status::Warn);
        assert_eq!(
            v.message,
            "2 differences from x: column `gone` was removed; column `note` (text) was added"
        );
        let v = schema(
            &expected,
            &actual,
            DriftActions {
                added: DriftAction::Warn,
                removed: DriftAction::Fail,
                type_changed: DriftAction::Fail,
            },
            "x",
        );
        assert_eq!(v.status, Status::Breach);
        let typed = vec![
            ("id".to_owned(), Some("integer".to_owned())),
            ("note".to_owned(), Some("text".to_owned())),
        ];
        let v = schema(&typed, &actual, all(DriftAction::Fail), "x");
        assert_eq!(
            v.message,
            "1 difference from x: column `id` changed type from integer to bigint"
        );
    }
}
