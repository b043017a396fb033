//! The gate rule: only blocking fail-severity checks decide. Any of them
//! failing denies on the basis `checks` (a breach: retrying will not help);
//! otherwise any of them erroring denies on the basis `error` (retrying may
//! help). Everything else allows.

use crate::check::kind::{CheckKind, RowCount};
use crate::check::{CheckResult, Outcome};
use crate::check::{CheckSpec, Dataset, Severity};
use crate::domain::{CheckId, GateBasis};

/// What a gate's results come to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub allowed: bool,
    pub basis: GateBasis,
    /// One sentence per check that denied (breaches first), or a note when
    /// nothing could deny.
    pub reasons: Vec<String>,
}

/// The count of a gate's rows: a `row_count` with `min: 1` joined to the
/// gate's scan (no statement of its own where the checks scan the
/// partition), unless the dataset sets `gate.allow_empty`. Its result is the
/// gate's, not a check's: it is taken out of the results and judged apart.
#[derive(Debug, Clone)]
pub(crate) struct RowProbe {
    spec: CheckSpec,
}

impl RowProbe {
    /// The probe for `ds`, `None` when it allows empty partitions.
    pub(crate) fn of(ds: &Dataset) -> Option<Self> {
        if ds.gate_allow_empty {
            return None;
        }
        // A name no check of the dataset has.
        let mut name = "_gate_rows".to_owned();
        while ds.checks.iter().any(|c| c.name == name) {
            name.push('_');
        }
        let id = CheckId::new(&ds.name, &name).ok()?;
        Some(Self {
            spec: CheckSpec {
                id,
                name,
                kind: CheckKind::RowCount(RowCount {
                    min: Some(1),
                    max: None,
                }),
                severity: Severity::Fail,
                blocking: true,
                filter: None,
                pos: ds.pos.clone(),
            },
        })
    }

    /// `ds` with the probe among its checks.
    pub(crate) fn add_to(&self, ds: &Dataset) -> Dataset {
        let mut probed = ds.clone();
        probed.checks.push(self.spec.clone());
        probed
    }

    /// Takes the probe's result out of `results`.
    pub(crate) fn take(&self, results: &mut Vec<CheckResult>) -> Option<CheckResult> {
        let at = results
            .iter()
            .position(|r| r.check == self.spec.id.as_str())?;
        Some(results.remove(at))
    }
}

/// Judges the results of a gate's run of `ds`'s checks on `partition`, with
/// the result of its [`RowProbe`] if it had one: no rows is a breach.
pub(crate) fn judge(
    ds: &Dataset,
    partition: &str,
    results: &[CheckResult],
    rows: Option<&CheckResult>,
) -> Verdict {
    let mut breaches = Vec::new();
    let mut errors = Vec::new();
    let mut deciding = 0;
    // An empty partition is the first breach; a count that failed is said
    // after the checks' own errors (it usually repeats them).
    let mut uncounted = None;
    match rows.map(|r| r.outcome) {
        Some(Outcome::Fail) => {
            breaches.push(format!("no rows in {} for {partition}", ds.gate_table));
        }
        Some(Outcome::Error) => {
            uncounted = Some(format!(
                "the rows in {} for {partition} could not be counted: {}",
                ds.gate_table,
                rows.map_or("", |r| r.message.as_str())
            ));
        }
        _ => {}
    }
    for r in results {
        // A result that names no configured check cannot be vouched for:
        // it counts as blocking (fail closed).
        let blocking = ds
            .checks
            .iter()
            .find(|spec| spec.id.as_str() == r.check)
            .is_none_or(|spec| spec.blocking && spec.severity == Severity::Fail);
        if !blocking {
            continue;
        }
        deciding += 1;
        match r.outcome {
            Outcome::Fail => breaches.push(format!("{} failed: {}", r.check, r.message)),
            Outcome::Error => {
                errors.push(format!("{} could not be evaluated: {}", r.check, r.message))
            }
            Outcome::Pass | Outcome::Warn => {}
        }
    }
    errors.extend(uncounted);
    if !breaches.is_empty() {
        breaches.extend(errors);
        return Verdict {
            allowed: false,
            basis: GateBasis::Checks,
            reasons: breaches,
        };
    }
    if !errors.is_empty() {
        return Verdict {
            allowed: false,
            basis: GateBasis::Error,
            reasons: errors,
        };
    }
    let reasons = if deciding == 0 {
        vec![format!(
            "no blocking fail-severity check of `{}` runs on a partition, so nothing could deny it",
            ds.name
        )]
    } else {
        Vec::new()
    };
    Verdict {
        allowed: true,
        basis: GateBasis::Checks,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::check::kind::{CheckKind, RowCount};
    use crate::check::spec::{CheckSpec, Schedule};
    use crate::domain::{CheckId, DatasetName, TableRef};
    use crate::source::SourcePos;

    fn spec(name: &str, severity: Severity, blocking: bool) -> CheckSpec {
        let ds = DatasetName::parse("orders").unwrap();
        CheckSpec {
            id: CheckId::new(&ds, name).unwrap(),
            name: name.into(),
            kind: CheckKind::RowCount(RowCount {
                min: Some(1),
                max: None,
            }),
            severity,
            blocking,
            filter: None,
            pos: SourcePos {
                file: PathBuf::from("checks.yaml"),
                line: 1,
                column: 1,
            },
        }
    }

    fn dataset(checks: Vec<CheckSpec>) -> Dataset {
        let table = TableRef::parse("orders").unwrap();
        Dataset {
            name: DatasetName::parse("orders").unwrap(),
            warehouse: "main".into(),
            gate_table: table.clone(),
            gate_allow_empty: false,
            discovered: None,
            table,
            tier: 1,
            owner: None,
            runbook: None,
            schedule: Some(Schedule {
                expr: "@hourly".into(),
                cron: "@hourly".parse().unwrap(),
            }),
            partition: None,
            checks,
            pos: SourcePos {
                file: PathBuf::from("checks.yaml"),
                line: 1,
                column: 1,
            },
        }
    }

    fn judged(ds: &Dataset, results: &[CheckResult]) -> Verdict {
        judge(ds, "2026-11-20", results, None)
    }

    fn result(check: &str, outcome: Outcome) -> CheckResult {
        CheckResult {
            check: format!("orders.{check}"),
            dataset: "orders".into(),
            kind: "row_count".into(),
            column: None,
            partition: Some("2026-11-20".into()),
            outcome,
            observed: None,
            threshold: BTreeMap::new(),
            message: format!("{check} said {outcome}"),
            duration_ms: 1,
            expected: None,
            score: None,
        }
    }

    #[test]
    fn only_blocking_fail_severity_checks_deny() {
        let ds = dataset(vec![
            spec("blocking", Severity::Fail, true),
            spec("advisory", Severity::Fail, false),
            spec("warning", Severity::Warn, true),
        ]);
        let v = judged(
            &ds,
            &[
                result("blocking", Outcome::Pass),
                result("advisory", Outcome::Fail),
                result("warning", Outcome::Error),
            ],
        );
        assert_eq!(
            v,
            Verdict {
                allowed: true,
                basis: GateBasis::Checks,
                reasons: vec![]
            }
        );

        let v = judged(&ds, &[result("blocking", Outcome::Fail)]);
        assert!(!v.allowed);
        assert_eq!(v.basis, GateBasis::Checks);
        assert_eq!(v.reasons, ["orders.blocking failed: blocking said fail"]);
    }

    #[test]
    fn a_breach_outweighs_an_error() {
        let ds = dataset(vec![
            spec("a", Severity::Fail, true),
            spec("b", Severity::Fail, true),
        ]);
        let v = judged(&ds, &[result("a", Outcome::Error)]);
        assert_eq!((v.allowed, v.basis), (false, GateBasis::Error));
        assert_eq!(v.reasons, ["orders.a could not be evaluated: a said error"]);

        let v = judged(
            &ds,
            &[result("a", Outcome::Error), result("b", Outcome::Fail)],
        );
        assert_eq!((v.allowed, v.basis), (false, GateBasis::Checks));
        assert_eq!(
            v.reasons,
            [
                "orders.b failed: b said fail",
                "orders.a could not be evaluated: a said error"
            ]
        );
    }

    #[test]
    fn no_rows_is_a_breach_unless_allowed() {
        let mut ds = dataset(vec![spec("a", Severity::Fail, true)]);
        let probe = RowProbe::of(&ds).unwrap();
        let probed = probe.add_to(&ds);
        assert_eq!(probed.checks.len(), 2);
        let mut results = vec![
            result("a", Outcome::Pass),
            result("_gate_rows", Outcome::Fail),
        ];
        let rows = probe.take(&mut results).unwrap();
        assert_eq!(results.len(), 1);
        let v = judge(&ds, "2026-11-20", &results, Some(&rows));
        assert_eq!((v.allowed, v.basis), (false, GateBasis::Checks));
        assert_eq!(v.reasons, ["no rows in orders for 2026-11-20"]);
        let rows = result("_gate_rows", Outcome::Pass);
        assert!(judge(&ds, "2026-11-20", &results, Some(&rows)).allowed);
        let rows = result("_gate_rows", Outcome::Error);
        let v = judge(&ds, "2026-11-20", &results, Some(&rows));
        assert_eq!((v.allowed, v.basis), (false, GateBasis::Error));
        // A user check with the probe's name: the probe takes another.
        let taken = dataset(vec![spec("_gate_rows", Severity::Fail, true)]);
        assert_ne!(RowProbe::of(&taken).unwrap().spec.name, "_gate_rows");
        ds.gate_allow_empty = true;
        assert!(RowProbe::of(&ds).is_none());
    }

    #[test]
    fn unknown_results_count_as_blocking_and_no_checks_is_noted() {
        let ds = dataset(vec![]);
        let v = judged(&ds, &[result("ghost", Outcome::Fail)]);
        assert!(!v.allowed);
        let v = judged(&ds, &[]);
        assert!(v.allowed);
        assert_eq!(v.reasons.len(), 1);
        assert!(v.reasons[0].contains("nothing could deny it"), "{v:?}");
    }
}
