//! `row_count_change`: the change of `count(*)` against a stored baseline
//! (the previous run or partition, one day or seven days earlier).

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::json;
use serde_saphyr::Spanned;

use futures::future::BoxFuture;

use super::{BaselineCx, CheckKind, Common, Judge, Kind, Settings, Shown, Thresholds, mismatch};
use crate::check::evaluate::{Baselines, Verdict};
use crate::check::observation::{ObserveError, Observed};
use crate::check::planner::{Expr, PlanCx, Read};
use crate::domain::{CheckId, PartitionKey, Ratio};
use crate::format::{decimals, percent, signed_percent};
use crate::registry::{Registry, RegistryError};
use crate::source::{Problems, SourcePos};

/// `row_count_change:` settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// Baseline: `previous` (default), `1d` or `7d`.
    pub vs: Option<Spanned<String>>,
    /// Largest accepted drop, as `0.3` or `"30%"`.
    pub max_drop: Option<Spanned<String>>,
    /// Largest accepted growth, as `2` or `"200%"`.
    pub max_growth: Option<Spanned<String>>,
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

/// The change of the row count against a baseline, within limits.
#[derive(Debug, Clone, PartialEq)]
pub struct RowCountChange {
    pub vs: ChangeBaseline,
    pub max_drop: Option<Ratio>,
    pub max_growth: Option<Ratio>,
}

/// `row_count_change.vs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeBaseline {
    /// The previous recorded run (unpartitioned) or the previous partition.
    Previous,
    /// One day earlier.
    Day,
    /// Seven days earlier.
    Week,
}

impl RowCountChange {
    pub const NAME: &'static str = "row_count_change";

    /// The observed change is a fraction (`-0.3` for a 30% drop), shown as a
    /// signed percentage (`-30%`, `+12.5%`); so are the limits.
    pub(crate) const SHOWN: Shown = Shown {
        observed: signed_percent,
        threshold: |key, v| matches!(key, "max_drop" | "max_growth").then(|| percent(v)),
    };

    /// The row count this check compares with, from the registry: the
    /// partition `vs` names, or the run before `scheduled_at` (or one or
    /// seven days before it) for an unpartitioned dataset.
    pub(crate) async fn baseline(
        &self,
        registry: &Registry,
        id: &CheckId,
        partition: Option<&PartitionKey>,
        scheduled_at: DateTime<Utc>,
    ) -> Result<Option<f64>, RegistryError> {
        let found = match (partition, self.vs) {
            (Some(p), vs) => {
                let base = match vs {
                    ChangeBaseline::Previous => p.prev(),
                    ChangeBaseline::Day => p.minus(Duration::days(1)),
                    ChangeBaseline::Week => p.minus(Duration::days(7)),
                };
                registry.observed_for_partition(id, &base.to_string()).await
            }
            (None, ChangeBaseline::Previous) => {
                registry.prior_observed(id, None, scheduled_at).await
            }
            (None, ChangeBaseline::Day) => {
                registry
                    .observed_at_or_before(id, scheduled_at - Duration::days(1))
                    .await
            }
            (None, ChangeBaseline::Week) => {
                registry
                    .observed_at_or_before(id, scheduled_at - Duration::days(7))
                    .await
            }
        };
        found.map(|f| f.map(|(rows, _)| rows))
    }
}

impl Settings for Raw {
    fn name(&self) -> &'static str {
        RowCountChange::NAME
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
        let vs = p.parse_or(&self.vs, "vs", ChangeBaseline::Previous, |s| {
            match s.trim() {
                "previous" => Ok(ChangeBaseline::Previous),
                "1d" => Ok(ChangeBaseline::Day),
                "7d" => Ok(ChangeBaseline::Week),
                other => Err(format!(
                    "`{other}` is not a baseline; expected `previous`, `1d` or `7d`"
                )),
            }
        });
        // A drop cannot exceed 100%; growth can.
        let max_drop = p.parse_opt(&self.max_drop, "max_drop", |s| {
            Ratio::parse(s, true).map_err(|e| e.to_string())
        });
        let max_growth = p.parse_opt(&self.max_growth, "max_growth", |s| {
            Ratio::parse(s, false).map_err(|e| e.to_string())
        });
        let (Some(vs), Some(max_drop), Some(max_growth)) = (vs, max_drop, max_growth) else {
            return Vec::new();
        };
        vec![(
            None,
            CheckKind::RowCountChange(RowCountChange {
                vs,
                max_drop,
                max_growth,
            }),
        )]
    }
}

impl Kind for RowCountChange {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn plan(&self, cx: &mut PlanCx<'_>) -> Result<Read, ObserveError> {
        let (statement, [rows]) = cx.join([Expr::CountRows])?;
        Ok(Read::RowCount { statement, rows })
    }

    fn thresholds(&self, t: &mut Thresholds) {
        if let Some(d) = self.max_drop {
            t.insert("max_drop".into(), json!(d.get()));
        }
        if let Some(g) = self.max_growth {
            t.insert("max_growth".into(), json!(g.get()));
        }
    }

    fn judge(&self, observed: &Observed, cx: &Judge<'_>, _t: &mut Thresholds) -> Verdict {
        match observed {
            Observed::RowCount { rows } => row_count_change(
                *rows,
                cx.baselines.row_counts.get(cx.id).copied(),
                self.vs,
                cx.partitioned,
                self.max_drop.map(|r| r.get()),
                self.max_growth.map(|r| r.get()),
            ),
            other => mismatch(Self::NAME, other),
        }
    }

    fn fetch_baseline<'a>(
        &'a self,
        cx: BaselineCx<'a>,
        out: &'a mut Baselines,
    ) -> Option<BoxFuture<'a, Result<(), String>>> {
        Some(Box::pin(async move {
            match self
                .baseline(cx.registry, cx.id, cx.partition, cx.scheduled_at)
                .await
            {
                Ok(Some(rows)) => {
                    out.row_counts.insert(cx.id.clone(), rows);
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(e) => Err(format!("baseline unavailable: {e}")),
            }
        }))
    }

    /// The count is kept with the result: later runs compare against it.
    fn recorded_rows(&self, observed: &Observed) -> Option<u64> {
        match observed {
            Observed::RowCount { rows } => Some(*rows),
            _ => None,
        }
    }
}

/// `partitioned`: the count is one partition's and the baseline an earlier
/// partition's, so `vs: previous` names the previous partition, not the
/// previous run (a backfill or a rerun is not the partition before).
fn row_count_change(
    rows: u64,
    baseline: Option<f64>,
    vs: ChangeBaseline,
    partitioned: bool,
    max_drop: Option<f64>,
    max_growth: Option<f64>,
) -> Verdict {
    let against = match vs {
        ChangeBaseline::Previous if partitioned => "the previous partition",
        ChangeBaseline::Previous => "the previous run",
        ChangeBaseline::Day => "1 day earlier",
        ChangeBaseline::Week => "7 days earlier",
    };
    let Some(base) = baseline else {
        return Verdict::new(
            false,
            None,
            format!("no baseline yet ({against}); {rows} rows recorded"),
        );
    };
    let current = rows as f64;
    if base <= 0.0 {
        let grew = current > 0.0;
        let breach = grew && max_growth.is_some();
        let message = if grew {
            format!(
                "{rows} rows, up from 0 {against}; growth from nothing cannot be measured as a percentage"
            )
        } else {
            format!("0 rows, as {against}")
        };
        return Verdict::new(breach, if grew { None } else { Some(0.0) }, message);
    }
    let change = (current - base) / base;
    let observed = Some(change);
    let summary = format!(
        "{rows} rows, {} vs {} {against}",
        signed_percent(change),
        decimals(base, 6)
    );
    if let Some(d) = max_drop.filter(|d| change < -d) {
        return Verdict::new(
            true,
            observed,
            format!("{summary}: dropped more than {}", percent(d)),
        );
    }
    if let Some(g) = max_growth.filter(|g| change > *g) {
        return Verdict::new(
            true,
            observed,
            format!("{summary}: grew more than {}", percent(g)),
        );
    }
    Verdict::new(false, observed, summary)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::check::evaluate::Status;

    #[test]
    fn row_count_change_compares_with_the_baseline() {
        let r = row_count_change(70, Some(100.0), ChangeBaseline::Day, false, Some(0.3), None);
        assert_eq!(
            (r.status, r.observed),
            (Status::Pass, Some(-0.3)),
            "exactly the limit passes"
        );
        let r = row_count_change(69, Some(100.0), ChangeBaseline::Day, false, Some(0.3), None);
        assert_eq!(r.status, Status::Breach);
        assert_eq!(
            r.message,
            "69 rows, -31% vs 100 1 day earlier: dropped more than 30%"
        );
        let r = row_count_change(
            400,
            Some(100.0),
            ChangeBaseline::Previous,
            false,
            None,
            Some(2.0),
        );
        assert_eq!(r.status, Status::Breach);
        assert_eq!(
            r.message,
            "400 rows, +300% vs 100 the previous run: grew more than 200%"
        );
        let r = row_count_change(
            50,
            Some(100.0),
            ChangeBaseline::Previous,
            true,
            Some(0.3),
            None,
        );
        assert_eq!(
            r.message,
            "50 rows, -50% vs 100 the previous partition: dropped more than 30%"
        );
        let r = row_count_change(5, None, ChangeBaseline::Week, false, Some(0.3), None);
        assert_eq!((r.status, r.observed), (Status::Pass, None));
        assert_eq!(
            r.message,
            "no baseline yet (7 days earlier); 5 rows recorded"
        );
        let r = row_count_change(5, Some(0.0), ChangeBaseline::Week, false, None, Some(1.0));
        assert_eq!(r.status, Status::Breach);
        let r = row_count_change(0, Some(0.0), ChangeBaseline::Week, false, None, Some(1.0));
        assert_eq!((r.status, r.observed), (Status::Pass, Some(0.0)));
    }

    #[test]
    fn the_change_shows_as_a_percentage() {
        let observed = row_count_change(70, Some(100.0), ChangeBaseline::Day, false, None, None)
            .observed
            .unwrap();
        let show = |v| CheckKind::show_observed(RowCountChange::NAME, v);
        assert_eq!(show(observed), "-30%");
        assert_eq!(show(0.125), "+12.5%");
        assert_eq!(show(0.0), "0%");
        let limits = BTreeMap::from([
            ("max_drop".to_owned(), json!(0.3)),
            ("max_growth".to_owned(), json!(2.0)),
        ]);
        assert_eq!(
            CheckKind::show_thresholds(RowCountChange::NAME, &limits),
            "max_drop 30%, max_growth 200%"
        );
    }
}
