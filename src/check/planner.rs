//! Compiling a dataset's checks for one scope into the fewest statements.
//!
//! Every aggregate check (row_count, row_count_change, null_rate, freshness,
//! unique) on the same relation, `where` filter and partition becomes one
//! column of ONE `SELECT count(*), count(c1), max(ts), …` scan; identical
//! expressions are shared. Schema checks read the catalog, which the executor
//! reads once per dataset before planning (the plan needs it to leave out
//! checks whose column is missing and to type partition bounds). Custom SQL
//! runs as written, after template expansion.

use chrono::NaiveDateTime;
use chrono_tz::Tz;

use super::observation::ObserveError;
use super::scope::Scope;
use super::spec::{CheckSpec, Dataset};
use super::template::{self, PartitionBounds, SqlBuilder, TemplateContext};
use crate::domain::{Granularity, Identifier, PartitionKey, TableRef};
use crate::warehouse::{CatalogColumn, Dialect, Engine, Value, WarehouseError};

/// The statements for one dataset and scope, and where each check finds its
/// values in their results.
#[derive(Debug, Clone)]
pub struct Plan {
    pub statements: Vec<Statement>,
    /// One entry per check that runs in the scope, in the dataset's order.
    pub checks: Vec<PlannedCheck>,
}

/// One statement to send, with its parameters in placeholder order.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub kind: StatementKind,
    pub sql: String,
    pub params: Vec<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// The batched aggregate scan of one filter and partition.
    Scan,
    /// Duplicate keys over several columns on SQLite, which cannot count
    /// distinct tuples inside the scan.
    Keys,
    /// A custom `sql` check.
    Sql,
}

/// A check's part in a plan.
#[derive(Debug, Clone)]
pub struct PlannedCheck {
    /// Index of the check in [`Dataset::checks`].
    pub check: usize,
    /// The partition it looks at, `None` for the whole relation.
    pub partition: Option<PartitionKey>,
    pub read: Read,
}

/// Where a check's values are: statement index and column positions in its
/// single result row.
#[derive(Debug, Clone)]
pub enum Read {
    RowCount {
        statement: usize,
        rows: usize,
    },
    NullCount {
        statement: usize,
        rows: usize,
        non_null: usize,
    },
    Latest {
        statement: usize,
        column: usize,
    },
    /// Rows whose key has no NULL, and distinct such keys.
    Keys {
        statement: usize,
        keyed_rows: usize,
        distinct: usize,
    },
    /// One number (an `anomaly` metric), NULL when there are no rows.
    Number {
        statement: usize,
        column: usize,
    },
    /// The catalog read that preceded planning.
    Catalog,
    /// Every row of a custom SQL statement.
    Sql {
        statement: usize,
    },
    /// The check cannot run: a column is missing, a template is wrong, …
    Failed(ObserveError),
}

/// One aggregate in a scan's SELECT list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    CountRows,
    CountNonNull(Identifier),
    Max(Identifier),
    Min(Identifier),
    Avg(Identifier),
    Sum(Identifier),
    CountDistinct(Identifier),
    /// Rows where none of the columns is NULL.
    KeyedRows(Vec<Identifier>),
    /// Distinct tuples over the columns, NULL-containing tuples left out.
    DistinctKeys(Vec<Identifier>),
}

impl Expr {
    fn render(&self, dialect: &dyn Dialect) -> String {
        match self {
            Self::CountRows => dialect.count_rows(),
            Self::CountNonNull(c) => dialect.count_non_null(c),
            Self::Max(c) => dialect.max(c),
            Self::Min(c) => dialect.aggregate("min", c),
            Self::Avg(c) => dialect.aggregate("avg", c),
            Self::Sum(c) => dialect.aggregate("sum", c),
            Self::CountDistinct(c) => dialect.count_distinct(c),
            Self::KeyedRows(cs) => dialect.keyed_rows(cs),
            Self::DistinctKeys(cs) => dialect.distinct_keys(cs),
        }
    }
}

/// A scan being assembled: one per (filter, partition).
struct Group {
    filter: Option<String>,
    partition: Option<PartitionKey>,
    /// The WHERE clause (without the keyword) and its parameters; empty when unfiltered.
    conditions: (String, Vec<Value>),
    exprs: Vec<Expr>,
}

impl Group {
    fn statement(&self, table: &TableRef, engine: Engine) -> Statement {
        let dialect = engine.dialect();
        let select = self
            .exprs
            .iter()
            .map(|e| e.render(dialect))
            .collect::<Vec<_>>()
            .join(", ");
        let (conditions, params) = &self.conditions;
        let mut sql = format!("SELECT {select} FROM {}", dialect.table(table));
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(conditions);
        }
        Statement {
            kind: StatementKind::Scan,
            sql,
            params: params.clone(),
        }
    }

    /// The column of `expr` in the scan, adding it unless an identical one is there.
    fn column(&mut self, expr: Expr) -> usize {
        match self.exprs.iter().position(|e| *e == expr) {
            Some(i) => i,
            None => {
                self.exprs.push(expr);
                self.exprs.len() - 1
            }
        }
    }
}

/// Everything a plan depends on besides the dataset.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// The relation to check: the dataset's table, or the gate's staging table.
    pub table: &'a TableRef,
    pub engine: Engine,
    pub scope: &'a Scope,
    /// The relation's columns, read from the catalog.
    pub catalog: &'a [CatalogColumn],
    /// The agent's time zone: partitions are local days and hours.
    pub tz: Tz,
}

/// Compiles the checks of `ds` that run in `input.scope` into statements:
/// the scans first (one per filter and partition), then SQLite's key
/// statements and custom SQL in check order.
pub fn plan(ds: &Dataset, input: PlanInput<'_>) -> Plan {
    let mut groups: Vec<Group> = Vec::new();
    let mut extras: Vec<Statement> = Vec::new();
    let mut planned: Vec<(PlannedCheck, bool)> = Vec::new();
    for (index, spec) in ds.checks.iter().enumerate() {
        let Some(partition) = input.scope.target(spec) else {
            continue;
        };
        let (read, extra) = match plan_check(ds, spec, partition, input, &mut groups, &mut extras) {
            Ok(placed) => placed,
            Err(e) => (Read::Failed(e), false),
        };
        planned.push((
            PlannedCheck {
                check: index,
                partition,
                read,
            },
            extra,
        ));
    }

    let offset = groups.len();
    let mut statements: Vec<Statement> = groups
        .iter()
        .map(|g| g.statement(input.table, input.engine))
        .collect();
    statements.extend(extras);
    let checks = planned
        .into_iter()
        .map(|(mut check, extra)| {
            if extra {
                match &mut check.read {
                    Read::Sql { statement } | Read::Keys { statement, .. } => *statement += offset,
                    _ => {}
                }
            }
            check
        })
        .collect();
    Plan { statements, checks }
}

/// Places one check: in a scan (returns `false`) or in a statement of its
/// own among `extras` (returns `true`, index relative to `extras`).
fn plan_check(
    ds: &Dataset,
    spec: &CheckSpec,
    partition: Option<PartitionKey>,
    input: PlanInput<'_>,
    groups: &mut Vec<Group>,
    extras: &mut Vec<Statement>,
) -> Result<(Read, bool), ObserveError> {
    let bounds = partition
        .map(|key| partition_bounds(ds, key, input))
        .transpose()?;
    let mut cx = PlanCx {
        scan: Scan {
            groups,
            filter: spec.filter.as_deref(),
            partition,
            table: input.table,
            engine: input.engine,
            bounds: bounds.as_ref(),
        },
        extras,
        catalog: input.catalog,
        own: false,
    };
    let read = spec.kind.get().plan(&mut cx)?;
    Ok((read, cx.own))
}

/// What a check kind plans with: the scan of its filter and partition, and
/// the statements of their own that some kinds need.
pub(crate) struct PlanCx<'a> {
    scan: Scan<'a>,
    extras: &'a mut Vec<Statement>,
    catalog: &'a [CatalogColumn],
    /// The check was placed in a statement of its own.
    own: bool,
}

impl PlanCx<'_> {
    pub(crate) fn engine(&self) -> Engine {
        self.scan.engine
    }

    /// An error unless the relation has `column`.
    pub(crate) fn require(&self, column: &Identifier) -> Result<(), ObserveError> {
        match find_column(self.catalog, column.as_str(), self.scan.engine) {
            Some(_) => Ok(()),
            None => Err(missing_column(column.as_str(), self.scan.table)),
        }
    }

    /// Adds `exprs` to the scan (sharing identical ones) and returns the
    /// scan's statement index and each expression's column.
    pub(crate) fn join<const N: usize>(
        &mut self,
        exprs: [Expr; N],
    ) -> Result<(usize, [usize; N]), ObserveError> {
        self.scan.join(exprs)
    }

    /// `template` expanded against the relation and the partition's bounds:
    /// the SQL and its parameters.
    pub(crate) fn expand(&self, template: &str) -> Result<(String, Vec<Value>), ObserveError> {
        let mut b = SqlBuilder::new(self.scan.engine);
        template::expand(
            template,
            TemplateContext {
                table: self.scan.table,
                partition: self.scan.bounds,
            },
            &mut b,
        )?;
        Ok(b.finish())
    }

    /// Adds a statement of the check's own; its index.
    pub(crate) fn own_statement(
        &mut self,
        kind: StatementKind,
        sql: String,
        params: Vec<Value>,
    ) -> usize {
        self.extras.push(Statement { kind, sql, params });
        self.own = true;
        self.extras.len() - 1
    }

    /// Adds the grouped statement counting rows with a non-NULL key and
    /// distinct keys over `columns`; its index.
    pub(crate) fn keys_statement(&mut self, columns: &[Identifier]) -> Result<usize, ObserveError> {
        let statement = keys_statement(
            self.scan.table,
            self.scan.engine,
            self.scan.bounds,
            self.scan.filter,
            columns,
        )?;
        self.extras.push(statement);
        self.own = true;
        Ok(self.extras.len() - 1)
    }
}

/// Joining a check's aggregates to the scan of its filter and partition.
struct Scan<'a> {
    groups: &'a mut Vec<Group>,
    filter: Option<&'a str>,
    partition: Option<PartitionKey>,
    table: &'a TableRef,
    engine: Engine,
    bounds: Option<&'a PartitionBounds>,
}

impl Scan<'_> {
    /// Adds `exprs` to the scan (sharing identical ones) and returns the
    /// scan's statement index and each expression's column.
    fn join<const N: usize>(
        &mut self,
        exprs: [Expr; N],
    ) -> Result<(usize, [usize; N]), ObserveError> {
        let existing = self
            .groups
            .iter()
            .position(|g| g.filter.as_deref() == self.filter && g.partition == self.partition);
        let g = match existing {
            Some(g) => g,
            None => {
                let conditions = conditions(self.table, self.engine, self.bounds, self.filter)?;
                self.groups.push(Group {
                    filter: self.filter.map(str::to_owned),
                    partition: self.partition,
                    conditions,
                    exprs: Vec::new(),
                });
                self.groups.len() - 1
            }
        };
        let group = &mut self.groups[g];
        Ok((g, exprs.map(|e| group.column(e))))
    }
}

/// The WHERE conditions (without the keyword) for a partition and a filter.
/// They hold every parameter of the statement, so placeholders number from 1
/// whatever the SELECT list holds.
fn conditions(
    table: &TableRef,
    engine: Engine,
    bounds: Option<&PartitionBounds>,
    filter: Option<&str>,
) -> Result<(String, Vec<Value>), ObserveError> {
    let mut b = SqlBuilder::new(engine);
    if let Some(bounds) = bounds {
        bounds.push_filter(&mut b);
    }
    if let Some(filter) = filter {
        if bounds.is_some() {
            b.push(" AND ");
        }
        b.push("(");
        template::expand(
            filter,
            TemplateContext {
                table,
                partition: bounds,
            },
            &mut b,
        )?;
        b.push(")");
    }
    Ok(b.finish())
}

/// `SELECT sum(n), count(*) FROM (SELECT count(*) AS n … GROUP BY keys)`:
/// rows with a non-NULL key and distinct keys, in one statement, for engines
/// that cannot count distinct tuples inside the scan.
fn keys_statement(
    table: &TableRef,
    engine: Engine,
    bounds: Option<&PartitionBounds>,
    filter: Option<&str>,
    columns: &[Identifier],
) -> Result<Statement, ObserveError> {
    let dialect = engine.dialect();
    let (conditions, params) = conditions(table, engine, bounds, filter)?;
    let keys = columns
        .iter()
        .map(|c| dialect.quote(c))
        .collect::<Vec<_>>()
        .join(", ");
    let mut where_sql = dialect.not_null(columns);
    if !conditions.is_empty() {
        where_sql = format!("{conditions} AND {where_sql}");
    }
    let sql = format!(
        "SELECT sum(n), count(*) FROM (SELECT count(*) AS n FROM {} WHERE {where_sql} GROUP BY {keys}) AS keys",
        dialect.table(table)
    );
    Ok(Statement {
        kind: StatementKind::Keys,
        sql,
        params,
    })
}

fn missing_column(column: &str, table: &TableRef) -> ObserveError {
    WarehouseError::ColumnMissing {
        column: column.to_owned(),
        table: Some(table.to_string()),
    }
    .into()
}

/// The catalog entry for `name`, matched as the engine matches names
/// ([`Dialect::same_column`]: exact on PostgreSQL, where quoted identifiers
/// are case-sensitive; case-insensitive on MySQL and SQLite).
pub(crate) fn find_column<'a>(
    catalog: &'a [CatalogColumn],
    name: &str,
    engine: Engine,
) -> Option<&'a CatalogColumn> {
    let dialect = engine.dialect();
    catalog.iter().find(|c| dialect.same_column(&c.name, name))
}

/// The bounds of partition `key` on the dataset's partition column, typed
/// for that column: zoned timestamps get the instants the local bounds stand
/// for (as UTC text on SQLite), text columns get text, other columns dates
/// (day partitions) or timestamps (hour partitions). SQLite compares text,
/// so its partition values must be written `YYYY-MM-DD[ HH:MM:SS]`: local
/// time in columns without a zone, UTC in columns declared `timestamptz`.
fn partition_bounds(
    ds: &Dataset,
    key: PartitionKey,
    input: PlanInput<'_>,
) -> Result<PartitionBounds, ObserveError> {
    let spec = ds.partition.as_ref().ok_or_else(|| ObserveError::Scope {
        message: format!(
            "dataset `{}` is not partitioned; it has no partition {key}",
            ds.name
        ),
    })?;
    if spec.granularity != key.granularity() {
        return Err(ObserveError::Scope {
            message: format!(
                "partition {key} does not match dataset `{}`, which is partitioned by {}",
                ds.name,
                match spec.granularity {
                    Granularity::Day => "day",
                    Granularity::Hour => "hour",
                }
            ),
        });
    }
    let column = find_column(input.catalog, spec.column.as_str(), input.engine)
        .ok_or_else(|| missing_column(spec.column.as_str(), input.table))?;
    let dialect = input.engine.dialect();
    let zoned = dialect.is_zoned(column);
    let bound = |t: NaiveDateTime| -> Value {
        if zoned {
            dialect.zoned_bound(crate::check::local_to_utc(t, input.tz))
        } else if column.data_type == "text" {
            Value::Text(match key.granularity() {
                Granularity::Day => t.format("%Y-%m-%d").to_string(),
                Granularity::Hour => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            })
        } else {
            match key.granularity() {
                Granularity::Day => Value::Date(t.date()),
                Granularity::Hour => Value::Timestamp(t),
            }
        }
    };
    Ok(PartitionBounds {
        key,
        column: dialect.quote(&spec.column),
        start: bound(key.start()),
        end: bound(key.end()),
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use chrono::NaiveTime;

    use super::*;
    use crate::check::kind::{
        ChangeBaseline, CheckKind, DriftAction, Expect, Freshness, FreshnessRule, NullRate,
        RowCount, RowCountChange, Schema, Sql, Unique,
    };
    use crate::check::spec::{PartitionSpec, Schedule, Severity};
    use crate::domain::{CheckId, DatasetName, Ratio};
    use crate::source::SourcePos;

    fn id(s: &str) -> Identifier {
        Identifier::parse(s).unwrap()
    }

    fn dataset(checks: Vec<(&str, CheckKind, Option<&str>)>) -> Dataset {
        let name = DatasetName::parse("orders").unwrap();
        let pos = SourcePos {
            file: PathBuf::from("checks/orders.yaml"),
            line: 1,
            column: 1,
        };
        Dataset {
            table: TableRef::parse("analytics.orders").unwrap(),
            warehouse: "main".into(),
            tier: 1,
            owner: None,
            runbook: None,
            schedule: Some(Schedule {
                expr: "@hourly".into(),
                cron: "0 * * * *".parse().unwrap(),
            }),
            partition: Some(PartitionSpec {
                column: id("order_date"),
                granularity: Granularity::Day,
            }),
            gate_table: TableRef::parse("staging.orders").unwrap(),
            gate_allow_empty: false,
            discovered: None,
            checks: checks
                .into_iter()
                .map(|(n, kind, filter)| CheckSpec {
                    id: CheckId::new(&name, n).unwrap(),
                    name: n.into(),
                    kind,
                    severity: Severity::Fail,
                    blocking: true,
                    filter: filter.map(str::to_owned),
                    pos: pos.clone(),
                })
                .collect(),
            name,
            pos,
        }
    }

    fn catalog() -> Vec<CatalogColumn> {
        [
            ("order_id", "bigint"),
            ("customer_id", "integer"),
            ("coupon", "character varying"),
            ("amount", "numeric"),
            ("order_date", "date"),
            ("updated_at", "timestamp without time zone"),
        ]
        .into_iter()
        .map(|(n, t)| CatalogColumn::new(n, t))
        .collect()
    }

    fn orders() -> Dataset {
        dataset(vec![
            ("row_count", CheckKind::RowCount(RowCount { min: Some(1), max: None }), None),
            (
                "row_count_change",
                CheckKind::RowCountChange(RowCountChange { vs: ChangeBaseline::Week, max_drop: None, max_growth: None }),
                None,
            ),
            (
                "null_rate_customer_id",
                CheckKind::NullRate(NullRate { column: id("customer_id"), max: Ratio::from_f64(0.0, true).unwrap() }),
                None,
            ),
            (
                "null_rate_coupon",
                CheckKind::NullRate(NullRate { column: id("coupon"), max: Ratio::from_f64(0.35, true).unwrap() }),
                None,
            ),
            (
                "freshness_updated_at",
                CheckKind::Freshness(Freshness {
                    column: id("updated_at"),
                    rule: FreshnessRule::MaxLag(std::time::Duration::from_secs(6 * 3600)),
                }),
                None,
            ),
            (
                "freshness_order_date",
                CheckKind::Freshness(Freshness {
                    column: id("order_date"),
                    rule: FreshnessRule::Deadline {
                        by: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
                        expect: Expect::Yesterday,
                    },
                }),
                None,
            ),
            ("unique_order_id", CheckKind::Unique(Unique { columns: vec![id("order_id")], max: 0 }), None),
            (
                "unique_pair",
                CheckKind::Unique(Unique { columns: vec![id("order_id"), id("customer_id")], max: 0 }),
                None,
            ),
            (
                "paid_rows",
                CheckKind::RowCount(RowCount { min: Some(1), max: None }),
                Some("amount > 0"),
            ),
            (
                "schema",
                CheckKind::Schema(Schema {
                    columns: None,
                    on_added: DriftAction::Warn,
                    on_removed: DriftAction::Fail,
                    on_type_changed: DriftAction::Fail,
                }),
                None,
            ),
            (
                "negative_amounts",
                CheckKind::Sql(Sql {
                    query: "SELECT count(*) FROM {{ table }} WHERE amount < 0 AND {{ partition_filter }}".into(),
                    min: None,
                    max: Some(0.0),
                }),
                None,
            ),
        ])
    }

    fn render(plan: &Plan) -> String {
        let mut out = String::new();
        for (i, s) in plan.statements.iter().enumerate() {
            out.push_str(&format!("[{i}] {:?}: {}\n", s.kind, s.sql));
            if !s.params.is_empty() {
                out.push_str(&format!("    params: {:?}\n", s.params));
            }
        }
        for c in &plan.checks {
            let read = match &c.read {
                Read::Failed(e) => format!("Failed({e})"),
                other => format!("{other:?}"),
            };
            out.push_str(&format!(
                "check {} @ {:?}: {read}\n",
                c.check,
                c.partition.map(|p| p.to_string())
            ));
        }
        out
    }

    fn plan_for(engine: Engine, scope: &Scope, catalog: &[CatalogColumn]) -> Plan {
        let ds = orders();
        plan(
            &ds,
            PlanInput {
                table: &ds.table,
                engine,
                scope,
                catalog,
                tz: chrono_tz::Europe::Paris,
            },
        )
    }

    fn day(s: &str) -> PartitionKey {
        PartitionKey::parse(s, Granularity::Day).unwrap()
    }

    #[test]
    fn anomaly_metrics_join_the_scan_without_a_statement_of_their_own() {
        use crate::check::kind::{Anomaly, Metric};
        let anomaly = |metric, column: Option<&str>| {
            CheckKind::Anomaly(Anomaly {
                metric,
                column: column.map(id),
                sensitivity: 3.0,
                direction: crate::detect::Direction::Both,
                seasonality: crate::detect::Seasonality::Auto,
                training: std::time::Duration::from_secs(8 * 7 * 86_400),
                min_training: 14,
                min_change: 0.05,
                adapt_after: 7,
            })
        };
        let mut ds = orders();
        let extra = dataset(vec![
            ("a_rows", anomaly(Metric::RowCount, None), None),
            (
                "a_nulls",
                anomaly(Metric::NullRate, Some("customer_id")),
                None,
            ),
            (
                "a_distinct",
                anomaly(Metric::DistinctCount, Some("customer_id")),
                None,
            ),
            ("a_avg", anomaly(Metric::Avg, Some("amount")), None),
            ("a_sum", anomaly(Metric::Sum, Some("amount")), None),
            ("a_min", anomaly(Metric::Min, Some("amount")), None),
            ("a_max", anomaly(Metric::Max, Some("amount")), None),
            (
                "a_lag",
                anomaly(Metric::FreshnessLag, Some("updated_at")),
                None,
            ),
        ]);
        ds.checks.extend(extra.checks);
        let scope = Scope::Partition(day("2026-11-20"));
        let with = plan(
            &ds,
            PlanInput {
                table: &ds.table,
                engine: Engine::Postgres,
                scope: &scope,
                catalog: &catalog(),
                tz: chrono_tz::Europe::Paris,
            },
        );
        let without = plan_for(Engine::Postgres, &scope, &catalog());
        assert_eq!(with.statements.len(), without.statements.len());
        let scan = &with.statements[0].sql;
        for expr in [
            "avg(\"amount\")",
            "sum(\"amount\")",
            "min(\"amount\")",
            "max(\"amount\")",
            "count(DISTINCT \"customer_id\")",
        ] {
            assert!(scan.contains(expr), "{expr} in {scan}");
        }
        // count(*) and count(customer_id) are shared with the other checks.
        assert_eq!(scan.matches("count(*), ").count(), 1, "{scan}");
        assert_eq!(scan.matches("count(\"customer_id\")").count(), 1, "{scan}");
        // Freshness describes the whole relation: not in a partition's run.
        assert!(
            !with
                .checks
                .iter()
                .any(|c| ds.checks[c.check].name == "a_lag"),
            "{:?}",
            with.checks
        );
        let clickhouse = plan(
            &ds,
            PlanInput {
                table: &ds.table,
                engine: Engine::ClickHouse,
                scope: &scope,
                catalog: &catalog(),
                tz: chrono_tz::Europe::Paris,
            },
        );
        assert!(
            clickhouse.statements[0]
                .sql
                .contains("if(count(`amount`) = 0, NULL, avg(`amount`))"),
            "{}",
            clickhouse.statements[0].sql
        );
    }

    #[test]
    fn whole_relation_postgres() {
        insta::assert_snapshot!(render(&plan_for(
            Engine::Postgres,
            &Scope::Whole,
            &catalog()
        )));
    }

    #[test]
    fn whole_relation_mysql() {
        insta::assert_snapshot!(render(&plan_for(Engine::MySql, &Scope::Whole, &catalog())));
    }

    #[test]
    fn whole_relation_sqlite() {
        insta::assert_snapshot!(render(&plan_for(Engine::Sqlite, &Scope::Whole, &catalog())));
    }

    #[test]
    fn partition_postgres() {
        insta::assert_snapshot!(render(&plan_for(
            Engine::Postgres,
            &Scope::Partition(day("2026-11-20")),
            &catalog()
        )));
    }

    #[test]
    fn whole_relation_clickhouse() {
        insta::assert_snapshot!(render(&plan_for(
            Engine::ClickHouse,
            &Scope::Whole,
            &catalog()
        )));
    }

    #[test]
    fn partition_clickhouse() {
        insta::assert_snapshot!(render(&plan_for(
            Engine::ClickHouse,
            &Scope::Partition(day("2026-11-20")),
            &catalog()
        )));
    }

    #[test]
    fn scheduled_sqlite() {
        insta::assert_snapshot!(render(&plan_for(
            Engine::Sqlite,
            &Scope::Scheduled(day("2026-11-20")),
            &catalog()
        )));
    }

    #[test]
    fn missing_columns_are_left_out_of_the_scan() {
        let catalog: Vec<_> = catalog()
            .into_iter()
            .filter(|c| c.name != "coupon" && c.name != "updated_at")
            .collect();
        insta::assert_snapshot!(render(&plan_for(Engine::Postgres, &Scope::Whole, &catalog)));
    }

    #[test]
    fn zoned_and_text_partition_columns_get_matching_bounds() {
        let mut zoned = catalog();
        zoned[4] = CatalogColumn::new("order_date", "timestamp with time zone");
        let p = plan_for(
            Engine::Postgres,
            &Scope::Partition(day("2026-11-20")),
            &zoned,
        );
        let params = &p.statements[0].params;
        // Midnight in Paris is 23:00 UTC the day before.
        assert_eq!(
            params[0],
            Value::TimestampTz("2026-11-19T23:00:00Z".parse().unwrap())
        );
        assert_eq!(
            params[1],
            Value::TimestampTz("2026-11-20T23:00:00Z".parse().unwrap())
        );

        let mut text = catalog();
        text[4] = CatalogColumn::new("order_date", "TEXT");
        let p = plan_for(Engine::Sqlite, &Scope::Partition(day("2026-11-20")), &text);
        assert_eq!(
            p.statements[0].params,
            vec![
                Value::Text("2026-11-20".into()),
                Value::Text("2026-11-21".into())
            ]
        );
    }

    #[test]
    fn scopes_choose_the_checks_that_run() {
        let ds = orders();
        let now = "2026-11-21T00:30:00Z".parse().unwrap();
        // 01:30 in Paris: yesterday is the latest complete day.
        assert_eq!(
            Scope::scheduled(&ds, now, chrono_tz::Europe::Paris),
            Scope::Scheduled(day("2026-11-20"))
        );
        let freshness = &ds.checks[4];
        let row_count = &ds.checks[0];
        let p = Scope::Partition(day("2026-11-20"));
        assert_eq!(p.target(freshness), None);
        assert_eq!(p.target(row_count), Some(Some(day("2026-11-20"))));
        let s = Scope::Scheduled(day("2026-11-20"));
        assert_eq!(s.target(freshness), Some(None));
        assert_eq!(Scope::Whole.target(row_count), Some(None));
    }

    #[test]
    fn filters_may_use_partition_templates_after_the_partition_bounds() {
        let mut ds = orders();
        ds.checks.truncate(1);
        ds.checks[0].filter = Some("shipped_on < {{ partition_end }}".into());
        let catalog = catalog();
        let scope = Scope::Partition(day("2026-11-20"));
        let input = PlanInput {
            table: &ds.table,
            engine: Engine::Postgres,
            scope: &scope,
            catalog: &catalog,
            tz: chrono_tz::UTC,
        };
        let p = plan(&ds, input);
        assert_eq!(
            p.statements[0].sql,
            "SELECT count(*) FROM \"analytics\".\"orders\" WHERE (\"order_date\" >= $1 AND \"order_date\" < $2) AND (shipped_on < $3)"
        );
        assert_eq!(p.statements[0].params.len(), 3);
    }

    #[test]
    fn a_partition_of_an_unpartitioned_dataset_is_an_error() {
        let mut ds = orders();
        ds.partition = None;
        let catalog = catalog();
        let scope = Scope::Partition(day("2026-11-20"));
        let p = plan(
            &ds,
            PlanInput {
                table: &ds.table,
                engine: Engine::Postgres,
                scope: &scope,
                catalog: &catalog,
                tz: chrono_tz::UTC,
            },
        );
        assert!(p.statements.is_empty());
        match &p.checks[0].read {
            Read::Failed(e) => assert_eq!(
                e.to_string(),
                "dataset `orders` is not partitioned; it has no partition 2026-11-20"
            ),
            other => panic!("{other:?}"),
        }
    }
}
