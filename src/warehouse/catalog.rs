//! Reading a relation's columns from the warehouse catalog, in one statement.

use serde::{Deserialize, Serialize};

use super::{Engine, Value, Warehouse, WarehouseError, types};
use crate::domain::TableRef;

/// One column of a relation as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogColumn {
    pub name: String,
    /// The type as the engine spells it (`character varying`, `decimal(12,2)`, `TEXT`).
    pub raw_type: String,
    /// The type normalised across engines (see [`types::normalise`]).
    pub data_type: String,
}

impl CatalogColumn {
    pub fn new(name: impl Into<String>, raw_type: impl Into<String>) -> Self {
        let raw_type = raw_type.into();
        Self {
            name: name.into(),
            data_type: types::normalise(&raw_type),
            raw_type,
        }
    }
}

impl Warehouse {
    /// The columns of `table` in declaration order, in one statement:
    /// `information_schema.columns` on PostgreSQL (default schema
    /// `current_schema()`) and MySQL (default schema `database()`),
    /// `pragma_table_info` on SQLite. `None` when the relation does not exist.
    pub async fn columns(
        &self,
        table: &TableRef,
    ) -> Result<Option<Vec<CatalogColumn>>, WarehouseError> {
        let sql = match self.engine() {
            Engine::Postgres => {
                "SELECT column_name::text, \
                 (CASE WHEN data_type IN ('USER-DEFINED', 'ARRAY') THEN udt_name ELSE data_type END)::text \
                 FROM information_schema.columns \
                 WHERE table_schema = COALESCE($1, current_schema()) AND table_name = $2 \
                 ORDER BY ordinal_position"
            }
            Engine::MySql => {
                "SELECT column_name, column_type FROM information_schema.columns \
                 WHERE table_schema = COALESCE(?, database()) AND table_name = ? \
                 ORDER BY ordinal_position"
            }
            // The schema argument names an attached database (`main`); NULL searches all.
            Engine::Sqlite => "SELECT name, type FROM pragma_table_info(?, ?) ORDER BY cid",
        };
        let schema = table
            .schema
            .as_ref()
            .map_or(Value::Null, |s| Value::Text(s.as_str().to_owned()));
        let name = Value::Text(table.name.as_str().to_owned());
        let params = match self.engine() {
            Engine::Postgres | Engine::MySql => [schema, name],
            Engine::Sqlite => [name, schema],
        };
        let rows = self.fetch_all(sql, &params).await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let columns = rows
            .into_iter()
            .map(|row| {
                let mut cells = row.into_iter();
                let name = cells.next().map(|v| v.to_string()).unwrap_or_default();
                let raw_type = match cells.next() {
                    Some(Value::Null) | None => String::new(),
                    Some(v) => v.to_string(),
                };
                CatalogColumn::new(name, raw_type)
            })
            .collect();
        Ok(Some(columns))
    }
}
