//! The alert state machine, pure: an observation moves an alert
//! `ok → pending → firing → resolved`. Whether and when receivers hear
//! about it is the router's business; this file only keeps the facts
//! (failures in a row, when it fired, when it resolved).

use chrono::{DateTime, Utc};

use super::model::{AlertDetails, record_kind};
use crate::check::Outcome;
use crate::registry::{AlertRecord, AlertState};

/// One observation of an alert's subject.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The stored key (check id, `warehouse:<name>`, `quarantine:<dataset>`).
    pub key: String,
    pub partition: Option<String>,
    /// Whether it is failing (a check's fail, warn or error; a warehouse
    /// down; a partition quarantined).
    pub failing: bool,
    /// The check outcome, for check alerts.
    pub outcome: Option<Outcome>,
    pub details: AlertDetails,
}

/// What `current` becomes after `obs` at `now`, firing after `threshold`
/// failing observations in a row. `None` when nothing worth storing
/// changed (a passing check that was not failing).
pub fn next(
    current: Option<&AlertRecord>,
    obs: &Observation,
    threshold: u32,
    now: DateTime<Utc>,
) -> Option<AlertRecord> {
    let state = current.map_or(AlertState::Ok, |c| c.state);
    if !obs.failing && matches!(state, AlertState::Ok | AlertState::Resolved) {
        return None;
    }
    let labels = &obs.details.labels;
    let mut r = current.cloned().unwrap_or_else(|| {
        AlertRecord::new(
            obs.key.clone(),
            obs.partition.clone(),
            labels.dataset.clone(),
            record_kind(labels),
            now,
        )
    });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::model::{Annotations, Labels, Severity};
    use chrono::TimeZone;

    fn obs(failing: bool) -> Observation {
        Observation {
            key: "orders.row_count".into(),
            partition: Some("2026-11-20".into()),
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
                    partition: Some("2026-11-20".into()),
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
        let mut current: Option<AlertRecord> = None;
        pattern
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if let Some(next) = next(current.as_ref(), &obs(c == 'F'), threshold, at(i as u32))
                {
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
        assert_eq!(walk("PPF", 1), ["none", "none", "firing"]);
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
}
