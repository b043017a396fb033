//! The alert state machine, pure: an observation moves an alert
//! `ok → pending → firing → resolved`. Whether and when receivers hear
//! about it is the router's business; this file only keeps the facts
//! (failures in a row, when it fired, when it resolved, the newest
//! partition seen).
//!
//! A check has one alert whatever partition it looks at, and only the
//! newest partition it has seen drives it: a newer partition failing keeps
//! the alert going (updated to that partition), one passing resolves it,
//! and an older partition (a backfill) moves nothing.

use chrono::{DateTime, Utc};

use super::model::{AlertDetails, record_kind};
use crate::domain::{AlertKind, AlertState, Outcome};
use crate::registry::AlertRecord;

/// One observation of an alert's subject.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The stored key (check id, `warehouse:<name>`, `quarantine:<dataset>`).
    pub key: String,
    /// The partition looked at; `None` for the whole relation.
    pub partition: Option<String>,
    /// Whether it is failing (a check's fail, warn or error; a warehouse
    /// down; a partition quarantined).
    pub failing: bool,
    /// The check outcome, for check alerts.
    pub outcome: Option<Outcome>,
    pub details: AlertDetails,
}

impl Observation {
    /// What tells its alert apart from others of the same key (see
    /// `AlertRecord::scope`): the partition of a quarantine, else `None`.
    pub fn scope(&self) -> Option<String> {
        match record_kind(&self.details.labels) {
            AlertKind::Quarantine => self.partition.clone(),
            AlertKind::Check | AlertKind::Warehouse => None,
        }
    }
}

/// Whether `partition` is older than `newest`, the newest partition the
/// alert has seen. Partition keys (`2026-11-20`, `2026-11-20T08`) sort as
/// their time does; the whole relation (`None`) is never older.
fn older(partition: Option<&str>, newest: Option<&str>) -> bool {
    matches!((partition, newest), (Some(p), Some(n)) if p < n)
}

/// What `current` becomes after `obs` at `now`, firing after `threshold`
/// failing observations in a row. `None` when nothing worth storing
/// changed (a passing check that was not failing, on a partition already
/// seen), and for a partition older than the newest the alert has seen.
pub fn next(
    current: Option<&AlertRecord>,
    obs: &Observation,
    threshold: u32,
    now: DateTime<Utc>,
) -> Option<AlertRecord> {
    if current.is_some_and(|c| older(obs.partition.as_deref(), c.partition.as_deref())) {
        return None;
    }
    let state = current.map_or(AlertState::Ok, |c| c.state);
    if !obs.failing && matches!(state, AlertState::Ok | AlertState::Resolved) {
        // Nothing to tell; a newer partition is still remembered, so that
        // a backfill of an older one cannot raise the alert.
        let newer = obs.partition.is_some()
            && obs.partition.as_deref() != current.and_then(|c| c.partition.as_deref());
        if !newer {
            return None;
        }
        let mut r = current
            .cloned()
            .unwrap_or_else(|| fresh(obs, now, obs.details.to_json()));
        r.partition = obs.partition.clone();
        r.last_outcome = obs.outcome;
        r.last_message = Some(obs.details.annotations.message.clone());
        r.updated_at = now;
        return Some(r);
    }
    let mut r = current
        .cloned()
        .unwrap_or_else(|| fresh(obs, now, serde_json::Value::Object(Default::default())));
    let labels = &obs.details.labels;
    r.partition = obs.partition.clone();
    r.updated_at = now;
    r.last_outcome = obs.outcome;
    r.last_message = Some(obs.details.annotations.message.clone());
    if obs.failing {
        r.consecutive_failures = r.consecutive_failures.saturating_add(1);
        if !matches!(state, AlertState::Pending | AlertState::Firing) {
            r.first_failed_at = Some(now);
        }
        r.details = obs.details.to_json();
        r.dataset = labels.dataset.clone();
        r.kind = record_kind(labels);
        r.state = match state {
            AlertState::Firing => AlertState::Firing,
            _ if r.consecutive_failures >= threshold.max(1) => {
                r.fired_at = Some(now);
                r.resolved_at = None;
                AlertState::Firing
            }
            _ => AlertState::Pending,
        };
    } else {
        r.consecutive_failures = 0;
        r.first_failed_at = None;
        // Receivers know the alert by the labels it fired with (a PagerDuty
        // resolve must reach the route its trigger took): keep them, and
        // show what is observed now.
        r.details = match AlertDetails::of(&r) {
            Some(mut d) => {
                d.annotations = obs.details.annotations.clone();
                d.to_json()
            }
            None => obs.details.to_json(),
        };
        r.state = match state {
            AlertState::Firing => {
                r.resolved_at = Some(now);
                AlertState::Resolved
            }
            _ => AlertState::Ok,
        };
    }
    Some(r)
}

/// A new alert of `obs`'s subject, in state `ok`, with `details`.
fn fresh(obs: &Observation, now: DateTime<Utc>, details: serde_json::Value) -> AlertRecord {
    let labels = &obs.details.labels;
    AlertRecord {
        key: obs.key.clone(),
        partition: obs.partition.clone(),
        dataset: labels.dataset.clone(),
        kind: record_kind(labels),
        state: AlertState::Ok,
        consecutive_failures: 0,
        first_failed_at: None,
        fired_at: None,
        resolved_at: None,
        last_notified_at: None,
        notified: false,
        last_outcome: None,
        last_message: None,
        details,
        updated_at: now,
    }
}

/// What a firing alert whose subject left the configuration becomes at
/// `now`: resolved, so receivers hear the end of it. `None` when it is not
/// firing (nothing to tell).
pub fn retire(current: &AlertRecord, now: DateTime<Utc>) -> Option<AlertRecord> {
    if current.state != AlertState::Firing {
        return None;
    }
    let mut r = current.clone();
    r.state = AlertState::Resolved;
    r.resolved_at = Some(now);
    r.consecutive_failures = 0;
    r.updated_at = now;
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::model::Annotations;
    use crate::config::routes::{Labels, Severity};
    use chrono::TimeZone;

    fn obs(failing: bool) -> Observation {
        obs_on("2026-11-20", failing)
    }

    fn obs_on(partition: &str, failing: bool) -> Observation {
        Observation {
            key: "orders.row_count".into(),
            partition: Some(partition.into()),
            failing,
            outcome: Some(if failing {
                Outcome::Fail
            } else {
                Outcome::Pass
            }),
            details: AlertDetails {
                labels: Labels {
                    kind: "row_count".into(),
                    check: Some("orders.row_count".into()),
                    dataset: Some("orders".into()),
                    partition: Some(partition.into()),
                    warehouse: Some("main".into()),
                    tier: 1,
                    owner: None,
                    severity: if failing {
                        Severity::Critical
                    } else {
                        Severity::Info
                    },
                },
                annotations: Annotations {
                    summary: if failing { "bad" } else { "good" }.into(),
                    message: String::new(),
                    outcome: None,
                    observed: None,
                    threshold: Default::default(),
                    runbook: None,
                    column: None,
                    gate_id: None,
                    reasons: Vec::new(),
                },
            },
        }
    }

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 8, minute, 0).unwrap()
    }

    /// The states after each observation, failing (`F`) or passing (`P`).
    fn walk(pattern: &str, threshold: u32) -> Vec<&'static str> {
        walk_on(Some("2026-11-20"), pattern, threshold)
    }

    /// [`walk`] of a check on `partition` (`None`: the whole relation).
    fn walk_on(partition: Option<&str>, pattern: &str, threshold: u32) -> Vec<&'static str> {
        let mut current: Option<AlertRecord> = None;
        pattern
            .chars()
            .enumerate()
            .map(|(i, c)| {
                let mut o = obs(c == 'F');
                o.partition = partition.map(str::to_owned);
                if let Some(next) = next(current.as_ref(), &o, threshold, at(i as u32)) {
                    current = Some(next);
                }
                current.as_ref().map_or("none", |r| r.state.as_str())
            })
            .collect()
    }

    #[test]
    fn fires_after_enough_failures_in_a_row() {
        assert_eq!(walk("FFP", 1), ["firing", "firing", "resolved"]);
        assert_eq!(walk("FFFP", 2), ["pending", "firing", "firing", "resolved"]);
        // A passing partitioned check keeps a row (`ok`) remembering the
        // newest partition it saw; a whole-relation one stores nothing.
        assert_eq!(walk("PPF", 1), ["ok", "ok", "firing"]);
        assert_eq!(walk_on(None, "PPF", 1), ["none", "none", "firing"]);
        assert_eq!(walk("FPF", 1), ["firing", "resolved", "firing"]);
    }

    #[test]
    fn flapping_never_fires_under_damping() {
        assert_eq!(
            walk("FPFPFPFP", 2),
            [
                "pending", "ok", "pending", "ok", "pending", "ok", "pending", "ok"
            ]
        );
    }

    #[test]
    fn resolving_keeps_the_labels_it_fired_with() {
        let fired = next(None, &obs(true), 1, at(0)).unwrap();
        assert_eq!(fired.fired_at, Some(at(0)));
        let resolved = next(Some(&fired), &obs(false), 1, at(5)).unwrap();
        assert_eq!(resolved.resolved_at, Some(at(5)));
        let d = AlertDetails::of(&resolved).unwrap();
        assert_eq!(d.labels.severity, Severity::Critical);
        assert_eq!(d.annotations.summary, "good");
        assert_eq!(resolved.consecutive_failures, 0);
        // Firing again starts a new episode.
        let again = next(Some(&resolved), &obs(true), 1, at(9)).unwrap();
        assert_eq!((again.fired_at, again.resolved_at), (Some(at(9)), None));
    }

    #[test]
    fn a_removed_firing_alert_resolves() {
        let fired = next(None, &obs(true), 1, at(0)).unwrap();
        let retired = retire(&fired, at(3)).unwrap();
        assert_eq!(retired.state, AlertState::Resolved);
        assert_eq!(retired.resolved_at, Some(at(3)));
        assert_eq!(retired.consecutive_failures, 0);
        let pending = next(None, &obs(true), 2, at(0)).unwrap();
        assert_eq!(retire(&pending, at(3)), None);
    }

    /// Observations of `(partition, failing)` in turn, from no alert.
    fn days(steps: &[(&str, bool)], threshold: u32) -> Vec<Option<AlertRecord>> {
        let mut current: Option<AlertRecord> = None;
        steps
            .iter()
            .enumerate()
            .map(|(i, (p, failing))| {
                let written = next(
                    current.as_ref(),
                    &obs_on(p, *failing),
                    threshold,
                    at(i as u32),
                );
                if let Some(w) = &written {
                    current = Some(w.clone());
                }
                written
            })
            .collect()
    }

    #[test]
    fn one_alert_follows_the_newest_partition() {
        let steps = days(
            &[
                ("2026-11-20", true),
                ("2026-11-21", true),
                ("2026-11-22", false),
            ],
            2,
        );
        let [p20, p21, p22] = [&steps[0], &steps[1], &steps[2]].map(|s| s.clone().unwrap());
        assert_eq!(
            (p20.state, p20.consecutive_failures),
            (AlertState::Pending, 1)
        );
        // Failures in a row count across partitions.
        assert_eq!(
            (p21.state, p21.consecutive_failures),
            (AlertState::Firing, 2)
        );
        assert_eq!(p21.partition.as_deref(), Some("2026-11-21"));
        assert_eq!(p21.fired_at, Some(at(1)));
        assert_eq!(
            AlertDetails::of(&p21).unwrap().labels.partition.as_deref(),
            Some("2026-11-21")
        );
        assert_eq!(p22.state, AlertState::Resolved);
        assert_eq!(p22.partition.as_deref(), Some("2026-11-22"));
        assert_eq!(p22.scope(), None, "one alert per check");
    }

    #[test]
    fn an_older_partition_moves_nothing() {
        for failing in [true, false] {
            let steps = days(
                &[
                    ("2026-11-20", true),
                    ("2026-11-21", true),
                    ("2026-11-10", failing),
                ],
                1,
            );
            assert_eq!(steps[2], None, "a backfill (failing: {failing}) is ignored");
        }
        // A passing check remembers the newest partition it saw, so that an
        // older failing one raises nothing.
        let steps = days(&[("2026-11-22", false), ("2026-11-10", true)], 1);
        let ok = steps[0].clone().unwrap();
        assert_eq!(
            (ok.state, ok.partition.as_deref()),
            (AlertState::Ok, Some("2026-11-22"))
        );
        assert_eq!(steps[1], None);
        // The same partition again changes nothing while it passes, and a
        // re-run of the newest partition still drives the alert.
        let steps = days(
            &[
                ("2026-11-22", false),
                ("2026-11-22", false),
                ("2026-11-22", true),
            ],
            1,
        );
        assert_eq!(steps[1], None);
        assert_eq!(steps[2].clone().unwrap().state, AlertState::Firing);
    }
}
