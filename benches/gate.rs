//! `cargo bench --bench gate`: what the publication gate adds to the SQL it
//! runs, with 50 callers at once.
//!
//! A SQLite warehouse holds a staging table of 50 daily partitions. Each
//! round, 50 concurrent callers each (a) run the dataset's partition checks
//! directly (`Runner::observe_table` + evaluation: the SQL itself), and, in
//! the next round, (b) ask the gate about the same partitions
//! (`GateService::submit` + `wait`: admission, serialisation, the same SQL,
//! the decision and the partition's state recorded in the registry). The
//! difference of the latency percentiles is the gate's overhead. Runs on a
//! SQLite registry, and on a PostgreSQL one when `WARDEN_BENCH_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`) is reachable.
//! Target: p99 overhead under 5 ms.

#[path = "support/common.rs"]
#[allow(dead_code)]
mod common;
#[path = "support/orders.rs"]
mod orders;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::BenchDatabase;
use orders::{build_warehouse, day, ms, percentile, write_config};
use warden::check::{Runner, Scope};
use warden::config::Config;
use warden::domain::{Granularity, PartitionKey};
use warden::gate::{GateOptions, GateRequest, GateService, LogQuarantine};
use warden::metrics::Metrics;
use warden::registry::{GateStatus, Registry};

const CALLERS: usize = 50;
const ROUNDS: usize = 20;
const WARMUP: usize = 2;
const TARGET_P99: Duration = Duration::from_millis(5);

/// One round of the SQL itself: each caller checks its partition.
async fn direct_round(config: &Arc<Config>, runner: &Arc<Runner>) -> Vec<Duration> {
    let calls = (0..CALLERS).map(|i| {
        let (config, runner) = (config.clone(), runner.clone());
        tokio::spawn(async move {
            let ds = config.dataset("orders").expect("dataset");
            let key = PartitionKey::parse(&day(i), Granularity::Day).expect("partition");
            let scope = Scope::Partition(key);
            let started = Instant::now();
            let pending = runner.observe_table(ds, &ds.gate_table, &scope).await;
            let now = Utc::now();
            let at = runner.scheduled_time(&scope, now);
            let results = runner
                .finish(ds, pending, at, now, false)
                .await
                .expect("not recorded");
            assert!(results.iter().all(|r| r.outcome.as_str() == "pass"));
            started.elapsed()
        })
    });
    collect(calls).await
}

/// One round through the gate: each caller gates its partition.
async fn gate_round(
    round: usize,
    config: &Arc<Config>,
    runner: &Arc<Runner>,
    gates: &GateService,
) -> Vec<Duration> {
    let calls = (0..CALLERS).map(|i| {
        let (config, runner, gates) = (config.clone(), runner.clone(), gates.clone());
        tokio::spawn(async move {
            let req = GateRequest {
                dataset: "orders".into(),
                partition: day(i),
                run_id: Some(format!("round-{round}")),
            };
            let started = Instant::now();
            let gate = gates
                .submit(config, runner, req, None)
                .await
                .expect("admitted");
            let gate = gates
                .wait(&gate.gate_id, Duration::from_secs(60))
                .await
                .expect("decided");
            let elapsed = started.elapsed();
            assert_eq!(gate.status, GateStatus::Allowed, "{gate:?}");
            elapsed
        })
    });
    collect(calls).await
}

async fn collect(calls: impl Iterator<Item = tokio::task::JoinHandle<Duration>>) -> Vec<Duration> {
    let mut out = Vec::new();
    for call in calls {
        out.push(call.await.expect("caller"));
    }
    out
}

async fn bench(label: &str, registry_url: &str, dir: &std::path::Path) -> bool {
    let config = Arc::new(write_config(dir, registry_url));
    let registry = Registry::open(&config.agent.registry)
        .await
        .expect("open the registry");
    let runner = Arc::new(warden::app::runner(&config, Some(registry.clone())));
    let gates = GateService::with_options(
        registry.clone(),
        Arc::new(Metrics::new()),
        GateOptions {
            agent_id: "bench".into(),
            ..GateOptions::default()
        },
    );
    gates.set_quarantine_hook(Arc::new(LogQuarantine));
    let (mut direct, mut gated) = (Vec::new(), Vec::new());
    for round in 0..WARMUP + ROUNDS {
        let d = direct_round(&config, &runner).await;
        let g = gate_round(round, &config, &runner, &gates).await;
        if round >= WARMUP {
            direct.extend(d);
            gated.extend(g);
        }
    }
    direct.sort();
    gated.sort();
    let (d50, d99) = (percentile(&direct, 50.0), percentile(&direct, 99.0));
    let (g50, g99) = (percentile(&gated, 50.0), percentile(&gated, 99.0));
    let over50 = g50.saturating_sub(d50);
    let over99 = g99.saturating_sub(d99);
    println!(
        "{label} registry, {CALLERS} concurrent callers, {} calls each way:",
        direct.len()
    );
    println!(
        "  the SQL itself   p50 {:>10}   p99 {:>10}",
        ms(d50),
        ms(d99)
    );
    println!(
        "  through the gate p50 {:>10}   p99 {:>10}",
        ms(g50),
        ms(g99)
    );
    println!(
        "  gate overhead    p50 {:>10}   p99 {:>10}   (target p99 < {})",
        ms(over50),
        ms(over99),
        ms(TARGET_P99)
    );
    registry.close().await;
    over99 < TARGET_P99
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("temporary directory");
        build_warehouse(&dir.path().join("warehouse.db"), CALLERS).await;
        let mut met = bench(
            "SQLite",
            &format!("sqlite://{}", dir.path().join("registry.db").display()),
            dir.path(),
        )
        .await;

        let admin = std::env::var("WARDEN_BENCH_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        match BenchDatabase::create(&admin, "warden_gate_bench").await {
            Ok(db) => {
                met &= bench("PostgreSQL", &db.url, dir.path()).await;
                db.drop_it().await;
            }
            Err(e) => println!("PostgreSQL registry skipped: {admin} unreachable ({e})"),
        }
        println!("target {}", if met { "met" } else { "NOT met" });
    });
}
