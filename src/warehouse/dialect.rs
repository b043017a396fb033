//! The SQL an engine speaks: what the planner and the catalog read ask of
//! it. One implementation per engine file; the provided methods are the
//! common SQL, overridden only where an engine differs.
//!
//! A dialect builds text and [`Value`]s only (no driver types), so an engine
//! reached over HTTP implements it the same way.

use chrono::{DateTime, Utc};

use super::{CatalogColumn, Value};
use crate::domain::{Identifier, TableRef};

/// How one engine writes the statements warden sends.
pub trait Dialect: Send + Sync {
    /// The identifier quoted for the engine (`"x"`, `` `x` ``). Identifiers
    /// are validated on parse, so quoting never needs escaping.
    fn quote(&self, ident: &Identifier) -> String;

    /// `columns` quoted and separated by commas.
    fn column_list(&self, columns: &[Identifier]) -> String {
        columns
            .iter()
            .map(|c| self.quote(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The relation quoted for the engine, schema first when there is one.
    fn table(&self, table: &TableRef) -> String {
        match &table.schema {
            Some(schema) => format!("{}.{}", self.quote(schema), self.quote(&table.name)),
            None => self.quote(&table.name),
        }
    }

    /// The placeholder of the `index`-th parameter (from 1), bound to `value`.
    fn placeholder(&self, index: usize, value: &Value) -> String;

    /// A condition that always holds: `{{ partition_filter }}` over the whole relation.
    fn always_true(&self) -> &'static str;

    /// Rows of the scan.
    fn count_rows(&self) -> String {
        "count(*)".to_owned()
    }

    /// Rows where `column` is not NULL.
    fn count_non_null(&self, column: &Identifier) -> String {
        format!("count({})", self.quote(column))
    }

    /// The largest value of `column`, NULL when there are no rows.
    fn max(&self, column: &Identifier) -> String {
        format!("max({})", self.quote(column))
    }

    /// Distinct non-NULL values of `column`.
    fn count_distinct(&self, column: &Identifier) -> String {
        format!("count(DISTINCT {})", self.quote(column))
    }

    /// `a IS NOT NULL AND b IS NOT NULL …`: none of `columns` is NULL.
    fn not_null(&self, columns: &[Identifier]) -> String {
        columns
            .iter()
            .map(|c| format!("{} IS NOT NULL", self.quote(c)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// Rows where none of `columns` is NULL.
    fn keyed_rows(&self, columns: &[Identifier]) -> String {
        format!("count(CASE WHEN {} THEN 1 END)", self.not_null(columns))
    }

    /// Whether the engine counts distinct tuples over several columns inside
    /// the scan ([`Dialect::distinct_keys`]). When it cannot, the planner
    /// sends a grouped keys statement instead.
    fn counts_distinct_tuples(&self) -> bool;

    /// Distinct tuples over `columns`, tuples with a NULL left out; asked
    /// only when [`Dialect::counts_distinct_tuples`] holds. The default is
    /// standard SQL: a row value is never NULL as a whole, so tuples with a
    /// NULL are left out explicitly.
    fn distinct_keys(&self, columns: &[Identifier]) -> String {
        let list = self.column_list(columns);
        format!(
            "count(DISTINCT ({list})) FILTER (WHERE {})",
            self.not_null(columns)
        )
    }

    /// `(column >= start AND column < end)`, given the quoted column and the
    /// two placeholders.
    fn partition_filter(&self, column: &str, start: &str, end: &str) -> String {
        format!("({column} >= {start} AND {column} < {end})")
    }

    /// Whether the catalog's `catalog_name` is the column a check calls `name`.
    fn same_column(&self, catalog_name: &str, name: &str) -> bool;

    /// Whether `column` holds points in time (its partition bounds are the
    /// instants the local bounds stand for).
    fn is_zoned(&self, column: &CatalogColumn) -> bool {
        column.data_type == "timestamptz"
    }

    /// A partition bound on a zoned column.
    fn zoned_bound(&self, instant: DateTime<Utc>) -> Value {
        Value::TimestampTz(instant)
    }

    /// The statement reading the columns of `table` (name, type; in
    /// declaration order) and its parameters. No rows: no such relation.
    fn catalog_query(&self, table: &TableRef) -> (&'static str, Vec<Value>);

    /// The engine's own spellings of column types, mapped to the shared
    /// vocabulary (see [`super::types::normalise`]). A spelling with its
    /// arguments (`tinyint(1)`) is matched whole, before arguments are dropped.
    fn type_names(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// Words in the engine's type names that do not change what a column
    /// holds for warden (MySQL's `unsigned`), dropped before matching.
    fn type_modifiers(&self) -> &'static [&'static str] {
        &[]
    }
}

/// `schema` (NULL for the default schema) and `name` of `table`, as catalog parameters.
pub(super) fn schema_and_name(table: &TableRef) -> (Value, Value) {
    let schema = table
        .schema
        .as_ref()
        .map_or(Value::Null, |s| Value::Text(s.as_str().to_owned()));
    (schema, Value::Text(table.name.as_str().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::super::Engine;
    use super::*;

    #[test]
    fn tables_quote_per_engine() {
        let t = TableRef::parse("analytics.orders").unwrap();
        assert_eq!(
            Engine::Postgres.dialect().table(&t),
            "\"analytics\".\"orders\""
        );
        assert_eq!(Engine::MySql.dialect().table(&t), "`analytics`.`orders`");
        assert_eq!(
            Engine::Sqlite
                .dialect()
                .table(&TableRef::parse("orders").unwrap()),
            "\"orders\""
        );
        assert!(TableRef::parse("a.b.c").is_err());
    }

    #[test]
    fn placeholders_number_on_postgres_only() {
        let v = Value::Int(1);
        assert_eq!(Engine::Postgres.dialect().placeholder(2, &v), "$2");
        assert_eq!(Engine::MySql.dialect().placeholder(2, &v), "?");
        assert_eq!(Engine::Sqlite.dialect().placeholder(2, &v), "?");
    }

    #[test]
    fn column_names_match_as_each_engine_matches_them() {
        assert!(Engine::Postgres.dialect().same_column("id", "id"));
        assert!(!Engine::Postgres.dialect().same_column("ID", "id"));
        assert!(Engine::MySql.dialect().same_column("ID", "id"));
        assert!(Engine::Sqlite.dialect().same_column("ID", "id"));
    }

    #[test]
    fn only_sqlite_counts_distinct_tuples_outside_the_scan() {
        let keys = [
            Identifier::parse("a").unwrap(),
            Identifier::parse("b").unwrap(),
        ];
        assert!(!Engine::Sqlite.dialect().counts_distinct_tuples());
        assert_eq!(
            Engine::Postgres.dialect().distinct_keys(&keys),
            "count(DISTINCT (\"a\", \"b\")) FILTER (WHERE \"a\" IS NOT NULL AND \"b\" IS NOT NULL)"
        );
        assert_eq!(
            Engine::MySql.dialect().distinct_keys(&keys),
            "count(DISTINCT `a`, `b`)"
        );
    }
}
