//! `warden demo`: a self-contained SQLite warehouse whose sample data has real
//! problems, with a config, check files and alert routes that find them.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Executor, SqlitePool};

/// What [`create`] wrote.
#[derive(Debug)]
pub struct DemoFiles {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub warehouse: PathBuf,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// A demo file could not be written.
    #[error("cannot write {}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The demo warehouse could not be created or filled.
    #[error("cannot build the demo warehouse {}", path.display())]
    Warehouse { path: PathBuf, source: sqlx::Error },
}

const WARDEN_YAML: &str = r#"# warden demo configuration: a SQLite warehouse with sample data.
agent:
  listen: ${WARDEN_LISTEN:-127.0.0.1:9464}
  registry: sqlite://warden.db
  timezone: UTC
  max_concurrent_checks: 4
warehouses:
  demo:
    url: sqlite://warehouse.db
    max_connections: 2
    query_timeout: 30s
checks: [checks/*.yaml]
alerts: alerts/routes.yaml
"#;

const CHECKS_YAML: &str = r#"# Checks on the demo shop. Each dataset has a real problem to find.
datasets:
  - name: orders
    warehouse: demo
    table: orders
    tier: 1
    owner: revenue-team
    runbook: https://wiki.example/runbooks/orders
    schedule: "* * * * *"
    checks:
      - row_count: { min: 1 }
      - null_rate: { column: customer_id, max: 0 }        # some orders lost their customer
      - null_rate: { columns: [coupon], max: 90%, severity: warn }
      - freshness: { column: updated_at, max_lag: 5m }   # kept fresh by the demo feed
      - unique: { columns: [order_id] }                   # one order was loaded twice
      - sql:
          name: negative_amounts
          query: "SELECT count(*) FROM {{ table }} WHERE amount < 0"
          max: 0
      - schema:
          columns:
            - { name: order_id, type: integer }
            - { name: customer_id, type: integer }
            - { name: amount, type: numeric }
  - name: events
    warehouse: demo
    table: events
    tier: 2
    owner: growth-team
    schedule: "* * * * *"
    checks:
      - row_count: { min: 1 }
      - freshness: { column: event_time, max_lag: 2h }    # the event feed stopped
  - name: daily_sales
    warehouse: demo
    table: daily_sales
    tier: 3
    owner: finance
    schedule: "5 0 * * *"
    partition: { column: sale_date, granularity: day }
    checks:
      - row_count: { min: 1 }
      - null_rate: { column: region, max: 0 }
      - freshness: { column: sale_date, by: "06:00", expect: yesterday }
"#;

const ROUTES_YAML: &str = r#"# Alert routes for the demo: everything goes to the log.
receivers:
  console: { log: {} }
routes:
  - match: {}
    receivers: [console]
policy:
  group_wait: 10s
  repeat_interval: 1h
  consecutive_failures: 1
  send_resolved: true
"#;

/// Writes `dir` (config, check files, routes, warehouse) as of `now`.
/// An existing demo directory is rebuilt from scratch, keeping nothing.
pub async fn create(dir: &Path, now: DateTime<Utc>) -> Result<DemoFiles, DemoError> {
    let write = |rel: &str, text: &str| -> Result<(), DemoError> {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| DemoError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| DemoError::Io { path, source })
    };
    for stale in ["warehouse.db", "warden.db"] {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(dir.join(format!("{stale}{suffix}")));
        }
    }
    write("warden.yaml", WARDEN_YAML)?;
    write("checks/shop.yaml", CHECKS_YAML)?;
    write("alerts/routes.yaml", ROUTES_YAML)?;

    let warehouse = dir.join("warehouse.db");
    let db_err = |source| DemoError::Warehouse {
        path: warehouse.clone(),
        source,
    };
    let pool = open(&warehouse).await.map_err(db_err)?;
    fill(&pool, now).await.map_err(db_err)?;
    pool.close().await;

    Ok(DemoFiles {
        dir: dir.to_owned(),
        config: dir.join("warden.yaml"),
        warehouse,
    })
}

/// Opens (creating) the demo warehouse.
pub async fn open(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .busy_timeout(std::time::Duration::from_secs(5));
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
}

/// Adds an order to the demo warehouse every `every` until `stop`, so the
/// `orders` freshness check keeps passing while `events` stays stale.
pub async fn feed(
    warehouse: PathBuf,
    every: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let pool = match open(&warehouse).await {
        Ok(pool) => pool,
        Err(e) => {
            tracing::error!(warehouse = %warehouse.display(), error = %e, "the demo feed cannot open the warehouse");
            return;
        }
    };
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        let now = Utc::now();
        let inserted = sqlx::query(
            "INSERT INTO orders SELECT max(order_id) + 1, 1000 + (max(order_id) + 1) % 97, \
             '42.00', NULL, ?, ? FROM orders",
        )
        .bind(now.format("%Y-%m-%d").to_string())
        .bind(ts(now))
        .execute(&pool)
        .await;
        if let Err(e) = inserted {
            tracing::warn!(error = %e, "the demo feed could not add an order");
        }
    }
    pool.close().await;
}

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

async fn fill(pool: &SqlitePool, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    tx.execute(
        "CREATE TABLE orders (
            order_id INTEGER NOT NULL,
            customer_id INTEGER,
            amount NUMERIC NOT NULL,
            coupon TEXT,
            order_date DATE NOT NULL,
            updated_at TIMESTAMP NOT NULL
        )",
    )
    .await?;
    tx.execute("CREATE TABLE events (event_id INTEGER PRIMARY KEY, kind TEXT NOT NULL, event_time TIMESTAMP NOT NULL)")
        .await?;
    tx.execute(
        "CREATE TABLE daily_sales (sale_date DATE NOT NULL, region TEXT, total NUMERIC NOT NULL)",
    )
    .await?;

    // 500 orders over the last ten days; every 40th has lost its customer,
    // most have no coupon, and order 250 was loaded twice.
    for i in 1..=500_i64 {
        let at = now - Duration::minutes(29 * (500 - i));
        let customer = if i % 40 == 0 {
            None
        } else {
            Some(1000 + i % 97)
        };
        let coupon = (i % 7 == 0).then(|| format!("WELCOME{}", i % 3));
        let amount = format!("{}.{:02}", 5 + (i * 37) % 240, (i * 13) % 100);
        let ids: &[i64] = if i == 250 { &[250, 250] } else { &[i] };
        for id in ids {
            sqlx::query("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)")
                .bind(id)
                .bind(customer)
                .bind(&amount)
                .bind(&coupon)
                .bind(at.format("%Y-%m-%d").to_string())
                .bind(ts(at))
                .execute(&mut *tx)
                .await?;
        }
    }

    // The event feed stopped three days ago.
    let stopped = now - Duration::days(3);
    for i in 0..300_i64 {
        let kinds = ["page_view", "add_to_cart", "checkout"];
        sqlx::query("INSERT INTO events (kind, event_time) VALUES (?, ?)")
            .bind(kinds[(i % 3) as usize])
            .bind(ts(stopped - Duration::minutes(7 * (300 - i))))
            .execute(&mut *tx)
            .await?;
    }

    // One row per region and day for the last two weeks, complete through yesterday.
    let today = now.date_naive();
    for back in 1..=14_i64 {
        let day = today - Duration::days(back);
        for (n, region) in ["emea", "amer", "apac"].iter().enumerate() {
            sqlx::query("INSERT INTO daily_sales VALUES (?, ?, ?)")
                .bind(day.format("%Y-%m-%d").to_string())
                .bind(region)
                .bind(format!("{}", 1000 + back * 10 + n as i64))
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn demo_warehouse_has_the_problems_it_promises() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let files = create(dir.path(), now).await.unwrap();
        assert!(files.config.exists());
        let pool = open(&files.warehouse).await.unwrap();
        let (rows, nulls, dupes): (i64, i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) - count(customer_id), count(order_id) - count(DISTINCT order_id) FROM orders",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!((rows, nulls, dupes), (501, 12, 1));
        let latest: String = sqlx::query_scalar("SELECT max(event_time) FROM events")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(latest, ts(now - Duration::days(3) - Duration::minutes(7)));
    }
}
