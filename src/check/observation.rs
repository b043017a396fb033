//! What the executor read for each check, before evaluation.

use std::time::Duration;

use super::spec::Dataset;
use crate::domain::{PartitionKey, TableRef};
use crate::warehouse::{CatalogColumn, Value, WarehouseError};

use super::scope::Scope;
use super::template::TemplateError;

/// Why a check could not be observed. Renders as a sentence for the result's
/// `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ObserveError {
    /// The warehouse failed or the relation or a column is missing.
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    /// The custom SQL or `where` filter has a template that cannot be expanded.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The scope asks for something the dataset cannot give (a partition of
    /// an unpartitioned dataset, an hour of a daily dataset).
    #[error("{message}")]
    Scope { message: String },
}

impl ObserveError {
    /// Whether trying again later may succeed (see [`WarehouseError::is_transient`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Warehouse(e) if e.is_transient())
    }
}

/// The values one check needs, as read from the warehouse.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// `count(*)` (row_count, row_count_change).
    RowCount { rows: u64 },
    /// `count(*)` and `count(column)` (null_rate).
    NullCount { rows: u64, non_null: u64 },
    /// `max(column)`, NULL when there are no rows (freshness).
    Latest { value: Value },
    /// Rows whose key has no NULL, and distinct such keys (unique).
    Keys { keyed_rows: u64, distinct: u64 },
    /// The relation's columns (schema).
    Columns { columns: Vec<CatalogColumn> },
    /// One aggregate number, `None` when there were no rows (anomaly).
    Number { value: Option<f64> },
    /// Every row a custom SQL statement returned (sql).
    Rows { rows: Vec<Vec<Value>> },
}

/// One check's observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Index of the check in [`Dataset::checks`].
    pub check: usize,
    /// The partition looked at; `None` for the whole relation.
    pub partition: Option<PartitionKey>,
    /// How long the statement the values came from took (shared by every
    /// check batched into it); zero when nothing ran.
    pub duration: Duration,
    pub value: Result<Observed, ObserveError>,
}

/// Everything observed for one dataset in one run.
#[derive(Debug, Clone)]
pub struct DatasetObservations {
    /// The relation that was checked.
    pub table: TableRef,
    pub scope: Scope,
    /// The catalog read: `Ok(None)` when the relation does not exist.
    pub catalog: Result<Option<Vec<CatalogColumn>>, WarehouseError>,
    /// One per check that ran in the scope, in the dataset's order.
    pub observations: Vec<Observation>,
    /// Statements sent, the catalog read included.
    pub statements: usize,
}

impl DatasetObservations {
    /// The observation of the check at `index` in [`Dataset::checks`].
    pub fn get(&self, index: usize) -> Option<&Observation> {
        self.observations.iter().find(|o| o.check == index)
    }

    /// Pairs each observation with its check.
    pub fn iter<'a>(
        &'a self,
        ds: &'a Dataset,
    ) -> impl Iterator<Item = (&'a crate::check::spec::CheckSpec, &'a Observation)> + 'a {
        self.observations
            .iter()
            .filter_map(move |o| ds.checks.get(o.check).map(|spec| (spec, o)))
    }
}
