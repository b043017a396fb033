//! What the gate benchmarks share: the orders dataset gated on a staging
//! table of daily partitions in a SQLite warehouse, and how latencies are
//! read.

use std::time::Duration;

use sqlx::Connection;
use warden::config::Config;

/// Rows in each partition of the staging table.
const ROWS_PER_PARTITION: usize = 200;

pub const CHECKS: &str = r#"datasets:
  - name: orders
    warehouse: main
    table: orders
    schedule: "0 0 1 1 *"
    partition: { column: order_date, granularity: day }
    gate: { table: orders_staging }
    checks:
      - row_count: { min: 1 }
      - null_rate: { column: customer_id, max: 0 }
      - unique: { columns: [order_id] }
      - sql:
          name: negative_amounts
          query: "SELECT count(*) FROM {{ table }} WHERE amount < 0 AND {{ partition_filter }}"
          max: 0
"#;

pub fn day(i: usize) -> String {
    let start = chrono::NaiveDate::from_ymd_opt(2026, 9, 1).expect("valid date");
    (start + chrono::Duration::days(i as i64))
        .format("%Y-%m-%d")
        .to_string()
}

/// The warehouse: a published table and its staging copy, `partitions`
/// daily partitions of it.
pub async fn build_warehouse(path: &std::path::Path, partitions: usize) {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("open the bench warehouse");
    let mut sql = String::from(
        "CREATE TABLE orders (order_id BIGINT, customer_id BIGINT, amount REAL, order_date DATE);
         CREATE TABLE orders_staging (order_id BIGINT, customer_id BIGINT, amount REAL, order_date DATE);
         CREATE INDEX staging_by_day ON orders_staging (order_date);
         BEGIN;",
    );
    for p in 0..partitions {
        for r in 0..ROWS_PER_PARTITION {
            let id = p * ROWS_PER_PARTITION + r;
            sql.push_str(&format!(
                "INSERT INTO orders_staging VALUES ({id}, {}, {}.5, '{}');",
                id % 977,
                id % 300,
                day(p)
            ));
        }
    }
    sql.push_str("COMMIT;");
    sqlx::raw_sql(&sql)
        .execute(&mut conn)
        .await
        .expect("fill the bench warehouse");
}

pub fn write_config(dir: &std::path::Path, registry: &str) -> Config {
    std::fs::write(
        dir.join("warden.yaml"),
        format!(
            "agent:\n  registry: {registry}\nwarehouses:\n  main:\n    url: sqlite://{}\n    max_connections: 8\n\
             checks: [checks.yaml]\n",
            dir.join("warehouse.db").display()
        ),
    )
    .expect("write warden.yaml");
    std::fs::write(dir.join("checks.yaml"), CHECKS).expect("write checks.yaml");
    warden::config::load(&dir.join("warden.yaml"))
        .expect("bench config")
        .config
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
