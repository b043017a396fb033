//! Checks: planning a dataset's checks into batched statements, executing
//! them, and evaluating observations into results.
//!
//! A run is two steps so that a caller can fetch baselines from the registry
//! in between: [`observe`] (one catalog read, then the planned statements)
//! and [`evaluate_all`] (pure). [`run_dataset`] does both.

mod evaluate;
mod executor;
pub mod kind;
mod observation;
pub mod planner;
mod runner;
mod scope;
pub mod spec;
pub mod template;

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use crate::warehouse::Warehouse;

pub use crate::domain::{CheckResult, Outcome, Summary};
pub use evaluate::{Baselines, EvalContext, evaluate, evaluate_all};
pub(crate) use evaluate::{Status, Verdict};
pub use executor::{observe, observe_table};
pub use kind::{CheckKind, latest_instant};
pub use observation::{DatasetObservations, Observation, ObserveError, Observed};
pub use planner::{Plan, PlanInput, plan};
pub use runner::{PendingRun, RunError, Runner, stored_column};
pub use scope::Scope;
pub use spec::{CheckSpec, Dataset, PartitionSpec, Schedule, Severity};

/// Observes and evaluates the checks of `ds` that run in `scope`.
pub async fn run_dataset(
    ds: &Dataset,
    wh: &Warehouse,
    scope: &Scope,
    ctx: &EvalContext,
    baselines: &Baselines,
) -> Vec<CheckResult> {
    let observations = observe(ds, wh, scope, ctx.tz).await;
    evaluate_all(ds, &observations, baselines, ctx)
}

/// The instant a local wall-clock time stands for in `tz`. An ambiguous time
/// (the repeated hour when clocks go back) is the earlier instant; a time in
/// a gap (the skipped hour when clocks go forward) is read with the offset
/// from before the gap, landing just after it.
pub fn local_to_utc(t: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&t) {
        LocalResult::Single(d) => d.with_timezone(&Utc),
        LocalResult::Ambiguous(earlier, _) => earlier.with_timezone(&Utc),
        LocalResult::None => {
            let before = tz
                .from_local_datetime(&(t - chrono::Duration::hours(3)))
                .earliest();
            match before {
                Some(b) => {
                    let offset = b.offset().fix();
                    let utc = t - chrono::Duration::seconds(offset.local_minus_utc().into());
                    Utc.from_utc_datetime(&utc)
                }
                None => Utc.from_utc_datetime(&t),
            }
        }
    }
}
