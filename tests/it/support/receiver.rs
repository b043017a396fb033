//! A local HTTP receiver for the alert tests: it records every request
//! (when, path, headers, body) and answers from a script, then with a
//! default status, so a test can play a receiver that fails, rate-limits
//! or recovers, and check each payload field by field.
//!
//! A [`TestReceiver::verifying`] receiver also checks each request the way
//! the README's example receiver does, before it answers: the signature
//! (HMAC-SHA256 of `"<t>.<body>"`, compared in constant time), `t` within
//! its tolerance of its clock (which a test can move on to play a replay
//! made later), and the notification id, dropping one it already accepted.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// One answer of the receiver.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    /// This status, empty body.
    Status(u16),
    /// This status with this body.
    Body(u16, &'static str),
    /// 429 with `Retry-After: <seconds>`.
    RetryAfter(u64),
    /// This status after a delay.
    Slow(Duration, u16),
}

/// What a verifying receiver made of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Signed, in time, and a notification it had not accepted yet: it was
    /// answered from the script.
    New,
    /// An id it already accepted: answered 200 and dropped.
    Duplicate,
    /// `t` too far from its clock: answered 401.
    Stale,
    /// No signature, a malformed one, or one that does not match: 401.
    BadSignature,
}

/// The header with the signature, and the one with the notification id.
pub const SIGNATURE: &str = "X-Warden-Signature";
pub const NOTIFICATION_ID: &str = "X-Warden-Notification-Id";
/// How far from its clock a verifying receiver takes a signature's `t`.
pub const TOLERANCE_SECONDS: i64 = 300;

/// The secret and memory of a verifying receiver.
struct Verifier {
    secret: Vec<u8>,
    /// Seconds added to the real clock.
    clock_offset: Mutex<i64>,
    /// Ids of the notifications accepted so far.
    accepted: Mutex<HashSet<String>>,
}

impl Verifier {
    fn check(&self, headers: &HeaderMap, body: &[u8]) -> Result<Option<String>, Verdict> {
        let header = headers
            .get(SIGNATURE)
            .and_then(|v| v.to_str().ok())
            .ok_or(Verdict::BadSignature)?;
        let fields: Vec<(&str, &str)> = header
            .split(',')
            .filter_map(|part| part.split_once('='))
            .collect();
        let field = |name: &str| fields.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let t: i64 = field("t")
            .and_then(|t| t.parse().ok())
            .ok_or(Verdict::BadSignature)?;
        let now = chrono::Utc::now().timestamp() + *self.clock_offset.lock().unwrap();
        if (now - t).abs() > TOLERANCE_SECONDS {
            return Err(Verdict::Stale);
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        let expected = hex::encode(mac.finalize().into_bytes());
        let given = field("v1").ok_or(Verdict::BadSignature)?;
        if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
            return Err(Verdict::BadSignature);
        }
        let id = headers
            .get(NOTIFICATION_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if id
            .as_ref()
            .is_some_and(|id| self.accepted.lock().unwrap().contains(id))
        {
            return Err(Verdict::Duplicate);
        }
        Ok(id)
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status it was answered with.
    pub status: u16,
    /// For a verifying receiver, what it made of the request.
    pub verdict: Option<Verdict>,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Option<Reply>>,
    verifier: Option<Verifier>,
}

/// A receiver listening on 127.0.0.1; stops when dropped.
pub struct TestReceiver {
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl TestReceiver {
    /// A receiver that answers `script` in order, then `default`.
    pub async fn start(script: &[Reply], default: Reply) -> Self {
        Self::serve(Shared::default(), script, default).await
    }

    /// A receiver that verifies each request as described in the module
    /// documentation, with `secret`, and answers the new ones from `script`,
    /// then `default`.
    pub async fn verifying(secret: &str, script: &[Reply], default: Reply) -> Self {
        let shared = Shared {
            verifier: Some(Verifier {
                secret: secret.as_bytes().to_vec(),
                clock_offset: Mutex::new(0),
                accepted: Mutex::new(HashSet::new()),
            }),
            ..Shared::default()
        };
        Self::serve(shared, script, default).await
    }

    async fn serve(shared: Shared, script: &[Reply], default: Reply) -> Self {
        let shared = Arc::new(shared);
        shared.script.lock().unwrap().extend(script.iter().copied());
        *shared.default.lock().unwrap() = Some(default);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, shared, task }
    }

    /// A receiver that accepts everything with `status`.
    pub async fn ok(status: u16) -> Self {
        Self::start(&[], Reply::Status(status)).await
    }

    /// Answers with `reply` from now on (after the script).
    pub fn set_default(&self, reply: Reply) {
        *self.shared.default.lock().unwrap() = Some(reply);
    }

    /// The requests answered with a 2xx status.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Moves a verifying receiver's clock on by `by`, as if later.
    pub fn advance_clock(&self, by: Duration) {
        let verifier = self.shared.verifier.as_ref().expect("a verifying receiver");
        *verifier.clock_offset.lock().unwrap() += i64::try_from(by.as_secs()).unwrap();
    }

    /// Sends `request` again, as someone replaying it would (its path,
    /// signature, id and body, with `body` instead when given); returns the
    /// status it is answered with.
    pub async fn replay(&self, request: &Received, body: Option<&[u8]>) -> u16 {
        let mut post = reqwest::Client::new()
            .post(format!("{}{}", self.url, request.path))
            .body(body.map_or_else(|| request.body.to_vec(), <[u8]>::to_vec));
        for name in [SIGNATURE, NOTIFICATION_ID, "content-type"] {
            if let Some(value) = request.header(name) {
                post = post.header(name, value);
            }
        }
        post.send().await.expect("replay").status().as_u16()
    }

    /// Waits until at least `n` requests arrived (panics after `timeout`).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                start.elapsed() < timeout,
                "expected {n} requests within {timeout:?}, got {}: {:?}",
                got.len(),
                got.iter()
                    .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let checked = shared.verifier.as_ref().map(|v| v.check(&headers, &body));
    let reply = match checked {
        Some(Err(Verdict::Duplicate)) => Reply::Body(200, "duplicate"),
        Some(Err(Verdict::Stale)) => Reply::Body(401, "stale signature"),
        Some(Err(_)) => Reply::Body(401, "bad signature"),
        Some(Ok(_)) | None => shared
            .script
            .lock()
            .unwrap()
            .pop_front()
            .or(*shared.default.lock().unwrap())
            .unwrap_or(Reply::Status(200)),
    };
    let code = match reply {
        Reply::Status(code) | Reply::Body(code, _) | Reply::Slow(_, code) => code,
        Reply::RetryAfter(_) => 429,
    };
    if let (Some(verifier), Some(Ok(Some(id)))) = (&shared.verifier, &checked)
        && (200..300).contains(&code)
    {
        verifier.accepted.lock().unwrap().insert(id.clone());
    }
    shared.received.lock().unwrap().push(Received {
        at: Instant::now(),
        path: uri.path().to_owned(),
        headers,
        body,
        status: code,
        verdict: checked.map(|c| c.map_or_else(|verdict| verdict, |_| Verdict::New)),
    });
    let status = StatusCode::from_u16(code).unwrap();
    match reply {
        Reply::Status(_) => status.into_response(),
        Reply::Body(_, body) => (status, body).into_response(),
        Reply::RetryAfter(seconds) => (
            status,
            [("Retry-After", seconds.to_string())],
            "rate limited",
        )
            .into_response(),
        Reply::Slow(delay, _) => {
            tokio::time::sleep(delay).await;
            status.into_response()
        }
    }
}

/// A URL on which nothing listens (connections are refused).
pub async fn refused_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}
