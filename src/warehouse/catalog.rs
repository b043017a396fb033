//! Reading a relation's columns from the warehouse catalog, in one statement.

use serde::{Deserialize, Serialize};

use super::{Value, Warehouse, WarehouseError, types};
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
    /// The columns of `table` in declaration order, in one statement (the
    /// engine's [`Dialect::catalog_query`](super::Dialect::catalog_query)).
    /// `None` when the relation does not exist.
    pub async fn columns(
        &self,
        table: &TableRef,
    ) -> Result<Option<Vec<CatalogColumn>>, WarehouseError> {
        let (sql, params) = self.dialect().catalog_query(table);
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
