//! Scheduled-run claims: when several agents share a PostgreSQL registry,
//! each scheduled run of a dataset is executed by the one agent that claimed
//! it. A claim is a lease that its agent renews while the run goes on and
//! marks finished once the results are recorded. A claim whose lease lapsed
//! before it finished (its agent died) is taken over by another agent, so a
//! scheduled run happens at least once; results stay keyed by (check,
//! partition, scheduled time), so a run taken over never records twice.

use chrono::{DateTime, Utc};

use super::sql::query;
use super::{Registry, RegistryError, now, stored};
use crate::domain::DatasetName;

/// A claimed run whose agent stopped renewing it before it finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LapsedClaim {
    pub dataset: String,
    pub scheduled_at: DateTime<Utc>,
    pub claimed_by: String,
}

impl Registry {
    /// Claims the run of `dataset` scheduled at `scheduled_at` for
    /// `agent_id`, leased until `lease_until`. True if this call claimed it:
    /// nobody had, or its claim lapsed unfinished (a takeover). False while
    /// another claim holds its lease, or once the run finished.
    pub async fn claim_scheduled_run(
        &self,
        dataset: &DatasetName,
        scheduled_at: DateTime<Utc>,
        agent_id: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, RegistryError> {
        let at = now();
        let claimed = query(
            "INSERT INTO scheduler_claims (dataset, scheduled_at, claimed_by, claimed_at, lease_until) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (dataset, scheduled_at) DO UPDATE SET \
             claimed_by = excluded.claimed_by, claimed_at = excluded.claimed_at, \
             lease_until = excluded.lease_until \
             WHERE scheduler_claims.finished_at IS NULL AND scheduler_claims.lease_until < $4",
        )
        .bind(dataset.as_str())
        .bind(stored(scheduled_at))
        .bind(agent_id)
        .bind(at)
        .bind(stored(lease_until))
        .execute(self, "claim scheduled run")
        .await?;
        Ok(claimed == 1)
    }

    /// Extends `agent_id`'s lease on a run it claimed. False if the claim
    /// is no longer its own (its lease lapsed and another agent took it).
    pub async fn renew_claim(
        &self,
        dataset: &DatasetName,
        scheduled_at: DateTime<Utc>,
        agent_id: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, RegistryError> {
        let renewed = query(
            "UPDATE scheduler_claims SET lease_until = $4 \
             WHERE dataset = $1 AND scheduled_at = $2 AND claimed_by = $3 AND finished_at IS NULL",
        )
        .bind(dataset.as_str())
        .bind(stored(scheduled_at))
        .bind(agent_id)
        .bind(stored(lease_until))
        .execute(self, "renew claim")
        .await?;
        Ok(renewed == 1)
    }

    /// Marks the claimed run finished: its results are recorded, nobody
    /// takes it over.
    pub async fn finish_claim(
        &self,
        dataset: &DatasetName,
        scheduled_at: DateTime<Utc>,
    ) -> Result<(), RegistryError> {
        query(
            "UPDATE scheduler_claims SET finished_at = $3 \
             WHERE dataset = $1 AND scheduled_at = $2 AND finished_at IS NULL",
        )
        .bind(dataset.as_str())
        .bind(stored(scheduled_at))
        .bind(now())
        .execute(self, "finish claim")
        .await?;
        Ok(())
    }

    /// Unfinished claims whose lease ended before `now`, of runs scheduled
    /// after `since`, oldest first, at most `limit`.
    pub async fn lapsed_claims(
        &self,
        now: DateTime<Utc>,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<LapsedClaim>, RegistryError> {
        let rows: Vec<(String, DateTime<Utc>, String)> = query(
            "SELECT dataset, scheduled_at, claimed_by FROM scheduler_claims \
             WHERE finished_at IS NULL AND lease_until < $1 AND scheduled_at > $2 \
             ORDER BY scheduled_at, dataset LIMIT $3",
        )
        .bind(stored(now))
        .bind(stored(since))
        .bind(i64::from(limit))
        .fetch_all(self, "lapsed claims")
        .await?;
        Ok(rows
            .into_iter()
            .map(|(dataset, scheduled_at, claimed_by)| LapsedClaim {
                dataset,
                scheduled_at,
                claimed_by,
            })
            .collect())
    }

    /// When the latest claimed run of `dataset` was scheduled, by any agent.
    pub async fn last_claim(
        &self,
        dataset: &DatasetName,
    ) -> Result<Option<DateTime<Utc>>, RegistryError> {
        let row: Option<(DateTime<Utc>,)> = query(
            "SELECT scheduled_at FROM scheduler_claims WHERE dataset = $1 \
             ORDER BY scheduled_at DESC LIMIT 1",
        )
        .bind(dataset.as_str())
        .fetch_optional(self, "last claim")
        .await?;
        Ok(row.map(|(t,)| t))
    }

    /// Forgets claims of runs scheduled before `before`; returns how many.
    pub async fn prune_claims(&self, before: DateTime<Utc>) -> Result<u64, RegistryError> {
        let deleted = query("DELETE FROM scheduler_claims WHERE scheduled_at < $1")
            .bind(stored(before))
            .execute(self, "prune claims")
            .await?;
        Ok(deleted)
    }
}
