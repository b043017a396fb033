//! What `warden init` reads of a warehouse: every relation of a schema with
//! its columns, primary key and partition key in one catalog statement
//! ([`Dialect::schema_catalog_query`]), then one aggregate statement per
//! relation ([`Dialect::profile_query`]): its rows, each column's non-NULL
//! and distinct values, and the newest value of its time columns.

use super::{CatalogColumn, Value, Warehouse, WarehouseError};
use crate::domain::{Identifier, TableRef};

/// One relation of a schema as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogTable {
    /// The schema as the catalog names it (`public`, the MySQL database, `main`).
    pub schema: String,
    /// The relation's name as the catalog spells it.
    pub name: String,
    /// Its columns, in declaration order.
    pub columns: Vec<CatalogColumn>,
    /// The primary key's columns, in key order; empty without one.
    pub primary_key: Vec<String>,
    /// The columns the engine partitions the relation by, when it does.
    pub partition_key: Vec<String>,
}

/// What the profile of a relation asks about one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileColumn {
    pub name: Identifier,
    /// Count its distinct values (in the sample).
    pub distinct: bool,
    /// Read its largest value (over the whole relation).
    pub max: bool,
}

/// The profile of a relation.
#[derive(Debug, Clone, PartialEq)]
pub struct TableProfile {
    /// Rows of the whole relation.
    pub rows: u64,
    /// Rows the column counts looked at: all of them, or the sample.
    pub sampled: u64,
    /// One entry per [`ProfileColumn`] asked, in the same order.
    pub columns: Vec<ColumnProfile>,
}

/// What the profile found in one column.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnProfile {
    /// Rows of the sample where it is not NULL.
    pub non_null: u64,
    /// Distinct non-NULL values in the sample, when asked.
    pub distinct: Option<u64>,
    /// Its largest value in the whole relation, when asked (NULL when it
    /// has none).
    pub max: Option<Value>,
}

impl Warehouse {
    /// Every table and view of `schema` (the engine's default schema when
    /// `None`: `current_schema()`, the URL's database, `main`) with their
    /// columns, primary keys and partition keys, in one statement. Tables
    /// come in name order.
    pub async fn schema_tables(
        &self,
        schema: Option<&Identifier>,
    ) -> Result<Vec<CatalogTable>, WarehouseError> {
        let (sql, params) = self.dialect().schema_catalog_query(schema);
        let rows = self.fetch_all(&sql, &params).await?;
        let mut tables: Vec<CatalogTable> = Vec::new();
        // Each table's key columns with their position in the key.
        let mut keys: Vec<Vec<(u64, String)>> = Vec::new();
        for row in rows {
            let [schema, table, column, raw_type, key_position, partition_key] =
                <[Value; 6]>::try_from(row).map_err(|row| WarehouseError::Query {
                    message: format!(
                        "the catalog statement returned {} columns, not 6",
                        row.len()
                    ),
                })?;
            let (schema, table, column) =
                (schema.to_string(), table.to_string(), column.to_string());
            let raw_type = if raw_type.is_null() {
                String::new()
            } else {
                raw_type.to_string()
            };
            let new_table = tables
                .last()
                .is_none_or(|t| t.schema != schema || t.name != table);
            if new_table {
                tables.push(CatalogTable {
                    schema,
                    name: table,
                    columns: Vec::new(),
                    primary_key: Vec::new(),
                    partition_key: Vec::new(),
                });
                keys.push(Vec::new());
            }
            let (entry, key) = (
                tables.last_mut().expect("a table"),
                keys.last_mut().expect("its key"),
            );
            if let Some(position) = key_position.as_count().filter(|&p| p > 0) {
                key.push((position, column.clone()));
            }
            if partition_key.as_count().is_some_and(|p| p > 0) {
                entry.partition_key.push(column.clone());
            }
            entry.columns.push(CatalogColumn::new(column, raw_type));
        }
        for (table, mut key) in tables.iter_mut().zip(keys) {
            key.sort();
            table.primary_key = key.into_iter().map(|(_, c)| c).collect();
        }
        Ok(tables)
    }

    /// The profile of `table` in one statement: its rows and the largest
    /// value of each column asked with `max` over the whole relation, and
    /// each column's non-NULL and distinct values over at most `sample`
    /// rows (all of them when `None`).
    pub async fn profile(
        &self,
        table: &TableRef,
        columns: &[ProfileColumn],
        sample: Option<u64>,
    ) -> Result<TableProfile, WarehouseError> {
        let sql = self.dialect().profile_query(table, columns, sample);
        let rows = self.fetch_all(&sql, &[]).await?;
        let row = rows
            .into_iter()
            .next()
            .ok_or_else(|| WarehouseError::Query {
                message: "the profile statement returned no row".to_owned(),
            })?;
        let expected = 2 + columns
            .iter()
            .map(|c| 1 + usize::from(c.distinct) + usize::from(c.max))
            .sum::<usize>();
        if row.len() != expected {
            return Err(WarehouseError::Query {
                message: format!(
                    "the profile statement returned {} columns, not {expected}",
                    row.len()
                ),
            });
        }
        // The statement's columns: rows, then each asked max, then the
        // sampled rows, then each column's non-NULL and asked distinct
        // counts (see `Dialect::profile_query`).
        let count = |i: usize, what: &str| -> Result<u64, WarehouseError> {
            row[i].as_count().ok_or_else(|| WarehouseError::Query {
                message: format!("the profile's {what} is not a count: {}", row[i]),
            })
        };
        let rows = count(0, "row count")?;
        let mut at = 1;
        let mut maxes = Vec::with_capacity(columns.len());
        for c in columns {
            if c.max {
                maxes.push(Some(row[at].clone()));
                at += 1;
            } else {
                maxes.push(None);
            }
        }
        let sampled = count(at, "sampled row count")?;
        at += 1;
        let mut profiles = Vec::with_capacity(columns.len());
        for (c, max) in columns.iter().zip(maxes) {
            let non_null = count(at, "non-NULL count")?;
            at += 1;
            let distinct = if c.distinct {
                at += 1;
                Some(count(at - 1, "distinct count")?)
            } else {
                None
            };
            profiles.push(ColumnProfile {
                non_null,
                distinct,
                max,
            });
        }
        Ok(TableProfile {
            rows,
            sampled,
            columns: profiles,
        })
    }
}
