//! The status pages in a real browser, and `warden status`, against the
//! real `warden run` on the demo: its warehouse, checks and routes as
//! `warden demo` writes them, with a history of 30 real runs of its checks
//! (and one of 40 days ago) recorded before the agent starts.
//!
//! The browser is Debian's `chromium`, headless: `--dump-dom` for the DOM
//! after the page loaded, `--screenshot` for a picture, and the page's
//! console read from chromium's log on stderr (`--enable-logging=stderr`
//! writes every console message as a `CONSOLE` line). Without chromium the
//! browser cases are skipped with a note; `WARDEN_TEST_CHROMIUM=1` makes
//! them fail instead. `WARDEN_SCREENSHOTS=docs` writes the README's
//! pictures there: `/`, a check page and a dataset page.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use crate::support::agent::{AgentProcess, eventually, get_json};
use crate::support::tools::CHROMIUM;

/// Past runs recorded before the agent starts, one a minute.
const RUNS: i64 = 30;

/// The demo in a temporary directory, with [`RUNS`] recorded runs of every
/// dataset and, for `orders`, one run 40 days ago.
async fn demo_with_history() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let now = Utc::now();
    let files = warden::demo::create(dir.path(), now)
        .await
        .expect("demo files");
    let loaded = warden::config::load(&files.config).expect("demo config");
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let config = loaded.config;
    let registry = warden::registry::Registry::open(&config.agent.registry)
        .await
        .expect("demo registry");
    let runner = warden::app::runner(&config, Some(registry.clone()));
    let tz = config.agent.timezone;
    let mut times: Vec<_> = (1..=RUNS)
        .rev()
        .map(|k| now - chrono::Duration::minutes(k + 2))
        .collect();
    times.insert(0, now - chrono::Duration::days(40));
    for (i, at) in times.iter().enumerate() {
        for ds in &config.datasets {
            if i == 0 && ds.name.as_str() != "orders" {
                continue;
            }
            let scope = warden::check::Scope::scheduled(ds, *at, tz);
            runner
                .run(ds, &scope, *at, true)
                .await
                .unwrap_or_else(|e| panic!("run {} at {at}: {e}", ds.name));
        }
    }
    registry.close().await;
    (dir, files.config)
}

async fn start(config: &Path) -> AgentProcess {
    let mut agent = AgentProcess::start(config, &[]);
    agent.wait_ready(Duration::from_secs(30)).await;
    agent
}

/// What chromium made of a page: the DOM after load, and every console
/// message it logged.
struct Loaded {
    dom: String,
    console: Vec<String>,
}

/// Loads `url` in headless chromium (a profile of its own each time).
fn browse(chromium: &Path, url: &str, extra: &[&str]) -> Loaded {
    let profile = tempfile::tempdir().expect("profile dir");
    let output = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "chromium failed on {url}: {}",
        stderr
    );
    Loaded {
        dom: String::from_utf8_lossy(&output.stdout).into_owned(),
        console: stderr
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(str::to_owned)
            .collect(),
    }
}

fn dump(chromium: &Path, url: &str) -> String {
    let page = browse(chromium, url, &["--dump-dom"]);
    assert!(
        page.console.is_empty(),
        "{url} logged to the console:\n{}",
        page.console.join("\n")
    );
    assert!(
        page.dom.contains("</html>"),
        "{url}: no page:\n{}",
        page.dom
    );
    page.dom
}

/// The element starting at the first occurrence of `start` up to `end`.
fn slice<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("`{start}` not in the page:\n{html}"));
    let rest = &html[from..];
    &rest[..rest.find(end).map_or(rest.len(), |i| i + end.len())]
}

/// The points of the first chart line (`<path class="line" d="M… L…">`).
fn line_points(html: &str) -> Vec<(f64, f64)> {
    const START: &str = "class=\"line\" d=\"";
    let at = html
        .find(START)
        .unwrap_or_else(|| panic!("no chart line in {html}"));
    let d = &html[at + START.len()..];
    let d = &d[..d.find('"').expect("closing quote")];
    d.split(['M', 'L'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|xy| {
            let (x, y) = xy.split_once(',').expect("x,y");
            (x.parse().expect("x"), y.parse().expect("y"))
        })
        .collect()
}

fn attr<'a>(html: &'a str, name: &str) -> &'a str {
    let key = format!("{name}=\"");
    let at = html
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {html}"));
    let rest = &html[at + key.len()..];
    &rest[..rest.find('"').expect("closing quote")]
}

async fn post(url: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    (r.status().as_u16(), r.json().await.expect("JSON"))
}

/// A partition of `daily_sales` with no rows: the gate quarantines it, and
/// a person overrides the quarantine. Returns the partition.
async fn quarantine_and_override(base: &str) -> String {
    let partition = (Utc::now() - chrono::Duration::days(20))
        .format("%Y-%m-%d")
        .to_string();
    let (status, gate) = post(
        &format!("{base}/api/v1/gates?wait=60s"),
        json!({"dataset": "daily_sales", "partition": partition, "run_id": "nightly-1"}),
    )
    .await;
    assert_eq!(status, 200, "{gate}");
    assert_eq!(gate["status"], "denied", "{gate}");
    assert_eq!(gate["basis"], "checks", "{gate}");
    let (status, body) = post(
        &format!("{base}/api/v1/datasets/daily_sales/partitions/{partition}/override"),
        json!({"decision": "allow", "reason": "region totals came by email", "by": "ana"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    partition
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_in_a_real_browser() {
    let Some(chromium) = CHROMIUM.find() else {
        return;
    };
    let (_dir, config) = demo_with_history().await;
    let agent = start(&config).await;
    let base = agent.base.clone();
    let partition = quarantine_and_override(&base).await;

    // `/`: the demo's failing checks are failing, each with a sparkline
    // of its last 30 values.
    let home = dump(&chromium, &format!("{base}/"));
    for check in [
        "orders.null_rate_customer_id",
        "orders.unique_order_id",
        "events.freshness_event_time",
    ] {
        let row = slice(
            &home,
            &format!("<tr class=\"check fail\" data-check=\"{check}\">"),
            "</tr>",
        );
        assert!(
            row.contains("<span class=\"badge fail\">fail</span>"),
            "{row}"
        );
        let spark = slice(row, "<svg class=\"spark\"", "</svg>");
        assert_eq!(line_points(spark).len(), 30, "{check}: {spark}");
        assert!(
            spark.contains("<g class=\"pt fail\">"),
            "failing points marked: {spark}"
        );
        assert!(spark.contains("· fail</title>"), "tooltips: {spark}");
    }
    let passing = slice(
        &home,
        "<tr class=\"check pass\" data-check=\"orders.row_count\">",
        "</tr>",
    );
    let spark = slice(passing, "<svg class=\"spark\"", "</svg>");
    assert_eq!(line_points(spark).len(), 30);
    assert!(
        spark.contains("class=\"limit\""),
        "threshold drawn: {spark}"
    );
    assert!(!spark.contains("pt fail"), "{spark}");

    // `/checks/{id}`: the chart follows its range.
    let check_url = format!("{base}/checks/orders.row_count");
    let week = dump(&chromium, &format!("{check_url}?range=7d"));
    let quarter = dump(&chromium, &format!("{check_url}?range=90d"));
    let span = |html: &str| {
        let svg = slice(html, "<svg class=\"history\"", ">");
        let from = chrono::DateTime::parse_from_rfc3339(attr(svg, "data-from")).unwrap();
        let to = chrono::DateTime::parse_from_rfc3339(attr(svg, "data-to")).unwrap();
        let points: usize = attr(svg, "data-points").parse().unwrap();
        ((to - from).num_days(), points)
    };
    let (week_days, week_points) = span(&week);
    let (quarter_days, quarter_points) = span(&quarter);
    assert_eq!((week_days, quarter_days), (7, 90));
    assert!(week_points >= RUNS as usize, "{week_points}");
    assert_eq!(
        quarter_points,
        week_points + 1,
        "the run of 40 days ago is in 90 days only"
    );
    assert!(week.contains("<strong aria-current=\"true\">7d</strong>"));
    assert!(quarter.contains("<strong aria-current=\"true\">90d</strong>"));
    assert_eq!(line_points(&quarter).len(), quarter_points);
    // On 90 days, the run of 40 days ago sits a little right of the middle
    // and the recent runs at the right end; on 7 days, they all do.
    let q = line_points(&quarter);
    assert!((400.0..500.0).contains(&q[0].0), "{q:?}");
    assert!(q[1].0 > 740.0, "{q:?}");
    assert!(line_points(&week)[0].0 > 700.0);
    assert!(week.contains("id=\"timeline\""), "outcome timeline");
    assert!(
        week.matches("<tr class=\"result pass\">").count() >= RUNS as usize,
        "the table of results"
    );
    // `/datasets/{d}`: the quarantined partition shows its override history.
    let sales = dump(&chromium, &format!("{base}/datasets/daily_sales"));
    let history = slice(
        &sales,
        &format!("<table class=\"transitions\" data-partition=\"{partition}\">"),
        "</table>",
    );
    let rows: Vec<&str> = history.split("<tr>").skip(2).collect();
    assert_eq!(rows.len(), 3, "{history}");
    assert!(rows[0].contains(">validating</span>"), "{}", rows[0]);
    assert!(rows[1].contains(">quarantined</span>"), "{}", rows[1]);
    assert!(rows[2].contains(">passed</span>"), "{}", rows[2]);
    assert!(rows[2].contains("ana"), "the actor: {}", rows[2]);
    assert!(
        rows[2].contains("region totals came by email"),
        "the reason: {}",
        rows[2]
    );
    assert!(sales.contains("id=\"gates\""), "its gates");
    assert!(sales.contains("nightly-1"), "the gate's run");
    assert!(
        sales.contains("<svg class=\"spark\""),
        "its checks' sparklines"
    );

    // A screenshot of `/` is a real picture.
    let shots = tempfile::tempdir().unwrap();
    let png = shots.path().join("status.png");
    let shot = browse(
        &chromium,
        &format!("{base}/"),
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1100,1500",
            "--hide-scrollbars",
        ],
    );
    assert!(shot.console.is_empty(), "{:?}", shot.console);
    let bytes = std::fs::read(&png).expect("screenshot written");
    if let Some(dir) = std::env::var_os("WARDEN_SCREENSHOTS") {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        std::fs::write(dir.join("status-page.png"), &bytes).expect("keep the screenshot");
        for (name, path, height) in [
            (
                "check-page.png",
                "/checks/orders.null_rate_customer_id?range=7d",
                "1250",
            ),
            ("dataset-page.png", "/datasets/daily_sales", "1000"),
        ] {
            let png = dir.join(name);
            let shot = browse(
                &chromium,
                &format!("{base}{path}"),
                &[
                    &format!("--screenshot={}", png.display()),
                    &format!("--window-size=1100,{height}"),
                    "--hide-scrollbars",
                ],
            );
            assert!(shot.console.is_empty(), "{:?}", shot.console);
        }
    }
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
    assert!(
        bytes.len() > 20_000,
        "with something drawn: {} bytes",
        bytes.len()
    );

    // The check page shows the alert it raised, once the agent's first
    // scheduled run (a minute at most) found it failing.
    let alert_url = format!("{base}/checks/events.freshness_event_time");
    let alert = eventually(
        Duration::from_secs(120),
        "the alert on the check page",
        || {
            let page = dump(&chromium, &alert_url);
            async move {
                let section = slice(&page, "id=\"alerts\"", "</section>").to_owned();
                section.contains(">firing</span>").then_some(section)
            }
        },
    )
    .await;
    assert!(alert.contains("old (max 2h)"), "its message: {alert}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_command_prints_what_the_page_shows() {
    let (dir, config) = demo_with_history().await;
    let agent = start(&config).await;
    let base = agent.base.clone();
    let (status, api) = get_json(&format!("{base}/api/v1/status")).await;
    assert_eq!(status, 200, "{api}");

    let warden = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("WARDEN_SERVER")
            .env_remove("WARDEN_API_TOKEN")
            .env("NO_COLOR", "1")
            .output()
            .expect("run warden status");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, text, err) = warden(&["status", "--server", &base]);
    assert_eq!(code, Some(0), "{err}");
    assert!(text.contains("3 datasets: "), "{text}");
    let line = |check: &str| {
        text.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(check))
            .unwrap_or_else(|| panic!("no line for {check}:\n{text}"))
            .to_owned()
    };
    let failing = line("orders.null_rate_customer_id");
    assert!(failing.trim_start().starts_with("fail"), "{failing}");
    let spark = failing.split_whitespace().nth(2).unwrap();
    assert_eq!(spark.chars().count(), 30, "its last 30 values: {failing}");
    assert!(spark.chars().all(|c| c == 'x'), "each a failure: {failing}");
    let passing = line("orders.row_count");
    assert!(passing.trim_start().starts_with("pass"), "{passing}");
    assert!(text.contains("FAIL     orders  tier 1"), "{text}");
    assert!(text.contains("warehouse demo up"), "{text}");

    // The JSON is the API's, datasets worst first as on the page.
    let (code, json_out, err) = warden(&["status", "--server", &base, "--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let body: Value = serde_json::from_str(&json_out).expect("JSON");
    let names: Vec<&str> = body["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3);
    assert_eq!(body["datasets"][0]["status"], "fail");
    let orders = body["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "orders")
        .unwrap();
    let check = orders["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "orders.null_rate_customer_id")
        .unwrap();
    assert_eq!(check["last_result"]["outcome"], "fail");
    assert_eq!(check["recent"].as_array().unwrap().len(), 30);

    // Discovery as `warden gate` does it: `agent.listen` of the
    // configuration (here the demo's default port, where nothing listens).
    let (code, _, err) = warden(&["status", "--server", "http://127.0.0.1:9"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("cannot reach the agent at http://127.0.0.1:9"),
        "{err}"
    );
}
