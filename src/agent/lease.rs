//! The lease on a scheduled run this agent claimed.
//!
//! A claim is leased for `agent.run_lease` and renewed every third of it
//! while the run goes on; once the results are recorded the claim is marked
//! finished. An agent that dies stops renewing, its lease lapses, and
//! another agent's scheduler (see [`super::scheduler`]) takes the run over
//! within two lease periods: a scheduled run happens at least once, and
//! since results are keyed by (check, partition, scheduled time), a run
//! taken over never records twice.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::app::AppState;
use crate::domain::DatasetName;
use crate::registry::RegistryError;

/// A claimed run's lease, renewed in the background until it is finished or
/// dropped. Dropped unfinished (the run was abandoned, the agent is
/// stopping), it lapses and the run is taken over.
pub struct RunLease {
    state: AppState,
    dataset: DatasetName,
    scheduled_at: DateTime<Utc>,
    _renewing: DropGuard,
}

impl RunLease {
    /// Claims the run of `dataset` scheduled at `scheduled_at` for this
    /// agent. `None` when another agent holds it or it already finished.
    pub async fn claim(
        state: &AppState,
        dataset: &DatasetName,
        scheduled_at: DateTime<Utc>,
    ) -> Result<Option<Self>, RegistryError> {
        let lease = state.config().agent.run_lease;
        let claimed = state
            .registry()
            .claim_scheduled_run(dataset, scheduled_at, state.agent_id(), until(lease))
            .await?;
        if !claimed {
            return Ok(None);
        }
        let stop = CancellationToken::new();
        tokio::spawn(renew(
            state.clone(),
            dataset.clone(),
            scheduled_at,
            lease,
            stop.clone(),
        ));
        Ok(Some(Self {
            state: state.clone(),
            dataset: dataset.clone(),
            scheduled_at,
            _renewing: stop.drop_guard(),
        }))
    }

    /// The run's results are recorded: stops renewing and marks the claim
    /// finished, so nobody takes it over. A registry that refuses leaves it
    /// to lapse: the run may then happen again, never be lost.
    pub async fn finish(self) {
        if let Err(e) = self
            .state
            .registry()
            .finish_claim(&self.dataset, self.scheduled_at)
            .await
        {
            tracing::warn!(dataset = %self.dataset, error = %e, "the run could not be marked finished; another agent may run it again once its lease lapses");
        }
    }
}

fn until(lease: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(30))
}

/// Renews the lease every third of it until `stop`. Stops on its own when
/// the claim is no longer this agent's.
async fn renew(
    state: AppState,
    dataset: DatasetName,
    scheduled_at: DateTime<Utc>,
    lease: Duration,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(lease / 3) => {}
        }
        match state
            .registry()
            .renew_claim(&dataset, scheduled_at, state.agent_id(), until(lease))
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(dataset = %dataset, scheduled_at = %scheduled_at, "the run's lease lapsed and another agent took it over; its results are recorded once all the same");
                return;
            }
            Err(e) => {
                tracing::warn!(dataset = %dataset, error = %e, "the run's lease could not be renewed; retrying");
            }
        }
    }
}
