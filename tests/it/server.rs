//! The HTTP server under abuse, on the real `warden run`: a client that
//! stalls in its request head is cut off, one that stalls in its body gets
//! a JSON 408, a body too large a JSON 413, connections beyond
//! `agent.max_http_connections` wait for a free one, and a long-poll on a
//! gate answers as soon as the agent shuts down. And the status page is
//! rendered from a snapshot, once per period however many load it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use chrono::Utc;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;
use warden::app::AppState;
use warden::registry::{Registry, RunRecord};

use crate::support::agent::{AgentProcess, Project};
use crate::support::gate::{self, Setup};
use crate::support::registry::{TestRegistry, result};

/// A project whose agent serves no dataset, with more `agent:` lines.
fn project(extra_agent: &str) -> Project {
    let p = Project::new();
    p.write(
        "warden.yaml",
        &format!(
            "agent:\n  registry: sqlite://warden.db\n{extra_agent}warehouses:\n  main:\n    \
             url: sqlite://warehouse.db\nchecks: [checks/*.yaml]\n"
        ),
    );
    p
}

/// Connects to the agent's port and sends `request` as it is.
async fn send(agent: &AgentProcess, request: &[u8]) -> TcpStream {
    let addr = agent.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("send");
    stream
}

/// What the server sends within `within`: one whole response (head and
/// `Content-Length` body), or what came before it closed the connection
/// (`None` when nothing came at all).
async fn response(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) | Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                break;
            }
        }
    }
    (!got.is_empty()).then(|| String::from_utf8_lossy(&got).into_owned())
}

/// The status, content type and JSON body of a raw response.
fn json_error(raw: &str) -> (u16, String, Value) {
    let (head, body) = raw.split_once("\r\n\r\n").expect("a whole head");
    let status = head[9..12].parse().unwrap();
    let ctype = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {raw}"));
    (status, ctype, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_clients_are_cut_off_and_every_rejection_is_json() {
    let p = project("");
    let mut agent = AgentProcess::start(&p.config(), &[]);
    agent.wait_ready(Duration::from_secs(20)).await;

    // A head that never ends: the connection is closed after the 10 s
    // header-read timeout, not before and not much after.
    let stalled_head = async {
        let mut s = send(&agent, b"GET /healthz HTTP/1.1\r\nHost: warden\r\n").await;
        let started = Instant::now();
        let got = response(&mut s, Duration::from_secs(20)).await;
        (started.elapsed(), got)
    };
    // A body that never ends: a JSON 408 after the 10 s body timeout.
    let stalled_body = async {
        let mut s = send(
            &agent,
            b"POST /api/v1/gates HTTP/1.1\r\nHost: warden\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"dataset\":",
        )
        .await;
        let started = Instant::now();
        let got = response(&mut s, Duration::from_secs(20)).await;
        // The connection is closed after it.
        let after = response(&mut s, Duration::from_secs(5)).await;
        (started.elapsed(), got, after)
    };
    // Too large, by its length or as it streams: a JSON 413 at once.
    let too_large = async {
        let mut by_length = send(
            &agent,
            b"POST /api/v1/gates HTTP/1.1\r\nHost: warden\r\nContent-Type: application/json\r\n\
              Content-Length: 100000\r\n\r\n",
        )
        .await;
        let by_length = response(&mut by_length, Duration::from_secs(5)).await;
        let mut request = b"POST /api/v1/silences HTTP/1.1\r\nHost: warden\r\n\
              Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
        for _ in 0..20 {
            request.extend_from_slice(b"1000\r\n");
            request.extend_from_slice(&[b' '; 0x1000]);
            request.extend_from_slice(b"\r\n");
        }
        let mut streamed = send(&agent, &request).await;
        let streamed = response(&mut streamed, Duration::from_secs(5)).await;
        (by_length, streamed)
    };
    let ((head_took, head), (body_took, body, after), (by_length, streamed)) =
        tokio::join!(stalled_head, stalled_body, too_large);

    assert!(
        head.is_none(),
        "a stalled head gets no answer, the connection is closed: {head:?}"
    );
    assert!(
        (Duration::from_secs(9)..Duration::from_secs(15)).contains(&head_took),
        "closed after {head_took:?}"
    );

    let (status, ctype, error) = json_error(&body.expect("an answer to a stalled body"));
    assert_eq!(status, 408, "{error}");
    assert_eq!(ctype, "application/json");
    assert_eq!(error["error"], "request timeout");
    assert_eq!(
        error["detail"],
        "the request body did not arrive within 10s"
    );
    assert!(
        (Duration::from_secs(9)..Duration::from_secs(15)).contains(&body_took),
        "answered after {body_took:?}"
    );
    assert_eq!(after, None, "the connection is closed after the 408");

    for raw in [by_length, streamed] {
        let (status, ctype, error) = json_error(&raw.expect("an answer to a large body"));
        assert_eq!(status, 413, "{error}");
        assert_eq!(ctype, "application/json");
        assert_eq!(
            error,
            json!({"error": "payload too large", "detail": "the request body is larger than 65536 bytes"})
        );
    }
    assert_eq!(
        agent.terminate(Duration::from_secs(30)).await.code(),
        Some(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_beyond_the_cap_wait_for_a_free_one() {
    let p = project("  max_http_connections: 2\n");
    let mut agent = AgentProcess::start(&p.config(), &[]);
    agent.wait_ready(Duration::from_secs(20)).await;
    // Wait for the readiness probe's connection to go.
    tokio::time::sleep(Duration::from_millis(300)).await;
    const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: warden\r\n\r\n";

    // Two kept-alive connections hold both slots.
    let mut first = send(&agent, HEALTH).await;
    let mut second = send(&agent, HEALTH).await;
    for s in [&mut first, &mut second] {
        let got = response(s, Duration::from_secs(5))
            .await
            .expect("an answer");
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    }
    // A third is not served while they are open...
    let mut third = send(&agent, HEALTH).await;
    assert_eq!(response(&mut third, Duration::from_secs(2)).await, None);
    // ...and is as soon as one closes.
    drop(first);
    let got = response(&mut third, Duration::from_secs(5))
        .await
        .expect("served once a slot is free");
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    drop((second, third));
    assert_eq!(
        agent.terminate(Duration::from_secs(30)).await.code(),
        Some(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_poll_answers_promptly_at_shutdown() {
    let p = gate::Project::new(Setup::Sqlite).await.expect("SQLite");
    let mut agent = AgentProcess::start(&p.config_path(), &[]);
    agent.wait_ready(Duration::from_secs(20)).await;
    let client = reqwest::Client::new();
    let base = agent.base.clone();

    // A gate that takes seconds, waited for up to two minutes.
    let poll = tokio::spawn({
        let (client, base) = (client.clone(), base.clone());
        async move {
            let response = client
                .post(format!("{base}/api/v1/gates?wait=120s"))
                .json(&json!({"dataset": "slow", "partition": "b1", "run_id": "nightly"}))
                .send()
                .await
                .expect("an answer");
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.expect("JSON"),
                Instant::now(),
            )
        }
    });
    let mut validating = false;
    for _ in 0..200 {
        let state = client
            .get(format!("{base}/api/v1/datasets/slow/partitions/b1"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        if state["state"] == "validating" {
            validating = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(validating, "the gate never started");

    let stopped_at = Instant::now();
    agent.signal("TERM");
    let (status, gate, answered_at) = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("the long-poll answers at shutdown")
        .unwrap();
    let took = answered_at.duration_since(stopped_at);
    assert!(
        took < Duration::from_secs(3),
        "answered {took:?} after SIGTERM"
    );
    // The gate as it stands: not decided yet, and where to ask again.
    assert_eq!(status, 202, "{gate:#}");
    assert!(
        ["queued", "running"].contains(&gate["status"].as_str().unwrap()),
        "{gate:#}"
    );
    let status = agent.terminate(Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(0), "{}", agent.log());
    p.finish().await;
}

/// The agent's state, ready, for a project of one dataset `orders` with a
/// `row_count` check, on the registry at `url` (no agent runs).
async fn one_dataset_app(url: &str) -> (Project, AppState) {
    let project = project("");
    project.write(
        "checks/orders.yaml",
        "datasets:\n  - name: orders\n    warehouse: main\n    table: orders\n    checks:\n      \
         - row_count: { min: 1 }\n",
    );
    let config = Arc::new(project.load());
    let registry = Registry::open(url).await.unwrap();
    let state = AppState::builder(config, registry).ready(true).build();
    (project, state)
}

on_both_engines!(the_status_page_is_rendered_from_a_snapshot);

async fn the_status_page_is_rendered_from_a_snapshot(db: &TestRegistry) {
    let (_project, state) = one_dataset_app(&db.url).await;
    let router = warden::http::router(state.clone());
    let load = || {
        let router = router.clone();
        async move {
            let response = router
                .oneshot(Request::get("/").body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            String::from_utf8(body.to_vec()).unwrap()
        }
    };

    // 64 loads at once: rendered once, the same page for all.
    let pages = futures::future::join_all((0..64).map(|_| tokio::spawn(load()))).await;
    let first = pages[0].as_ref().unwrap().clone();
    assert!(first.contains("not run yet"), "{first}");
    assert!(pages.iter().all(|p| *p.as_ref().unwrap() == first));
    assert_eq!(state.status_page().refreshes(), 1);

    // A new result shows on the next rendering, not before.
    let mut recorded = result(
        "orders.row_count",
        None,
        warden::check::Outcome::Pass,
        Some(7.0),
    );
    recorded.kind = "row_count".to_owned();
    recorded.message = "7 rows, a result recorded after the first rendering".to_owned();
    db.record_run(&[RunRecord::new(recorded, Utc::now())])
        .await
        .unwrap();
    assert_eq!(load().await, first);
    assert_eq!(state.status_page().refreshes(), 1);
    tokio::time::sleep(warden::app::STATUS_PAGE_MAX_AGE + Duration::from_millis(200)).await;
    let page = load().await;
    assert!(
        page.contains("a result recorded after the first rendering"),
        "{page}"
    );
    assert_eq!(state.status_page().refreshes(), 2);
    state.registry().close().await;
}

/// A flood of page loads waits its turn: the first `PAGE_BURST` are served
/// at once, the rest at `PAGE_RATE` a second, while the API, health and
/// metrics answer at once all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_page_loads_waits_its_turn_and_the_rest_answers_at_once() {
    use warden::app::{PAGE_BURST, PAGE_RATE};
    let dir = tempfile::tempdir().unwrap();
    let registry = format!("sqlite://{}", dir.path().join("warden.db").display());
    let (_project, state) = one_dataset_app(&registry).await;
    let router = warden::http::router(state.clone());
    let get = |path: &'static str| {
        let router = router.clone();
        async move {
            let response = router
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
            Instant::now()
        }
    };

    // The budget's worth, and one more second's worth, at once.
    let beyond = PAGE_RATE as usize;
    let started = Instant::now();
    let flood: Vec<_> = (0..PAGE_BURST as usize + beyond)
        .map(|_| tokio::spawn(get("/")))
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for path in ["/healthz", "/metrics", "/api/v1/datasets"] {
        let asked = Instant::now();
        let answered = get(path).await;
        assert!(
            answered - asked < Duration::from_millis(500),
            "{path} waited behind the pages: {:?}",
            answered - asked
        );
    }
    let mut served: Vec<Duration> = Vec::new();
    for load in flood {
        served.push(load.await.unwrap() - started);
    }
    served.sort();
    // The burst is served without waiting for the rate.
    assert!(
        served[PAGE_BURST as usize - 1] < Duration::from_millis(900),
        "the burst waited: {:?}",
        served[PAGE_BURST as usize - 1]
    );
    // The loads beyond it are spread over about a second, not served at once.
    let last = *served.last().unwrap();
    assert!(
        last >= Duration::from_millis(800),
        "{beyond} loads beyond the burst were served within {last:?}"
    );
    state.registry().close().await;
}

/// Bytes that are not an HTTP request never reach a route: the HTTP library
/// answers a bare 400 (a malformed request line) or 431 (a head beyond its
/// buffer) and closes the connection, and the agent serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn what_is_not_http_gets_a_bare_rejection_and_the_agent_serves_on() {
    let p = project("");
    let mut agent = AgentProcess::start(&p.config(), &[]);
    agent.wait_ready(Duration::from_secs(20)).await;

    let mut garbage = send(&agent, b"\x16\x03\x01 not http at all\r\n\r\n").await;
    let got = response(&mut garbage, Duration::from_secs(5))
        .await
        .expect("an answer");
    assert!(got.starts_with("HTTP/1.1 400 "), "{got}");
    assert_eq!(response(&mut garbage, Duration::from_secs(2)).await, None);

    let mut head = b"GET /healthz HTTP/1.1\r\nHost: warden\r\n".to_vec();
    while head.len() < 1 << 20 {
        head.extend_from_slice(b"X-Filler: ");
        head.extend(std::iter::repeat_n(b'a', 1000));
        head.extend_from_slice(b"\r\n");
    }
    let addr = agent.base.trim_start_matches("http://").to_owned();
    let mut huge = TcpStream::connect(&addr).await.expect("connect");
    // The server may close before taking it all.
    let _ = huge.write_all(&head).await;
    let got = response(&mut huge, Duration::from_secs(5))
        .await
        .expect("an answer");
    assert!(got.starts_with("HTTP/1.1 431 "), "{got}");

    let health = reqwest::get(format!("{}/healthz", agent.base))
        .await
        .expect("the agent serves on");
    assert_eq!(health.status(), 200);
}
