//! Scheduled-run claims: when several agents share a PostgreSQL registry,
//! each scheduled run of a dataset is executed by the one agent that claimed
//! it first.

use chrono::{DateTime, Utc};

use super::sql::query;
use super::{Registry, RegistryError, now, stored};
use crate::domain::DatasetName;

impl Registry {
    /// Claims the run of `dataset` scheduled at `scheduled_at` for
    /// `agent_id`. True if this call claimed it; false if any agent (this one
    /// included) already had.
    pub async fn claim_scheduled_run(
        &self,
        dataset: &DatasetName,
        scheduled_at: DateTime<Utc>,
        agent_id: &str,
    ) -> Result<bool, RegistryError> {
        let inserted = query(
            "INSERT INTO scheduler_claims (dataset, scheduled_at, claimed_by, claimed_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (dataset, scheduled_at) DO NOTHING",
        )
        .bind(dataset.as_str())
        .bind(stored(scheduled_at))
        .bind(agent_id)
        .bind(now())
        .execute(self, "claim scheduled run")
        .await?;
        Ok(inserted == 1)
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
