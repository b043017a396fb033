//! The engine over SQLite, PostgreSQL and MariaDB: the same fixture and the
//! same checks must give the same numbers on every engine.

use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use warden::check::Severity;
use warden::check::kind::{
    ChangeBaseline, CheckKind, DriftAction, Expect, ExpectedColumn, Freshness, FreshnessRule,
    NullRate, RowCount, RowCountChange, Schema, Sql, Unique,
};
use warden::check::{
    Baselines, CheckResult, EvalContext, Observed, Outcome, Scope, evaluate_all, observe,
    run_dataset,
};
use warden::domain::{Granularity, PartitionKey};
use warden::warehouse::WarehouseError;

use crate::support::db::{
    Backend, TestDb, assert_error, check, dataset, ident, ratio, result, warehouse_config,
};

const PARIS: Tz = chrono_tz::Europe::Paris;

fn at(utc: &str) -> DateTime<Utc> {
    utc.parse().expect("instant")
}

/// 14:00 in Paris on 2026-11-20.
fn ctx() -> EvalContext {
    EvalContext {
        now: at("2026-11-20T13:00:00Z"),
        tz: PARIS,
    }
}

fn day(s: &str) -> PartitionKey {
    PartitionKey::parse(s, Granularity::Day).expect("day")
}

/// Six orders over two days: a NULL customer, a duplicate order id, a NULL
/// order id, one negative amount, mostly NULL coupons.
const ORDERS: &str = "
CREATE TABLE {s}.orders (
    order_id BIGINT,
    customer_id INTEGER,
    amount NUMERIC(12,2),
    coupon VARCHAR(20),
    order_date DATE,
    updated_at {TIMESTAMP},
    paid_at {TIMESTAMPTZ}
);
INSERT INTO {s}.orders VALUES
    (1,    10,   5.00,  NULL, '2026-11-19', '2026-11-19 08:00:00', '2026-11-19 07:00:00+00:00'),
    (2,    11,   7.50,  'A',  '2026-11-19', '2026-11-19 09:30:00', '2026-11-19 08:30:00+00:00'),
    (3,    NULL, -1.00, NULL, '2026-11-20', '2026-11-20 10:00:00', '2026-11-20 09:00:00+00:00'),
    (4,    12,   3.00,  'B',  '2026-11-20', '2026-11-20 11:00:00', '2026-11-20 10:00:00+00:00'),
    (4,    12,   3.00,  NULL, '2026-11-20', '2026-11-20 11:30:00', NULL),
    (NULL, 13,   2.00,  NULL, '2026-11-20', '2026-11-20 12:00:00', '2026-11-20 12:00:00+00:00');
";

async fn with_orders(backend: Backend) -> Option<TestDb> {
    let db = TestDb::new(backend).await?;
    db.exec(ORDERS).await;
    Some(db)
}

fn max_lag(column: &str, hours: u64) -> CheckKind {
    CheckKind::Freshness(Freshness {
        column: ident(column),
        rule: FreshnessRule::MaxLag(Duration::from_secs(hours * 3600)),
    })
}

fn sql(query: &str, max: Option<f64>) -> CheckKind {
    CheckKind::Sql(Sql {
        query: query.into(),
        min: None,
        max,
    })
}

/// The aggregate checks and custom SQL most cases use.
fn order_checks() -> Vec<warden::check::CheckSpec> {
    vec![
        check(
            "row_count",
            CheckKind::RowCount(RowCount {
                min: Some(1),
                max: None,
            }),
        ),
        check(
            "null_rate_customer_id",
            CheckKind::NullRate(NullRate {
                column: ident("customer_id"),
                max: ratio(0.0),
            }),
        ),
        warden::check::CheckSpec {
            severity: Severity::Warn,
            ..check(
                "null_rate_coupon",
                CheckKind::NullRate(NullRate {
                    column: ident("coupon"),
                    max: ratio(0.35),
                }),
            )
        },
        check(
            "unique_order_id",
            CheckKind::Unique(Unique {
                columns: vec![ident("order_id")],
                max: 0,
            }),
        ),
        check(
            "unique_order_customer",
            CheckKind::Unique(Unique {
                columns: vec![ident("order_id"), ident("customer_id")],
                max: 0,
            }),
        ),
        check("freshness_updated_at", max_lag("updated_at", 6)),
        check("freshness_paid_at", max_lag("paid_at", 6)),
        check("freshness_order_date", max_lag("order_date", 6)),
        check(
            "negative_amounts",
            sql(
                "SELECT count(*) FROM {{ table }} WHERE amount < 0 AND {{ partition_filter }}",
                Some(0.0),
            ),
        ),
        check(
            "total_amount",
            sql(
                "SELECT sum(amount) FROM {{ table }} WHERE {{ partition_filter }}",
                None,
            ),
        ),
    ]
}

#[track_caller]
fn assert_result(results: &[CheckResult], name: &str, outcome: Outcome, observed: Option<f64>) {
    let r = result(results, name);
    assert_eq!(
        (r.outcome, r.observed),
        (outcome, observed),
        "{name}: {r:#?}"
    );
}

async fn whole_relation_numbers_agree(backend: Backend) {
    let Some(db) = with_orders(backend).await else {
        return;
    };
    let wh = db.warehouse(PARIS);
    let ds = dataset(
        db.table("orders"),
        Some(("order_date", Granularity::Day)),
        order_checks(),
    );
    let results = run_dataset(&ds, &wh, &Scope::Whole, &ctx(), &Baselines::default()).await;

    assert_eq!(results.len(), 10);
    assert_result(&results, "row_count", Outcome::Pass, Some(6.0));
    assert_result(
        &results,
        "null_rate_customer_id",
        Outcome::Fail,
        Some(1.0 / 6.0),
    );
    assert_result(&results, "null_rate_coupon", Outcome::Warn, Some(4.0 / 6.0));
    assert_result(&results, "unique_order_id", Outcome::Fail, Some(1.0));
    assert_result(&results, "unique_order_customer", Outcome::Fail, Some(1.0));
    // 12:00 in Paris is 11:00 UTC: two hours before 13:00 UTC.
    assert_result(
        &results,
        "freshness_updated_at",
        Outcome::Pass,
        Some(7200.0),
    );
    assert_result(&results, "freshness_paid_at", Outcome::Pass, Some(3600.0));
    // A date is the start of its day in Paris: 2026-11-19 23:00 UTC.
    assert_result(
        &results,
        "freshness_order_date",
        Outcome::Fail,
        Some(14.0 * 3600.0),
    );
    assert_result(&results, "negative_amounts", Outcome::Fail, Some(1.0));
    assert_result(&results, "total_amount", Outcome::Pass, Some(19.5));

    let r = result(&results, "null_rate_customer_id");
    assert_eq!(
        r.message,
        "16.67% of 6 rows are NULL in customer_id (max 0%)"
    );
    assert_eq!(r.column.as_deref(), Some("customer_id"));
    assert_eq!(r.partition, None);
    assert_eq!(r.threshold["max"], serde_json::json!(0.0));
    assert_eq!(
        result(&results, "unique_order_id").message,
        "1 duplicate rows over (order_id) among 5 rows with a non-NULL key (max 0)"
    );
    assert_eq!(
        result(&results, "freshness_order_date").message,
        "latest order_date is 14h old (max 6h)"
    );
    assert_eq!(
        result(&results, "negative_amounts").message,
        "returned 1, above the maximum of 0"
    );
    assert_eq!(result(&results, "unique_order_customer").column, None);
    db.cleanup().await;
}

async fn partition_scope_checks_one_day(backend: Backend) {
    let Some(db) = with_orders(backend).await else {
        return;
    };
    let wh = db.warehouse(PARIS);
    let ds = dataset(
        db.table("orders"),
        Some(("order_date", Granularity::Day)),
        order_checks(),
    );
    let scope = Scope::Partition(day("2026-11-20"));
    let results = run_dataset(&ds, &wh, &scope, &ctx(), &Baselines::default()).await;

    // Freshness describes the whole relation and does not run for a partition.
    assert_eq!(results.len(), 7, "{results:#?}");
    assert!(
        results
            .iter()
            .all(|r| r.partition.as_deref() == Some("2026-11-20"))
    );
    assert_result(&results, "row_count", Outcome::Pass, Some(4.0));
    assert_result(&results, "null_rate_customer_id", Outcome::Fail, Some(0.25));
    assert_result(&results, "null_rate_coupon", Outcome::Warn, Some(0.75));
    assert_result(&results, "unique_order_id", Outcome::Fail, Some(1.0));
    assert_result(&results, "unique_order_customer", Outcome::Fail, Some(1.0));
    assert_result(&results, "negative_amounts", Outcome::Fail, Some(1.0));
    assert_result(&results, "total_amount", Outcome::Pass, Some(7.0));

    // A scheduled run adds the whole-relation checks to the same partition.
    let scheduled = Scope::scheduled(&ds, at("2026-11-21T06:00:00Z"), PARIS);
    assert_eq!(scheduled, Scope::Scheduled(day("2026-11-20")));
    let results = run_dataset(&ds, &wh, &scheduled, &ctx(), &Baselines::default()).await;
    assert_eq!(results.len(), 10);
    assert_eq!(result(&results, "freshness_paid_at").partition, None);
    assert_result(&results, "row_count", Outcome::Pass, Some(4.0));
    db.cleanup().await;
}

async fn empty_partition_and_empty_table(backend: Backend) {
    let Some(db) = with_orders(backend).await else {
        return;
    };
    db.exec("CREATE TABLE {s}.empty_orders (order_id BIGINT, customer_id INTEGER, amount NUMERIC(12,2), coupon VARCHAR(20), order_date DATE, updated_at {TIMESTAMP}, paid_at {TIMESTAMPTZ});").await;
    let wh = db.warehouse(PARIS);

    let ds = dataset(
        db.table("orders"),
        Some(("order_date", Granularity::Day)),
        order_checks(),
    );
    let results = run_dataset(
        &ds,
        &wh,
        &Scope::Partition(day("2026-11-22")),
        &ctx(),
        &Baselines::default(),
    )
    .await;
    assert_result(&results, "row_count", Outcome::Fail, Some(0.0));
    assert_eq!(
        result(&results, "row_count").message,
        "0 rows, below the minimum of 1"
    );
    assert_result(&results, "null_rate_customer_id", Outcome::Pass, Some(0.0));
    assert_eq!(
        result(&results, "null_rate_customer_id").message,
        "rows=0: no rows, so no NULLs in customer_id"
    );
    assert_result(&results, "unique_order_id", Outcome::Pass, Some(0.0));
    assert_result(&results, "unique_order_customer", Outcome::Pass, Some(0.0));
    assert_result(&results, "negative_amounts", Outcome::Pass, Some(0.0));
    // SUM over no rows is NULL: an error, never a pass.
    let total = result(&results, "total_amount");
    assert_eq!(total.outcome, Outcome::Error);
    assert_eq!(
        total.message,
        "the query returned NULL; it must return a number"
    );

    let ds = dataset(db.table("empty_orders"), None, order_checks());
    let results = run_dataset(&ds, &wh, &Scope::Whole, &ctx(), &Baselines::default()).await;
    assert_result(&results, "row_count", Outcome::Fail, Some(0.0));
    assert_result(&results, "null_rate_coupon", Outcome::Pass, Some(0.0));
    assert_result(&results, "unique_order_id", Outcome::Pass, Some(0.0));
    for name in [
        "freshness_updated_at",
        "freshness_paid_at",
        "freshness_order_date",
    ] {
        let r = result(&results, name);
        assert_eq!(r.outcome, Outcome::Fail, "{r:#?}");
        assert!(r.message.contains("no value"), "{r:#?}");
    }
    db.cleanup().await;
}

async fn all_null_columns(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    db.exec(
        "CREATE TABLE {s}.blank (id INTEGER, note VARCHAR(10), seen_at {TIMESTAMP});
         INSERT INTO {s}.blank VALUES (1, NULL, NULL), (2, NULL, NULL), (3, NULL, NULL);",
    )
    .await;
    let wh = db.warehouse(PARIS);
    let ds = dataset(
        db.table("blank"),
        None,
        vec![
            check(
                "null_rate_note",
                CheckKind::NullRate(NullRate {
                    column: ident("note"),
                    max: ratio(0.5),
                }),
            ),
            check("freshness_seen_at", max_lag("seen_at", 1)),
            check(
                "unique_note",
                CheckKind::Unique(Unique {
                    columns: vec![ident("note")],
                    max: 0,
                }),
            ),
            check(
                "unique_pair",
                CheckKind::Unique(Unique {
                    columns: vec![ident("id"), ident("note")],
                    max: 0,
                }),
            ),
        ],
    );
    let results = run_dataset(&ds, &wh, &Scope::Whole, &ctx(), &Baselines::default()).await;
    assert_result(&results, "null_rate_note", Outcome::Fail, Some(1.0));
    assert_eq!(
        result(&results, "null_rate_note").message,
        "100% of 3 rows are NULL in note (max 50%)"
    );
    assert_result(&results, "freshness_seen_at", Outcome::Fail, None);
    // Rows with a NULL in the key are left out of uniqueness.
    assert_result(&results, "unique_note", Outcome::Pass, Some(0.0));
    assert_result(&results, "unique_pair", Outcome::Pass, Some(0.0));
    db.cleanup().await;
}

async fn freshness_deadlines(backend: Backend) {
    let Some(db) = with_orders(backend).await else {
        return;
    };
    let wh = db.warehouse(PARIS);
    let deadline = |expect| {
        CheckKind::Freshness(Freshness {
            column: ident("order_date"),
            rule: FreshnessRule::Deadline {
                by: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
                expect,
            },
        })
    };
    let ds = dataset(
        db.table("orders"),
        None,
        vec![
            check("by_yesterday", deadline(Expect::Yesterday)),
            check("by_today", deadline(Expect::Today)),
        ],
    );
    let observations = observe(&ds, &wh, &Scope::Whole, PARIS).await;

    // 2026-11-21 07:30 in Paris: before the deadline, 2026-11-19 is enough for "yesterday".
    let early = EvalContext {
        now: at("2026-11-21T06:30:00Z"),
        tz: PARIS,
    };
    let results = evaluate_all(&ds, &observations, &Baselines::default(), &early);
    assert_eq!(result(&results, "by_yesterday").outcome, Outcome::Pass);
    assert_eq!(result(&results, "by_today").outcome, Outcome::Pass);

    // 08:30 in Paris: yesterday (2026-11-20) is due and present; today is not.
    let late = EvalContext {
        now: at("2026-11-21T07:30:00Z"),
        tz: PARIS,
    };
    let results = evaluate_all(&ds, &observations, &Baselines::default(), &late);
    assert_eq!(result(&results, "by_yesterday").outcome, Outcome::Pass);
    let today = result(&results, "by_today");
    assert_eq!(today.outcome, Outcome::Fail);
    assert!(
        today.message.starts_with(
            "latest order_date is 2026-11-20, before the expected 2026-11-21 (since 08:00 (Europe/Paris))"
        ),
        "{}",
        today.message
    );
    assert_eq!(
        today.threshold["expected_date"],
        serde_json::json!("2026-11-21")
    );

    // A day later, after the deadline, yesterday's data (2026-11-21) is missing.
    let next = EvalContext {
        now: at("2026-11-22T09:00:00Z"),
        tz: PARIS,
    };
    let results = evaluate_all(&ds, &observations, &Baselines::default(), &next);
    assert_eq!(result(&results, "by_yesterday").outcome, Outcome::Fail);
    db.cleanup().await;
}

async fn missing_table_errors_every_check(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let wh = db.warehouse(PARIS);
    let table = db.table("nope");
    let mut checks = order_checks();
    checks.push(schema_check(None));
    let ds = dataset(
        table.clone(),
        Some(("order_date", Granularity::Day)),
        checks,
    );
    let before = wh.statement_count();
    let results = run_dataset(&ds, &wh, &Scope::Whole, &ctx(), &Baselines::default()).await;
    assert_eq!(wh.statement_count() - before, 1, "only the catalog is read");
    assert_eq!(results.len(), 11);
    for r in &results {
        assert_eq!(r.outcome, Outcome::Error, "{r:#?}");
        assert_eq!(r.message, format!("table {table} does not exist"));
        assert_eq!(r.observed, None);
    }
    db.cleanup().await;
}

async fn missing_column_spares_the_rest_of_the_scan(backend: Backend) {
    let Some(db) = with_orders(backend).await else {
        return;
    };
    let wh = db.warehouse(PARIS);
    let table = db.table("orders");
    let ds = dataset(
        table.clone(),
        None,
        vec![
            check(
                "row_count",
                CheckKind::RowCount(RowCount {
                    min: Some(1),
                    max: None,
                }),
            ),
            check(
                "null_rate_nope",
                CheckKind::NullRate(NullRate {
                    column: ident("nope"),
                    max: ratio(0.0),
                }),
            ),
            check("freshness_gone", max_lag("gone_at", 1)),
            check(
                "unique_pair",
                CheckKind::Unique(Unique {
                    columns: vec![ident("order_id"), ident("nope")],
                    max: 0,
                }),
            ),
            check(
                "null_rate_customer_id",
                CheckKind::NullRate(NullRate {
                    column: ident("customer_id"),
                    max: ratio(0.5),
                }),
            ),
        ],
    );
    let before = wh.statement_count();
    let results = run_dataset(&ds, &wh, &Scope::Whole, &ctx(), &Baselines::default()).await;
    assert_eq!(wh.statement_count() - before, 2, "catalog and one scan");
    assert_result(&results, "row_count", Outcome::Pass, Some(6.0));
    assert_result(
        &results,
        "null_rate_customer_id",
        Outcome::Pass,
        Some(1.0 / 6.0),
    );
    for (name, column) in [
        ("null_rate_nope", "nope"),
        ("freshness_gone", "gone_at"),
        ("unique_pair", "nope"),
    ] {
        let r = result(&results, name);
        assert_eq!(r.outcome, Outcome::Error);
        assert_eq!(
            r.message,
            format!("column `{column}` does not exist in {table}")
        );
    }
    db.cleanup().await;
}

async fn custom_sql_templates(backend: Backend) {
    let Some(db) = with_orders(backend).await else {
        return;
    };
    let wh = db.warehouse(PARIS);
    let ds = dataset(
        db.table("orders"),
        Some(("order_date", Granularity::Day)),
        vec![
            check(
                "bounds",
                sql(
                    "SELECT count(*) FROM {{ table }} WHERE order_date >= {{ partition_start }} AND order_date < {{partition_end}}",
                    Some(10.0),
                ),
            ),
            check(
                "exact_day",
                sql(
                    "SELECT count(*) FROM {{ table }} WHERE order_date = {{ partition }}",
                    None,
                ),
            ),
            check("typo", sql("SELECT count(*) FROM {{ tabel }}", None)),
            check(
                "quoted",
                sql(
                    "SELECT count(*) FROM {{ table }} WHERE order_date = '{{ partition }}'",
                    None,
                ),
            ),
            check(
                "no_rows",
                sql("SELECT amount FROM {{ table }} WHERE 1 = 0", None),
            ),
            check("many_rows", sql("SELECT amount FROM {{ table }}", None)),
            check(
                "text",
                sql("SELECT coupon FROM {{ table }} WHERE coupon = 'A'", None),
            ),
            check(
                "broken",
                sql(
                    "SELECT count(*) FROM {{ table }} WHERE no_such_column > 0",
                    None,
                ),
            ),
            check(
                "filtered",
                warden::check::CheckKind::RowCount(RowCount {
                    min: None,
                    max: Some(1),
                }),
            ),
        ],
    );
    let mut ds = ds;
    ds.checks.last_mut().unwrap().filter = Some("amount > 6".into());
    let results = run_dataset(
        &ds,
        &wh,
        &Scope::Partition(day("2026-11-19")),
        &ctx(),
        &Baselines::default(),
    )
    .await;
    assert_result(&results, "bounds", Outcome::Pass, Some(2.0));
    assert_result(&results, "exact_day", Outcome::Pass, Some(2.0));
    assert_result(&results, "filtered", Outcome::Pass, Some(1.0));
    let expect_error = |name: &str, message: &str| {
        let r = result(&results, name);
        assert_eq!(r.outcome, Outcome::Error, "{r:#?}");
        assert!(
            r.message.contains(message),
            "{name}: {:?} does not contain {message:?}",
            r.message
        );
    };
    expect_error("typo", "unknown template `{{ tabel }}`");
    expect_error("quoted", "inside a quoted string");
    expect_error(
        "no_rows",
        "the query returned no rows; it must return one row",
    );
    expect_error(
        "many_rows",
        "the query returned 6 rows; it must return one row",
    );
    expect_error(
        "text",
        "the query returned the text `A`; it must return a number",
    );
    expect_error("broken", "no_such_column");

    // Over the whole relation, the partition filter is always true and
    // partition values are not available.
    let results = run_dataset(&ds, &wh, &Scope::Whole, &ctx(), &Baselines::default()).await;
    assert_error(&results, "exact_day", "`{{ partition }}` needs a partition");
    assert_eq!(result(&results, "bounds").outcome, Outcome::Error);
    db.cleanup().await;
}

/// A `sql` check must return one finite number: NaN, ±infinity, text that
/// is not a number, several columns or rows (or none) are errors that say
/// which, never a pass.
async fn sql_values_that_must_not_pass(backend: Backend) {
    let Some(db) = with_orders(backend).await else {
        return;
    };
    let wh = db.warehouse(PARIS);
    let one_row = "FROM {{ table }} WHERE order_id = 1";
    let mut cases = vec![
        (
            "nan_text",
            format!("SELECT 'NaN' {one_row}"),
            "returned NaN",
        ),
        (
            "infinity_text",
            format!("SELECT 'Infinity' {one_row}"),
            "returned infinity",
        ),
        (
            "minus_infinity_text",
            format!("SELECT '-inf' {one_row}"),
            "returned -infinity",
        ),
        (
            "not_a_number",
            format!("SELECT '12 rows' {one_row}"),
            "returned the text `12 rows`; it must return a number",
        ),
        (
            "two_columns",
            format!("SELECT count(*), 1 {one_row}"),
            "returned 2 columns; it must return one column",
        ),
        (
            "two_rows",
            "SELECT order_id FROM {{ table }} WHERE order_id < 3".to_owned(),
            "returned 2 rows; it must return one row",
        ),
        (
            "no_rows",
            "SELECT order_id FROM {{ table }} WHERE order_id > 100".to_owned(),
            "returned no rows; it must return one row",
        ),
    ];
    // Numbers the engine itself computes as NaN or infinite.
    match backend {
        Backend::Postgres => {
            cases.push((
                "nan_native",
                format!("SELECT 'NaN'::float8 {one_row}"),
                "returned NaN",
            ));
            cases.push((
                "infinity_native",
                format!("SELECT '-Infinity'::float8 {one_row}"),
                "returned -infinity",
            ));
        }
        Backend::Sqlite => cases.push((
            "infinity_native",
            format!("SELECT 9e999 {one_row}"),
            "returned infinity",
        )),
        Backend::MySql | Backend::ClickHouse => {}
    }
    let ds = dataset(
        db.table("orders"),
        None,
        cases
            .iter()
            .map(|(name, query, _)| check(name, sql(query, Some(1e9))))
            .collect(),
    );
    let results = run_dataset(&ds, &wh, &Scope::Whole, &ctx(), &Baselines::default()).await;
    for (name, _, message) in &cases {
        assert_error(&results, name, message);
        assert_eq!(result(&results, name).observed, None, "{name}");
    }
    db.cleanup().await;
}

async fn injected_partition_values_never_reach_sql(backend: Backend) {
    let Some(db) = with_orders(backend).await else {
        return;
    };
    let wh = db.warehouse(PARIS);
    let hostile = "2026-11-20'; DROP TABLE x; --";
    let err = PartitionKey::parse(hostile, Granularity::Day).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("invalid partition `{hostile}`: expected a day like 2026-11-20")
    );
    // The value that does parse is bound, so the table is intact and counted.
    let ds = dataset(
        db.table("orders"),
        Some(("order_date", Granularity::Day)),
        vec![check(
            "row_count",
            CheckKind::RowCount(RowCount {
                min: Some(1),
                max: None,
            }),
        )],
    );
    let results = run_dataset(
        &ds,
        &wh,
        &Scope::Partition(day("2026-11-20")),
        &ctx(),
        &Baselines::default(),
    )
    .await;
    assert_result(&results, "row_count", Outcome::Pass, Some(4.0));
    db.cleanup().await;
}

async fn hour_partitions(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    db.exec(
        "CREATE TABLE {s}.events (id INTEGER, happened_at {TIMESTAMP});
         INSERT INTO {s}.events VALUES
            (1, '2026-11-20 12:59:59'), (2, '2026-11-20 13:00:00'), (3, '2026-11-20 13:30:00'),
            (4, '2026-11-20 13:59:59'), (5, '2026-11-20 14:00:00');",
    )
    .await;
    let wh = db.warehouse(PARIS);
    let ds = dataset(
        db.table("events"),
        Some(("happened_at", Granularity::Hour)),
        vec![check(
            "row_count",
            CheckKind::RowCount(RowCount {
                min: Some(1),
                max: None,
            }),
        )],
    );
    let hour = PartitionKey::parse("2026-11-20T13", Granularity::Hour).unwrap();
    let results = run_dataset(
        &ds,
        &wh,
        &Scope::Partition(hour),
        &ctx(),
        &Baselines::default(),
    )
    .await;
    assert_result(&results, "row_count", Outcome::Pass, Some(3.0));
    assert_eq!(
        result(&results, "row_count").partition.as_deref(),
        Some("2026-11-20T13")
    );
    // A day key for an hourly dataset is refused, not guessed at.
    let results = run_dataset(
        &ds,
        &wh,
        &Scope::Partition(day("2026-11-20")),
        &ctx(),
        &Baselines::default(),
    )
    .await;
    assert_eq!(result(&results, "row_count").outcome, Outcome::Error);
    db.cleanup().await;
}

async fn zoned_partition_column_uses_local_days(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    db.exec(
        "CREATE TABLE {s}.payments (id INTEGER, paid_at {TIMESTAMPTZ});
         INSERT INTO {s}.payments VALUES
            (1, '2026-11-19 22:45:00+00:00'), (2, '2026-11-19 23:15:00+00:00'), (3, '2026-11-19 23:45:00+00:00'),
            (4, '2026-11-20 12:00:00+00:00'), (5, '2026-11-20 23:00:00+00:00');",
    )
    .await;
    let wh = db.warehouse(PARIS);
    let ds = dataset(
        db.table("payments"),
        Some(("paid_at", Granularity::Day)),
        vec![check(
            "row_count",
            CheckKind::RowCount(RowCount {
                min: None,
                max: None,
            }),
        )],
    );
    // Local day 2026-11-20 in Paris is [2026-11-19 23:00Z, 2026-11-20 23:00Z):
    // rows 2, 3 and 4 (the UTC day would hold only row 4 and row 5).
    let results = run_dataset(
        &ds,
        &wh,
        &Scope::Partition(day("2026-11-20")),
        &ctx(),
        &Baselines::default(),
    )
    .await;
    assert_result(&results, "row_count", Outcome::Pass, Some(3.0));
    db.cleanup().await;
}

fn schema_check(columns: Option<Vec<ExpectedColumn>>) -> warden::check::CheckSpec {
    check(
        "schema",
        CheckKind::Schema(Schema {
            columns,
            on_added: DriftAction::Warn,
            on_removed: DriftAction::Fail,
            on_type_changed: DriftAction::Fail,
        }),
    )
}

fn expected(name: &str, data_type: Option<&str>) -> ExpectedColumn {
    ExpectedColumn {
        name: name.into(),
        data_type: data_type.map(str::to_owned),
    }
}

async fn schema_against_expected_columns(backend: Backend) {
    let Some(db) = with_orders(backend).await else {
        return;
    };
    let wh = db.warehouse(PARIS);
    let all = || {
        vec![
            expected("order_id", Some("bigint")),
            expected("customer_id", Some("integer")),
            expected("amount", Some("numeric")),
            expected("coupon", Some("text")),
            expected("order_date", Some("date")),
            expected("updated_at", Some("timestamp")),
            expected("paid_at", None),
        ]
    };
    let ds = dataset(db.table("orders"), None, vec![schema_check(Some(all()))]);
    let results = run_dataset(&ds, &wh, &Scope::Whole, &ctx(), &Baselines::default()).await;
    assert_result(&results, "schema", Outcome::Pass, Some(0.0));
    assert_eq!(
        result(&results, "schema").message,
        "7 columns match the expected schema"
    );

    // Added column only: a warning.
    let mut fewer = all();
    fewer.retain(|c| c.name != "coupon");
    let ds = dataset(db.table("orders"), None, vec![schema_check(Some(fewer))]);
    let results = run_dataset(&ds, &wh, &Scope::Whole, &ctx(), &Baselines::default()).await;
    assert_result(&results, "schema", Outcome::Warn, Some(1.0));
    assert_eq!(
        result(&results, "schema").message,
        "1 difference from the expected schema: column `coupon` (text) was added"
    );

    // Removed and retyped columns fail, and every difference is listed.
    let mut changed = all();
    changed.push(expected("discount", Some("numeric")));
    changed[0] = expected("order_id", Some("integer"));
    let ds = dataset(db.table("orders"), None, vec![schema_check(Some(changed))]);
    let results = run_dataset(&ds, &wh, &Scope::Whole, &ctx(), &Baselines::default()).await;
    assert_result(&results, "schema", Outcome::Fail, Some(2.0));
    assert_eq!(
        result(&results, "schema").message,
        "2 differences from the expected schema: column `order_id` changed type from integer to bigint; \
         column `discount` was removed"
    );
    db.cleanup().await;
}

async fn schema_against_stored_baseline(backend: Backend) {
    let Some(db) = with_orders(backend).await else {
        return;
    };
    let wh = db.warehouse(PARIS);
    let ds = dataset(db.table("orders"), None, vec![schema_check(None)]);

    let first = observe(&ds, &wh, &Scope::Whole, PARIS).await;
    let results = evaluate_all(&ds, &first, &Baselines::default(), &ctx());
    assert_result(&results, "schema", Outcome::Pass, Some(0.0));
    assert_eq!(
        result(&results, "schema").message,
        "no baseline yet; the current schema (7 columns) becomes the baseline"
    );

    // The caller stores the first seen schema as the baseline.
    let Ok(Observed::Columns { columns }) = &first.observations[0].value else {
        panic!("{first:#?}")
    };
    let mut baselines = Baselines::default();
    baselines
        .schemas
        .insert(ds.checks[0].id.clone(), columns.clone());

    db.exec("ALTER TABLE {s}.orders ADD COLUMN channel VARCHAR(10)")
        .await;
    let second = observe(&ds, &wh, &Scope::Whole, PARIS).await;
    let results = evaluate_all(&ds, &second, &baselines, &ctx());
    assert_result(&results, "schema", Outcome::Warn, Some(1.0));
    assert_eq!(
        result(&results, "schema").message,
        "1 difference from the baseline: column `channel` (text) was added"
    );
    db.cleanup().await;
}

async fn row_count_change_against_baseline(backend: Backend) {
    let Some(db) = with_orders(backend).await else {
        return;
    };
    let wh = db.warehouse(PARIS);
    let ds = dataset(
        db.table("orders"),
        None,
        vec![check(
            "row_count_change",
            CheckKind::RowCountChange(RowCountChange {
                vs: ChangeBaseline::Week,
                max_drop: Some(ratio(0.3)),
                max_growth: Some(ratio(2.0)),
            }),
        )],
    );
    let observations = observe(&ds, &wh, &Scope::Whole, PARIS).await;
    let results = evaluate_all(&ds, &observations, &Baselines::default(), &ctx());
    assert_result(&results, "row_count_change", Outcome::Pass, None);
    assert!(
        result(&results, "row_count_change")
            .message
            .starts_with("no baseline yet")
    );

    let mut baselines = Baselines::default();
    baselines.row_counts.insert(ds.checks[0].id.clone(), 10.0);
    let results = evaluate_all(&ds, &observations, &baselines, &ctx());
    assert_result(&results, "row_count_change", Outcome::Fail, Some(-0.4));
    assert_eq!(
        result(&results, "row_count_change").message,
        "6 rows, -40% vs 10 7 days earlier: dropped more than 30%"
    );

    baselines.row_counts.insert(ds.checks[0].id.clone(), 5.0);
    let results = evaluate_all(&ds, &observations, &baselines, &ctx());
    assert_result(&results, "row_count_change", Outcome::Pass, Some(0.2));
    db.cleanup().await;
}

async fn unqualified_tables_use_the_default_schema(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let wh = db.warehouse(PARIS);
    let name = format!("orders_default_{}", std::process::id());
    db.exec(&format!(
        "CREATE TABLE {name} (id INTEGER); INSERT INTO {name} VALUES (1), (2);"
    ))
    .await;
    let table = warden::domain::TableRef::parse(&name).unwrap();
    let columns = wh.columns(&table).await.unwrap().expect("table found");
    assert_eq!(columns.len(), 1);
    assert_eq!(columns[0].data_type, "integer");
    let ds = dataset(
        table,
        None,
        vec![check(
            "row_count",
            CheckKind::RowCount(RowCount {
                min: Some(1),
                max: None,
            }),
        )],
    );
    let results = run_dataset(&ds, &wh, &Scope::Whole, &ctx(), &Baselines::default()).await;
    assert_result(&results, "row_count", Outcome::Pass, Some(2.0));
    db.exec(&format!("DROP TABLE {name}")).await;
    db.cleanup().await;
}

on_every_engine!(
    whole_relation_numbers_agree,
    partition_scope_checks_one_day,
    empty_partition_and_empty_table,
    all_null_columns,
    freshness_deadlines,
    missing_table_errors_every_check,
    missing_column_spares_the_rest_of_the_scan,
    custom_sql_templates,
    sql_values_that_must_not_pass,
    injected_partition_values_never_reach_sql,
    hour_partitions,
    zoned_partition_column_uses_local_days,
    schema_against_expected_columns,
    schema_against_stored_baseline,
    row_count_change_against_baseline,
    unqualified_tables_use_the_default_schema,
);

// ---- engine-specific cases ----

/// ~8 aggregate checks + a schema check + one custom SQL check cost exactly
/// one catalog read, one scan and one SQL statement.
#[tokio::test]
async fn postgres_runs_a_dataset_in_three_statements() {
    let Some(db) = with_orders(Backend::Postgres).await else {
        return;
    };
    let wh = db.warehouse(PARIS);
    let checks = vec![
        check(
            "row_count",
            CheckKind::RowCount(RowCount {
                min: Some(1),
                max: None,
            }),
        ),
        check(
            "row_count_change",
            CheckKind::RowCountChange(RowCountChange {
                vs: ChangeBaseline::Day,
                max_drop: Some(ratio(0.5)),
                max_growth: None,
            }),
        ),
        check(
            "null_rate_customer_id",
            CheckKind::NullRate(NullRate {
                column: ident("customer_id"),
                max: ratio(0.0),
            }),
        ),
        check(
            "null_rate_coupon",
            CheckKind::NullRate(NullRate {
                column: ident("coupon"),
                max: ratio(0.9),
            }),
        ),
        check(
            "null_rate_amount",
            CheckKind::NullRate(NullRate {
                column: ident("amount"),
                max: ratio(0.0),
            }),
        ),
        check("freshness_updated_at", max_lag("updated_at", 6)),
        check("freshness_paid_at", max_lag("paid_at", 6)),
        check(
            "unique_order_id",
            CheckKind::Unique(Unique {
                columns: vec![ident("order_id")],
                max: 0,
            }),
        ),
        check(
            "unique_order_customer",
            CheckKind::Unique(Unique {
                columns: vec![ident("order_id"), ident("customer_id")],
                max: 0,
            }),
        ),
        schema_check(None),
        check(
            "negative_amounts",
            sql(
                "SELECT count(*) FROM {{ table }} WHERE amount < 0",
                Some(0.0),
            ),
        ),
    ];
    let ds = dataset(db.table("orders"), None, checks);
    let before = wh.statement_count();
    let observations = observe(&ds, &wh, &Scope::Whole, PARIS).await;
    assert_eq!(
        wh.statement_count() - before,
        3,
        "1 catalog read + 1 scan + 1 sql statement"
    );
    assert_eq!(observations.statements, 3);
    let results = evaluate_all(&ds, &observations, &Baselines::default(), &ctx());
    assert_eq!(results.len(), 11);
    assert!(
        results.iter().all(|r| r.outcome != Outcome::Error),
        "{results:#?}"
    );
    db.cleanup().await;
}

async fn slow_query_times_out(backend: Backend, sleep: &str) {
    let Some(db) = with_orders(backend).await else {
        return;
    };
    let wh = db.warehouse_with_timeout(PARIS, Duration::from_secs(1));
    let ds = dataset(
        db.table("orders"),
        None,
        vec![check("slow", sql(sleep, None))],
    );
    let started = std::time::Instant::now();
    let results = run_dataset(&ds, &wh, &Scope::Whole, &ctx(), &Baselines::default()).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "gave up in time"
    );
    let r = result(&results, "slow");
    assert_eq!(
        (r.outcome, r.message.as_str()),
        (Outcome::Error, "query timed out after 1s")
    );
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_slow_query_times_out() {
    slow_query_times_out(
        Backend::Postgres,
        "SELECT count(*) FROM (SELECT pg_sleep(5)) AS s",
    )
    .await;
}

#[tokio::test]
async fn mysql_slow_query_times_out() {
    slow_query_times_out(
        Backend::MySql,
        "SELECT count(*) FROM (SELECT SLEEP(5) AS s) AS t",
    )
    .await;
}

async fn unreachable_warehouse_is_an_error(url: &str) {
    let cfg = warehouse_config(url, Duration::from_secs(2));
    let wh = warden::warehouse::Warehouse::connect(&cfg, PARIS).unwrap();
    let ds = dataset(
        warden::domain::TableRef::parse("analytics.orders").unwrap(),
        None,
        vec![check(
            "row_count",
            CheckKind::RowCount(RowCount {
                min: Some(1),
                max: None,
            }),
        )],
    );
    let observations = observe(&ds, &wh, &Scope::Whole, PARIS).await;
    let err = observations.catalog.as_ref().unwrap_err();
    assert!(matches!(err, WarehouseError::Unavailable { .. }), "{err:?}");
    assert!(err.is_transient());
    let results = evaluate_all(&ds, &observations, &Baselines::default(), &ctx());
    let r = result(&results, "row_count");
    assert_eq!(r.outcome, Outcome::Error);
    assert!(
        r.message.starts_with("warehouse `main` unavailable: "),
        "{}",
        r.message
    );
}

/// Nothing listens on port 1 of the loopback address: the connection is refused.
#[tokio::test]
async fn postgres_unreachable_warehouse_is_an_error() {
    unreachable_warehouse_is_an_error("postgres://warden@127.0.0.1:1/test").await;
}

#[tokio::test]
async fn mysql_unreachable_warehouse_is_an_error() {
    unreachable_warehouse_is_an_error("mysql://warden@127.0.0.1:1/test").await;
}

#[tokio::test]
async fn sqlite_missing_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("missing.db").display());
    unreachable_warehouse_is_an_error(&url).await;
}

// ---- connection errors that say what to check ----

/// The reason a statement on `url` fails with, through the pool as checks
/// run them (a 2 s query timeout).
async fn unavailable_reason(url: &str) -> String {
    let cfg = warehouse_config(url, Duration::from_secs(2));
    let wh = warden::warehouse::Warehouse::connect(&cfg, PARIS).unwrap();
    let err = wh.fetch_all("SELECT 1", &[]).await.unwrap_err();
    wh.close().await;
    match err {
        WarehouseError::Unavailable { warehouse, reason } => {
            assert_eq!(warehouse, "main");
            reason
        }
        other => panic!("{url}: not unavailable: {other:?}"),
    }
}

/// `WARDEN_TEST_<ENGINE>_URL` with its user, password or database changed.
fn server_url(var: &str, edit: impl FnOnce(&mut url::Url)) -> Option<url::Url> {
    let mut url = url::Url::parse(&crate::support::db::env_url(var)?).expect("a URL");
    edit(&mut url);
    Some(url)
}

/// `host:port` of a server URL.
fn address(url: &url::Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap(),
        url.port_or_known_default().unwrap_or(match url.scheme() {
            "mysql" => 3306,
            _ => 5432,
        })
    )
}

#[tokio::test]
async fn a_refused_connection_names_the_host_and_port() {
    let port = crate::support::agent::free_port();
    for scheme in ["postgres", "mysql"] {
        let url = format!("{scheme}://warden:hunter2@127.0.0.1:{port}/shop");
        let reason = unavailable_reason(&url).await;
        assert_eq!(
            reason,
            format!(
                "connection refused by 127.0.0.1:{port} ({scheme}://warden:***@127.0.0.1:{port}/shop); \
                 check that the server runs and listens on that host and port"
            )
        );
    }
}

#[tokio::test]
async fn a_host_that_does_not_resolve_is_named() {
    for scheme in ["postgres", "mysql"] {
        let url = format!("{scheme}://warden@warehouse.invalid/shop");
        let reason = unavailable_reason(&url).await;
        assert_eq!(
            reason,
            format!("host `warehouse.invalid` not found ({url}); check the host name in the URL")
        );
    }
}

#[tokio::test]
async fn postgres_an_unknown_role_is_an_authentication_failure() {
    let Some(url) = server_url("WARDEN_TEST_POSTGRES_URL", |u| {
        u.set_username("warden_no_such_role").unwrap();
        u.set_password(Some("hunter2")).unwrap();
    }) else {
        return;
    };
    let reason = unavailable_reason(url.as_str()).await;
    let shown = warden::domain::redact_url(url.as_str());
    assert!(
        reason.starts_with(&format!(
            "authentication failed for user `warden_no_such_role` ({shown}): "
        )),
        "{reason}"
    );
    assert!(reason.contains("warden_no_such_role"), "{reason}");
    assert!(
        reason.ends_with("; check the user name and the password"),
        "{reason}"
    );
    assert!(!reason.contains("hunter2"), "{reason}");
}

#[tokio::test]
async fn mysql_a_wrong_password_is_an_authentication_failure() {
    let Some(url) = server_url("WARDEN_TEST_MYSQL_URL", |u| {
        u.set_password(Some("wrong-hunter2")).unwrap();
    }) else {
        return;
    };
    let reason = unavailable_reason(url.as_str()).await;
    let user = url.username().to_owned();
    assert!(
        reason.starts_with(&format!(
            "authentication failed for user `{user}` ({}): Access denied for user",
            warden::domain::redact_url(url.as_str())
        )),
        "{reason}"
    );
    assert!(
        reason.ends_with("; check the user name and the password"),
        "{reason}"
    );
    assert!(!reason.contains("wrong-hunter2"), "{reason}");
}

#[tokio::test]
async fn a_missing_database_is_named() {
    for var in ["WARDEN_TEST_POSTGRES_URL", "WARDEN_TEST_MYSQL_URL"] {
        let Some(url) = server_url(var, |u| u.set_path("/warden_no_such_db")) else {
            continue;
        };
        let reason = unavailable_reason(url.as_str()).await;
        assert_eq!(
            reason,
            format!(
                "database `warden_no_such_db` does not exist on {} ({}); \
                 check the database name in the URL",
                address(&url),
                warden::domain::redact_url(url.as_str())
            ),
            "{var}"
        );
    }
}

#[tokio::test]
async fn a_missing_sqlite_file_is_named_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.db");
    let url = format!("sqlite://{}", path.display());
    let reason = unavailable_reason(&url).await;
    assert_eq!(
        reason,
        format!(
            "no database file at {} ({url}); check the path \
             (warden opens it read-only and never creates it)",
            path.display()
        )
    );
    assert!(!path.exists());
}

/// MariaDB-specific types decode to the same values: unsigned BIGINT,
/// DECIMAL sums, TINYINT(1), DATETIME and TIMESTAMP.
#[tokio::test]
async fn mysql_types_decode() {
    let Some(db) = TestDb::new(Backend::MySql).await else {
        return;
    };
    db.exec(
        "CREATE TABLE {s}.typed (big BIGINT UNSIGNED, flag TINYINT(1), price DECIMAL(10,3), at_local DATETIME, at_zoned TIMESTAMP NULL);
         INSERT INTO {s}.typed VALUES (18446744073709551615, 1, 1.250, '2026-11-20 12:00:00', '2026-11-20 12:00:00'),
                                      (7, 0, 2.500, '2026-11-20 11:00:00', '2026-11-20 11:00:00');",
    )
    .await;
    let wh = db.warehouse(PARIS);
    let t = db.table("typed");
    let rows = wh
        .fetch_all(&format!("SELECT max(big), min(big), sum(price), max(flag), max(at_local), max(at_zoned) FROM {}", db.engine().dialect().table(&t)), &[])
        .await
        .unwrap();
    use warden::warehouse::Value;
    assert_eq!(
        rows[0],
        vec![
            Value::Float(18446744073709551615.0),
            Value::Int(7),
            Value::Float(3.75),
            Value::Int(1),
            Value::Timestamp("2026-11-20T12:00:00".parse().unwrap()),
            Value::TimestampTz(at("2026-11-20T12:00:00Z")),
        ]
    );
    let columns = wh.columns(&t).await.unwrap().unwrap();
    let types: Vec<&str> = columns.iter().map(|c| c.data_type.as_str()).collect();
    assert_eq!(
        types,
        ["bigint", "boolean", "numeric", "timestamp", "timestamp"]
    );
    db.cleanup().await;
}

/// PostgreSQL-specific types decode: int2/int4/int8, numeric, float4/8,
/// text, date, timestamp, timestamptz; sessions run in the agent's zone.
#[tokio::test]
async fn postgres_types_decode() {
    let Some(db) = TestDb::new(Backend::Postgres).await else {
        return;
    };
    let wh = db.warehouse(PARIS);
    let rows = wh
        .fetch_all(
            "SELECT 1::int2, 2::int4, 3::int8, 1.25::numeric, 0.5::float4, 0.25::float8, 'x'::text, 'y'::varchar, \
             DATE '2026-11-20', TIMESTAMP '2026-11-20 12:00:00', TIMESTAMPTZ '2026-11-20 12:00:00+00', \
             current_setting('TimeZone'), NULL::int4, true",
            &[],
        )
        .await
        .unwrap();
    use warden::warehouse::Value;
    assert_eq!(
        rows[0],
        vec![
            Value::Int(1),
            Value::Int(2),
            Value::Int(3),
            Value::Float(1.25),
            Value::Float(0.5),
            Value::Float(0.25),
            Value::Text("x".into()),
            Value::Text("y".into()),
            Value::Date("2026-11-20".parse().unwrap()),
            Value::Timestamp("2026-11-20T12:00:00".parse().unwrap()),
            Value::TimestampTz(at("2026-11-20T12:00:00Z")),
            Value::Text("Europe/Paris".into()),
            Value::Null,
            Value::Int(1),
        ]
    );
    db.cleanup().await;
}
