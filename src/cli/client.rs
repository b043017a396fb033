//! The HTTP client of `warden gate`, `warden publish` and `warden status`:
//! where the agent is, the bearer token, and requests that are retried when
//! the agent cannot be reached (every request is idempotent, so a retry is
//! safe).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Where the agent listens when neither `--server` nor a configuration says.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:9464";

/// Attempts at reaching the agent before giving up.
const ATTEMPTS: u32 = 5;
/// Pause before the first retry; doubled after each.
const FIRST_PAUSE: Duration = Duration::from_millis(500);
/// How long a command without a wait of its own keeps retrying: enough for
/// every attempt (0.5 + 1 + 2 + 4 s of pauses).
pub const RETRY_WITHIN: Duration = Duration::from_secs(10);

/// The agent's base URL: `--server`, else `agent.listen` of the
/// configuration when there is one, else [`DEFAULT_SERVER`].
pub fn server(flag: Option<&str>, config_path: &Path) -> anyhow::Result<Url> {
    let text = match flag {
        Some(url) => url.to_owned(),
        None if config_path.exists() => {
            let loaded = warden::config::load(config_path).with_context(|| {
                format!(
                    "cannot read agent.listen from {} (pass --server to name the agent)",
                    config_path.display()
                )
            })?;
            listen_url(&loaded.config.agent.listen)
        }
        None => DEFAULT_SERVER.to_owned(),
    };
    let url = Url::parse(&text).with_context(|| format!("invalid server URL `{text}`"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        bail!("invalid server URL `{text}`: expected http://host:port or https://host");
    }
    Ok(url)
}

/// The URL to reach an agent listening on `listen`: a wildcard address is
/// reached on the loopback interface.
fn listen_url(listen: &str) -> String {
    let host_port = if let Some(port) = listen.strip_prefix("0.0.0.0:") {
        format!("127.0.0.1:{port}")
    } else if let Some(port) = listen.strip_prefix("[::]:") {
        format!("[::1]:{port}")
    } else {
        listen.to_owned()
    };
    format!("http://{host_port}")
}

/// `base` with the path segments appended, each percent-encoded.
pub fn endpoint(base: &Url, segments: &[&str]) -> anyhow::Result<Url> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("invalid server URL `{base}`"))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// An answer of the agent: its status and JSON body.
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
}

/// `{"error","detail"}` as the API writes it.
#[derive(Deserialize)]
struct ApiError {
    error: String,
    detail: String,
}

impl Answer {
    pub fn json<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_str(&self.body).with_context(|| {
            format!(
                "unexpected answer from the agent ({}): {}",
                self.status,
                self.body.chars().take(500).collect::<String>()
            )
        })
    }

    /// What to do about a refused token (401, 403), for the line after
    /// the error.
    pub fn auth_hint(&self) -> Option<&'static str> {
        match self.status.as_u16() {
            401 => Some(
                "hint: the agent needs an API token: pass one of agent.api_tokens with --token \
                 or $WARDEN_API_TOKEN",
            ),
            403 => Some(
                "hint: the token is valid but may not do this: use a token of agent.api_tokens \
                 with the scope named above",
            ),
            _ => None,
        }
    }

    /// The error the agent explained, as one line.
    pub fn error_line(&self) -> String {
        match serde_json::from_str::<ApiError>(&self.body) {
            Ok(e) => format!("{} ({}): {}", e.error, self.status.as_u16(), e.detail),
            Err(_) => format!(
                "the agent answered {}: {}",
                self.status,
                self.body.chars().take(500).collect::<String>()
            ),
        }
    }
}

/// How long [`post`] keeps trying to reach the agent.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    /// How long one attempt may take, the agent's answer included.
    pub attempt: Duration,
    /// No attempt starts later than this after the call began: the call
    /// ends by then (plus a connection attempt) when the agent is down.
    pub retry_within: Duration,
}

/// POSTs `body` to `url` with the bearer `token`, retrying while the agent
/// cannot be reached (connection refused or reset, no answer in time to
/// connect): at most [`ATTEMPTS`] attempts, the pauses between them
/// doubling but cut short so that none starts past `patience.retry_within`.
pub async fn post(
    url: &Url,
    token: Option<&str>,
    body: &serde_json::Value,
    patience: Patience,
) -> anyhow::Result<Answer> {
    send(url, token, Some(body), patience).await
}

/// GETs `url` with the bearer `token`, retried as [`post`] is.
pub async fn get(url: &Url, token: Option<&str>, patience: Patience) -> anyhow::Result<Answer> {
    send(url, token, None, patience).await
}

/// POSTs `body`, or GETs without one.
async fn send(
    url: &Url,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
    patience: Patience,
) -> anyhow::Result<Answer> {
    let started = tokio::time::Instant::now();
    let deadline = started + patience.retry_within;
    let client = reqwest::Client::builder()
        .timeout(patience.attempt)
        .connect_timeout(connect_timeout(patience.retry_within))
        .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")?;
    let mut pause = FIRST_PAUSE;
    let mut attempt = 1;
    loop {
        let mut request = match body {
            Some(body) => client.post(url.clone()).json(body),
            None => client.get(url.clone()),
        };
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let err = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let body = response
                    .text()
                    .await
                    .with_context(|| format!("reading the answer of {url}"))?;
                return Ok(Answer { status, body });
            }
            Err(e) => e,
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if attempt < ATTEMPTS && !left.is_zero() && (err.is_connect() || is_reset(&err)) {
            // Whole milliseconds, so that the warning reads `1s 500ms`.
            let pause_now = pause.min(Duration::from_millis(left.as_millis() as u64));
            eprintln!(
                "warning: cannot reach the agent at {} ({}); retrying in {}",
                url.origin().ascii_serialization(),
                cause(&err),
                humantime::format_duration(pause_now)
            );
            tokio::time::sleep(pause_now).await;
            pause *= 2;
            attempt += 1;
            continue;
        }
        return Err(anyhow::anyhow!(
            "cannot reach the agent at {}: {}",
            url.origin().ascii_serialization(),
            cause(&err)
        ));
    }
}

/// How long one connection attempt may take: 10 s, or less when the caller
/// has less time, but at least a second.
fn connect_timeout(retry_within: Duration) -> Duration {
    retry_within.clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// A connection dropped before any answer: the agent restarting.
fn is_reset(e: &reqwest::Error) -> bool {
    use std::error::Error as _;
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            );
        }
        if s.to_string()
            .contains("connection closed before message completed")
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// The innermost cause, which names the problem (`Connection refused`).
fn cause(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    if e.is_timeout() {
        return "no answer in time".to_owned();
    }
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_addresses_are_reached_on_loopback() {
        assert_eq!(listen_url("0.0.0.0:9464"), "http://127.0.0.1:9464");
        assert_eq!(listen_url("[::]:9464"), "http://[::1]:9464");
        assert_eq!(listen_url("10.0.0.5:80"), "http://10.0.0.5:80");
    }

    #[test]
    fn segments_are_encoded_and_appended() {
        let base = Url::parse("http://agent:9464/").unwrap();
        assert_eq!(
            endpoint(&base, &["api", "v1", "datasets", "a b", "publish"])
                .unwrap()
                .as_str(),
            "http://agent:9464/api/v1/datasets/a%20b/publish"
        );
        let prefixed = Url::parse("https://proxy.example/warden").unwrap();
        assert_eq!(
            endpoint(&prefixed, &["api", "v1", "gates"])
                .unwrap()
                .as_str(),
            "https://proxy.example/warden/api/v1/gates"
        );
    }

    #[test]
    fn servers_must_be_http_urls() {
        let none = Path::new("/nonexistent/warden.yaml");
        assert_eq!(
            server(None, none).unwrap().as_str(),
            "http://127.0.0.1:9464/"
        );
        assert!(server(Some("ftp://x"), none).is_err());
        assert!(server(Some("localhost:9464"), none).is_err());
    }
}
