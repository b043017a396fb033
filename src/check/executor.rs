//! Running a dataset's plan: read the catalog once, plan, send the
//! statements (concurrently, within the warehouse's pool), and hand each
//! check the values it needs.

use std::time::{Duration, Instant};

use chrono_tz::Tz;
use tracing::Instrument;

use super::observation::{DatasetObservations, Observation, ObserveError, Observed};
use super::planner::{self, PlanInput, Read};
use super::scope::Scope;
use super::spec::Dataset;
use crate::domain::TableRef;
use crate::warehouse::{Value, Warehouse, WarehouseError};

/// Observes the checks of `ds` that run in `scope`, on the dataset's table.
pub async fn observe(ds: &Dataset, wh: &Warehouse, scope: &Scope, tz: Tz) -> DatasetObservations {
    observe_table(ds, &ds.table, wh, scope, tz).await
}

/// Observes the checks of `ds` that run in `scope` on `table` (the gate
/// checks the staging relation with the dataset's checks).
///
/// One catalog read, then one scan per filter and partition plus one
/// statement per custom SQL check. A missing table errors every check; a
/// missing column errors only the checks that name it.
pub async fn observe_table(
    ds: &Dataset,
    table: &TableRef,
    wh: &Warehouse,
    scope: &Scope,
    tz: Tz,
) -> DatasetObservations {
    let span = tracing::info_span!("observe", dataset = %ds.name, table = %table, scope = %scope);
    async move {
        let started = Instant::now();
        let catalog = wh.columns(table).await;
        let catalog_time = started.elapsed();
        let in_scope = || {
            ds.checks
                .iter()
                .enumerate()
                .filter_map(|(i, spec)| scope.target(spec).map(|p| (i, p)))
        };
        let failed_all = |error: ObserveError| -> Vec<Observation> {
            in_scope()
                .map(|(check, partition)| Observation {
                    check,
                    partition,
                    duration: catalog_time,
                    value: Err(error.clone()),
                })
                .collect()
        };
        let (observations, statements) = match &catalog {
            Err(e) => {
                tracing::warn!(error = %e, "could not read the catalog");
                (failed_all(e.clone().into()), 1)
            }
            Ok(None) => {
                tracing::warn!("the relation does not exist");
                (
                    failed_all(
                        WarehouseError::TableMissing {
                            table: table.to_string(),
                        }
                        .into(),
                    ),
                    1,
                )
            }
            Ok(Some(columns)) => {
                let plan = planner::plan(
                    ds,
                    PlanInput {
                        table,
                        engine: wh.engine(),
                        scope,
                        catalog: columns,
                        tz,
                    },
                );
                let results =
                    futures::future::join_all(plan.statements.iter().map(|s| async move {
                        let t = Instant::now();
                        let rows = wh.fetch_all(&s.sql, &s.params).await;
                        (rows, t.elapsed())
                    }))
                    .await;
                let observations = plan
                    .checks
                    .into_iter()
                    .map(|planned| {
                        let (duration, value) =
                            read(&planned.read, &results, columns, catalog_time);
                        Observation {
                            check: planned.check,
                            partition: planned.partition,
                            duration,
                            value,
                        }
                    })
                    .collect();
                (observations, 1 + plan.statements.len())
            }
        };
        tracing::debug!(
            statements,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "observed the dataset"
        );
        DatasetObservations {
            table: table.clone(),
            scope: scope.clone(),
            catalog,
            observations,
            statements,
        }
    }
    .instrument(span)
    .await
}

type StatementResult = (Result<Vec<Vec<Value>>, WarehouseError>, Duration);

/// Picks a check's values out of the statement results.
fn read(
    read: &Read,
    results: &[StatementResult],
    columns: &[crate::warehouse::CatalogColumn],
    catalog_time: Duration,
) -> (Duration, Result<Observed, ObserveError>) {
    let statement = match read {
        Read::RowCount { statement, .. }
        | Read::NullCount { statement, .. }
        | Read::Latest { statement, .. }
        | Read::Keys { statement, .. }
        | Read::Number { statement, .. }
        | Read::Sql { statement } => *statement,
        Read::Catalog => {
            return (
                catalog_time,
                Ok(Observed::Columns {
                    columns: columns.to_vec(),
                }),
            );
        }
        Read::Failed(e) => return (Duration::ZERO, Err(e.clone())),
    };
    let Some((result, duration)) = results.get(statement) else {
        unreachable!("the plan only refers to its own statements")
    };
    let rows = match result {
        Ok(rows) => rows,
        Err(e) => return (*duration, Err(e.clone().into())),
    };
    let value = match read {
        Read::Sql { .. } => Ok(Observed::Rows { rows: rows.clone() }),
        Read::RowCount { rows: c, .. } => count(rows, *c).map(|rows| Observed::RowCount { rows }),
        Read::NullCount {
            rows: total,
            non_null,
            ..
        } => count(rows, *total)
            .and_then(|t| count(rows, *non_null).map(|n| (t, n)))
            .map(|(rows, non_null)| Observed::NullCount { rows, non_null }),
        Read::Latest { column, .. } => cell(rows, *column).map(|value| Observed::Latest {
            value: value.clone(),
        }),
        Read::Keys {
            keyed_rows,
            distinct,
            ..
        } => count(rows, *keyed_rows)
            .and_then(|k| count(rows, *distinct).map(|d| (k, d)))
            .map(|(keyed_rows, distinct)| Observed::Keys {
                keyed_rows,
                distinct,
            }),
        Read::Number { column, .. } => cell(rows, *column).and_then(|v| {
            crate::check::kind::number_of(v)
                .map(|value| Observed::Number { value })
                .map_err(|message| WarehouseError::Query { message }.into())
        }),
        Read::Catalog | Read::Failed(_) => unreachable!("handled above"),
    };
    (*duration, value)
}

/// The value in `column` of an aggregate's single row.
fn cell(rows: &[Vec<Value>], column: usize) -> Result<&Value, ObserveError> {
    rows.first().and_then(|row| row.get(column)).ok_or_else(|| {
        WarehouseError::Query {
            message: format!("the scan returned {} rows instead of one", rows.len()),
        }
        .into()
    })
}

fn count(rows: &[Vec<Value>], column: usize) -> Result<u64, ObserveError> {
    let value = cell(rows, column)?;
    value.as_count().ok_or_else(|| {
        WarehouseError::Query {
            message: format!("expected a count, got {} `{value}`", value.kind()),
        }
        .into()
    })
}
