//! The `warden` binary run for real in a [`Project`] directory, as a person
//! runs it: the command with none of the variables that change what it does
//! set, what one run did ([`Run`]), and the project's SQLite warehouse
//! (`warehouse.db`) and registry (`warden.db`) as the binary leaves them.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection;
use warden::domain::CheckId;
use warden::registry::{Registry, StoredResult};

use crate::support::agent::Project;

/// `warden.yaml` with a SQLite warehouse (`warehouse.db`) and registry
/// (`warden.db`) beside it.
pub const WARDEN_YAML: &str = "\
agent:
  registry: sqlite://warden.db
  timezone: UTC
warehouses:
  main:
    url: sqlite://warehouse.db
    query_timeout: 5s
checks: [checks/*.yaml]
";

/// The binary, run in `dir` with none of the variables that change what it
/// does set.
pub fn warden_command(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.current_dir(dir);
    for var in [
        "WARDEN_CONFIG",
        "WARDEN_LOG",
        "WARDEN_SERVER",
        "WARDEN_API_TOKEN",
        "WAREHOUSE_URL",
        "WAREHOUSE_PASSWORD",
        "NO_COLOR",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `warden <args>` in `dir`, with `env` set.
pub fn warden_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let started = Instant::now();
    let mut cmd = warden_command(dir);
    cmd.args(args).envs(env.iter().copied());
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run warden");
    Run {
        code: status.code().expect("exit status (not a signal)"),
        stdout: String::from_utf8(stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(stderr).expect("utf-8 stderr"),
        elapsed: started.elapsed(),
    }
}

/// What one run of the binary did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit status\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// stdout parsed as exactly one JSON document.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// stderr lines with the log lines (which carry colour codes and
    /// timestamps) left out.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.contains(" WARN") && !l.contains(" ERROR"))
            .collect()
    }

    /// The `error: …` lines of stderr.
    pub fn errors(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect()
    }
}

/// Runs `f` to completion on a runtime of its own (for plain `#[test]`s).
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

impl Project {
    /// Runs `warden <args>` in the project directory.
    pub fn warden(&self, args: &[&str]) -> Run {
        warden_in(self.dir.path(), args, &[])
    }

    /// Like [`warden`](Self::warden), with `env` set.
    pub fn warden_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        warden_in(self.dir.path(), args, env)
    }

    /// `warden.yaml` with `from` replaced by `to`.
    pub fn edit_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(self.config()).expect("read config");
        assert!(text.contains(from), "{from} not in warden.yaml");
        self.write("warden.yaml", &text.replace(from, to));
    }

    /// Runs SQL against `warehouse.db` (created if missing); `{s}` is `main`,
    /// `{TIMESTAMP}` a timestamp without zone, as in `TestDb::exec`.
    pub fn sqlite(&self, sql: &str) {
        let sql = sql
            .replace("{s}", "main")
            .replace("{TIMESTAMP}", "TIMESTAMP");
        let path = self.path("warehouse.db");
        block_on(async move {
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true);
            let mut conn = sqlx::SqliteConnection::connect_with(&opts)
                .await
                .expect("open warehouse");
            sqlx::raw_sql(&sql)
                .execute(&mut conn)
                .await
                .expect("fixture SQL");
            conn.close().await.expect("close warehouse");
        });
    }

    /// A single number from the warehouse, e.g. `SELECT count(*) FROM orders`.
    pub fn sqlite_count(&self, sql: &str) -> i64 {
        let path = self.path("warehouse.db");
        let sql = sql.to_owned();
        block_on(async move {
            let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
            let mut conn = sqlx::SqliteConnection::connect_with(&opts)
                .await
                .expect("open warehouse");
            let n: i64 = sqlx::query_scalar(&sql)
                .fetch_one(&mut conn)
                .await
                .expect("count");
            conn.close().await.expect("close warehouse");
            n
        })
    }

    /// Opens the registry `warden.db` and runs `f` on it.
    pub fn with_registry<T>(&self, f: impl AsyncFnOnce(&Registry) -> T) -> T {
        let url = format!("sqlite://{}", self.path("warden.db").display());
        block_on(async move {
            let registry = Registry::open(&url).await.expect("open registry");
            let value = f(&registry).await;
            registry.close().await;
            value
        })
    }

    /// The stored results of `check` on the whole relation, newest first.
    pub fn history(&self, check: &CheckId) -> Vec<StoredResult> {
        self.with_registry(async |r| r.history(check, 100).await.expect("history"))
    }
}
