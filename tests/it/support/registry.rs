//! A fresh registry per test: a SQLite file in a temporary directory, or a
//! new PostgreSQL database on the server named by `WARDEN_TEST_POSTGRES_URL`
//! (dropped again when the test ends, even if it failed).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::{Connection, PgConnection};
use warden::check::{CheckResult, Outcome};
use warden::registry::{Registry, RunRecord};

use super::db::{env_url, unique_name};

pub const POSTGRES_URL_VAR: &str = "WARDEN_TEST_POSTGRES_URL";

/// Runs each named `async fn(&Registry)` case once on SQLite and once on
/// PostgreSQL, as `<case>::sqlite` and `<case>::postgres`.
macro_rules! on_both_engines {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = crate::support::registry::TestRegistry::sqlite().await;
                super::$case(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = crate::support::registry::TestRegistry::postgres().await else { return };
                super::$case(&db).await;
            }
        }
    )+};
}

/// A registry that exists for one test.
pub struct TestRegistry {
    pub registry: Registry,
    /// The URL it was opened with (password included), to open it again.
    pub url: String,
    place: Place,
}

enum Place {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { admin_url: String, database: String },
}

impl std::ops::Deref for TestRegistry {
    type Target = Registry;
    fn deref(&self) -> &Registry {
        &self.registry
    }
}

impl TestRegistry {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("registry.db").display());
        let registry = Registry::open(&url).await.expect("open SQLite registry");
        Self {
            registry,
            url,
            place: Place::Sqlite { _dir: dir },
        }
    }

    /// `None` (with a note) when `WARDEN_TEST_POSTGRES_URL` is unset; a
    /// panic when it is set but the server cannot be used.
    pub async fn postgres() -> Option<Self> {
        let admin_url = env_url(POSTGRES_URL_VAR)?;
        let database = unique_name("warden_reg");
        let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!("{POSTGRES_URL_VAR} is set but PostgreSQL is unusable: {e}")
        });
        sqlx::query(&format!("CREATE DATABASE \"{database}\""))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let _ = admin.close().await;
        let url = with_database(&admin_url, &database);
        let registry = Registry::open(&url)
            .await
            .expect("open PostgreSQL registry");
        Some(Self {
            registry,
            url,
            place: Place::Postgres {
                admin_url,
                database,
            },
        })
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let Place::Postgres {
            admin_url,
            database,
        } = &self.place
        else {
            return;
        };
        let (admin_url, database) = (admin_url.clone(), database.clone());
        // Drop runs outside any async context we may block; use a thread with
        // its own runtime. Best-effort: a leftover database is only clutter.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                sqlx::query(&format!(
                    "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
                ))
                .execute(&mut admin)
                .await
                .ok()?;
                admin.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("note: could not drop test database {}", self.url);
        }
    }
}

/// `url` with its database (the path) replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A timestamp as the registry stores it: whole microseconds.
pub fn stored(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(6)
}

/// 2026-11-20 plus `hours`, UTC.
pub fn at(hours: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap() + chrono::Duration::hours(hours)
}

/// A result of check `<dataset>.<name>` as the engine would produce it.
pub fn result(
    check: &str,
    partition: Option<&str>,
    outcome: Outcome,
    observed: Option<f64>,
) -> CheckResult {
    let dataset = check.split_once('.').map_or(check, |(d, _)| d).to_owned();
    CheckResult {
        check: check.to_owned(),
        dataset,
        kind: "row_count".to_owned(),
        column: None,
        partition: partition.map(str::to_owned),
        outcome,
        observed,
        threshold: BTreeMap::from([("min".to_owned(), serde_json::json!(1.0))]),
        message: format!("{check} observed {observed:?}"),
        duration_ms: 12,
    }
}

/// A passing run record of `check` with `observed`.
pub fn record(
    check: &str,
    partition: Option<&str>,
    observed: f64,
    scheduled_at: DateTime<Utc>,
) -> RunRecord {
    RunRecord::new(
        result(check, partition, Outcome::Pass, Some(observed)),
        scheduled_at,
    )
}

#[test]
fn database_names_replace_the_path() {
    assert_eq!(
        with_database("postgres://u@h:5432/test", "x"),
        "postgres://u@h:5432/x"
    );
    assert_eq!(
        with_database("postgres://u@h/test?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}
