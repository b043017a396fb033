//! The tables `discover:` entries found: what the last run of each entry saw
//! of every table, so that the next run can tell a change, a volume drop, a
//! table that appeared and one that disappeared. Storage only: the rules
//! live in `discover`.

use chrono::{DateTime, Utc};

use super::sql::{Arg, query};
use super::{Registry, RegistryError, stored};

/// One discovered table as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DiscoveredRecord {
    pub warehouse: String,
    pub schema_name: String,
    pub table_name: String,
    /// The dataset it is watched as: `<warehouse>.<schema>.<table>`.
    pub dataset: String,
    pub first_seen: DateTime<Utc>,
    /// The last run whose catalog listed it.
    pub last_seen: DateTime<Utc>,
    /// When it last changed: the engine's own time, or the run that first
    /// saw its change mark move; `None` until a change was seen.
    pub changed_at: Option<DateTime<Utc>>,
    /// What the catalog said at the last run (see `SchemaTable::change_mark`).
    pub change_mark: Option<String>,
    pub row_estimate: Option<i64>,
    /// When a run first missed it; `None` while it exists.
    pub dropped_at: Option<DateTime<Utc>>,
    /// The times of its last changes, oldest first (bounded by
    /// `discover::monitor::KEPT_CHANGES`): its rhythm.
    #[sqlx(json)]
    pub change_times: Vec<DateTime<Utc>>,
}

const COLUMNS: &str = "warehouse, schema_name, table_name, dataset, first_seen, last_seen, \
                       changed_at, change_mark, row_estimate, dropped_at, change_times";

impl Registry {
    /// The tables recorded for `schema` of `warehouse`, in name order.
    pub async fn discovered_tables(
        &self,
        warehouse: &str,
        schema: &str,
    ) -> Result<Vec<DiscoveredRecord>, RegistryError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM discovered_tables \
             WHERE warehouse = $1 AND schema_name = $2 ORDER BY table_name"
        );
        query(&sql)
            .bind(warehouse)
            .bind(schema)
            .fetch_all(self, "discovered tables")
            .await
    }

    /// Every table recorded by any `discover:` entry, by dataset name.
    pub async fn discovered_all(&self) -> Result<Vec<DiscoveredRecord>, RegistryError> {
        let sql = format!("SELECT {COLUMNS} FROM discovered_tables ORDER BY dataset");
        query(&sql).fetch_all(self, "discovered tables").await
    }

    /// Writes what a run of one `discover:` entry decided, in one
    /// transaction: `keep` inserted or replaced, `forget` deleted.
    pub async fn save_discovered(
        &self,
        keep: &[DiscoveredRecord],
        forget: &[DiscoveredRecord],
    ) -> Result<(), RegistryError> {
        let mut tx = self.begin("save discovered tables").await?;
        for r in keep {
            query(
                "INSERT INTO discovered_tables (warehouse, schema_name, table_name, dataset, \
                 first_seen, last_seen, changed_at, change_mark, row_estimate, dropped_at, \
                 change_times) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (warehouse, schema_name, table_name) DO UPDATE SET \
                 dataset = excluded.dataset, first_seen = excluded.first_seen, \
                 last_seen = excluded.last_seen, changed_at = excluded.changed_at, \
                 change_mark = excluded.change_mark, row_estimate = excluded.row_estimate, \
                 dropped_at = excluded.dropped_at, change_times = excluded.change_times",
            )
            .bind(r.warehouse.as_str())
            .bind(r.schema_name.as_str())
            .bind(r.table_name.as_str())
            .bind(r.dataset.as_str())
            .bind(stored(r.first_seen))
            .bind(stored(r.last_seen))
            .bind(r.changed_at.map(stored))
            .bind(r.change_mark.as_deref())
            .bind(r.row_estimate)
            .bind(r.dropped_at.map(stored))
            .bind(Arg::json(&r.change_times))
            .execute(&mut tx, "save discovered table")
            .await?;
        }
        for r in forget {
            query(
                "DELETE FROM discovered_tables \
                 WHERE warehouse = $1 AND schema_name = $2 AND table_name = $3",
            )
            .bind(r.warehouse.as_str())
            .bind(r.schema_name.as_str())
            .bind(r.table_name.as_str())
            .execute(&mut tx, "forget discovered table")
            .await?;
        }
        tx.commit("save discovered tables").await
    }
}
