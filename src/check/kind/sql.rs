//! `sql`: a custom query, expanded from its template (`{{ table }}`,
//! `{{ partition_filter }}`, …) with bound parameters, whose single row's
//! first column is held to `min` and `max`.

use serde::Deserialize;
use serde_json::json;
use serde_saphyr::Spanned;

use super::{CheckKind, Common, Judge, Kind, Settings, Thresholds, mismatch};
use crate::check::evaluate::Verdict;
use crate::check::observation::{ObserveError, Observed};
use crate::check::planner::{PlanCx, Read, StatementKind};
use crate::format::decimals;
use crate::source::{Problems, SourcePos};
use crate::warehouse::Value;

/// `sql:` settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// The query; its single row's first column is the observed value (required).
    pub query: Option<Spanned<String>>,
    /// Smallest accepted value.
    pub min: Option<Spanned<f64>>,
    /// Largest accepted value.
    pub max: Option<Spanned<f64>>,
    /// Check name, unique within the dataset; required for this kind.
    pub name: Option<Spanned<String>>,
    /// `fail` (default) or `warn`.
    pub severity: Option<Spanned<String>>,
    /// Whether a failure can deny the gate; default true.
    pub blocking: Option<Spanned<bool>>,
    /// Extra SQL filter on the relation, written by the config author.
    #[serde(rename = "where")]
    pub filter: Option<Spanned<String>>,
}

/// A custom query's value, within limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Sql {
    pub query: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Sql {
    pub const NAME: &'static str = "sql";
}

impl Settings for Raw {
    fn name(&self) -> &'static str {
        Sql::NAME
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
        at: &SourcePos,
        named: bool,
        p: &mut Problems<'_>,
    ) -> Vec<(Option<String>, CheckKind)> {
        if !named {
            p.at_pos(at, "`name` is required for sql checks");
        }
        let query = p.required(&self.query, "query", at).and_then(|q| {
            p.parse(q, "query", |s| {
                let s = s.trim();
                if s.is_empty() {
                    return Err("the query cannot be empty".to_owned());
                }
                crate::check::template::check(s).map_err(|e| e.to_string())?;
                Ok(s.to_owned())
            })
        });
        let finite = |v: &f64| {
            if v.is_finite() {
                Ok(*v)
            } else {
                Err(format!("{v} is not a finite number"))
            }
        };
        let min = p.parse_opt(&self.min, "min", finite);
        let max = p.parse_opt(&self.max, "max", finite);
        let (Some(min), Some(max)) = (min, max) else {
            return Vec::new();
        };
        if let (Some(lo), Some(hi), Some(at)) = (min, max, self.min.as_ref())
            && lo > hi
        {
            p.at(at, format!("`min` ({lo}) is greater than `max` ({hi})"));
            return Vec::new();
        }
        let Some(query) = query else {
            return Vec::new();
        };
        vec![(None, CheckKind::Sql(Sql { query, min, max }))]
    }
}

impl Kind for Sql {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn plan(&self, cx: &mut PlanCx<'_>) -> Result<Read, ObserveError> {
        let (sql, params) = cx.expand(&self.query)?;
        let statement = cx.own_statement(StatementKind::Sql, sql, params);
        Ok(Read::Sql { statement })
    }

    fn thresholds(&self, t: &mut Thresholds) {
        if let Some(min) = self.min {
            t.insert("min".into(), json!(min));
        }
        if let Some(max) = self.max {
            t.insert("max".into(), json!(max));
        }
    }

    fn judge(&self, observed: &Observed, _cx: &Judge<'_>, _t: &mut Thresholds) -> Verdict {
        match observed {
            Observed::Rows { rows } => sql(rows, self.min, self.max),
            other => mismatch(Self::NAME, other),
        }
    }
}

fn sql(rows: &[Vec<Value>], min: Option<f64>, max: Option<f64>) -> Verdict {
    let value = match rows {
        [] => {
            return Verdict::error("the query returned no rows; it must return one row".to_owned());
        }
        [row] => match row.first() {
            None => return Verdict::error("the query returned no columns".to_owned()),
            Some(Value::Null) => {
                return Verdict::error(
                    "the query returned NULL; it must return a number".to_owned(),
                );
            }
            Some(v) => match v.as_f64() {
                Some(x) => x,
                None => {
                    return Verdict::error(format!(
                        "the query returned the {} `{v}`; it must return a number",
                        v.kind()
                    ));
                }
            },
        },
        many => {
            return Verdict::error(format!(
                "the query returned {} rows; it must return one row",
                many.len()
            ));
        }
    };
    let shown = decimals(value, 6);
    if let Some(min) = min.filter(|m| value < *m) {
        return Verdict::new(
            true,
            Some(value),
            format!(
                "returned {shown}, below the minimum of {}",
                decimals(min, 6)
            ),
        );
    }
    if let Some(max) = max.filter(|m| value > *m) {
        return Verdict::new(
            true,
            Some(value),
            format!(
                "returned {shown}, above the maximum of {}",
                decimals(max, 6)
            ),
        );
    }
    Verdict::new(false, Some(value), format!("returned {shown}"))
}
