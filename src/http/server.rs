//! Serving the HTTP app on `agent.listen` so that it holds up under abuse.
//!
//! - **Connections.** At most `agent.max_http_connections` are open at
//!   once; a further one waits in the listen backlog until one closes (the
//!   way a limited listener works), so a flood costs the agent no memory.
//!   Connections speak HTTP/1.1.
//! - **Headers.** A connection that has not sent a whole request head
//!   within [`HEADER_READ_TIMEOUT`] is closed; an idle keep-alive
//!   connection too, so an idle client holds a connection slot no longer.
//! - **Bodies.** A body is read before the handler runs: larger than
//!   [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES) it is a 413, not complete
//!   within [`BODY_TIMEOUT`] a 408 (and the connection is closed).
//! - **Requests.** A handler answers within [`REQUEST_TIMEOUT`], or a
//!   long-poll (`?wait=`) within its wait and [`LONG_POLL_MARGIN`];
//!   otherwise the caller gets a 503. Long-polls answer at once when the
//!   agent shuts down (`gates.rs`).
//!
//! Every rejection made here is the documented JSON error ([`ApiError`]).
//! On shutdown the listener closes at once, idle connections are closed,
//! and requests under way get [`SHUTDOWN_GRACE`] to finish.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ApiError;
use super::gates::parse_wait;
use crate::config::AgentConfig;
use crate::format::duration;

/// How long a client may take to send a request's head (and how long an
/// idle keep-alive connection stays open).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a handler may take to answer, unless the request is a long-poll.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How much longer than its `?wait=` a long-poll may take to answer.
pub const LONG_POLL_MARGIN: Duration = Duration::from_secs(10);
/// How long requests under way may take to finish once the agent shuts down.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// The pause after the listener fails to accept (out of file descriptors),
/// so that the loop does not spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

/// The limits the server enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub body_timeout: Duration,
    pub request_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: HEADER_READ_TIMEOUT,
            body_timeout: BODY_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            max_connections: crate::config::validate::DEFAULT_MAX_HTTP_CONNECTIONS,
            max_body_bytes: super::MAX_BODY_BYTES,
        }
    }
}

impl Limits {
    /// The defaults with the agent's connection cap.
    pub fn for_agent(agent: &AgentConfig) -> Self {
        Self {
            max_connections: agent.max_http_connections.max(1),
            ..Self::default()
        }
    }
}

/// `router` with the per-request limits: the body read whole within its
/// time and size, and the handler's answer within the request's time.
pub fn limited(router: Router, limits: &Limits) -> Router {
    router.layer(middleware::from_fn_with_state(
        limits.clone(),
        limit_request,
    ))
}

async fn limit_request(State(limits): State<Limits>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let wait = req.uri().query().and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "wait")
            .and_then(|(_, value)| parse_wait(&value))
    });
    let budget = match wait {
        Some(wait) => wait + LONG_POLL_MARGIN,
        None => limits.request_timeout,
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return too_large(&limits);
    }
    let (parts, body) = req.into_parts();
    let read = Limited::new(body, limits.max_body_bytes).collect();
    let body = match tokio::time::timeout(limits.body_timeout.min(budget), read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return too_large(&limits);
        }
        Ok(Err(e)) => {
            return close(ApiError::bad_request(format!(
                "the request body could not be read: {e}"
            )));
        }
        Err(_) => {
            return close(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request timeout",
                format!(
                    "the request body did not arrive within {}",
                    duration(limits.body_timeout.min(budget).as_secs_f64())
                ),
            ));
        }
    };
    let req = Request::from_parts(parts, Body::from(body));
    let left = budget.saturating_sub(started.elapsed());
    match tokio::time::timeout(left, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::unavailable(format!(
            "the request was not answered within {}",
            duration(budget.as_secs_f64())
        ))
        .into_response(),
    }
}

fn too_large(limits: &Limits) -> Response {
    close(ApiError::too_large(format!(
        "the request body is larger than {} bytes",
        limits.max_body_bytes
    )))
}

/// The error, and the connection closed after it: what is left of the
/// body is not read.
fn close(error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Serves `router` on `listener` within `limits` until `shutdown` is
/// cancelled; then stops accepting, closes idle connections and gives the
/// requests under way [`SHUTDOWN_GRACE`] to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let app = limited(router, &limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    loop {
        while connections.try_join_next().is_some() {}
        // A free slot first: beyond the cap, connections wait in the backlog.
        let slot = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept an HTTP connection");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        connections.spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "HTTP connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?SHUTDOWN_GRACE, "HTTP requests still under way at shutdown were cut off");
        connections.abort_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    fn app(limits: &Limits) -> Router {
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late"
        };
        let echo = |body: axum::body::Bytes| async move { body.len().to_string() };
        limited(
            Router::new()
                .route("/slow", get(slow))
                .route("/echo", post(echo)),
            limits,
        )
    }

    async fn error_of(response: Response) -> (StatusCode, String, serde_json::Value) {
        let status = response.status();
        let ctype = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, ctype, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn a_handler_past_the_request_timeout_is_a_json_503() {
        let limits = Limits {
            request_timeout: Duration::from_millis(100),
            ..Limits::default()
        };
        let req = Request::get("/slow").body(Body::empty()).unwrap();
        let (status, ctype, body) = error_of(app(&limits).oneshot(req).await.unwrap()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ctype, "application/json");
        assert_eq!(body["error"], "unavailable");
        assert!(
            body["detail"].as_str().unwrap().contains("not answered"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_long_poll_has_its_wait_and_a_margin() {
        let limits = Limits {
            request_timeout: Duration::from_millis(100),
            ..Limits::default()
        };
        // `?wait=1s` gives 11 s: the 5 s handler answers.
        let req = Request::get("/slow?wait=1s").body(Body::empty()).unwrap();
        let response = app(&limits).oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_stalled_body_is_a_json_408_and_a_large_one_a_json_413() {
        let limits = Limits {
            body_timeout: Duration::from_millis(100),
            max_body_bytes: 16,
            ..Limits::default()
        };
        let (mut tx, body) = futures::channel::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
        tx.try_send(Ok(b"{\"a\":".to_vec())).unwrap();
        let req = Request::post("/echo")
            .body(Body::from_stream(body))
            .unwrap();
        let response = app(&limits).oneshot(req).await.unwrap();
        assert_eq!(response.headers()[header::CONNECTION], "close");
        let (status, ctype, body) = error_of(response).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(ctype, "application/json");
        assert_eq!(body["error"], "request timeout");
        drop(tx);

        for declared in [true, false] {
            let mut req = Request::post("/echo");
            if !declared {
                // Streamed: no length to refuse it by until it is read.
                let chunks = futures::stream::iter([Ok::<_, std::io::Error>(vec![b'x'; 40])]);
                req = req.header(header::TRANSFER_ENCODING, "chunked");
                let req = req.body(Body::from_stream(chunks)).unwrap();
                let (status, _, body) = error_of(app(&limits).oneshot(req).await.unwrap()).await;
                assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
                continue;
            }
            let req = req
                .header(header::CONTENT_LENGTH, "40")
                .body(Body::from(vec![b'x'; 40]))
                .unwrap();
            let (status, ctype, body) = error_of(app(&limits).oneshot(req).await.unwrap()).await;
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
            assert_eq!(ctype, "application/json");
            assert!(
                body["detail"].as_str().unwrap().contains("16 bytes"),
                "{body}"
            );
        }
        let req = Request::post("/echo").body(Body::from("small")).unwrap();
        let response = app(&limits).oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
