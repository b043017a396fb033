//! The durable notification outbox: alerts are queued here before any
//! receiver is called, so pending notifications survive a restart. Rows that
//! can never be delivered become `dead`: the dead-letter list.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use super::sql::{Arg, query};
use super::{Registry, RegistryError, now, stored};
use crate::warehouse::Engine;

/// Where a notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxStatus {
    /// Waiting for its next attempt.
    Pending,
    /// The receiver accepted it.
    Delivered,
    /// Given up on (a permanent error or too many attempts).
    Dead,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Dead]
            .into_iter()
            .find(|status| status.as_str() == s)
    }
}

/// One queued notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxEntry {
    pub id: i64,
    /// The receiver's name from the alert routes.
    pub receiver: String,
    /// The body to send, already rendered for the receiver.
    pub payload: serde_json::Value,
    /// The receiver-side deduplication key, e.g. PagerDuty's
    /// `warden/<check id>/<partition>`; shared by a trigger and its resolve.
    pub dedup_key: Option<String>,
    /// Attempts made so far.
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub status: OutboxStatus,
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: i64,
    receiver: String,
    payload: Json<serde_json::Value>,
    dedup_key: Option<String>,
    attempts: i64,
    next_attempt_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    last_error: Option<String>,
    status: String,
}

impl OutboxRow {
    fn into_entry(self) -> Result<OutboxEntry, RegistryError> {
        let status = OutboxStatus::parse(&self.status).ok_or_else(|| RegistryError::Corrupt {
            what: format!("outbox status `{}` of entry {}", self.status, self.id),
        })?;
        Ok(OutboxEntry {
            id: self.id,
            receiver: self.receiver,
            payload: self.payload.0,
            dedup_key: self.dedup_key,
            attempts: self.attempts,
            next_attempt_at: self.next_attempt_at,
            created_at: self.created_at,
            last_error: self.last_error,
            status,
        })
    }
}

const COLUMNS: &str =
    "id, receiver, payload, dedup_key, attempts, next_attempt_at, created_at, last_error, status";

impl Registry {
    /// Queues a notification for `receiver`, due at once. Returns its id.
    pub async fn enqueue(
        &self,
        receiver: &str,
        payload: &serde_json::Value,
        dedup_key: Option<&str>,
    ) -> Result<i64, RegistryError> {
        let at = now();
        let id: i64 = query(
            "INSERT INTO outbox (receiver, payload, dedup_key, attempts, next_attempt_at, created_at, status) \
             VALUES ($1, $2, $3, 0, $4, $4, 'pending') RETURNING id"
        )
        .bind(receiver)
        .bind(Arg::json(payload))
        .bind(dedup_key)
        .bind(at)
        .fetch_one_scalar(self, "enqueue notification")
        .await?;
        Ok(id)
    }

    /// Queues `payloads` for `receiver`, due at once and in this order, in
    /// one transaction: all of them or none (a run's START and its end).
    pub async fn enqueue_all(
        &self,
        receiver: &str,
        payloads: &[serde_json::Value],
    ) -> Result<(), RegistryError> {
        const OP: &str = "enqueue events";
        let at = now();
        let mut tx = self.begin(OP).await?;
        for payload in payloads {
            query(
                "INSERT INTO outbox (receiver, payload, dedup_key, attempts, next_attempt_at, created_at, status) \
                 VALUES ($1, $2, NULL, 0, $3, $3, 'pending')",
            )
            .bind(receiver)
            .bind(Arg::json(payload))
            .bind(at)
            .execute(&mut tx, OP)
            .await?;
        }
        tx.commit(OP).await
    }

    /// Up to `limit` pending notifications due at `now`, oldest due first.
    pub async fn due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, RegistryError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox WHERE status = 'pending' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, id LIMIT $2"
        );
        let rows: Vec<OutboxRow> = query(&sql)
            .bind(stored(now))
            .bind(i64::from(limit))
            .fetch_all(self, "due notifications")
            .await?;
        rows.into_iter().map(OutboxRow::into_entry).collect()
    }

    /// Like [`due`](Self::due), but takes the entries for one deliverer: their
    /// next attempt moves to `lease_until`, so other agents sharing the
    /// registry skip them until then. A deliverer that dies mid-delivery
    /// leaves them due again once the lease ends.
    pub async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, RegistryError> {
        // PostgreSQL: rows another agent is claiming are skipped, not waited
        // for. SQLite has a single writer, which serialises claims anyway.
        let skip_locked = match self.engine() {
            Engine::Postgres => " FOR UPDATE SKIP LOCKED",
            _ => "",
        };
        let sql = format!(
            "UPDATE outbox SET next_attempt_at = $2 WHERE id IN (SELECT id FROM outbox \
             WHERE status = 'pending' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, id LIMIT $3{skip_locked}) RETURNING {COLUMNS}"
        );
        let rows: Vec<OutboxRow> = query(&sql)
            .bind(stored(now))
            .bind(stored(lease_until))
            .bind(i64::from(limit))
            .fetch_all(self, "claim due notifications")
            .await?;
        let mut entries = rows
            .into_iter()
            .map(OutboxRow::into_entry)
            .collect::<Result<Vec<_>, _>>()?;
        // RETURNING gives no order; hand them out oldest first like `due`.
        entries.sort_by_key(|e| (e.created_at, e.id));
        Ok(entries)
    }

    /// Takes the oldest pending notification of `receiver` if it is due at
    /// `now`, moving its next attempt to `lease_until` (see
    /// [`claim_due`](Self::claim_due)). Notifications leave in the order they
    /// were queued: while an older one is pending (backing off, or leased to
    /// another deliverer), the ones after it wait. With `per_key`, that order
    /// holds per deduplication key instead (a PagerDuty resolve waits for its
    /// own trigger only).
    pub async fn claim_next(
        &self,
        receiver: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        per_key: bool,
    ) -> Result<Option<OutboxEntry>, RegistryError> {
        let same_key = if per_key {
            " AND earlier.dedup_key IS NOT DISTINCT FROM o.dedup_key"
        } else {
            ""
        };
        let skip_locked = match self.engine() {
            Engine::Postgres => " FOR UPDATE SKIP LOCKED",
            _ => "",
        };
        let sql = format!(
            "UPDATE outbox SET next_attempt_at = $3 WHERE id = (SELECT o.id FROM outbox o \
             WHERE o.receiver = $1 AND o.status = 'pending' AND o.next_attempt_at <= $2 \
             AND NOT EXISTS (SELECT 1 FROM outbox earlier WHERE earlier.receiver = o.receiver \
             AND earlier.status = 'pending' AND earlier.id < o.id{same_key}) \
             ORDER BY o.id LIMIT 1{skip_locked}) RETURNING {COLUMNS}"
        );
        let row: Option<OutboxRow> = query(&sql)
            .bind(receiver)
            .bind(stored(now))
            .bind(stored(lease_until))
            .fetch_optional(self, "claim next notification")
            .await?;
        row.map(OutboxRow::into_entry).transpose()
    }

    /// Hands a claimed notification back without counting an attempt, due
    /// at `at` (a deliverer shutting down before trying it).
    pub async fn release(&self, id: i64, at: DateTime<Utc>) -> Result<(), RegistryError> {
        let updated =
            query("UPDATE outbox SET next_attempt_at = $2 WHERE id = $1 AND status = 'pending'")
                .bind(id)
                .bind(stored(at))
                .execute(self, "release notification")
                .await?;
        one_pending(updated, id)
    }

    /// Queues `payload` for `receiver` under `dedup_key`, replacing a pending
    /// notification with that key that was never attempted: for messages
    /// that restate the whole current state, where only the newest matters.
    pub async fn enqueue_replacing(
        &self,
        receiver: &str,
        payload: &serde_json::Value,
        dedup_key: &str,
    ) -> Result<i64, RegistryError> {
        const OP: &str = "replace notification";
        let at = now();
        let mut tx = self.begin(OP).await?;
        let id: i64 = {
            query(
                "DELETE FROM outbox WHERE receiver = $1 AND dedup_key = $2 \
                 AND status = 'pending' AND attempts = 0",
            )
            .bind(receiver)
            .bind(dedup_key)
            .execute(&mut tx, OP)
            .await?;
            query(&format!("{} RETURNING id", super::alerts::ENQUEUE))
                .bind(receiver)
                .bind(Arg::json(payload))
                .bind(dedup_key)
                .bind(at)
                .fetch_one_scalar(&mut tx, OP)
                .await?
        };
        tx.commit(OP).await?;
        Ok(id)
    }

    /// Notifications in `status`, newest first, at most `limit`.
    pub async fn outbox_entries(
        &self,
        status: OutboxStatus,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, RegistryError> {
        let sql =
            format!("SELECT {COLUMNS} FROM outbox WHERE status = $1 ORDER BY id DESC LIMIT $2");
        let rows: Vec<OutboxRow> = query(&sql)
            .bind(status.as_str())
            .bind(i64::from(limit))
            .fetch_all(self, "outbox entries")
            .await?;
        rows.into_iter().map(OutboxRow::into_entry).collect()
    }

    /// The dead-letter list, newest first.
    pub async fn dead_letters(&self, limit: u32) -> Result<Vec<OutboxEntry>, RegistryError> {
        let sql =
            format!("SELECT {COLUMNS} FROM outbox WHERE status = 'dead' ORDER BY id DESC LIMIT $1");
        let rows: Vec<OutboxRow> = query(&sql)
            .bind(i64::from(limit))
            .fetch_all(self, "dead letters")
            .await?;
        rows.into_iter().map(OutboxRow::into_entry).collect()
    }

    /// Pending notifications per receiver, for `warden_outbox_pending`.
    pub async fn pending_by_receiver(&self) -> Result<Vec<(String, i64)>, RegistryError> {
        let rows: Vec<(String, i64)> = {
            query(
            "SELECT receiver, COUNT(*) FROM outbox WHERE status = 'pending' GROUP BY receiver ORDER BY receiver"
        )
        .fetch_all(self, "pending notifications").await
        }?;
        Ok(rows)
    }

    /// Records a successful delivery.
    pub async fn mark_delivered(&self, id: i64) -> Result<(), RegistryError> {
        let updated = {
            query(
            "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, last_error = NULL \
             WHERE id = $1 AND status = 'pending'"
        )
        .bind(id)
        .execute(self, "mark notification delivered").await?
        };
        one_pending(updated, id)
    }

    /// Records a failed attempt, to be retried at `next_attempt_at`.
    pub async fn mark_failed(
        &self,
        id: i64,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), RegistryError> {
        let updated = query(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3 \
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(stored(next_attempt_at))
        .bind(error)
        .execute(self, "mark notification failed")
        .await?;
        one_pending(updated, id)
    }

    /// Gives up on a notification after a permanent error; it joins the
    /// dead-letter list.
    pub async fn mark_dead(&self, id: i64, error: &str) -> Result<(), RegistryError> {
        let updated = query(
            "UPDATE outbox SET status = 'dead', attempts = attempts + 1, last_error = $2 \
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(error)
        .execute(self, "mark notification dead")
        .await?;
        one_pending(updated, id)
    }
}

/// Updates apply to pending entries only: settling one twice is an error.
fn one_pending(rows_affected: u64, id: i64) -> Result<(), RegistryError> {
    if rows_affected == 0 {
        return Err(RegistryError::NotFound {
            what: format!("pending outbox entry {id}"),
        });
    }
    Ok(())
}
