//! The SQL an engine speaks: what the planner and the catalog read ask of
//! it. One implementation per engine file; the provided methods are the
//! common SQL, overridden only where an engine differs.
//!
//! A dialect builds text and [`Value`]s only (no driver types), so an engine
//! reached over HTTP implements it the same way.

use chrono::{DateTime, Utc};

use super::{CatalogColumn, ProfileColumn, Value};
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

    /// `func` (`min`, `avg`, `sum`) over `column`, NULL when no value is
    /// counted.
    fn aggregate(&self, func: &str, column: &Identifier) -> String {
        format!("{func}({})", self.quote(column))
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

    /// The statement listing every table and view of `schema` (the
    /// engine's default schema when `None`) and its parameters: one row per
    /// column with the schema, the relation, the column, its type as in
    /// [`Dialect::catalog_query`], its position in the primary key (0 when
    /// not in it), and 1 when the engine partitions the relation by it (else
    /// 0); ordered by relation, then declaration order.
    fn schema_catalog_query(&self, schema: Option<&Identifier>) -> (String, Vec<Value>);

    /// The one statement `discover:` reads a whole schema with, and its
    /// parameters: rows of six cells, (relation, column, type as in
    /// [`Dialect::catalog_query`], row estimate, last change as Unix
    /// seconds, change counter). A row whose column is empty carries only
    /// the relation's figures; the figures are NULL where the engine keeps
    /// none. Base tables only, never views.
    fn discover_query(&self, schema: &Identifier) -> (String, Vec<Value>);

    /// The rows a profile counts columns over when it samples: at most
    /// `limit` rows of `table`, any of them, as a derived table.
    fn sample(&self, table: &TableRef, columns: &[Identifier], limit: u64) -> String {
        let list = if columns.is_empty() {
            "*".to_owned()
        } else {
            self.column_list(columns)
        };
        format!("(SELECT {list} FROM {} LIMIT {limit})", self.table(table))
    }

    /// One statement profiling `table`, returning one row: the relation's
    /// rows and the largest value of each column asked with `max`, over the
    /// whole relation; then the rows counted and, for each column, its
    /// non-NULL values and (when asked) its distinct values, over
    /// [`Dialect::sample`] when `sample` is given, else over the whole
    /// relation (then in one pass).
    fn profile_query(
        &self,
        table: &TableRef,
        columns: &[ProfileColumn],
        sample: Option<u64>,
    ) -> String {
        let whole: Vec<String> = std::iter::once(self.count_rows())
            .chain(columns.iter().filter(|c| c.max).map(|c| self.max(&c.name)))
            .collect();
        let counted: Vec<String> = std::iter::once(self.count_rows())
            .chain(columns.iter().flat_map(|c| {
                let distinct = c.distinct.then(|| self.count_distinct(&c.name));
                std::iter::once(self.count_non_null(&c.name)).chain(distinct)
            }))
            .collect();
        let relation = self.table(table);
        match sample {
            None => {
                let all = [whole, counted].concat();
                format!("SELECT {} FROM {relation}", aliased(&all, "p"))
            }
            Some(limit) => {
                let names: Vec<Identifier> = columns.iter().map(|c| c.name.clone()).collect();
                let sampled = self.sample(table, &names, limit);
                self.sampled_profile(&relation, &whole, &sampled, &counted)
            }
        }
    }

    /// The sampled profile's one row: `whole` over `relation`, then
    /// `counted` over `sampled` (a derived table from [`Dialect::sample`]).
    /// By default the two sides of a cross join.
    fn sampled_profile(
        &self,
        relation: &str,
        whole: &[String],
        sampled: &str,
        counted: &[String],
    ) -> String {
        format!(
            "SELECT w.*, s.* FROM (SELECT {} FROM {relation}) w \
             CROSS JOIN (SELECT {} FROM {sampled} x) s",
            aliased(whole, "w"),
            aliased(counted, "s"),
        )
    }

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

    /// The shared name of a type only this engine spells so, matched on
    /// the spelling as the catalog gives it (before it is lowercased):
    /// ClickHouse's `Int8` is a small integer, PostgreSQL's `int8` a big one.
    /// `None` leaves the spelling to [`Dialect::type_names`].
    fn own_type(&self, _spelling: &str) -> Option<String> {
        None
    }
}

/// `schema` as a catalog parameter: NULL for the default schema.
pub(super) fn schema_value(schema: Option<&Identifier>) -> Value {
    schema.map_or(Value::Null, |s| Value::Text(s.as_str().to_owned()))
}

/// `schema` (NULL for the default schema) and `name` of `table`, as catalog parameters.
pub(super) fn schema_and_name(table: &TableRef) -> (Value, Value) {
    (
        schema_value(table.schema.as_ref()),
        Value::Text(table.name.as_str().to_owned()),
    )
}

/// `exprs` as a select list, each `AS <prefix><position>`.
pub(super) fn aliased(exprs: &[String], prefix: &str) -> String {
    exprs
        .iter()
        .enumerate()
        .map(|(i, e)| format!("{e} AS {prefix}{i}"))
        .collect::<Vec<_>>()
        .join(", ")
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
    fn a_profile_is_one_statement_sampled_or_not() {
        let t = TableRef::parse("shop.orders").unwrap();
        let columns = [
            ProfileColumn {
                name: Identifier::parse("id").unwrap(),
                distinct: true,
                max: false,
            },
            ProfileColumn {
                name: Identifier::parse("at").unwrap(),
                distinct: false,
                max: true,
            },
        ];
        let pg = Engine::Postgres.dialect();
        assert_eq!(
            pg.profile_query(&t, &columns, None),
            "SELECT count(*) AS p0, max(\"at\") AS p1, count(*) AS p2, count(\"id\") AS p3, \
             count(DISTINCT \"id\") AS p4, count(\"at\") AS p5 FROM \"shop\".\"orders\""
        );
        assert_eq!(
            Engine::MySql
                .dialect()
                .profile_query(&t, &columns, Some(1000)),
            "SELECT w.*, s.* FROM (SELECT count(*) AS w0, max(`at`) AS w1 FROM `shop`.`orders`) w \
             CROSS JOIN (SELECT count(*) AS s0, count(`id`) AS s1, count(DISTINCT `id`) AS s2, \
             count(`at`) AS s3 FROM (SELECT `id`, `at` FROM `shop`.`orders` LIMIT 1000) x) s"
        );
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
