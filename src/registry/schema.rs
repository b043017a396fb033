//! Schema baselines: the column list a person accepted for a dataset, which
//! `schema` checks compare the live catalog against.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;

use super::sql::{Arg, query};
use super::{Registry, RegistryError, now};
use crate::domain::DatasetName;

/// One column of an accepted schema, as the catalog names its type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
}

impl StoredColumn {
    pub fn new(name: impl Into<String>, data_type: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            data_type: data_type.into(),
        }
    }
}

/// An accepted schema with who accepted it and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaBaseline {
    pub columns: Vec<StoredColumn>,
    pub accepted_at: DateTime<Utc>,
    pub accepted_by: String,
}

#[derive(sqlx::FromRow)]
struct BaselineRow {
    columns: Json<Vec<StoredColumn>>,
    accepted_at: DateTime<Utc>,
    accepted_by: String,
}

impl Registry {
    /// The accepted columns of a dataset, in their stored order, or `None` if
    /// no schema was accepted yet.
    pub async fn schema_baseline(
        &self,
        dataset: &DatasetName,
    ) -> Result<Option<Vec<StoredColumn>>, RegistryError> {
        Ok(self
            .schema_baseline_record(dataset)
            .await?
            .map(|b| b.columns))
    }

    /// The accepted schema of a dataset with who accepted it and when.
    pub async fn schema_baseline_record(
        &self,
        dataset: &DatasetName,
    ) -> Result<Option<SchemaBaseline>, RegistryError> {
        let row: Option<BaselineRow> = query(
            "SELECT columns, accepted_at, accepted_by FROM schema_baselines WHERE dataset = $1",
        )
        .bind(dataset.as_str())
        .fetch_optional(self, "schema baseline")
        .await?;
        Ok(row.map(|r| SchemaBaseline {
            columns: r.columns.0,
            accepted_at: r.accepted_at,
            accepted_by: r.accepted_by,
        }))
    }

    /// Accepts `columns` as the schema of a dataset, replacing any earlier
    /// baseline.
    pub async fn set_schema_baseline(
        &self,
        dataset: &DatasetName,
        columns: &[StoredColumn],
        accepted_by: &str,
    ) -> Result<(), RegistryError> {
        query(
            "INSERT INTO schema_baselines (dataset, columns, accepted_at, accepted_by) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (dataset) DO UPDATE SET columns = excluded.columns, \
             accepted_at = excluded.accepted_at, accepted_by = excluded.accepted_by",
        )
        .bind(dataset.as_str())
        .bind(Arg::json(columns))
        .bind(now())
        .bind(accepted_by)
        .execute(self, "set schema baseline")
        .await
        .map(drop)?;
        Ok(())
    }

    /// The accepted columns of every dataset whose name starts with
    /// `prefix`, by dataset: one statement for all of a discovered schema.
    pub async fn schema_baselines_with_prefix(
        &self,
        prefix: &str,
    ) -> Result<std::collections::HashMap<String, Vec<StoredColumn>>, RegistryError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            dataset: String,
            columns: Json<Vec<StoredColumn>>,
        }
        // `substr` rather than LIKE: `_` in a name is no wildcard.
        let rows: Vec<Row> = query(
            "SELECT dataset, columns FROM schema_baselines \
             WHERE substr(dataset, 1, CAST($2 AS INTEGER)) = $1",
        )
        .bind(prefix)
        .bind(prefix.len() as i64)
        .fetch_all(self, "schema baselines")
        .await?;
        Ok(rows.into_iter().map(|r| (r.dataset, r.columns.0)).collect())
    }

    /// Stores each `(dataset, columns)` as its baseline, in one transaction.
    pub async fn set_schema_baselines(
        &self,
        baselines: &[(String, Vec<StoredColumn>)],
        accepted_by: &str,
    ) -> Result<(), RegistryError> {
        if baselines.is_empty() {
            return Ok(());
        }
        let at = now();
        let mut tx = self.begin("set schema baselines").await?;
        for (dataset, columns) in baselines {
            query(
                "INSERT INTO schema_baselines (dataset, columns, accepted_at, accepted_by) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (dataset) DO UPDATE SET columns = excluded.columns, \
                 accepted_at = excluded.accepted_at, accepted_by = excluded.accepted_by",
            )
            .bind(dataset.as_str())
            .bind(Arg::json(columns))
            .bind(at)
            .bind(accepted_by)
            .execute(&mut tx, "set schema baseline")
            .await?;
        }
        tx.commit("set schema baselines").await
    }
}
