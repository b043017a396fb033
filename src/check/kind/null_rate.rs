//! `null_rate`: the share of NULLs in a column. `columns: [a, b]` declares
//! one check per column.

use serde::Deserialize;
use serde_json::json;
use serde_saphyr::Spanned;

use super::{
    CheckKind, Common, DatasetGauge, Judge, Kind, Settings, Shown, Thresholds, identifiers,
    mismatch,
};
use crate::check::evaluate::Verdict;
use crate::check::observation::{ObserveError, Observed};
use crate::check::planner::{Expr, PlanCx, Read};
use crate::domain::{Identifier, Ratio};
use crate::format::percent;
use crate::source::{Problems, SourcePos};

/// `null_rate:` settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// The column; or use `columns`.
    pub column: Option<Spanned<String>>,
    /// Several columns, one check each.
    pub columns: Option<Spanned<Vec<Spanned<String>>>>,
    /// Largest accepted share of NULLs, as `0.05` or `"5%"` (required).
    pub max: Option<Spanned<String>>,
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

/// The share of NULLs in one column, at most `max`.
#[derive(Debug, Clone, PartialEq)]
pub struct NullRate {
    pub column: Identifier,
    pub max: Ratio,
}

/// A share as a percentage with two decimals (`1.20%`).
fn two_decimals(share: f64) -> String {
    format!("{:.2}%", share * 100.0)
}

impl NullRate {
    pub const NAME: &'static str = "null_rate";

    /// The observed ratio is the column's null ratio.
    pub(crate) const GAUGE: Option<DatasetGauge> = Some(DatasetGauge::NullRatio);

    /// Shares as percentages, observed and limit.
    pub(crate) const SHOWN: Shown = Shown {
        observed: two_decimals,
        threshold: |key, v| (key == "max").then(|| two_decimals(v)),
    };
}

impl Settings for Raw {
    fn name(&self) -> &'static str {
        NullRate::NAME
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
        let max = p.required(&self.max, "max", at).and_then(|m| {
            p.parse(m, "max", |s| {
                Ratio::parse(s, true).map_err(|e| e.to_string())
            })
        });
        let columns: Vec<Identifier> = match (&self.column, &self.columns) {
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
                p.at_pos(at, "`column` or `columns` is required");
                Vec::new()
            }
        };
        let Some(max) = max else { return Vec::new() };
        columns
            .into_iter()
            .map(|column| {
                (
                    Some(column.as_str().to_owned()),
                    CheckKind::NullRate(NullRate { column, max }),
                )
            })
            .collect()
    }
}

impl Kind for NullRate {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn column(&self) -> Option<&Identifier> {
        Some(&self.column)
    }

    fn plan(&self, cx: &mut PlanCx<'_>) -> Result<Read, ObserveError> {
        cx.require(&self.column)?;
        let (statement, [rows, non_null]) =
            cx.join([Expr::CountRows, Expr::CountNonNull(self.column.clone())])?;
        Ok(Read::NullCount {
            statement,
            rows,
            non_null,
        })
    }

    fn thresholds(&self, t: &mut Thresholds) {
        t.insert("max".into(), json!(self.max.get()));
    }

    fn judge(&self, observed: &Observed, _cx: &Judge<'_>, _t: &mut Thresholds) -> Verdict {
        match observed {
            Observed::NullCount { rows, non_null } => {
                null_rate(self.column.as_str(), *rows, *non_null, self.max.get())
            }
            other => mismatch(Self::NAME, other),
        }
    }
}

fn null_rate(column: &str, rows: u64, non_null: u64, max: f64) -> Verdict {
    if rows == 0 {
        return Verdict::new(
            false,
            Some(0.0),
            format!("rows=0: no rows, so no NULLs in {column}"),
        );
    }
    let nulls = rows.saturating_sub(non_null);
    let rate = nulls as f64 / rows as f64;
    Verdict::new(
        rate > max,
        Some(rate),
        format!(
            "{} of {rows} rows are NULL in {column} (max {})",
            percent(rate),
            percent(max)
        ),
    )
}
