//! `unique`: rows beyond the first per key, over one or several columns.
//! Rows whose key holds a NULL are not counted.

use serde::Deserialize;
use serde_json::json;
use serde_saphyr::Spanned;

use super::{CheckKind, Common, Judge, Kind, Settings, Thresholds, identifiers, mismatch};
use crate::check::evaluate::Verdict;
use crate::check::observation::{ObserveError, Observed};
use crate::check::planner::{Expr, PlanCx, Read};
use crate::domain::Identifier;
use crate::source::values::non_negative;
use crate::source::{Problems, SourcePos};

/// `unique:` settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// The key's columns (required, at least one).
    pub columns: Option<Spanned<Vec<Spanned<String>>>>,
    /// Most duplicate rows accepted; default 0.
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

/// Duplicate keys over `columns`, at most `max` rows beyond the first per key.
#[derive(Debug, Clone, PartialEq)]
pub struct Unique {
    pub columns: Vec<Identifier>,
    pub max: u64,
}

impl Unique {
    pub const NAME: &'static str = "unique";
}

impl Settings for Raw {
    fn name(&self) -> &'static str {
        Unique::NAME
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
        _named: bool,
        p: &mut Problems<'_>,
    ) -> Vec<(Option<String>, CheckKind)> {
        let columns = p.required(&self.columns, "columns", at).map(|cols| {
            if cols.value.is_empty() {
                p.at(cols, "`columns` needs at least one column");
            }
            identifiers(cols, "columns", p)
        });
        let max = p.parse_or(&self.max, "max", 0, |&n| non_negative(n));
        let (Some(columns), Some(max)) = (columns.filter(|c| !c.is_empty()), max) else {
            return Vec::new();
        };
        let suffix = columns
            .iter()
            .map(Identifier::as_str)
            .collect::<Vec<_>>()
            .join("_");
        vec![(Some(suffix), CheckKind::Unique(Unique { columns, max }))]
    }
}

impl Kind for Unique {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn column(&self) -> Option<&Identifier> {
        match self.columns.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    fn plan(&self, cx: &mut PlanCx<'_>) -> Result<Read, ObserveError> {
        self.columns.iter().try_for_each(|c| cx.require(c))?;
        let exprs = match self.columns.as_slice() {
            [one] => [
                Expr::CountNonNull(one.clone()),
                Expr::CountDistinct(one.clone()),
            ],
            // SQLite has no multi-column COUNT(DISTINCT …) and no row values
            // in aggregates, so the duplicate keys need a grouped statement.
            many if !cx.engine().dialect().counts_distinct_tuples() => {
                let statement = cx.keys_statement(many)?;
                return Ok(Read::Keys {
                    statement,
                    keyed_rows: 0,
                    distinct: 1,
                });
            }
            many => [
                Expr::KeyedRows(many.to_vec()),
                Expr::DistinctKeys(many.to_vec()),
            ],
        };
        let (statement, [keyed_rows, distinct]) = cx.join(exprs)?;
        Ok(Read::Keys {
            statement,
            keyed_rows,
            distinct,
        })
    }

    fn thresholds(&self, t: &mut Thresholds) {
        t.insert("max".into(), json!(self.max as f64));
    }

    fn judge(&self, observed: &Observed, _cx: &Judge<'_>, _t: &mut Thresholds) -> Verdict {
        match observed {
            Observed::Keys {
                keyed_rows,
                distinct,
            } => {
                let names: Vec<&str> = self.columns.iter().map(|c| c.as_str()).collect();
                unique(&names, *keyed_rows, *distinct, self.max)
            }
            other => mismatch(Self::NAME, other),
        }
    }
}

fn unique(columns: &[&str], keyed_rows: u64, distinct: u64, max: u64) -> Verdict {
    let duplicates = keyed_rows.saturating_sub(distinct);
    let key = columns.join(", ");
    Verdict::new(
        duplicates > max,
        Some(duplicates as f64),
        format!(
            "{duplicates} duplicate rows over ({key}) among {keyed_rows} rows with a non-NULL key (max {max})"
        ),
    )
}
