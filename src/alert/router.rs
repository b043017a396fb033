//! Deciding, from the stored alerts, what is sent where and when — pure, so
//! the rules can be read and tested apart from the registry:
//!
//! - A firing alert not yet notified is sent once `group_wait` has passed
//!   since it fired, together with every other alert of its dataset that is
//!   waiting: one message per receiver per dataset.
//! - A notified firing alert is sent again every `repeat_interval`.
//! - An alert that stopped firing after receivers were told is sent as
//!   resolved (if `send_resolved`), also after `group_wait`.
//! - A silenced alert is not sent while the silence lasts (it is sent when
//!   the silence ends, if it still fires); its resolve is still sent.
//! - An error alert of a warehouse that is down is held back (the
//!   warehouse's own alert says it all), until the check is observed again
//!   after the warehouse came back.
//! - Routes with a `digest` schedule get their alerts in one message per
//!   schedule instead.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::model::{Alert, AlertDetails, Status};
use super::receivers::{DigestPeriod, Notification};
use crate::check::Outcome;
use crate::config::routes::{Route, Routes, Silence};
use crate::registry::{
    AlertFlush, AlertKind, AlertRecord, AlertState, DigestPlan, NewNotification, NotifiedMark,
};

/// What a flush or a digest is decided against.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub routes: &'a Routes,
    /// Silences from the file and from the API.
    pub silences: &'a [Silence],
    pub status_url: Option<&'a str>,
    pub now: DateTime<Utc>,
}

impl Context<'_> {
    fn silenced(&self, alert: &AlertDetails) -> bool {
        self.silences
            .iter()
            .any(|s| s.silences(&alert.labels, self.now))
    }
}

/// Why an alert is in a flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Fires and receivers have not been told.
    Trigger { since: DateTime<Utc> },
    /// Fires, told long enough ago to tell again.
    Repeat,
    /// No longer fires and receivers were told it did.
    Resolve { since: DateTime<Utc> },
}

/// Warehouses whose alert holds back error alerts: the warehouse name and,
/// unless it still fires, when it resolved.
type Inhibitors = BTreeMap<String, Option<DateTime<Utc>>>;

fn inhibitors(records: &[AlertRecord]) -> Inhibitors {
    records
        .iter()
        .filter(|r| r.kind == AlertKind::Warehouse)
        .filter_map(|r| {
            let d = AlertDetails::of(r)?;
            let name = d.labels.warehouse?;
            match r.state {
                AlertState::Firing => Some((name, None)),
                _ => r.resolved_at.map(|at| (name, Some(at))),
            }
        })
        .collect()
}

/// Whether `record` (an error of a check) is one its warehouse's alert
/// explains: the warehouse is down, or came back after the check was last
/// observed.
fn inhibited(record: &AlertRecord, details: &AlertDetails, inhibitors: &Inhibitors) -> bool {
    if record.kind != AlertKind::Check || record.last_outcome != Some(Outcome::Error) {
        return false;
    }
    let Some(warehouse) = &details.labels.warehouse else {
        return false;
    };
    match inhibitors.get(warehouse) {
        Some(None) => true,
        Some(Some(resolved_at)) => record.updated_at <= *resolved_at,
        None => false,
    }
}

/// What `record` needs now, if anything.
fn need(record: &AlertRecord, cx: &Context<'_>) -> Option<Need> {
    let policy = &cx.routes.policy;
    match (record.state, record.notified) {
        (AlertState::Firing, false) => Some(Need::Trigger {
            since: record.fired_at.unwrap_or(record.updated_at),
        }),
        (AlertState::Firing, true) => {
            let repeat = chrono::Duration::from_std(policy.repeat_interval).ok()?;
            let last = record.last_notified_at?;
            (last + repeat <= cx.now).then_some(Need::Repeat)
        }
        (_, true) => Some(Need::Resolve {
            since: record.resolved_at.unwrap_or(record.updated_at),
        }),
        (_, false) => None,
    }
}

/// The notifications and marks of one flush over the candidate `records`
/// (see `Registry::flush_alerts`).
pub fn plan_flush(records: &[AlertRecord], cx: &Context<'_>) -> AlertFlush {
    let policy = &cx.routes.policy;
    let group_wait = chrono::Duration::from_std(policy.group_wait).unwrap_or_default();
    let inhibitors = inhibitors(records);

    // Group the alerts that need something by dataset (or by the alert, for
    // a warehouse), keeping the stored order.
    let mut groups: BTreeMap<String, Vec<(&AlertRecord, AlertDetails, Need)>> = BTreeMap::new();
    for record in records {
        let Some(need) = need(record, cx) else {
            continue;
        };
        let Some(details) = AlertDetails::of(record) else {
            continue;
        };
        if matches!(need, Need::Trigger { .. } | Need::Repeat)
            && (cx.silenced(&details) || inhibited(record, &details, &inhibitors))
        {
            continue;
        }
        let group = record.dataset.clone().unwrap_or_else(|| record.key.clone());
        groups
            .entry(group)
            .or_default()
            .push((record, details, need));
    }

    let mut flush = AlertFlush::default();
    for (group, members) in groups {
        let due = members.iter().any(|(_, _, need)| match need {
            Need::Trigger { since } | Need::Resolve { since } => *since + group_wait <= cx.now,
            Need::Repeat => true,
        });
        if !due {
            continue;
        }
        // Alerts per receiver, in receiver name order.
        let mut per_receiver: BTreeMap<&str, Vec<Alert>> = BTreeMap::new();
        let mut subject = group.clone();
        for (record, _, need) in &members {
            let status = match need {
                Need::Trigger { .. } | Need::Repeat => Status::Firing,
                Need::Resolve { .. } => Status::Resolved,
            };
            flush.marks.push(NotifiedMark {
                key: record.key.clone(),
                scope: record.scope().map(str::to_owned),
                notified: status == Status::Firing,
                last_notified_at: (status == Status::Firing).then_some(cx.now),
            });
            if status == Status::Resolved && !policy.send_resolved {
                continue;
            }
            let Some(alert) = Alert::from_record(record, status) else {
                continue;
            };
            subject = alert.subject();
            for receiver in cx.routes.immediate_receivers(&alert.labels) {
                per_receiver
                    .entry(&receiver.name)
                    .or_default()
                    .push(alert.clone());
            }
        }
        for (name, alerts) in per_receiver {
            let receiver = &cx.routes.receivers[name];
            let n = Notification {
                receiver: name.to_owned(),
                group: subject.clone(),
                alerts,
                digest: None,
                status_url: cx.status_url.map(str::to_owned),
                at: cx.now,
            };
            flush
                .notifications
                .extend(receiver.render(&n).into_iter().map(|r| NewNotification {
                    receiver: name.to_owned(),
                    payload: r.payload,
                    dedup_key: r.dedup_key,
                }));
        }
    }
    flush
}

/// The digest of route number `index`, given when its last digest was sent
/// and the alerts active since (see `Registry::flush_digest`). `None` when
/// it is not due; a due digest with nothing to report advances its period
/// and sends nothing.
pub fn plan_digest(
    index: usize,
    route: &Route,
    last: Option<DateTime<Utc>>,
    records: &[AlertRecord],
    cx: &Context<'_>,
) -> Option<DigestPlan> {
    let schedule = route.digest.as_ref()?;
    let Some(last) = last else {
        // The first time: the first period starts now.
        return Some(DigestPlan {
            notifications: Vec::new(),
            sent_at: cx.now,
        });
    };
    let tz = cx.routes.timezone;
    let next = schedule
        .cron
        .find_next_occurrence(&last.with_timezone(&tz), false)
        .ok()?
        .with_timezone(&Utc);
    if next > cx.now {
        return None;
    }
    let mut alerts = Vec::new();
    for record in records {
        let Some(details) = AlertDetails::of(record) else {
            continue;
        };
        let routed_here = cx
            .routes
            .matching(&details.labels)
            .iter()
            .any(|(i, _)| *i == index);
        if !routed_here || cx.silenced(&details) {
            continue;
        }
        let status = if record.state == AlertState::Firing {
            Status::Firing
        } else {
            Status::Resolved
        };
        alerts.extend(Alert::from_record(record, status));
    }
    let mut notifications = Vec::new();
    if !alerts.is_empty() {
        for name in &route.receivers {
            let Some(receiver) = cx.routes.receivers.get(name) else {
                continue;
            };
            let n = Notification {
                receiver: name.clone(),
                group: name.clone(),
                alerts: alerts.clone(),
                digest: Some(DigestPeriod {
                    since: last,
                    until: cx.now,
                }),
                status_url: cx.status_url.map(str::to_owned),
                at: cx.now,
            };
            notifications.extend(receiver.render(&n).into_iter().map(|r| NewNotification {
                receiver: name.clone(),
                payload: r.payload,
                dedup_key: r.dedup_key,
            }));
        }
    }
    Some(DigestPlan {
        notifications,
        sent_at: cx.now,
    })
}

/// The firing alerts an Alertmanager receiver named `receiver` should hold
/// now: notified, not silenced, not held back, routed to it.
pub fn alertmanager_alerts(
    receiver: &str,
    firing: &[AlertRecord],
    warehouse_alerts: &[AlertRecord],
    cx: &Context<'_>,
) -> Vec<Alert> {
    let inhibitors = inhibitors(warehouse_alerts);
    firing
        .iter()
        .filter(|r| r.state == AlertState::Firing && r.notified)
        .filter_map(|r| {
            let details = AlertDetails::of(r)?;
            if cx.silenced(&details) || inhibited(r, &details, &inhibitors) {
                return None;
            }
            let routed = cx
                .routes
                .immediate_receivers(&details.labels)
                .iter()
                .any(|x| x.name == receiver);
            routed
                .then(|| Alert::from_record(r, Status::Firing))
                .flatten()
        })
        .collect()
}
