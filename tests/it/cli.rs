//! The `warden` binary end to end: each case writes a project (config, check
//! files, a SQLite warehouse) into a temporary directory, runs the real
//! binary there and asserts what DESIGN §3 fixes: the JSON document, the exit
//! status, `file:line:col` diagnostics, and what lands in the registry.
//!
//! The PostgreSQL and MariaDB cases read `WARDEN_TEST_POSTGRES_URL` and
//! `WARDEN_TEST_MYSQL_URL` (see `support::db`); they are skipped with a note
//! when the variable is unset.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use warden::domain::{CheckId, DatasetName};

use crate::support::agent::Project;
use crate::support::cli::{Run, WARDEN_YAML, block_on, warden_in};
use crate::support::db::{Backend, TestDb};

// ---- the project under test ----

/// Four orders over two days; one has lost its customer.
const ORDERS: &str = "
CREATE TABLE {s}.orders (
    order_id INTEGER,
    customer_id INTEGER,
    order_date DATE,
    updated_at {TIMESTAMP}
);
INSERT INTO {s}.orders VALUES
    (1, 10,   '2026-11-19', '2026-11-19 08:00:00'),
    (2, NULL, '2026-11-20', '2026-11-20 08:00:00'),
    (3, 12,   '2026-11-20', '2026-11-20 09:00:00'),
    (4, 13,   '2026-11-20', '2026-11-20 10:00:00');
";

/// Dataset `orders` (whole relation): one check fails.
const ORDERS_CHECKS: &str = "\
datasets:
  - name: orders
    warehouse: main
    table: orders
    schedule: \"@daily\"
    checks:
      - row_count: { min: 1 }
      - null_rate: { column: customer_id, max: 0 }
      - unique: { columns: [order_id] }
";

/// Dataset `orders` where nothing fails: the NULL customer only warns.
const PASSING_CHECKS: &str = "\
datasets:
  - name: orders
    warehouse: main
    table: orders
    schedule: \"@daily\"
    checks:
      - row_count: { min: 1 }
      - null_rate: { column: customer_id, max: 0, severity: warn }
      - unique: { columns: [order_id] }
";

/// Dataset `daily`: the same table, partitioned by day, with whole-relation
/// checks (freshness, schema) next to partition-scoped ones.
const DAILY_CHECKS: &str = "\
datasets:
  - name: daily
    warehouse: main
    table: orders
    schedule: \"@daily\"
    partition: { column: order_date, granularity: day }
    checks:
      - row_count: { min: 1 }
      - null_rate: { column: customer_id, max: 0 }
      - freshness: { column: updated_at, max_lag: 1h }
      - schema:
          columns: [{ name: order_id, type: integer }]
";

/// A check file whose dataset has a misspelt key (line 4, column 5).
const TYPO_CHECKS: &str = "\
datasets:
  - name: typo
    warehouse: main
    tierr: 1
    table: orders
    schedule: \"@daily\"
";

/// A check file that is not YAML at all: the flow sequence is never closed.
const UNPARSABLE_CHECKS: &str = "\
datasets:
  - name: broken
    warehouse: main
    table: orders
    checks: [ { row_count: { min: 1 } }
";

/// A project holding `warden.yaml`, the given check files and a SQLite
/// warehouse `warehouse.db` with [`ORDERS`]; the binary runs with it as
/// working directory.
fn project_with(check_files: &[(&str, &str)]) -> Project {
    let project = Project::empty();
    project.write("warden.yaml", WARDEN_YAML);
    for (name, text) in check_files {
        project.write(&format!("checks/{name}"), text);
    }
    project.sqlite(ORDERS);
    project
}

/// The results of a JSON document.
fn results(doc: &Value) -> &Vec<Value> {
    doc["results"].as_array().expect("results array")
}

/// The result of check `id`.
#[track_caller]
fn result<'a>(doc: &'a Value, id: &str) -> &'a Value {
    results(doc)
        .iter()
        .find(|r| r["check"] == id)
        .unwrap_or_else(|| panic!("no result for {id} in {doc:#}"))
}

fn check_ids(doc: &Value) -> Vec<&str> {
    results(doc)
        .iter()
        .map(|r| r["check"].as_str().expect("check id"))
        .collect()
}

/// A result without its `duration_ms`, the one field that differs between runs.
fn timeless(result: &Value) -> Value {
    let mut r = result.clone();
    r.as_object_mut()
        .expect("result object")
        .remove("duration_ms");
    r
}

fn check_id(dataset: &str, name: &str) -> CheckId {
    CheckId::new(&DatasetName::parse(dataset).expect("dataset"), name).expect("check id")
}

/// Sleeps into the next wall-clock second: runs that are not scoped to a
/// partition are recorded under their start time to the second.
fn next_second() {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .subsec_millis();
    std::thread::sleep(Duration::from_millis(u64::from(1000 - ms) + 20));
}

// ---- 1. the JSON document ----

#[test]
fn check_prints_one_json_document_with_the_documented_fields() {
    let project = project_with(&[("orders.yaml", ORDERS_CHECKS)]);
    let run = project.warden(&["check", "--format", "json"]);
    run.assert_code(1);
    let doc = run.json();

    let top: BTreeSet<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(top, BTreeSet::from(["results", "summary"]));
    let fields = BTreeSet::from([
        "check",
        "dataset",
        "kind",
        "column",
        "partition",
        "outcome",
        "observed",
        "threshold",
        "message",
        "duration_ms",
    ]);
    for r in results(&doc) {
        let keys: BTreeSet<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, fields, "{r:#}");
        assert!(r["duration_ms"].is_u64(), "{r:#}");
        assert!(r["message"].is_string(), "{r:#}");
    }
    assert_eq!(
        check_ids(&doc),
        [
            "orders.row_count",
            "orders.null_rate_customer_id",
            "orders.unique_order_id"
        ]
    );

    let null_rate = result(&doc, "orders.null_rate_customer_id");
    assert_eq!(
        timeless(null_rate),
        json!({"check": "orders.null_rate_customer_id", "dataset": "orders", "kind": "null_rate",
               "column": "customer_id", "partition": null, "outcome": "fail", "observed": 0.25,
               "threshold": {"max": 0.0},
               "message": "25% of 4 rows are NULL in customer_id (max 0%)"})
    );
    let row_count = result(&doc, "orders.row_count");
    assert_eq!(
        (
            &row_count["outcome"],
            &row_count["observed"],
            &row_count["threshold"],
            &row_count["column"]
        ),
        (
            &json!("pass"),
            &json!(4.0),
            &json!({"min": 1.0}),
            &json!(null)
        )
    );
    let unique = result(&doc, "orders.unique_order_id");
    assert_eq!(
        (&unique["outcome"], &unique["observed"], &unique["column"]),
        (&json!("pass"), &json!(0.0), &json!("order_id"))
    );
    assert_eq!(
        doc["summary"],
        json!({"pass": 2, "warn": 0, "fail": 1, "error": 0})
    );
}

#[test]
fn check_prints_a_table_by_default() {
    let project = project_with(&[("orders.yaml", ORDERS_CHECKS)]);
    let run = project.warden(&["check"]);
    run.assert_code(1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("CHECK"), "{}", run.stdout);
    let row = lines
        .iter()
        .find(|l| l.starts_with("orders.null_rate_customer_id "))
        .unwrap_or_else(|| panic!("no row for the null rate:\n{}", run.stdout));
    let cells: Vec<&str> = row.split_whitespace().take(4).collect();
    assert_eq!(cells, ["orders.null_rate_customer_id", "-", "FAIL", "0.25"]);
    assert_eq!(
        lines.last(),
        Some(&"3 checks: 2 passed, 0 warned, 1 failed, 0 errored")
    );
}

// ---- 2. exit status ----

#[test]
fn exit_0_when_nothing_fails_even_with_a_warning() {
    let project = project_with(&[("orders.yaml", PASSING_CHECKS)]);
    let run = project.warden(&["check", "--format", "json"]);
    run.assert_code(0);
    let doc = run.json();
    assert_eq!(
        result(&doc, "orders.null_rate_customer_id")["outcome"],
        "warn"
    );
    assert_eq!(
        doc["summary"],
        json!({"pass": 2, "warn": 1, "fail": 0, "error": 0})
    );
}

#[test]
fn exit_1_when_a_check_fails() {
    let project = project_with(&[("orders.yaml", ORDERS_CHECKS)]);
    project.warden(&["check"]).assert_code(1);
}

#[test]
fn exit_3_when_a_check_errors_on_a_missing_column() {
    let project = project_with(&[(
        "orders.yaml",
        "\
datasets:
  - name: orders
    warehouse: main
    table: orders
    schedule: \"@daily\"
    checks:
      - row_count: { min: 1 }
      - null_rate: { column: customer, max: 0 }
",
    )]);
    let run = project.warden(&["check", "--format", "json"]);
    run.assert_code(3);
    let doc = run.json();
    let missing = result(&doc, "orders.null_rate_customer");
    assert_eq!(missing["outcome"], "error");
    assert_eq!(missing["observed"], Value::Null);
    assert_eq!(
        missing["message"],
        "column `customer` does not exist in orders"
    );
    // The other check of the dataset still ran.
    assert_eq!(result(&doc, "orders.row_count")["outcome"], "pass");
    assert_eq!(
        doc["summary"],
        json!({"pass": 1, "warn": 0, "fail": 0, "error": 1})
    );
}

#[test]
fn exit_3_when_a_check_errors_on_a_missing_table() {
    let project = project_with(&[(
        "orders.yaml",
        "\
datasets:
  - name: orders
    warehouse: main
    table: order_lines
    schedule: \"@daily\"
    checks:
      - row_count: { min: 1 }
",
    )]);
    let run = project.warden(&["check", "--format", "json"]);
    run.assert_code(3);
    let doc = run.json();
    let r = result(&doc, "orders.row_count");
    assert_eq!(r["outcome"], "error");
    assert_eq!(r["message"], "table order_lines does not exist");
}

#[test]
fn a_failure_outranks_an_error() {
    let project = project_with(&[(
        "orders.yaml",
        "\
datasets:
  - name: orders
    warehouse: main
    table: orders
    schedule: \"@daily\"
    checks:
      - null_rate: { column: customer_id, max: 0 }
      - null_rate: { column: customer, max: 0 }
",
    )]);
    let run = project.warden(&["check", "--format", "json"]);
    run.assert_code(1);
    assert_eq!(
        run.json()["summary"],
        json!({"pass": 0, "warn": 0, "fail": 1, "error": 1})
    );
}

#[test]
fn exit_2_when_warden_yaml_is_invalid() {
    let project = project_with(&[("orders.yaml", ORDERS_CHECKS)]);
    project.write(
        "warden.yaml",
        &WARDEN_YAML.replace("  registry:", "  registy:"),
    );
    let run = project.warden(&["check", "--format", "json"]);
    run.assert_code(2);
    assert_eq!(run.stdout, "", "nothing is printed on stdout");
    assert!(
        run.stderr
            .contains("warden.yaml:2:3: unknown key `registy`; did you mean `registry`?"),
        "{}",
        run.stderr
    );
}

#[test]
fn exit_2_when_the_config_file_is_missing() {
    let project = Project::empty();
    let run = project.warden(&["check"]);
    run.assert_code(2);
    assert!(run.stderr.contains("warden.yaml"), "{}", run.stderr);
}

#[test]
fn exit_2_for_an_unknown_dataset() {
    let project = project_with(&[("orders.yaml", ORDERS_CHECKS), ("daily.yaml", DAILY_CHECKS)]);
    let run = project.warden(&["check", "--dataset", "ordres"]);
    run.assert_code(2);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr_lines(),
        ["error: unknown dataset `ordres` (known: daily, orders)"]
    );
}

#[test]
fn exit_2_for_a_partition_of_an_unpartitioned_dataset() {
    let project = project_with(&[("orders.yaml", ORDERS_CHECKS)]);
    let run = project.warden(&["check", "--dataset", "orders", "--partition", "2026-11-20"]);
    run.assert_code(2);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr_lines(),
        ["error: dataset `orders` is not partitioned; drop --partition"]
    );
}

#[test]
fn exit_2_for_a_malformed_partition_and_nothing_runs() {
    let project = project_with(&[("daily.yaml", DAILY_CHECKS)]);
    let hostile = "2026-11-20'; DROP TABLE orders; --";
    let run = project.warden(&["check", "--dataset", "daily", "--partition", hostile]);
    run.assert_code(2);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr_lines(),
        [format!(
            "error: invalid partition `{hostile}`: expected a day like 2026-11-20"
        )]
    );
    assert_eq!(project.sqlite_count("SELECT count(*) FROM orders"), 4);

    for bad in ["2026-11-20T13", "2026-11-2", "2026-02-30", "20261120"] {
        let run = project.warden(&["check", "--dataset", "daily", "--partition", bad]);
        run.assert_code(2);
        assert!(
            run.stderr.contains("invalid partition"),
            "{bad}: {}",
            run.stderr
        );
    }
}

#[test]
fn exit_2_for_usage_errors() {
    let project = project_with(&[("daily.yaml", DAILY_CHECKS)]);
    // --partition needs --dataset.
    project
        .warden(&["check", "--partition", "2026-11-20"])
        .assert_code(2);
    project.warden(&["check", "--format", "xml"]).assert_code(2);
    project.warden(&["chekc"]).assert_code(2);
}

// ---- 3. validate ----

#[test]
fn validate_accepts_a_valid_config() {
    let project = project_with(&[("orders.yaml", ORDERS_CHECKS), ("daily.yaml", DAILY_CHECKS)]);
    // No warehouse is needed: validate does not connect.
    std::fs::remove_file(project.path("warehouse.db")).expect("remove warehouse");
    let run = project.warden(&["validate"]);
    run.assert_code(0);
    assert_eq!(run.stdout, "warden.yaml: configuration is valid\n");
    assert!(!project.path("warehouse.db").exists());
    assert!(!project.path("warden.db").exists());
}

#[test]
fn validate_reports_a_typo_with_its_position_and_a_suggestion() {
    let project = project_with(&[("orders.yaml", ORDERS_CHECKS), ("typo.yaml", TYPO_CHECKS)]);
    let run = project.warden(&["validate"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr_lines(),
        [
            "checks/typo.yaml:4:5: unknown key `tierr`; did you mean `tier`?",
            "1 problem found"
        ]
    );
}

#[test]
fn validate_names_a_check_file_that_does_not_parse() {
    let project = project_with(&[
        ("orders.yaml", ORDERS_CHECKS),
        ("unparsable.yaml", UNPARSABLE_CHECKS),
    ]);
    let run = project.warden(&["validate"]);
    run.assert_code(2);
    let lines = run.stderr_lines();
    assert_eq!(lines.len(), 2, "{}", run.stderr);
    assert_eq!(lines[1], "1 problem found");
    assert_file_line_col(lines[0], "checks/unparsable.yaml");
}

#[test]
fn validate_reports_problems_in_warden_yaml_and_in_check_files() {
    let project = project_with(&[("typo.yaml", TYPO_CHECKS)]);
    project.write(
        "warden.yaml",
        &WARDEN_YAML.replace("  timezone: UTC", "  timezone: Mars/Olympus"),
    );
    let run = project.warden(&["validate"]);
    run.assert_code(2);
    let lines = run.stderr_lines();
    assert_eq!(lines.len(), 3, "{}", run.stderr);
    assert_file_line_col(lines[0], "warden.yaml");
    assert!(lines[0].starts_with("warden.yaml:3:"), "{}", lines[0]);
    assert!(lines[0].contains("Mars/Olympus"), "{}", lines[0]);
    assert_eq!(
        lines[1],
        "checks/typo.yaml:4:5: unknown key `tierr`; did you mean `tier`?"
    );
    assert_eq!(lines[2], "2 problems found");
}

/// `line` reads `<file>:<line>:<col>: <message>` with positive numbers.
#[track_caller]
fn assert_file_line_col(line: &str, file: &str) {
    let rest = line
        .strip_prefix(&format!("{file}:"))
        .unwrap_or_else(|| panic!("`{line}` does not start with `{file}:`"));
    let mut parts = rest.splitn(3, ':');
    for what in ["line", "column"] {
        let n: u64 = parts
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {what} number in `{line}`"));
        assert!(n > 0, "{what} in `{line}`");
    }
    let message = parts.next().unwrap_or_default();
    assert!(
        message.starts_with(' ') && message.trim().len() > 3,
        "no message in `{line}`"
    );
}

// ---- 4. a broken check file next to a good one ----

#[test]
fn check_runs_the_good_files_and_reports_the_broken_one() {
    let project = project_with(&[
        ("orders.yaml", ORDERS_CHECKS),
        ("typo.yaml", TYPO_CHECKS),
        ("unparsable.yaml", UNPARSABLE_CHECKS),
    ]);
    let run = project.warden(&["check", "--format", "json"]);
    // A check failed: that outranks the skipped files.
    run.assert_code(1);
    let doc = run.json();
    assert_eq!(
        check_ids(&doc),
        [
            "orders.row_count",
            "orders.null_rate_customer_id",
            "orders.unique_order_id"
        ]
    );
    let warnings: Vec<&str> = run
        .stderr_lines()
        .into_iter()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(warnings.len(), 2, "{}", run.stderr);
    assert_eq!(
        warnings[0],
        "warning: checks/typo.yaml:4:5: unknown key `tierr`; did you mean `tier`?"
    );
    assert_file_line_col(
        warnings[1].strip_prefix("warning: ").unwrap(),
        "checks/unparsable.yaml",
    );
}

#[test]
fn a_skipped_check_file_gives_exit_2_when_nothing_failed() {
    let project = project_with(&[("orders.yaml", PASSING_CHECKS), ("typo.yaml", TYPO_CHECKS)]);
    let run = project.warden(&["check", "--format", "json"]);
    run.assert_code(2);
    let doc = run.json();
    assert_eq!(
        doc["summary"],
        json!({"pass": 2, "warn": 1, "fail": 0, "error": 0})
    );
    assert!(
        run.stderr.contains("checks/typo.yaml:4:5:"),
        "{}",
        run.stderr
    );
}

// ---- 5. one partition ----

#[test]
fn a_partition_runs_only_the_partition_scoped_checks() {
    let project = project_with(&[("daily.yaml", DAILY_CHECKS)]);
    let run = project.warden(&[
        "check",
        "--dataset",
        "daily",
        "--partition",
        "2026-11-20",
        "--format",
        "json",
    ]);
    run.assert_code(1);
    let doc = run.json();
    assert_eq!(
        check_ids(&doc),
        ["daily.row_count", "daily.null_rate_customer_id"]
    );
    for r in results(&doc) {
        assert_eq!(r["partition"], "2026-11-20", "{r:#}");
        assert_ne!(r["kind"], "freshness");
        assert_ne!(r["kind"], "schema");
    }
    assert_eq!(result(&doc, "daily.row_count")["observed"], json!(3.0));
    let null_rate = result(&doc, "daily.null_rate_customer_id");
    assert_eq!(null_rate["observed"], json!(1.0 / 3.0));
    assert_eq!(null_rate["outcome"], "fail");

    // The day before has one row, with its customer.
    let run = project.warden(&[
        "check",
        "--dataset",
        "daily",
        "--partition",
        "2026-11-19",
        "--format",
        "json",
    ]);
    run.assert_code(0);
    let doc = run.json();
    assert_eq!(result(&doc, "daily.row_count")["observed"], json!(1.0));
    assert_eq!(
        result(&doc, "daily.null_rate_customer_id")["observed"],
        json!(0.0)
    );
    assert_eq!(
        doc["summary"],
        json!({"pass": 2, "warn": 0, "fail": 0, "error": 0})
    );
}

#[test]
fn an_empty_partition_fails_its_row_count() {
    let project = project_with(&[("daily.yaml", DAILY_CHECKS)]);
    let run = project.warden(&[
        "check",
        "--dataset",
        "daily",
        "--partition",
        "2026-11-21",
        "--format",
        "json",
    ]);
    run.assert_code(1);
    let doc = run.json();
    let rows = result(&doc, "daily.row_count");
    assert_eq!(
        (&rows["outcome"], &rows["observed"], &rows["partition"]),
        (&json!("fail"), &json!(0.0), &json!("2026-11-21"))
    );
}

#[test]
fn a_partitioned_dataset_is_checked_on_its_latest_complete_partition() {
    let project = project_with(&[("daily.yaml", DAILY_CHECKS)]);
    let yesterday = || {
        (chrono::Utc::now() - chrono::Duration::days(1))
            .format("%Y-%m-%d")
            .to_string()
    };
    let before = yesterday();
    let run = project.warden(&["check", "--dataset", "daily", "--format", "json"]);
    let after = yesterday();
    let doc = run.json();
    assert_eq!(
        check_ids(&doc),
        [
            "daily.row_count",
            "daily.null_rate_customer_id",
            "daily.freshness_updated_at",
            "daily.schema"
        ]
    );
    for r in results(&doc) {
        let partition = &r["partition"];
        if r["kind"] == "freshness" || r["kind"] == "schema" {
            assert_eq!(partition, &Value::Null, "{r:#}");
        } else {
            assert!(
                partition == before.as_str() || partition == after.as_str(),
                "{r:#}"
            );
        }
    }
}

#[test]
fn backfill_checks_each_partition_of_a_range() {
    let project = project_with(&[("daily.yaml", DAILY_CHECKS), ("orders.yaml", ORDERS_CHECKS)]);
    let args = [
        "backfill",
        "daily",
        "--from",
        "2026-11-18",
        "--to",
        "2026-11-20",
        "--format",
        "json",
    ];
    let run = project.warden(&args);
    run.assert_code(1);
    let doc = run.json();
    let rows: Vec<(&str, &str, f64)> = results(&doc)
        .iter()
        .map(|r| {
            (
                r["check"].as_str().unwrap(),
                r["partition"].as_str().unwrap(),
                r["observed"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("daily.row_count", "2026-11-18", 0.0),
            ("daily.null_rate_customer_id", "2026-11-18", 0.0),
            ("daily.row_count", "2026-11-19", 1.0),
            ("daily.null_rate_customer_id", "2026-11-19", 0.0),
            ("daily.row_count", "2026-11-20", 3.0),
            ("daily.null_rate_customer_id", "2026-11-20", 1.0 / 3.0),
        ]
    );
    assert_eq!(
        doc["summary"],
        json!({"pass": 4, "warn": 0, "fail": 2, "error": 0})
    );

    // A second backfill overwrites the first.
    project.warden(&args).assert_code(1);
    let stored = project.with_registry(async |r| {
        r.results_for(&check_id("daily", "row_count"), Some("2026-11-19"))
            .await
            .expect("results")
    });
    assert_eq!(stored.len(), 1, "{stored:#?}");

    let run = project.warden(&[
        "backfill",
        "orders",
        "--from",
        "2026-11-18",
        "--to",
        "2026-11-20",
    ]);
    run.assert_code(2);
    assert_eq!(
        run.stderr_lines(),
        ["error: dataset `orders` is not partitioned: there is nothing to backfill"]
    );
    let run = project.warden(&[
        "backfill",
        "daily",
        "--from",
        "2026-11-20",
        "--to",
        "2026-11-18",
    ]);
    run.assert_code(2);
    assert_eq!(
        run.stderr_lines(),
        ["error: partition range is empty: `2026-11-20` is after `2026-11-18`"]
    );
    project
        .warden(&[
            "backfill",
            "daily",
            "--from",
            "2026-11-18",
            "--to",
            "yesterday",
        ])
        .assert_code(2);
}

// ---- 6. the registry ----

#[test]
fn results_are_recorded_in_the_registry() {
    let project = project_with(&[("orders.yaml", ORDERS_CHECKS), ("daily.yaml", DAILY_CHECKS)]);
    let first = project.warden(&["check", "--dataset", "orders", "--format", "json"]);
    first.assert_code(1);
    next_second();
    project
        .warden(&["check", "--dataset", "orders", "--format", "json"])
        .assert_code(1);

    let null_rate = check_id("orders", "null_rate_customer_id");
    let history = project.history(&null_rate);
    assert_eq!(history.len(), 2, "{history:#?}");
    // What was printed is what was recorded.
    let printed = first.json();
    let printed = result(&printed, "orders.null_rate_customer_id");
    let oldest = serde_json::to_value(&history[1].result).expect("json");
    assert_eq!(timeless(&oldest), timeless(printed));
    assert!(history[0].scheduled_at > history[1].scheduled_at);

    // A partition checked twice keeps one result: the rerun overwrites it.
    for _ in 0..2 {
        project
            .warden(&["check", "--dataset", "daily", "--partition", "2026-11-20"])
            .assert_code(1);
    }
    let rows = check_id("daily", "row_count");
    let stored = project.with_registry(async |r| {
        r.results_for(&rows, Some("2026-11-20"))
            .await
            .expect("results")
    });
    assert_eq!(stored.len(), 1, "{stored:#?}");
    assert_eq!(stored[0].result.observed, Some(3.0));

    // A dry run records nothing.
    next_second();
    project
        .warden(&["check", "--dataset", "orders", "--no-record"])
        .assert_code(1);
    assert_eq!(project.history(&null_rate).len(), 2);
}

#[test]
fn runs_started_together_share_a_new_registry() {
    let project = project_with(&[("orders.yaml", ORDERS_CHECKS)]);
    let runs: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_warden"))
                .args(["check", "--dataset", "orders"])
                .current_dir(project.dir.path())
                .env_remove("WARDEN_CONFIG")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start warden")
        })
        .collect();
    for run in runs {
        let out = run.wait_with_output().expect("wait for warden");
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!project.history(&check_id("orders", "row_count")).is_empty());
}

#[test]
fn results_that_cannot_be_recorded_are_still_printed() {
    let project = project_with(&[
        ("orders.yaml", ORDERS_CHECKS),
        (
            "passing.yaml",
            &PASSING_CHECKS.replace("name: orders", "name: passing"),
        ),
    ]);
    project.warden(&["check"]).assert_code(1);
    // From now on the registry refuses every result.
    let path = project.path("warden.db");
    block_on(async move {
        use sqlx::Connection;
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
        let mut conn = sqlx::SqliteConnection::connect_with(&opts)
            .await
            .expect("open registry");
        sqlx::raw_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON check_results \
             BEGIN SELECT RAISE(ABORT, 'disk full'); END",
        )
        .execute(&mut conn)
        .await
        .expect("trigger");
        conn.close().await.expect("close registry");
    });

    let run = project.warden(&["check", "--format", "json"]);
    // A failed check still outranks the results that were not kept.
    run.assert_code(1);
    let doc = run.json();
    assert_eq!(results(&doc).len(), 6);
    assert_eq!(
        doc["summary"],
        json!({"pass": 4, "warn": 1, "fail": 1, "error": 0})
    );
    let errors: Vec<&str> = run
        .stderr_lines()
        .into_iter()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 2, "{}", run.stderr);
    for (line, dataset) in errors.iter().zip(["orders", "passing"]) {
        assert!(
            line.starts_with(&format!(
                "error: dataset {dataset}: results could not be recorded: "
            )),
            "{line}"
        );
    }

    // Without a failure, results that were not kept make the run exit 2.
    let run = project.warden(&["check", "--dataset", "passing", "--format", "json"]);
    run.assert_code(2);
    assert_eq!(
        run.json()["summary"],
        json!({"pass": 2, "warn": 1, "fail": 0, "error": 0})
    );
}

#[test]
fn a_dry_run_does_not_create_the_registry() {
    let project = project_with(&[("orders.yaml", ORDERS_CHECKS)]);
    let run = project.warden(&["check", "--no-record", "--format", "json"]);
    run.assert_code(1);
    assert_eq!(results(&run.json()).len(), 3);
    assert!(!project.path("warden.db").exists());
}

#[test]
fn relative_paths_are_resolved_beside_the_config() {
    let project = project_with(&[("orders.yaml", ORDERS_CHECKS)]);
    project.write("elsewhere/.keep", "");
    let run = warden_in(
        &project.path("elsewhere"),
        &["check", "--config", "../warden.yaml", "--format", "json"],
        &[],
    );
    run.assert_code(1);
    assert_eq!(results(&run.json()).len(), 3);
    let row_count = check_id("orders", "row_count");
    assert_eq!(
        project.history(&row_count).len(),
        1,
        "recorded beside the config"
    );
    // $WARDEN_CONFIG is used when --config is not given.
    let run = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["check", "--format", "json"])
        .current_dir(project.path("elsewhere"))
        .env("WARDEN_CONFIG", "../warden.yaml")
        .output()
        .expect("run warden");
    assert_eq!(run.status.code(), Some(1));
    let entries: Vec<_> = std::fs::read_dir(project.path("elsewhere"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        entries,
        [".keep"],
        "nothing written in the working directory"
    );
    // Manual runs are keyed to the second: the second run is a new entry,
    // or the same one again when both fell within one second.
    let after = project.history(&row_count).len();
    assert!((1..=2).contains(&after), "{after} entries");
}

/// Dataset `orders` with checks that compare against what the registry holds.
const BASELINE_CHECKS: &str = "\
datasets:
  - name: orders
    warehouse: main
    table: orders
    schedule: \"@daily\"
    checks:
      - schema: {}
      - row_count_change: { vs: previous, max_growth: 50% }
";

#[test]
fn baselines_come_from_the_registry_even_in_a_dry_run() {
    let project = project_with(&[("orders.yaml", BASELINE_CHECKS)]);
    let first = project.warden(&["check", "--format", "json"]);
    first.assert_code(0);
    let doc = first.json();
    assert_eq!(result(&doc, "orders.schema")["outcome"], "pass");

    // The table grows a column and doubles its rows.
    project.sqlite(
        "ALTER TABLE orders ADD COLUMN coupon TEXT;
         INSERT INTO orders (order_id, customer_id, order_date, updated_at)
             SELECT order_id + 4, customer_id, order_date, updated_at FROM orders;",
    );
    next_second();
    let outcomes = |run: &Run| {
        let doc = run.json();
        (
            timeless(result(&doc, "orders.schema")),
            result(&doc, "orders.row_count_change")["outcome"].clone(),
            result(&doc, "orders.row_count_change")["observed"].clone(),
        )
    };
    let dry = project.warden(&["check", "--no-record", "--format", "json"]);
    dry.assert_code(1);
    let (schema, change, growth) = outcomes(&dry);
    assert_eq!(schema["outcome"], "warn", "{schema:#}");
    assert_eq!(schema["observed"], json!(1.0), "{schema:#}");
    assert_eq!((change, growth), (json!("fail"), json!(1.0)));
    // The dry run recorded nothing.
    assert_eq!(project.history(&check_id("orders", "schema")).len(), 1);

    // A recorded run sees the same.
    let recorded = project.warden(&["check", "--format", "json"]);
    recorded.assert_code(1);
    assert_eq!(outcomes(&recorded), outcomes(&dry));
    assert_eq!(project.history(&check_id("orders", "schema")).len(), 2);

    // Accepting the new schema clears the drift.
    let accept = project.warden(&["baseline", "accept", "orders"]);
    accept.assert_code(0);
    assert!(
        accept
            .stdout
            .starts_with("Accepted the schema of orders (orders) as its baseline: 5 columns\n"),
        "{}",
        accept.stdout
    );
    let after = project.warden(&["check", "--no-record", "--format", "json"]);
    let doc = after.json();
    assert_eq!(result(&doc, "orders.schema")["outcome"], "pass");

    project
        .warden(&["baseline", "accept", "ordres"])
        .assert_code(2);
}

// ---- 7. the demo ----

#[test]
fn demo_runs_the_agent_and_shows_its_problems() {
    use std::io::{BufRead, BufReader};
    let cwd = tempfile::tempdir().expect("temp dir");
    let demo = cwd.path().join("warden-demo");
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "demo",
            "--dir",
            demo.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .current_dir(cwd.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start warden demo");
    // Everything it prints up to the line saying how to stop it.
    let mut stdout = String::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.expect("demo output");
        stdout.push_str(&line);
        stdout.push('\n');
        if line.contains("Ctrl-C to stop") {
            break;
        }
    }
    // Every row of the first round's table, as (check, outcome).
    let rows: Vec<(&str, &str)> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("CHECK"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            (cells[0], cells[2])
        })
        .collect();
    assert_eq!(rows.len(), 12, "{stdout}");
    let failed: BTreeSet<&str> = rows
        .iter()
        .filter(|(_, outcome)| *outcome == "FAIL")
        .map(|(check, _)| *check)
        .collect();
    assert_eq!(
        failed,
        BTreeSet::from([
            "events.freshness_event_time",
            "orders.null_rate_customer_id",
            "orders.unique_order_id",
        ]),
        "{stdout}"
    );
    assert!(rows.iter().all(|(_, o)| *o != "ERROR"), "{stdout}");
    assert!(
        rows.contains(&("orders.freshness_updated_at", "PASS")),
        "{stdout}"
    );

    // It prints the URLs to open, and they answer while it runs.
    let status_url = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("status page"))
        .map(str::trim)
        .expect("the status page URL")
        .to_owned();
    let base = status_url.trim_end_matches('/').to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (page, metrics) = rt.block_on(async {
        let page = reqwest::get(&status_url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let metrics = reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        (page, metrics)
    });
    assert!(page.contains("freshness_event_time"), "{page}");
    assert!(
        metrics.contains(
            "warden_check_outcome{check=\"events.freshness_event_time\",dataset=\"events\",outcome=\"fail\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("warden_dataset_freshness_lag_seconds{dataset=\"orders\"}"));

    // The feed keeps `orders` fresh: new orders arrive while it runs.
    let pool_rows = |rt: &tokio::runtime::Runtime| -> i64 {
        rt.block_on(async {
            let pool = warden::demo::open(&demo.join("warehouse.db"))
                .await
                .unwrap();
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
                .fetch_one(&pool)
                .await
                .unwrap();
            pool.close().await;
            n
        })
    };
    let before = pool_rows(&rt);
    std::thread::sleep(Duration::from_secs(6));
    assert!(pool_rows(&rt) > before, "the demo feed adds orders");

    // Ctrl-C (SIGINT) stops it cleanly.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0));

    // The demo lives where it was asked to, and `warden check` works on it.
    for file in [
        "warden.yaml",
        "checks/shop.yaml",
        "alerts/routes.yaml",
        "warehouse.db",
        "warden.db",
    ] {
        assert!(demo.join(file).is_file(), "{file} missing");
    }
    let entries: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
    assert_eq!(
        entries.len(),
        1,
        "only warden-demo in the working directory"
    );
    let config = demo.join("warden.yaml");
    let run = warden_in(
        cwd.path(),
        &[
            "check",
            "--config",
            config.to_str().unwrap(),
            "--format",
            "json",
        ],
        &[],
    );
    run.assert_code(1);
    assert_eq!(run.json()["summary"]["fail"], 3);
}

// ---- 8. the same numbers on PostgreSQL and MariaDB ----

/// Runs the same checks on SQLite and on `backend` and expects the same
/// results, whole relation and one partition.
fn same_numbers_as_sqlite(backend: Backend, url_var: &str) {
    // The fixture's own pool lives in this runtime while the binary runs.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(db) = rt.block_on(TestDb::new(backend)) else {
        return;
    };
    rt.block_on(db.exec(ORDERS));
    let url = std::env::var(url_var).expect("url");
    let table = format!("table: {}.orders", db.schema);

    let sqlite = project_with(&[("orders.yaml", ORDERS_CHECKS), ("daily.yaml", DAILY_CHECKS)]);
    let remote = Project::empty();
    remote.write(
        "warden.yaml",
        &WARDEN_YAML.replace("sqlite://warehouse.db", &url),
    );
    remote.write(
        "checks/orders.yaml",
        &ORDERS_CHECKS.replace("table: orders", &table),
    );
    remote.write(
        "checks/daily.yaml",
        &DAILY_CHECKS.replace("table: orders", &table),
    );

    let cases: [&[&str]; 2] = [
        &["check", "--dataset", "orders", "--format", "json"],
        &[
            "check",
            "--dataset",
            "daily",
            "--partition",
            "2026-11-20",
            "--format",
            "json",
        ],
    ];
    for args in cases {
        let expected = sqlite.warden(args);
        expected.assert_code(1);
        let run = remote.warden(args);
        run.assert_code(1);
        let (expected, got) = (expected.json(), run.json());
        let strip = |doc: &Value| results(doc).iter().map(timeless).collect::<Vec<_>>();
        assert_eq!(strip(&got), strip(&expected), "{backend:?}: {args:?}");
        assert_eq!(got["summary"], expected["summary"]);
    }
    // The numbers themselves, not only their agreement.
    let doc = remote.warden(cases[0]).json();
    assert_eq!(
        result(&doc, "orders.null_rate_customer_id")["observed"],
        json!(0.25)
    );
    assert_eq!(result(&doc, "orders.row_count")["observed"], json!(4.0));
    rt.block_on(db.cleanup());
}

#[test]
fn postgres_gives_the_same_numbers_as_sqlite() {
    same_numbers_as_sqlite(Backend::Postgres, "WARDEN_TEST_POSTGRES_URL");
}

#[test]
fn mariadb_gives_the_same_numbers_as_sqlite() {
    same_numbers_as_sqlite(Backend::MySql, "WARDEN_TEST_MYSQL_URL");
}

// ---- 9. a warehouse that is down ----

#[test]
fn an_unreachable_warehouse_makes_every_check_error_quickly() {
    let project = project_with(&[("orders.yaml", ORDERS_CHECKS)]);
    project.write(
        "warden.yaml",
        &WARDEN_YAML
            .replace(
                "sqlite://warehouse.db",
                "postgres://warden@127.0.0.1:1/test",
            )
            .replace("query_timeout: 5s", "query_timeout: 2s"),
    );
    let run = project.warden(&["check", "--format", "json"]);
    run.assert_code(3);
    assert!(
        run.elapsed < Duration::from_secs(10),
        "took {:?}",
        run.elapsed
    );
    let doc = run.json();
    assert_eq!(results(&doc).len(), 3);
    for r in results(&doc) {
        assert_eq!(r["outcome"], "error", "{r:#}");
        assert_eq!(r["observed"], Value::Null, "{r:#}");
        let message = r["message"].as_str().unwrap();
        assert!(
            message.starts_with("warehouse `main` unavailable: "),
            "{message}"
        );
    }
    assert_eq!(
        doc["summary"],
        json!({"pass": 0, "warn": 0, "fail": 0, "error": 3})
    );

    // The errors are recorded like any result.
    let history = project.history(&check_id("orders", "row_count"));
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].result.outcome, warden::check::Outcome::Error);
}

#[test]
fn a_missing_sqlite_warehouse_errors_and_is_not_created() {
    let project = project_with(&[
        ("orders.yaml", ORDERS_CHECKS),
        (
            "gone.yaml",
            "\
datasets:
  - name: gone
    warehouse: gone
    table: orders
    schedule: \"@daily\"
    checks:
      - row_count: { min: 1 }
",
        ),
    ]);
    project.write(
        "warden.yaml",
        &WARDEN_YAML.replace("checks: [", "  gone:\n    url: sqlite://gone.db\nchecks: ["),
    );
    let run = project.warden(&["check", "--format", "json"]);
    // The other warehouse's datasets still run; its failure decides.
    run.assert_code(1);
    let doc = run.json();
    let gone = result(&doc, "gone.row_count");
    assert_eq!(gone["outcome"], "error");
    let message = gone["message"].as_str().unwrap();
    assert!(
        message.starts_with("warehouse `gone` unavailable: "),
        "{message}"
    );
    assert_eq!(
        doc["summary"],
        json!({"pass": 2, "warn": 0, "fail": 1, "error": 1})
    );
    assert!(!project.path("gone.db").exists());

    let run = project.warden(&["check", "--dataset", "gone", "--format", "json"]);
    run.assert_code(3);
}
