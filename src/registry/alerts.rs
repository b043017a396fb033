//! Alert state: one row per alert (a check, whatever partition it last
//! looked at; a warehouse; or a quarantined partition), and the
//! transactions that move alerts into the outbox. The state machine itself
//! lives in `alert::state`; this file only stores what it decides,
//! atomically.
//!
//! Two operations are read-modify-write and run in one transaction each, so
//! that agents sharing a PostgreSQL registry (rows locked `FOR UPDATE`) or
//! processes sharing a SQLite file (`BEGIN IMMEDIATE`) neither lose an update
//! nor notify twice: [`Registry::update_alerts`] (an observation changes the
//! state) and [`Registry::flush_alerts`] (notifications are queued and the
//! alerts marked as notified together, so a crash between the two cannot
//! send a notification twice or lose it).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use super::sql::{Arg, Tx, query};
use super::{Registry, RegistryError, now, stored};
use crate::domain::{AlertKind, AlertState, Outcome};
use crate::warehouse::Engine;

/// One alert as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRecord {
    /// The check id, `warehouse:<name>` or `quarantine:<dataset>`.
    pub key: String,
    /// The partition the alert is about: the newest one a check has seen
    /// (`None` for the whole relation), or the quarantined partition. Only
    /// a quarantine's is part of its identity (see [`AlertRecord::scope`]).
    pub partition: Option<String>,
    /// The dataset, `None` for a warehouse alert.
    pub dataset: Option<String>,
    pub kind: AlertKind,
    pub state: AlertState,
    /// Failing observations in a row (0 once it passes).
    pub consecutive_failures: u32,
    /// Start of the current run of failures.
    pub first_failed_at: Option<DateTime<Utc>>,
    /// When it last started firing.
    pub fired_at: Option<DateTime<Utc>>,
    /// When it last resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// When a firing notification was last queued for it.
    pub last_notified_at: Option<DateTime<Utc>>,
    /// Receivers were told it fires and not yet that it resolved.
    pub notified: bool,
    pub last_outcome: Option<Outcome>,
    pub last_message: Option<String>,
    /// Labels and annotations, as `alert::AlertDetails` writes them.
    pub details: serde_json::Value,
    pub updated_at: DateTime<Utc>,
}

impl AlertRecord {
    /// What tells this alert apart from others of the same key: the
    /// partition of a quarantine (one alert per quarantined partition);
    /// `None` for a check (one alert per check) and a warehouse.
    pub fn scope(&self) -> Option<&str> {
        match self.kind {
            AlertKind::Quarantine => self.partition.as_deref(),
            AlertKind::Check | AlertKind::Warehouse => None,
        }
    }
}

/// A notification to queue in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    /// The receiver's name from the alert routes.
    pub receiver: String,
    /// The body, rendered for the receiver.
    pub payload: serde_json::Value,
    /// The receiver-side deduplication key, if the receiver has one.
    pub dedup_key: Option<String>,
}

/// What a flush sets on one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifiedMark {
    pub key: String,
    /// The alert's [`AlertRecord::scope`].
    pub scope: Option<String>,
    /// Whether receivers now believe the alert fires.
    pub notified: bool,
    /// Set when a firing notification was queued; `None` leaves it as it was.
    pub last_notified_at: Option<DateTime<Utc>>,
}

/// What a flush queues and marks, decided from the alerts it was shown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFlush {
    pub notifications: Vec<NewNotification>,
    pub marks: Vec<NotifiedMark>,
}

/// What a digest sends, and the instant it covers up to.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestPlan {
    pub notifications: Vec<NewNotification>,
    pub sent_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct AlertRow {
    check_id: String,
    partition_key: String,
    last_partition: Option<String>,
    dataset: String,
    kind: String,
    state: String,
    consecutive_failures: i64,
    first_failed_at: Option<DateTime<Utc>>,
    fired_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    last_notified_at: Option<DateTime<Utc>>,
    notified: bool,
    last_outcome: Option<String>,
    last_message: Option<String>,
    details: Json<serde_json::Value>,
    updated_at: DateTime<Utc>,
}

impl AlertRow {
    fn into_record(self) -> Result<AlertRecord, RegistryError> {
        let corrupt = |what: String| RegistryError::Corrupt { what };
        let state = AlertState::parse(&self.state)
            .ok_or_else(|| corrupt(format!("alert state `{}` of {}", self.state, self.check_id)))?;
        let kind = AlertKind::parse(&self.kind)
            .ok_or_else(|| corrupt(format!("alert kind `{}` of {}", self.kind, self.check_id)))?;
        let last_outcome = self
            .last_outcome
            .as_deref()
            .map(|o| {
                Outcome::parse(o)
                    .ok_or_else(|| corrupt(format!("alert outcome `{o}` of {}", self.check_id)))
            })
            .transpose()?;
        Ok(AlertRecord {
            key: self.check_id,
            partition: self
                .last_partition
                .or_else(|| non_empty(self.partition_key)),
            dataset: non_empty(self.dataset),
            kind,
            state,
            consecutive_failures: u32::try_from(self.consecutive_failures).unwrap_or(u32::MAX),
            first_failed_at: self.first_failed_at,
            fired_at: self.fired_at,
            resolved_at: self.resolved_at,
            last_notified_at: self.last_notified_at,
            notified: self.notified,
            last_outcome,
            last_message: self.last_message,
            details: self.details.0,
            updated_at: self.updated_at,
        })
    }
}

/// The primary key is (check id, `partition_key`), where `partition_key` is
/// the alert's scope (a quarantined partition) or `''`, and a missing
/// dataset is `''` too. The partition a check alert last looked at is
/// `last_partition`.
fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

const COLUMNS: &str = "check_id, partition_key, last_partition, dataset, kind, state, consecutive_failures, \
     first_failed_at, fired_at, resolved_at, last_notified_at, notified, last_outcome, \
     last_message, details, updated_at";

const UPSERT: &str = "INSERT INTO alerts (check_id, partition_key, dataset, kind, state, \
     consecutive_failures, first_failed_at, fired_at, resolved_at, last_notified_at, notified, \
     last_outcome, last_message, details, updated_at, last_partition) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
     ON CONFLICT (check_id, partition_key) DO UPDATE SET dataset = excluded.dataset, \
     last_partition = excluded.last_partition, \
     kind = excluded.kind, state = excluded.state, \
     consecutive_failures = excluded.consecutive_failures, \
     first_failed_at = excluded.first_failed_at, fired_at = excluded.fired_at, \
     resolved_at = excluded.resolved_at, last_notified_at = excluded.last_notified_at, \
     notified = excluded.notified, last_outcome = excluded.last_outcome, \
     last_message = excluded.last_message, details = excluded.details, \
     updated_at = excluded.updated_at";

pub(super) const ENQUEUE: &str = "INSERT INTO outbox (receiver, payload, dedup_key, attempts, \
     next_attempt_at, created_at, status) VALUES ($1, $2, $3, 0, $4, $4, 'pending')";

/// Alerts a flush must look at: firing ones not yet notified or due for a
/// repeat, ones that stopped firing after receivers were told, and every
/// warehouse alert (they hold back the error alerts of their warehouse).
const FLUSH_CANDIDATES: &str = "(state = 'firing' AND (notified = FALSE OR last_notified_at <= $1)) \
     OR (state <> 'firing' AND notified = TRUE) OR kind = 'warehouse'";

/// `FOR UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already holds the
/// write lock.
fn for_update(registry: &Registry) -> &'static str {
    match registry.engine() {
        Engine::Postgres => " FOR UPDATE",
        _ => "",
    }
}

impl Registry {
    /// The alert `key` (of a quarantine: on partition `scope`), if it was
    /// ever observed.
    pub async fn alert(
        &self,
        key: &str,
        scope: Option<&str>,
    ) -> Result<Option<AlertRecord>, RegistryError> {
        let sql =
            format!("SELECT {COLUMNS} FROM alerts WHERE check_id = $1 AND partition_key = $2");
        let row: Option<AlertRow> = query(&sql)
            .bind(key)
            .bind(scope.unwrap_or(""))
            .fetch_optional(self, "alert")
            .await?;
        row.map(AlertRow::into_record).transpose()
    }

    /// Every alert in `state`, by dataset, key and partition.
    pub async fn alerts_in_state(
        &self,
        state: AlertState,
    ) -> Result<Vec<AlertRecord>, RegistryError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM alerts WHERE state = $1 ORDER BY dataset, check_id, partition_key"
        );
        let rows: Vec<AlertRow> = query(&sql)
            .bind(state.as_str())
            .fetch_all(self, "alerts by state")
            .await?;
        rows.into_iter().map(AlertRow::into_record).collect()
    }

    /// Every alert of `dataset`, by key and partition.
    pub async fn dataset_alerts(&self, dataset: &str) -> Result<Vec<AlertRecord>, RegistryError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM alerts WHERE dataset = $1 ORDER BY check_id, partition_key"
        );
        let rows: Vec<AlertRow> = query(&sql)
            .bind(dataset)
            .fetch_all(self, "dataset alerts")
            .await?;
        rows.into_iter().map(AlertRow::into_record).collect()
    }

    /// Reads each alert of `keys` (key, [`AlertRecord::scope`]) and stores what `next`
    /// makes of it (`None`: leave it), all in one transaction. `next` gets
    /// the index into `keys` and the stored alert, `None` if it has none yet.
    /// Returns the alerts written.
    pub async fn update_alerts<F>(
        &self,
        keys: &[(String, Option<String>)],
        mut next: F,
    ) -> Result<Vec<AlertRecord>, RegistryError>
    where
        F: FnMut(usize, Option<&AlertRecord>) -> Option<AlertRecord>,
    {
        const OP: &str = "update alerts";
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin(OP).await?;
        let mut written = Vec::new();
        for (i, (key, scope)) in keys.iter().enumerate() {
            let new = tx
                .update_alert(key, scope.as_deref(), |current| next(i, current))
                .await?;
            written.extend(new);
        }
        tx.commit(OP).await?;
        Ok(written)
    }

    /// Shows `plan` the alerts that may need a notification (see
    /// [`FLUSH_CANDIDATES`]; a firing alert last notified at or before
    /// `repeat_before` is due for a repeat), then queues the notifications
    /// it returns and applies its marks, in one transaction. Returns how many
    /// notifications were queued.
    pub async fn flush_alerts<F>(
        &self,
        repeat_before: DateTime<Utc>,
        plan: F,
    ) -> Result<usize, RegistryError>
    where
        F: FnOnce(&[AlertRecord]) -> AlertFlush,
    {
        const OP: &str = "flush alerts";
        let select = format!(
            "SELECT {COLUMNS} FROM alerts WHERE {FLUSH_CANDIDATES} \
             ORDER BY dataset, check_id, partition_key{}",
            for_update(self)
        );
        let at = now();
        let mut tx = self.begin(OP).await?;
        let queued = {
            let rows: Vec<AlertRow> = query(&select)
                .bind(stored(repeat_before))
                .fetch_all(&mut tx, OP)
                .await?;
            let records = rows
                .into_iter()
                .map(AlertRow::into_record)
                .collect::<Result<Vec<_>, _>>()?;
            let flush = plan(&records);
            for n in &flush.notifications {
                query(ENQUEUE)
                    .bind(&n.receiver)
                    .bind(Arg::json(&n.payload))
                    .bind(n.dedup_key.as_deref())
                    .bind(at)
                    .execute(&mut tx, OP)
                    .await?;
            }
            for m in &flush.marks {
                query(
                    "UPDATE alerts SET notified = $3, \
                     last_notified_at = COALESCE($4, last_notified_at) \
                     WHERE check_id = $1 AND partition_key = $2",
                )
                .bind(&m.key)
                .bind(m.scope.as_deref().unwrap_or(""))
                .bind(m.notified)
                .bind(m.last_notified_at.map(stored))
                .execute(&mut tx, OP)
                .await?;
            }
            flush.notifications.len()
        };
        tx.commit(OP).await?;
        Ok(queued)
    }

    /// Runs the digest of `route`: shows `plan` when the last digest was
    /// sent (`None` before the first) and every alert firing now or that
    /// fired or resolved since then, queues the notifications it returns and
    /// records its `sent_at`, in one transaction. `plan` returning `None`
    /// leaves everything as it was. Returns how many notifications were
    /// queued.
    pub async fn flush_digest<F>(&self, route: &str, plan: F) -> Result<usize, RegistryError>
    where
        F: FnOnce(Option<DateTime<Utc>>, &[AlertRecord]) -> Option<DigestPlan>,
    {
        const OP: &str = "flush digest";
        let select_sent = format!(
            "SELECT last_sent_at FROM alert_digests WHERE route = $1{}",
            for_update(self)
        );
        let select_alerts = format!(
            "SELECT {COLUMNS} FROM alerts WHERE state = 'firing' OR fired_at > $1 \
             OR resolved_at > $1 ORDER BY dataset, check_id, partition_key"
        );
        let at = now();
        let mut tx = self.begin(OP).await?;
        let queued = {
            let last: Option<DateTime<Utc>> = query(&select_sent)
                .bind(route)
                .fetch_optional_scalar(&mut tx, OP)
                .await?;
            let records = match last {
                None => Vec::new(),
                Some(since) => {
                    let rows: Vec<AlertRow> = query(&select_alerts)
                        .bind(stored(since))
                        .fetch_all(&mut tx, OP)
                        .await?;
                    rows.into_iter()
                        .map(AlertRow::into_record)
                        .collect::<Result<Vec<_>, _>>()?
                }
            };
            match plan(last, &records) {
                None => 0,
                Some(digest) => {
                    for n in &digest.notifications {
                        query(ENQUEUE)
                            .bind(&n.receiver)
                            .bind(Arg::json(&n.payload))
                            .bind(n.dedup_key.as_deref())
                            .bind(at)
                            .execute(&mut tx, OP)
                            .await?;
                    }
                    query(
                        "INSERT INTO alert_digests (route, last_sent_at) VALUES ($1, $2) \
                         ON CONFLICT (route) DO UPDATE SET last_sent_at = excluded.last_sent_at",
                    )
                    .bind(route)
                    .bind(stored(digest.sent_at))
                    .execute(&mut tx, OP)
                    .await?;
                    digest.notifications.len()
                }
            }
        };
        tx.commit(OP).await?;
        Ok(queued)
    }

    /// Forgets alerts whose key `keep` rejects (checks that left the
    /// configuration), except those receivers still believe are firing.
    /// Returns the keys forgotten.
    pub async fn forget_alerts<F>(&self, keep: F) -> Result<Vec<String>, RegistryError>
    where
        F: Fn(&AlertRecord) -> bool,
    {
        const OP: &str = "forget alerts";
        let select = format!("SELECT {COLUMNS} FROM alerts WHERE notified = FALSE");
        let mut tx = self.begin(OP).await?;
        let forgotten = {
            let rows: Vec<AlertRow> = query(&select).fetch_all(&mut tx, OP).await?;
            let mut forgotten = Vec::new();
            for row in rows {
                let record = row.into_record()?;
                if keep(&record) {
                    continue;
                }
                query("DELETE FROM alerts WHERE check_id = $1 AND partition_key = $2")
                    .bind(&record.key)
                    .bind(record.scope().unwrap_or(""))
                    .execute(&mut tx, OP)
                    .await?;
                forgotten.push(record.key);
            }
            forgotten
        };
        tx.commit(OP).await?;
        Ok(forgotten)
    }
}

impl Tx {
    /// Reads the alert `key` (of a quarantine: on partition `scope`) inside this transaction and
    /// stores what `next` makes of it (`None`: leave it), so that an alert
    /// is recorded together with what raised it. Returns the alert written.
    pub async fn update_alert<F>(
        &mut self,
        key: &str,
        scope: Option<&str>,
        next: F,
    ) -> Result<Option<AlertRecord>, RegistryError>
    where
        F: FnOnce(Option<&AlertRecord>) -> Option<AlertRecord>,
    {
        const OP: &str = "update alert";
        let lock = match self.engine() {
            Engine::Postgres => " FOR UPDATE",
            _ => "",
        };
        let select = format!(
            "SELECT {COLUMNS} FROM alerts WHERE check_id = $1 AND partition_key = $2{lock}"
        );
        let row: Option<AlertRow> = query(&select)
            .bind(key)
            .bind(scope.unwrap_or(""))
            .fetch_optional(&mut *self, OP)
            .await?;
        let current = row.map(AlertRow::into_record).transpose()?;
        let Some(new) = next(current.as_ref()) else {
            return Ok(None);
        };
        query(UPSERT)
            .bind(&new.key)
            .bind(new.scope().unwrap_or(""))
            .bind(new.dataset.as_deref().unwrap_or(""))
            .bind(new.kind.as_str())
            .bind(new.state.as_str())
            .bind(i64::from(new.consecutive_failures))
            .bind(new.first_failed_at.map(stored))
            .bind(new.fired_at.map(stored))
            .bind(new.resolved_at.map(stored))
            .bind(new.last_notified_at.map(stored))
            .bind(new.notified)
            .bind(new.last_outcome.map(Outcome::as_str))
            .bind(new.last_message.as_deref())
            .bind(Arg::json(&new.details))
            .bind(stored(new.updated_at))
            .bind(new.partition.as_deref())
            .execute(&mut *self, OP)
            .await?;
        Ok(Some(new))
    }
}
