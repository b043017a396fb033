//! `row_count`: `count(*)` within `min` and `max`.

use serde::Deserialize;
use serde_json::json;
use serde_saphyr::Spanned;

use super::{CheckKind, Common, DatasetGauge, Judge, Kind, Settings, Thresholds, mismatch};
use crate::check::evaluate::Verdict;
use crate::check::observation::{ObserveError, Observed};
use crate::check::planner::{Expr, PlanCx, Read};
use crate::source::values::non_negative;
use crate::source::{Problems, SourcePos};

/// `row_count:` settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// Fewest rows accepted.
    pub min: Option<Spanned<i64>>,
    /// Most rows accepted.
    pub max: Option<Spanned<i64>>,
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

/// The number of rows, within limits.
#[derive(Debug, Clone, PartialEq)]
pub struct RowCount {
    pub min: Option<u64>,
    pub max: Option<u64>,
}

impl RowCount {
    pub const NAME: &'static str = "row_count";

    /// The observed count is the dataset's row count.
    pub(crate) const GAUGE: Option<DatasetGauge> = Some(DatasetGauge::RowCount);
}

impl Settings for Raw {
    fn name(&self) -> &'static str {
        RowCount::NAME
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
        let min = p.parse_opt(&self.min, "min", |&n| non_negative(n));
        let max = p.parse_opt(&self.max, "max", |&n| non_negative(n));
        let (Some(min), Some(max)) = (min, max) else {
            return Vec::new();
        };
        if let (Some(lo), Some(hi), Some(at)) = (min, max, self.min.as_ref())
            && lo > hi
        {
            p.at(at, format!("`min` ({lo}) is greater than `max` ({hi})"));
            return Vec::new();
        }
        vec![(None, CheckKind::RowCount(RowCount { min, max }))]
    }
}

impl Kind for RowCount {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn plan(&self, cx: &mut PlanCx<'_>) -> Result<Read, ObserveError> {
        let (statement, [rows]) = cx.join([Expr::CountRows])?;
        Ok(Read::RowCount { statement, rows })
    }

    fn thresholds(&self, t: &mut Thresholds) {
        if let Some(min) = self.min {
            t.insert("min".into(), json!(min as f64));
        }
        if let Some(max) = self.max {
            t.insert("max".into(), json!(max as f64));
        }
    }

    fn judge(&self, observed: &Observed, _cx: &Judge<'_>, _t: &mut Thresholds) -> Verdict {
        match observed {
            Observed::RowCount { rows } => row_count(*rows, self.min, self.max),
            other => mismatch(Self::NAME, other),
        }
    }
}

fn row_count(rows: u64, min: Option<u64>, max: Option<u64>) -> Verdict {
    let observed = Some(rows as f64);
    if let Some(min) = min.filter(|m| rows < *m) {
        return Verdict::new(
            true,
            observed,
            format!("{rows} rows, below the minimum of {min}"),
        );
    }
    if let Some(max) = max.filter(|m| rows > *m) {
        return Verdict::new(
            true,
            observed,
            format!("{rows} rows, above the maximum of {max}"),
        );
    }
    let limits = match (min, max) {
        (Some(min), Some(max)) => format!(" (min {min}, max {max})"),
        (Some(min), None) => format!(" (min {min})"),
        (None, Some(max)) => format!(" (max {max})"),
        (None, None) => String::new(),
    };
    Verdict::new(false, observed, format!("{rows} rows{limits}"))
}
