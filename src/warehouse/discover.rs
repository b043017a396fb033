//! What `discover:` reads of a warehouse: every base table of a schema with
//! its columns, row estimate and last change, in one catalog statement
//! ([`Dialect::discover_query`](super::Dialect::discover_query)), however
//! many tables the schema holds.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{CatalogColumn, Value, Warehouse, WarehouseError};
use crate::domain::Identifier;

/// One table of a schema as the catalog describes it, with the figures the
/// engine keeps about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaTable {
    /// The table's name as the catalog spells it.
    pub name: String,
    /// Its columns, in declaration order.
    pub columns: Vec<CatalogColumn>,
    /// The engine's estimate of its rows; `None` where it keeps none.
    pub rows: Option<u64>,
    /// When the engine last saw it written; `None` where it keeps no time.
    pub changed_at: Option<DateTime<Utc>>,
    /// A counter the engine moves on every write (PostgreSQL's inserts,
    /// updates and deletes; ClickHouse's active parts); `None` without one.
    pub counter: Option<u64>,
}

impl SchemaTable {
    /// What moves when the table is written, whatever the engine keeps:
    /// the counter, the change time and the row estimate together.
    pub fn change_mark(&self) -> Option<String> {
        if self.rows.is_none() && self.changed_at.is_none() && self.counter.is_none() {
            return None;
        }
        let part = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        Some(format!(
            "{}/{}/{}",
            part(self.counter.map(|c| c as i64)),
            part(self.changed_at.map(|t| t.timestamp())),
            part(self.rows.map(|r| r as i64)),
        ))
    }
}

impl Warehouse {
    /// Every base table of `schema` with its columns and figures, in one
    /// statement, in name order.
    pub async fn discover_tables(
        &self,
        schema: &Identifier,
    ) -> Result<Vec<SchemaTable>, WarehouseError> {
        let (sql, params) = self.dialect().discover_query(schema);
        let rows = self.fetch_all(&sql, &params).await?;
        let mut tables: BTreeMap<String, SchemaTable> = BTreeMap::new();
        for row in rows {
            let [table, column, raw_type, estimate, changed, counter] = <[Value; 6]>::try_from(row)
                .map_err(|row| WarehouseError::Query {
                    message: format!(
                        "the discover statement returned {} columns, not 6",
                        row.len()
                    ),
                })?;
            let name = table.to_string();
            let entry = tables.entry(name.clone()).or_insert_with(|| SchemaTable {
                name,
                columns: Vec::new(),
                rows: None,
                changed_at: None,
                counter: None,
            });
            // A table's figures may come on several rows (each column's on
            // PostgreSQL and MySQL, a part summary and a default on
            // ClickHouse): the largest of each counts.
            entry.rows = entry.rows.max(figure(&estimate));
            let at = figure(&changed)
                .and_then(|s| i64::try_from(s).ok())
                .filter(|&s| s > 0)
                .and_then(|s| DateTime::from_timestamp(s, 0));
            entry.changed_at = entry.changed_at.max(at);
            entry.counter = entry.counter.max(figure(&counter));
            let column = if column.is_null() {
                String::new()
            } else {
                column.to_string()
            };
            if !column.is_empty() {
                let raw_type = if raw_type.is_null() {
                    String::new()
                } else {
                    raw_type.to_string()
                };
                entry.columns.push(CatalogColumn::new(column, raw_type));
            }
        }
        // A table that lost every column between the two halves of a
        // ClickHouse read (dropped meanwhile) is not reported.
        Ok(tables
            .into_values()
            .filter(|t| !t.columns.is_empty())
            .collect())
    }
}

/// A figure of the catalog: NULL is "not kept", unlike a count's NULL.
fn figure(v: &Value) -> Option<u64> {
    if v.is_null() { None } else { v.as_count() }
}
