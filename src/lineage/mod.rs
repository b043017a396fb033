//! OpenLineage events: what warden tells lineage tools (Marquez, DataHub,
//! the OpenLineage consumers of Airflow and Dagster) about its runs.
//!
//! Each dataset run and each gate decision becomes a START and a COMPLETE
//! or FAIL `RunEvent` ([`event`]), its input named the way OpenLineage names
//! warehouse tables ([`naming`]). Both are queued in the durable outbox in
//! one transaction, under the receiver [`OPENLINEAGE_RECEIVER`], which
//! `agent.openlineage` adds to the routes: the outbox's workers deliver
//! them like notifications (retried with backoff, dead-lettered, surviving
//! restarts, shared by agents under leases).

pub mod event;
pub mod naming;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::check::Dataset;
use crate::config::Config;
pub use crate::config::routes::receiver::OPENLINEAGE_RECEIVER;
use crate::domain::{CheckResult, GateStatus};
use crate::registry::{GateRecord, Registry, RegistryError};
use event::{Ending, Run, gate_job, run_job};

/// Queues the events of one run of `ds` that began at `started_at` and
/// ended at `ended_at` with `results`; nothing without `agent.openlineage`.
pub async fn record_run(
    registry: &Registry,
    config: &Config,
    ds: &Dataset,
    results: &[CheckResult],
    started_at: DateTime<Utc>,
    ended_at: DateTime<Utc>,
) -> Result<(), RegistryError> {
    let Some(ol) = &config.agent.openlineage else {
        return Ok(());
    };
    let Some(warehouse) = config.warehouses.get(&ds.warehouse) else {
        return Ok(());
    };
    let run = Run {
        run_id: Uuid::new_v4(),
        namespace: &ol.namespace,
        job: run_job(ds.name.as_str()),
        input: naming::dataset_id(&warehouse.url, &ds.table),
        started_at,
        ended_at,
        ending: Ending::of_run(results),
        results,
        dataset: Some(ds),
    };
    registry
        .enqueue_all(OPENLINEAGE_RECEIVER, &run.events())
        .await
}

/// Queues the events of a decided gate: its input is the relation the gate
/// checked, COMPLETE when it allowed the partition and FAIL when it denied
/// it. The run id is the gate's id. Nothing without `agent.openlineage`, or
/// when the dataset is no longer configured.
pub async fn record_gate(
    registry: &Registry,
    config: &Config,
    gate: &GateRecord,
) -> Result<(), RegistryError> {
    let Some(ol) = &config.agent.openlineage else {
        return Ok(());
    };
    let Some(ds) = config.dataset(&gate.dataset) else {
        return Ok(());
    };
    let Some(warehouse) = config.warehouses.get(&ds.warehouse) else {
        return Ok(());
    };
    let run = Run {
        run_id: Uuid::parse_str(&gate.gate_id).unwrap_or_else(|_| Uuid::new_v4()),
        namespace: &ol.namespace,
        job: gate_job(&gate.dataset),
        input: naming::dataset_id(&warehouse.url, &ds.gate_table),
        started_at: gate.created_at,
        ended_at: gate.decided_at.unwrap_or_else(Utc::now),
        ending: if gate.status == GateStatus::Allowed {
            Ending::Complete
        } else {
            Ending::Fail
        },
        results: &gate.results,
        dataset: Some(ds),
    };
    registry
        .enqueue_all(OPENLINEAGE_RECEIVER, &run.events())
        .await
}
