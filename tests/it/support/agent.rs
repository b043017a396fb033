//! The agent under test: a project directory with `warden.yaml` and check
//! files, the agent started on it (in-process with [`spawn_agent`], or the
//! real `warden run` binary with [`AgentProcess`]), an HTTP client for its
//! API, and a TCP proxy that can take a warehouse away and give it back.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use warden::agent::{Agent, Options};
use warden::config::Config;
use warden::source::Diagnostic;

use crate::support::tools::PROMTOOL;

/// A project directory: `warden.yaml`, `checks/`, and whatever else a test writes.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    /// An empty `checks/` and nothing else.
    pub fn new() -> Self {
        let project = Self::empty();
        std::fs::create_dir_all(project.path("checks")).expect("checks dir");
        project
    }

    /// Nothing in it.
    pub fn empty() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `text` to `rel`, creating its directory.
    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().expect("a file in the project"))
            .expect("project directory");
        std::fs::write(path, text).expect("write project file");
    }

    pub fn config(&self) -> PathBuf {
        self.path("warden.yaml")
    }

    /// The configuration, loaded the way `warden` loads it, without problems.
    pub fn load(&self) -> Config {
        let loaded = warden::config::load(&self.config())
            .unwrap_or_else(|e| panic!("the test configuration loads: {e}"));
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        loaded.config
    }
}

/// A free port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The agent in-process on `config`, listening on a free port of 127.0.0.1
/// (see [`Agent::addr`]); the rest of `options` is the caller's.
pub async fn spawn_agent(config: &Path, options: Options) -> (Agent, Vec<Diagnostic>) {
    let options = Options {
        listen: Some("127.0.0.1:0".into()),
        ..options
    };
    Agent::start(config, options)
        .await
        .expect("start the agent")
}

/// The real binary running `warden run`, killed if the test ends early.
pub struct AgentProcess {
    child: Child,
    pub base: String,
    log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl AgentProcess {
    /// Starts `warden run --config <config> --listen 127.0.0.1:<port>` on a
    /// free port, with JSON logs written to a file.
    pub fn start(config: &Path, extra: &[&str]) -> Self {
        Self::start_on(config, free_port(), extra)
    }

    /// Like [`start`](Self::start), on `port` (to start again where an
    /// earlier process listened).
    pub fn start_on(config: &Path, port: u16, extra: &[&str]) -> Self {
        Self::start_with(config, port, extra, &[])
    }

    /// Like [`start_on`](Self::start_on), with `env` set (`WARDEN_LOG` is
    /// `info` unless `env` sets it).
    pub fn start_with(config: &Path, port: u16, extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_at_with(config, "127.0.0.1", port, extra, env)
    }

    /// Like [`start`](Self::start), listening on `host` (`0.0.0.0`: every
    /// interface); reached on loopback all the same.
    pub fn start_at(config: &Path, host: &str, port: u16, extra: &[&str]) -> Self {
        Self::start_at_with(config, host, port, extra, &[])
    }

    fn start_at_with(
        config: &Path,
        host: &str,
        port: u16,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let log_dir = tempfile::tempdir().expect("log dir");
        let log = log_dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut args = vec![
            "run".to_owned(),
            "--config".to_owned(),
            config.display().to_string(),
            "--listen".to_owned(),
            format!("{host}:{port}"),
            "--log-format".to_owned(),
            "json".to_owned(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let child = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(&args)
            .env("WARDEN_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start warden run");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            _log_dir: log_dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the agent logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&mut self, within: Duration) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "warden run exited with {status} before it was ready:\n{}",
                    self.log()
                );
            }
            if let Ok(r) = client.get(format!("{}/readyz", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not ready within {within:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the process to exit on its own (a refusal to start).
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {within:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(&mut self, within: Duration) -> ExitStatus {
        self.signal("TERM");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "did not stop within {within:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `url` and its JSON body.
pub async fn get_json(url: &str) -> (u16, Value) {
    let r = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    let body = r
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"));
    (status, body)
}

pub async fn get_text(url: &str) -> (u16, String) {
    let r = reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (r.status().as_u16(), r.text().await.expect("body"))
}

/// Polls `probe` every 250 ms until it returns `Some`, or panics after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The value of the sample `series` (name and labels exactly as exposed) in
/// a Prometheus text body.
pub fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// `promtool check metrics` on `body`: its complaints; `None` (with a note)
/// when promtool is missing and not required.
pub fn promtool_check_metrics(body: &str) -> Option<String> {
    use std::io::Write;
    let mut child = Command::new(PROMTOOL.find()?)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() || !text.is_empty(),
        "promtool failed silently"
    );
    Some(if out.status.success() {
        text
    } else {
        format!("exit {}: {text}", out.status)
    })
}

/// A TCP proxy in front of a server, which a test can stop (every open
/// connection is cut and new ones are refused) and start again on the
/// same port: a warehouse going away mid-run and coming back.
pub struct Proxy {
    pub addr: SocketAddr,
    upstream: SocketAddr,
    running: Mutex<Vec<JoinHandle<()>>>,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Arc<Self> {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let proxy = Arc::new(Self {
            addr,
            upstream,
            running: Mutex::new(Vec::new()),
            accepted: Arc::default(),
        });
        proxy.resume();
        proxy
    }

    /// Starts accepting again on the same port.
    pub fn resume(&self) {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("reuseaddr");
        socket.bind(self.addr).expect("rebind the proxy port");
        let listener = socket.listen(64).expect("listen");
        let upstream = self.upstream;
        let accepted = self.accepted.clone();
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let conns_in = conns.clone();
        let acceptor = tokio::spawn(async move {
            let _guard = AbortOnDrop(conns_in.clone());
            while let Ok((mut inbound, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let handle = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns_in.lock().unwrap().push(handle);
            }
        });
        self.running.lock().unwrap().push(acceptor);
    }

    /// Cuts every connection and stops listening.
    pub fn stop(&self) {
        for h in self.running.lock().unwrap().drain(..) {
            h.abort();
        }
    }
}

/// Aborts the proxied connections when the acceptor task is aborted.
struct AbortOnDrop(Arc<Mutex<Vec<JoinHandle<()>>>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in self.0.lock().unwrap().drain(..) {
            h.abort();
        }
    }
}
