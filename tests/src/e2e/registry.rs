//! A real OCI registry for the end-to-end suite: Debian's `docker-registry` (the CNCF
//! distribution registry) on a free loopback port, storage in a temporary directory, seeded with
//! `stratum/busybox:latest` by `scripts/make-base-images`. Killed on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// The base image every e2e Dockerfile builds `FROM` (on this registry).
pub const BASE_REPOSITORY: &str = "stratum/busybox:latest";

/// A running registry.
#[derive(Debug)]
pub struct Registry {
    /// `127.0.0.1:<port>`.
    pub host_port: String,
    root: PathBuf,
    child: Child,
}

impl Registry {
    /// Starts a registry with its storage under `root` (which must exist) and pushes the busybox
    /// base image to it.
    pub fn start(root: &Path) -> anyhow::Result<Self> {
        let mut last = String::new();
        // A port probed free can be taken by another test before the registry binds it.
        for _ in 0..5 {
            let port = free_port()?;
            let host_port = format!("127.0.0.1:{port}");
            let config = root.join("config.yml");
            std::fs::write(&config, config_yaml(root, &host_port))
                .with_context(|| format!("writing {}", config.display()))?;
            let log = std::fs::File::create(root.join("registry.log"))?;
            let mut child = Command::new("/usr/bin/docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("starting /usr/bin/docker-registry (scripts/install-deps installs it)")?;
            if wait_ready(&host_port, &mut child) {
                let registry = Registry {
                    host_port,
                    root: root.to_owned(),
                    child,
                };
                registry.push_base_image()?;
                return Ok(registry);
            }
            let _ = child.kill();
            let _ = child.wait();
            last = std::fs::read_to_string(root.join("registry.log")).unwrap_or_default();
        }
        bail!("docker-registry did not start; its log:\n{last}")
    }

    /// `<host:port>/<path>`, e.g. `reference("stratum/busybox:latest")`.
    pub fn reference(&self, path: &str) -> String {
        format!("{}/{path}", self.host_port)
    }

    /// The registry's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The base image's full reference.
    pub fn base_image(&self) -> String {
        self.reference(BASE_REPOSITORY)
    }

    /// `scripts/make-base-images`: a deterministic one-layer busybox image, built offline.
    fn push_base_image(&self) -> anyhow::Result<()> {
        let script = crate::e2e::repo_root().join("scripts/make-base-images");
        let out = Command::new("bash")
            .arg(&script)
            .args(["--registry", &self.host_port, "--cache"])
            .arg(self.root.join("base-images"))
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        if !out.status.success() {
            bail!(
                "{} failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// The registry's log (requests are not logged; errors are).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_yaml(root: &Path, host_port: &str) -> String {
    format!(
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host_port}\n  secret: stratum-e2e\n",
        root.join("data").display()
    )
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("probing for a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Polls `GET /v2/` (the distribution spec's version check) until it answers 200.
fn wait_ready(host_port: &str, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        if let Ok(mut s) = TcpStream::connect(host_port) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let request = format!("GET /v2/ HTTP/1.0\r\nHost: {host_port}\r\n\r\n");
            let mut reply = String::new();
            let answered =
                s.write_all(request.as_bytes()).is_ok() && s.read_to_string(&mut reply).is_ok();
            if answered && (reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200"))
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
