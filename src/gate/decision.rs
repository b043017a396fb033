//! The gate rule: only blocking fail-severity checks decide. Any of them
//! failing denies on the basis `checks` (a breach: retrying will not help);
//! otherwise any of them erroring denies on the basis `error` (retrying may
//! help). Everything else allows.

use crate::check::{CheckResult, Outcome};
use crate::check::{Dataset, Severity};
use crate::domain::GateBasis;

/// What a gate's results come to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub allowed: bool,
    pub basis: GateBasis,
    /// One sentence per check that denied (breaches first), or a note when
    /// nothing could deny.
    pub reasons: Vec<String>,
}

/// Judges the results of a gate's run of `ds`'s checks.
pub(crate) fn judge(ds: &Dataset, results: &[CheckResult]) -> Verdict {
    let mut breaches = Vec::new();
    let mut errors = Vec::new();
    let mut deciding = 0;
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
            table,
            tier: 1,
            owner: None,
            runbook: None,
            schedule: Schedule {
                expr: "@hourly".into(),
                cron: "@hourly".parse().unwrap(),
            },
            partition: None,
            checks,
            pos: SourcePos {
                file: PathBuf::from("checks.yaml"),
                line: 1,
                column: 1,
            },
        }
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
        }
    }

    #[test]
    fn only_blocking_fail_severity_checks_deny() {
        let ds = dataset(vec![
            spec("blocking", Severity::Fail, true),
            spec("advisory", Severity::Fail, false),
            spec("warning", Severity::Warn, true),
        ]);
        let v = judge(
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

        let v = judge(&ds, &[result("blocking", Outcome::Fail)]);
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
        let v = judge(&ds, &[result("a", Outcome::Error)]);
        assert_eq!((v.allowed, v.basis), (false, GateBasis::Error));
        assert_eq!(v.reasons, ["orders.a could not be evaluated: a said error"]);

        let v = judge(
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
    fn unknown_results_count_as_blocking_and_no_checks_is_noted() {
        let ds = dataset(vec![]);
        let v = judge(&ds, &[result("ghost", Outcome::Fail)]);
        assert!(!v.allowed);
        let v = judge(&ds, &[]);
        assert!(v.allowed);
        assert_eq!(v.reasons.len(), 1);
        assert!(v.reasons[0].contains("nothing could deny it"), "{v:?}");
    }
}
