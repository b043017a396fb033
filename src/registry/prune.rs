//! Retention: old history deleted in small batches, each its own short
//! transaction, so that pruning never holds the registry for long. What is
//! still needed is never deleted:
//!
//! - the newest result of each check (row-count baselines, the status page
//!   and alert state read it);
//! - every partition's current row (only its older transitions go, and
//!   the newest transition stays), gates not yet decided, and the gates a
//!   partition's row points at (its latest and its published gate);
//! - alerts that are not resolved, and resolved ones whose resolve was not
//!   notified yet;
//! - notifications not delivered yet, and the dead-letter list (kept until
//!   someone deals with it).
//!
//! The indexes these deletes use are in migration `0006_retention`.

use chrono::{DateTime, Utc};

use super::sql::query;
use super::{Registry, RegistryError, stored};

/// What [`Registry::prune`] deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Prunable {
    /// Check results recorded before the cutoff, but the newest of each check.
    Results,
    /// Gates decided before the cutoff that no partition points at.
    Gates,
    /// Partition transitions before the cutoff, but the newest of each partition.
    Transitions,
    /// Notifications delivered and queued before the cutoff.
    Notifications,
    /// Alerts resolved before the cutoff whose resolve was notified.
    ResolvedAlerts,
    /// Silences that ended before the cutoff.
    Silences,
}

impl Prunable {
    pub const ALL: [Prunable; 6] = [
        Self::Results,
        Self::Gates,
        Self::Transitions,
        Self::Notifications,
        Self::ResolvedAlerts,
        Self::Silences,
    ];

    /// The name in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Results => "results",
            Self::Gates => "gates",
            Self::Transitions => "partition transitions",
            Self::Notifications => "delivered notifications",
            Self::ResolvedAlerts => "resolved alerts",
            Self::Silences => "expired silences",
        }
    }

    /// One batch: `$1` the cutoff, `$2` the most rows to delete. Rows are
    /// named by their key, which both engines accept as a row value.
    fn sql(self) -> &'static str {
        match self {
            Self::Results => {
                "DELETE FROM check_results WHERE (check_id, partition_key, scheduled_at) IN (\
                 SELECT r.check_id, r.partition_key, r.scheduled_at FROM check_results r \
                 WHERE r.recorded_at < $1 AND r.scheduled_at < (\
                 SELECT max(n.scheduled_at) FROM check_results n WHERE n.check_id = r.check_id) \
                 LIMIT $2)"
            }
            Self::Gates => {
                "DELETE FROM gates WHERE gate_id IN (\
                 SELECT g.gate_id FROM gates g \
                 WHERE g.status IN ('allowed', 'denied') AND g.decided_at < $1 \
                 AND NOT EXISTS (SELECT 1 FROM partitions p WHERE p.gate_id = g.gate_id) \
                 AND NOT EXISTS (SELECT 1 FROM partitions p WHERE p.published_gate_id = g.gate_id) \
                 LIMIT $2)"
            }
            Self::Transitions => {
                "DELETE FROM partition_transitions WHERE id IN (\
                 SELECT t.id FROM partition_transitions t \
                 WHERE t.at < $1 AND t.id < (\
                 SELECT max(n.id) FROM partition_transitions n \
                 WHERE n.dataset = t.dataset AND n.partition_key = t.partition_key) \
                 LIMIT $2)"
            }
            Self::Notifications => {
                "DELETE FROM outbox WHERE id IN (\
                 SELECT id FROM outbox WHERE status = 'delivered' AND created_at < $1 LIMIT $2)"
            }
            Self::ResolvedAlerts => {
                "DELETE FROM alerts WHERE (check_id, partition_key) IN (\
                 SELECT check_id, partition_key FROM alerts \
                 WHERE state = 'resolved' AND notified = FALSE \
                 AND COALESCE(resolved_at, updated_at) < $1 LIMIT $2)"
            }
            Self::Silences => {
                "DELETE FROM silences WHERE id IN (\
                 SELECT id FROM silences WHERE ends_at < $1 LIMIT $2)"
            }
        }
    }
}

impl Registry {
    /// Deletes at most `limit` rows of `what` older than `before`, in one
    /// short transaction (on SQLite it takes this process's writer turn
    /// like any write). Returns how many were deleted: fewer than `limit`
    /// means nothing older is left.
    pub async fn prune(
        &self,
        what: Prunable,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, RegistryError> {
        const OP: &str = "prune old history";
        let mut tx = self.begin(OP).await?;
        let deleted = query(what.sql())
            .bind(stored(before))
            .bind(i64::from(limit))
            .execute(&mut tx, OP)
            .await?;
        tx.commit(OP).await?;
        Ok(deleted)
    }
}
