//! What the benchmarks share: ports, a process's memory, verdicts, and a
//! scratch PostgreSQL database. Each bench uses part of it.

use std::net::TcpListener;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};

/// A free port on the loopback interface for `agent.listen`.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Kilobytes of a `Vm…:` line of `/proc/<pid>/status`.
pub fn proc_status_kb(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

pub fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// A database a bench creates on the PostgreSQL server at an admin URL and
/// drops at the end: `<prefix>_<pid>`, a leftover of that name replaced.
pub struct BenchDatabase {
    admin: PgConnectOptions,
    name: String,
    pub url: String,
}

impl BenchDatabase {
    /// Creates it; the error when the server cannot be reached or the URL
    /// read, so that a bench can say it skipped PostgreSQL.
    pub async fn create(admin_url: &str, prefix: &str) -> Result<Self, String> {
        let admin: PgConnectOptions = admin_url.parse().map_err(|e| format!("{e}"))?;
        let name = format!("{prefix}_{}", std::process::id());
        let mut conn = admin.connect().await.map_err(|e| format!("{e}"))?;
        conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await
            .expect("drop a leftover database");
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create the bench database");
        conn.close().await.expect("close");
        let mut url = url::Url::parse(admin_url).map_err(|e| format!("{e}"))?;
        url.set_path(&name);
        Ok(Self {
            admin,
            name,
            url: url.to_string(),
        })
    }

    pub async fn drop_it(&self) {
        let mut conn = self.admin.connect().await.expect("connect to PostgreSQL");
        conn.execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await
            .expect("drop the bench database");
        conn.close().await.expect("close");
    }
}

/// The machine's load averages (1, 5 and 15 minutes), to print beside
/// figures that depend on what else runs.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| {
            let v: Vec<&str> = l.split_whitespace().take(3).collect();
            (v.len() == 3).then(|| v.join(" "))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}
