//! `cargo bench --bench status`: the status page cannot starve gates.
//!
//! 50 gates run at once, on 50 partitions of a SQLite warehouse, through the
//! agent's own state (`AppState`: the gate service, the registry, the
//! status page's snapshot) while the agent's HTTP server runs on a local
//! port. Each round gates every partition twice: once quiet, once while 64
//! clients load the status page over HTTP as fast as it answers. It prints
//! the gates' p50/p99 latency both ways, how many pages were served (the
//! page budget serves 64 at once, then 20 a second, and the loads beyond
//! wait their turn), how often the page was rendered, and whether the
//! decisions were the same.
//! Target: the page loads move the gates' p50 and p99 by at most 5 ms, and
//! change no decision.
//! Runs on a SQLite registry, and on a PostgreSQL one when
//! `WARDEN_TEST_POSTGRES_URL` is set and reachable (otherwise it says it
//! skipped it).

#[path = "support/common.rs"]
#[allow(dead_code)]
mod common;
#[path = "support/orders.rs"]
mod orders;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::BenchDatabase;
use orders::{build_warehouse, day, ms, percentile, write_config};
use warden::app::AppState;
use warden::gate::GateRequest;
use warden::http::server::{Limits, serve};
use warden::registry::{GateStatus, Registry};

const CALLERS: usize = 50;
const PAGE_LOADERS: usize = 64;
const ROUNDS: usize = 10;
const WARMUP: usize = 1;
/// How far page loads may move the gates' p50 and p99.
const LATENCY_TARGET_MS: f64 = 5.0;

/// One round through the gate: each caller gates its partition. The
/// latencies, and each partition's decision.
async fn gate_round(run: &str, state: &AppState) -> (Vec<Duration>, Vec<(String, GateStatus)>) {
    let calls = (0..CALLERS).map(|i| {
        let state = state.clone();
        let run = run.to_owned();
        tokio::spawn(async move {
            let req = GateRequest {
                dataset: "orders".into(),
                partition: day(i),
                run_id: Some(run),
            };
            let gates = state.gates();
            let started = Instant::now();
            let gate = gates
                .submit(state.config(), state.runner(), req, None)
                .await
                .expect("admitted");
            let gate = gates
                .wait(&gate.gate_id, Duration::from_secs(60))
                .await
                .expect("decided");
            (started.elapsed(), (day(i), gate.status))
        })
    });
    let mut latencies = Vec::new();
    let mut outcomes = Vec::new();
    for call in calls {
        let (latency, outcome) = call.await.expect("caller");
        latencies.push(latency);
        outcomes.push(outcome);
    }
    (latencies, outcomes)
}

/// Clients loading the status page until `stop`; counts the pages. They
/// run on a runtime of their own on another thread, as a browser is not in
/// the agent's process: the agent's runtime serves the pages and runs the
/// gates, and the two share the machine's cores.
fn load_pages(
    url: String,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the loaders' runtime");
        runtime.block_on(async move {
            let client = reqwest::Client::new();
            let loaders = (0..PAGE_LOADERS).map(|_| {
                let (client, url, stop, served) =
                    (client.clone(), url.clone(), stop.clone(), served.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let page = client.get(&url).send().await.expect("the page answers");
                        assert_eq!(page.status(), 200);
                        page.bytes().await.expect("the page");
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                })
            });
            for loader in futures::future::join_all(loaders).await {
                loader.expect("loader");
            }
        });
    })
}

fn signed_ms(a: Duration, b: Duration) -> String {
    format!("{:+.2} ms", (a.as_secs_f64() - b.as_secs_f64()) * 1e3)
}

async fn bench(label: &str, registry_url: &str, dir: &std::path::Path) {
    let config = Arc::new(write_config(dir, registry_url));
    let registry = Registry::open(&config.agent.registry)
        .await
        .expect("open the registry");
    let state = AppState::builder(config.clone(), registry.clone())
        .ready(true)
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let url = format!("http://{}/", listener.local_addr().expect("bound"));
    let server = tokio::spawn(serve(
        listener,
        warden::http::router(state.clone()),
        Limits::default(),
        state.shutdown().clone(),
    ));

    let (mut quiet, mut loaded) = (Vec::new(), Vec::new());
    let mut same = true;
    let served = Arc::new(AtomicU64::new(0));
    let mut loaded_time = Duration::ZERO;
    for round in 0..WARMUP + ROUNDS {
        let (q, quiet_outcomes) = gate_round(&format!("quiet-{round}"), &state).await;
        let stop = Arc::new(AtomicBool::new(false));
        let loaders = load_pages(url.clone(), stop.clone(), served.clone());
        // The loaders are at it before the gates start.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let (l, loaded_outcomes) = gate_round(&format!("loaded-{round}"), &state).await;
        loaded_time += started.elapsed();
        stop.store(true, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || loaders.join())
            .await
            .expect("join")
            .expect("the loaders");
        same &= quiet_outcomes == loaded_outcomes;
        same &= quiet_outcomes
            .iter()
            .all(|(_, s)| *s == GateStatus::Allowed);
        if round >= WARMUP {
            quiet.extend(q);
            loaded.extend(l);
        }
    }
    quiet.sort();
    loaded.sort();
    let (q50, q99) = (percentile(&quiet, 50.0), percentile(&quiet, 99.0));
    let (l50, l99) = (percentile(&loaded, 50.0), percentile(&loaded, 99.0));
    println!(
        "{label} registry, {CALLERS} concurrent gates, {} gates each way:",
        quiet.len()
    );
    println!(
        "  quiet                        p50 {:>10}   p99 {:>10}",
        ms(q50),
        ms(q99)
    );
    println!(
        "  with {PAGE_LOADERS} status page loaders  p50 {:>10}   p99 {:>10}",
        ms(l50),
        ms(l99)
    );
    let moved = |a: Duration, b: Duration| (a.as_secs_f64() - b.as_secs_f64()) * 1e3;
    let met = moved(l50, q50) <= LATENCY_TARGET_MS && moved(l99, q99) <= LATENCY_TARGET_MS;
    println!(
        "  difference                   p50 {:>10}   p99 {:>10}   (target <= {LATENCY_TARGET_MS} ms: {})",
        signed_ms(l50, q50),
        signed_ms(l99, q99),
        common::verdict(met)
    );
    let pages = served.load(Ordering::Relaxed);
    println!(
        "  status pages served {pages} ({:.0}/s while gating; budget {} at once, then {}/s), rendered {} times",
        pages as f64 / loaded_time.as_secs_f64().max(1e-9),
        warden::app::PAGE_BURST,
        warden::app::PAGE_RATE,
        state.status_page().refreshes()
    );
    println!(
        "  outcomes equal with and without page loads: {}",
        if same { "yes (met)" } else { "NO (MISSED)" }
    );
    state.shutdown().cancel();
    let _ = server.await;
    state.gates().shutdown().await;
    registry.close().await;
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        println!("load average at start: {}", common::load_average());
        let dir = tempfile::tempdir().expect("temporary directory");
        build_warehouse(&dir.path().join("warehouse.db"), CALLERS).await;
        bench(
            "SQLite",
            &format!("sqlite://{}", dir.path().join("registry.db").display()),
            dir.path(),
        )
        .await;

        let Ok(admin) = std::env::var("WARDEN_TEST_POSTGRES_URL") else {
            println!("PostgreSQL registry skipped: WARDEN_TEST_POSTGRES_URL is not set");
            return;
        };
        match BenchDatabase::create(&admin, "warden_status_bench").await {
            Ok(db) => {
                bench("PostgreSQL", &db.url, dir.path()).await;
                db.drop_it().await;
            }
            Err(e) => println!("PostgreSQL registry skipped: {admin} unreachable ({e})"),
        }
    });
}
