//! The real `stratum-operator` as a child process: KUBECONFIG pointing at the emulator, JSON logs
//! appended to a file (kept across restarts, printed when a test fails), `/healthz` `/readyz`
//! `/metrics` on a free loopback port.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::registry::free_port;

/// How to start one operator process.
#[derive(Debug, Clone)]
pub struct OperatorSpec {
    /// The `stratum-operator` binary.
    pub binary: PathBuf,
    pub kubeconfig: PathBuf,
    /// Log file; each start appends a `--- start <identity> ---` marker and the process's stdout/stderr.
    pub log: PathBuf,
    /// `--builder-image`.
    pub builder_image: String,
    /// `--concurrency`.
    pub concurrency: u32,
    /// More flags (`--namespaces`, `--leader-election`, ...; see `stratum-operator --help`).
    pub extra_args: Vec<String>,
    /// `RUST_LOG`.
    pub log_filter: String,
    /// The replica's name: `POD_NAME` (the leader-election identity and the Events' reporting
    /// instance), as the downward API sets it in a Deployment.
    pub identity: String,
    /// Wait for `/readyz` (the ImageBuild caches synced) in [`Operator::start`]; otherwise only
    /// for `/healthz`. A standby replica under leader election is never ready.
    pub wait_ready: bool,
    /// More environment variables (e.g. a Deployment's `POD_NAMESPACE` from the downward API).
    pub env: Vec<(String, String)>,
}

/// A running operator process. Killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct Operator {
    child: Child,
    /// `/healthz`, `/readyz` and `/metrics` listen here.
    pub http_addr: String,
    log: PathBuf,
}

impl Operator {
    /// Starts the process and waits until `/healthz` answers and, with `spec.wait_ready`, until
    /// `/readyz` answers 200 (its ImageBuild caches are synced).
    pub async fn start(spec: &OperatorSpec) -> anyhow::Result<Self> {
        let port = free_port()?;
        let http_addr = format!("127.0.0.1:{port}");
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .with_context(|| format!("opening {}", spec.log.display()))?;
        std::io::Write::write_all(
            &mut log,
            format!("--- start {} ---\n", spec.identity).as_bytes(),
        )?;
        let child = Command::new(&spec.binary)
            .args(["--builder-image", &spec.builder_image])
            .args(["--concurrency", &spec.concurrency.to_string()])
            .args(["--http-addr", &http_addr])
            .args(["--log-format", "json"])
            .args(&spec.extra_args)
            .env("KUBECONFIG", &spec.kubeconfig)
            .env("RUST_LOG", &spec.log_filter)
            .env("POD_NAME", &spec.identity)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", spec.binary.display()))?;
        let mut operator = Operator {
            child,
            http_addr,
            log: spec.log.clone(),
        };
        operator
            .wait_for("/healthz", Duration::from_secs(60))
            .await?;
        if spec.wait_ready {
            operator.wait_ready(Duration::from_secs(60)).await?;
        }
        Ok(operator)
    }

    /// Waits until `/readyz` answers 200: the controller runs and its caches are synced.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        self.wait_for("/readyz", timeout).await
    }

    /// Whether `/readyz` answers 200 now (this replica leads and its caches are synced).
    pub fn is_ready(&self) -> bool {
        http_get(&self.http_addr, "/readyz").is_some_and(|(code, _)| code == 200)
    }

    async fn wait_for(&mut self, path: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "stratum-operator exited ({status}) before {path} answered; its log:\n{}",
                    self.logs()
                );
            }
            if http_get(&self.http_addr, path).is_some_and(|(code, _)| code == 200) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "stratum-operator: {path} did not answer 200 within {timeout:?}; its log:\n{}",
            self.logs()
        )
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: a crash, no graceful shutdown.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to `grace` for a clean exit (SIGKILL after it). Returns whether
    /// the process exited successfully on its own.
    pub async fn terminate(&mut self, grace: Duration) -> bool {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX));
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.kill();
        false
    }

    /// The log file's content (every start of this spec's log so far).
    pub fn logs(&self) -> String {
        read_log(&self.log)
    }

    /// `GET /metrics` (Prometheus text), when the process answers.
    pub fn metrics(&self) -> Option<String> {
        http_get(&self.http_addr, "/metrics").map(|(_, body)| body)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A minimal HTTP/1.0 GET (no client crate needed for two local endpoints).
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    let code = reply.split_whitespace().nth(1)?.parse().ok()?;
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((code, body))
}
