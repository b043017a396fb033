//! The `anomaly` check end to end, on SQLite, PostgreSQL and MariaDB
//! warehouses with a SQLite registry: `warden backfill` trains it one
//! partition at a time (learning first), a lost load is then caught with
//! its band in the JSON and in `/metrics`, and a blocking anomaly denies
//! the gate. The detector's own behaviour (each seasonality, direction,
//! `min_change`, anomalies left out of training, `adapt_after`) is tested
//! in `src/detect`.

use std::process::Output;
use std::time::Duration;

use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use warden::check::{CheckResult, Outcome};
use warden::gate::{GateBasis, GateOptions, GateRequest, GateService, GateStatus};
use warden::metrics::Metrics;

use crate::support::db::{Backend, TestDb};

const TABLE: &str =
    "CREATE TABLE {s}.orders (id INTEGER, email VARCHAR(64), amount INTEGER, order_date DATE);";

const CHECKS: &str = r#"
datasets:
  - name: orders
    warehouse: main
    table: {s}.orders
    partition: { column: order_date, granularity: day }
    gate: { table: {s}.orders }
    checks:
      - anomaly: { metric: row_count }
      - anomaly: { metric: null_rate, column: email, direction: spike }
      - anomaly: { metric: avg, column: amount }
"#;

/// The first day loaded, a Friday; 36 days follow.
fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 10, 16).unwrap()
}

/// Rows of day `i`: about 100 on weekdays, 60 at weekends.
fn usual_rows(i: usize) -> usize {
    let day = first_day() + chrono::Duration::days(i as i64);
    let wobble = (i * i * 31 + i * 17 + 5) % 9;
    if day.weekday().num_days_from_monday() >= 5 {
        58 + wobble / 2
    } else {
        96 + wobble
    }
}

/// `n` orders on `day`, one in 25 (rounded down) without an email,
/// amounts 10 to 14.
fn insert_day(day: NaiveDate, first_id: usize, n: usize) -> String {
    let values: Vec<String> = (first_id..first_id + n)
        .map(|id| {
            let email = if id - first_id < n / 25 {
                "NULL".to_owned()
            } else {
                format!("'u{id}@example.com'")
            };
            format!("({id}, {email}, {}, '{day}')", 10 + id % 5)
        })
        .collect();
    format!("INSERT INTO {{s}}.orders VALUES {};", values.join(", "))
}

struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(db: &TestDb) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(
            dir.path().join("warden.yaml"),
            format!(
                "agent:\n  registry: sqlite://warden.db\n  timezone: UTC\nwarehouses:\n  main:\n    url: {}\nchecks: [checks/*.yaml]\n",
                db.url()
            ),
        )
        .expect("write warden.yaml");
        std::fs::create_dir(dir.path().join("checks")).expect("create checks/");
        std::fs::write(
            dir.path().join("checks/orders.yaml"),
            CHECKS.replace("{s}", &db.schema),
        )
        .expect("write the check file");
        Self { dir }
    }

    async fn warden(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("--config")
            .arg(self.dir.path().join("warden.yaml"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("WARDEN_CONFIG")
            .env_remove("WARDEN_LOG")
            .output()
            .await
            .expect("run warden")
    }

    fn config(&self) -> warden::config::Config {
        let loaded =
            warden::config::load(&self.dir.path().join("warden.yaml")).expect("valid config");
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        loaded.config
    }
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json_results(out: &Output) -> Vec<CheckResult> {
    #[derive(serde::Deserialize)]
    struct Report {
        results: Vec<CheckResult>,
    }
    let report: Report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not a JSON report ({e}):\n{}", describe(out)));
    report.results
}

fn find<'a>(results: &'a [CheckResult], check: &str, partition: &str) -> &'a CheckResult {
    results
        .iter()
        .find(|r| r.check == check && r.partition.as_deref() == Some(partition))
        .unwrap_or_else(|| panic!("no result for {check} on {partition} in {results:#?}"))
}

/// Loads 35 usual days and day 36 with 40% of its rows; returns the
/// project and the warehouse.
async fn setup(backend: Backend) -> Option<(TestDb, Project)> {
    let db = TestDb::new(backend).await?;
    db.exec(TABLE).await;
    let mut sql = String::new();
    let mut id = 1;
    for i in 0..36 {
        let n = if i == 35 { 40 } else { usual_rows(i) };
        sql.push_str(&insert_day(
            first_day() + chrono::Duration::days(i as i64),
            id,
            n,
        ));
        id += n;
    }
    db.exec(&sql).await;
    let project = Project::new(&db);
    Some((db, project))
}

async fn backfill_trains_then_detects(backend: Backend) {
    let Some((db, project)) = setup(backend).await else {
        return;
    };
    // 35 usual days, oldest first: the first 14 learn, the rest pass.
    let out = project
        .warden(&[
            "backfill",
            "orders",
            "--from",
            "2026-10-16",
            "--to",
            "2026-11-19",
            "--format",
            "json",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let results = json_results(&out);
    assert_eq!(results.len(), 35 * 3, "{}", describe(&out));
    let first = find(&results, "orders.anomaly_row_count", "2026-10-16");
    assert_eq!(first.outcome, Outcome::Pass);
    assert_eq!(
        first.message,
        format!("{} rows; learning: 0 of 14 points", usual_rows(0))
    );
    assert_eq!(first.expected, None);
    let learning = find(&results, "orders.anomaly_null_rate_email", "2026-10-24");
    assert!(
        learning.message.ends_with("; learning: 8 of 14 points"),
        "{learning:?}"
    );
    for r in &results {
        assert_eq!(r.outcome, Outcome::Pass, "{r:#?}");
    }
    // Trained: a Thursday's count within the band it expected.
    let thursday = find(&results, "orders.anomaly_row_count", "2026-11-19");
    let band = thursday.expected.expect("a band once trained");
    let rows = thursday.observed.expect("observed");
    assert!(band.lower <= rows && rows <= band.upper, "{thursday:#?}");
    assert!(band.lower > 70.0 && band.upper < 130.0, "{thursday:#?}");
    assert!(thursday.message.contains("for a Thursday"), "{thursday:#?}");
    assert!(thursday.score.is_some());
    // A Saturday expects the weekend.
    let saturday = find(&results, "orders.anomaly_row_count", "2026-11-14");
    let weekend = saturday.expected.expect("a band");
    assert!(
        weekend.center < 0.7 * band.center && saturday.message.contains("for a Saturday"),
        "{saturday:#?} vs {thursday:#?}"
    );

    // Day 36 brought 40 of its usual ~100 rows.
    let out = project
        .warden(&[
            "backfill",
            "orders",
            "--from",
            "2026-11-20",
            "--to",
            "2026-11-20",
            "--format",
            "json",
        ])
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let results = json_results(&out);
    let lost = find(&results, "orders.anomaly_row_count", "2026-11-20");
    assert_eq!(lost.outcome, Outcome::Fail, "{lost:#?}");
    assert_eq!(lost.observed, Some(40.0));
    let band = lost.expected.expect("the band it broke");
    assert!(band.lower > 40.0 && band.center > 90.0, "{lost:#?}");
    assert!(
        lost.message.starts_with("40 rows, expected ")
            && lost
                .message
                .contains(" for a Friday: below the usual range, ")
            && lost.message.ends_with("% of the usual"),
        "{}",
        lost.message
    );
    assert!(lost.score.unwrap() < -3.0, "{lost:#?}");
    // The same share of NULLs and the same prices are no anomaly.
    for check in [
        "orders.anomaly_null_rate_email",
        "orders.anomaly_avg_amount",
    ] {
        let r = find(&results, check, "2026-11-20");
        assert_eq!(r.outcome, Outcome::Pass, "{r:#?}");
        assert!(r.expected.is_some(), "{r:#?}");
    }
    // The JSON names the band's ends.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\"expected\":{\"lower\":") && text.contains("\"center\":"),
        "{text}"
    );

    // The band reaches `/metrics`.
    let metrics = Metrics::new();
    metrics.record_run("main", Duration::from_millis(5), &results, 1_800_000_000.0);
    let body = metrics.render();
    let series = |name: &str| -> f64 {
        body.lines()
            .find(|l| l.starts_with(name) && l.contains("check=\"orders.anomaly_row_count\""))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} series for the check in\n{body}"))
    };
    assert_eq!(series("warden_check_expected_lower{"), band.lower);
    assert_eq!(series("warden_check_expected_upper{"), band.upper);

    // The day, rerun after a fix, passes and overwrites.
    db.exec(&insert_day(
        NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
        10_000,
        60,
    ))
    .await;
    let out = project
        .warden(&[
            "check",
            "--dataset",
            "orders",
            "--partition",
            "2026-11-20",
            "--format",
            "json",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let fixed = json_results(&out);
    let r = find(&fixed, "orders.anomaly_row_count", "2026-11-20");
    assert_eq!(
        (r.outcome, r.observed),
        (Outcome::Pass, Some(100.0)),
        "{r:#?}"
    );
}

/// A blocking anomaly check denies the gate of a partition with 40% of
/// its usual rows: a breach, with the band in its reason.
async fn a_blocking_anomaly_denies_the_gate(backend: Backend) {
    let Some((_db, project)) = setup(backend).await else {
        return;
    };
    let out = project
        .warden(&[
            "backfill",
            "orders",
            "--from",
            "2026-10-16",
            "--to",
            "2026-11-19",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let config = Arc::new(project.config());
    let registry = warden::registry::Registry::open(&config.agent.registry)
        .await
        .expect("registry");
    let runner = Arc::new(warden::app::runner(&config, Some(registry.clone())));
    let service = GateService::with_options(
        registry,
        Arc::new(Metrics::new()),
        GateOptions {
            agent_id: "agent-1".to_owned(),
            lineage: None,
            timeout: Duration::from_secs(60),
            busy_poll: Duration::from_millis(20),
            sweep_every: Duration::from_secs(10),
        },
    );
    let request = GateRequest {
        dataset: "orders".to_owned(),
        partition: "2026-11-20".to_owned(),
        run_id: Some("load-20".to_owned()),
    };
    let gate = service
        .submit(config, runner, request, None)
        .await
        .expect("admitted");
    let gate = service
        .wait(&gate.gate_id, Duration::from_secs(60))
        .await
        .expect("decided");
    assert_eq!(gate.status, GateStatus::Denied, "{gate:#?}");
    assert_eq!(gate.basis, Some(GateBasis::Checks), "{gate:#?}");
    let reasons = gate.reasons.join("\n");
    assert!(
        reasons.contains("40 rows, expected ") && reasons.contains("% of the usual"),
        "{reasons}"
    );
    let lost = gate
        .results
        .iter()
        .find(|r| r.check == "orders.anomaly_row_count")
        .expect("the anomaly check ran in the gate");
    assert!(lost.expected.is_some(), "{lost:#?}");
}

on_every_engine!(sql: backfill_trains_then_detects, a_blocking_anomaly_denies_the_gate);
