//! `sql`: a custom query, expanded from its template (`{{ table }}`,
//! `{{ partition_filter }}`, …) with bound parameters, whose one row of one
//! column is held to `min` and `max`. Anything else (no row or several, several
//! columns, NULL, text that is not a number, NaN, ±infinity) is an `error`
//! that says which: such a value never passes.

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
    /// The query; its one row of one column is the observed value (required).
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
    let value = match single_number(rows) {
        Ok(value) => value,
        Err(why) => return Verdict::error(why),
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

/// The one finite number a query must return (one row, one column), or why
/// its result is not one.
fn single_number(rows: &[Vec<Value>]) -> Result<f64, String> {
    let row = match rows {
        [] => return Err("the query returned no rows; it must return one row".to_owned()),
        [row] => row,
        many => {
            return Err(format!(
                "the query returned {} rows; it must return one row",
                many.len()
            ));
        }
    };
    let value = match row.as_slice() {
        [] => return Err("the query returned no columns; it must return one".to_owned()),
        [value] => value,
        many => {
            return Err(format!(
                "the query returned {} columns; it must return one column",
                many.len()
            ));
        }
    };
    let number = match value {
        Value::Null => return Err("the query returned NULL; it must return a number".to_owned()),
        Value::Int(i) => *i as f64,
        Value::Float(x) => *x,
        // SQLite may hand numbers back as text.
        Value::Text(t) => t
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("the query returned the text `{t}`; it must return a number"))?,
        other => {
            return Err(format!(
                "the query returned the {} `{other}`; it must return a number",
                other.kind()
            ));
        }
    };
    if number.is_nan() {
        Err("the query returned NaN (not a number); it must return a finite number".to_owned())
    } else if number.is_infinite() {
        let sign = if number < 0.0 { "-" } else { "" };
        Err(format!(
            "the query returned {sign}infinity; it must return a finite number"
        ))
    } else {
        Ok(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::evaluate::Status;

    fn one(v: Value) -> Vec<Vec<Value>> {
        vec![vec![v]]
    }

    #[track_caller]
    fn refused(rows: Vec<Vec<Value>>, message: &str) {
        let r = sql(&rows, None, None);
        assert_eq!((r.status, r.observed), (Status::Error, None), "{r:?}");
        assert_eq!(r.message, message);
    }

    #[test]
    fn a_single_finite_number_is_judged() {
        let r = sql(&one(Value::Int(3)), Some(0.0), Some(2.0));
        assert_eq!((r.status, r.observed), (Status::Breach, Some(3.0)));
        assert_eq!(r.message, "returned 3, above the maximum of 2");
        let r = sql(&one(Value::Text(" 1.5 ".into())), Some(0.0), None);
        assert_eq!((r.status, r.observed), (Status::Pass, Some(1.5)));
        let r = sql(&one(Value::Float(-0.25)), Some(0.0), None);
        assert_eq!(r.message, "returned -0.25, below the minimum of 0");
    }

    #[test]
    fn values_that_are_not_one_finite_number_are_errors() {
        let nan = "the query returned NaN (not a number); it must return a finite number";
        refused(one(Value::Float(f64::NAN)), nan);
        refused(one(Value::Text("NaN".into())), nan);
        refused(
            one(Value::Float(f64::INFINITY)),
            "the query returned infinity; it must return a finite number",
        );
        refused(
            one(Value::Text("-inf".into())),
            "the query returned -infinity; it must return a finite number",
        );
        refused(
            one(Value::Text("12 rows".into())),
            "the query returned the text `12 rows`; it must return a number",
        );
        refused(
            one(Value::Null),
            "the query returned NULL; it must return a number",
        );
        refused(
            one(Value::Date("2026-11-20".parse().unwrap())),
            "the query returned the date `2026-11-20`; it must return a number",
        );
        refused(
            vec![vec![Value::Int(1), Value::Int(2)]],
            "the query returned 2 columns; it must return one column",
        );
        refused(
            vec![vec![]],
            "the query returned no columns; it must return one",
        );
        refused(
            vec![vec![Value::Int(1)], vec![Value::Int(2)]],
            "the query returned 2 rows; it must return one row",
        );
        refused(
            Vec::new(),
            "the query returned no rows; it must return one row",
        );
    }
}
