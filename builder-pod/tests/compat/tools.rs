//! The side effects: the local registry, the base images, Buildah, umoci and `stratum build`.
//! Everything runs as separate processes so each tool is exercised exactly as a user runs it.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::case::{Base, Case};

/// The repository root (two levels above this crate's manifest).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("builder-pod has a parent directory")
        .to_path_buf()
}

/// Runs `command`; on failure the error names the command and quotes the end of its output.
pub fn run(command: &mut Command) -> Result<Output, String> {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if output.status.success() {
        return Ok(output);
    }
    Err(format!(
        "{shown} exited with {}:\n{}{}",
        output.status,
        tail(&output.stdout, 30),
        tail(&output.stderr, 30)
    ))
}

fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].iter().map(|l| format!("  | {l}\n")).collect()
}

/// A registry started with scripts/local-registry on a free port; stopped on drop.
#[derive(Debug)]
pub struct Registry {
    dir: PathBuf,
    pub addr: String,
    stopped: bool,
}

impl Registry {
    pub fn start(dir: &Path) -> Result<Self, String> {
        let script = repo_root().join("scripts/local-registry");
        let mut last_error = String::new();
        // The port is free when probed but another process may take it before the registry
        // binds it: try a few.
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("cannot find a free port: {e}"))?
                .port();
            let result = run(Command::new("bash")
                .arg(&script)
                .arg("start")
                .arg("--dir")
                .arg(dir)
                .arg("--port")
                .arg(port.to_string()));
            match result {
                Ok(_) => {
                    return Ok(Registry {
                        dir: dir.to_path_buf(),
                        addr: format!("127.0.0.1:{port}"),
                        stopped: false,
                    });
                }
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// A reference to a base image in this registry.
    pub fn base(&self, base: Base) -> String {
        format!("{}/{}", self.addr, base.repository())
    }
}

impl Registry {
    /// Stops the registry (also done on drop).
    pub fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let script = repo_root().join("scripts/local-registry");
        if let Err(e) = run(Command::new("bash")
            .arg(script)
            .arg("stop")
            .arg("--dir")
            .arg(&self.dir))
        {
            eprintln!("compat: stopping the registry: {e}");
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where scripts/make-base-images keeps its OCI layouts: $STRATUM_BASE_CACHE, by default
/// /var/tmp/stratum-base-images. The Debian root filesystem is reused across runs: mmdebstrap
/// takes most of a minute.
pub fn base_cache() -> PathBuf {
    std::env::var_os("STRATUM_BASE_CACHE").map_or_else(
        || PathBuf::from("/var/tmp/stratum-base-images"),
        PathBuf::from,
    )
}

/// The OCI layout (and its tag) from which scripts/make-base-images pushed `base`.
pub fn base_layout(base: Base) -> (PathBuf, &'static str) {
    match base {
        Base::Busybox => (base_cache().join("busybox"), "latest"),
        Base::Debian => (base_cache().join("debian"), "bookworm"),
    }
}

/// Builds and pushes the base images the cases need (scripts/make-base-images). The script
/// rebuilds layouts in the shared cache, so the suite's tests (threads of one process) take
/// turns; the script's own lock covers other processes.
pub fn push_base_images(registry: &Registry, debian: bool) -> Result<(), String> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut command = Command::new("bash");
    command
        .arg(repo_root().join("scripts/make-base-images"))
        .args(["--registry", &registry.addr, "--cache"])
        .arg(base_cache());
    if debian {
        command.arg("--debian");
    }
    run(&mut command).map(|_| ())
}

/// Buildah 1.28 with its own storage, so that neither other users of Buildah on the machine
/// nor earlier runs of the suite share its layer cache.
///
/// What works as root on this machine: the overlay storage driver on ext4, the default `oci`
/// isolation with `--runtime /usr/sbin/runc` (crun fails on this kernel's cgroup layout), the
/// default rlimits (nproc 32768 is below the hard limit). `--format docker` because the OCI
/// image format has no Healthcheck, OnBuild or Shell and Buildah drops them from OCI images;
/// `--identity-label=false` because Docker adds no `io.buildah.version` label.
#[derive(Debug)]
pub struct Buildah {
    root: PathBuf,
    runroot: PathBuf,
}

impl Buildah {
    pub fn new(dir: &Path) -> Self {
        Buildah {
            root: dir.join("storage"),
            runroot: dir.join("run"),
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new("buildah");
        command
            .arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot)
            .args(["--storage-driver", "overlay"]);
        command
    }

    /// `buildah bud` of the case into `tag`; `no_cache` rebuilds every step.
    pub fn build(
        &self,
        case: &Case,
        context: &Path,
        registry: &Registry,
        tag: &str,
        no_cache: bool,
    ) -> Result<(), String> {
        let mut command = self.command();
        command
            .args([
                "bud",
                "--layers",
                "--runtime",
                "/usr/sbin/runc",
                "--tls-verify=false",
            ])
            .args([
                "--format",
                "docker",
                "--identity-label=false",
                "--network",
                "host",
            ])
            .arg("--build-arg")
            .arg(format!("BASE={}", registry.base(case.file.base)));
        for (name, value) in &case.file.build_args {
            command.arg("--build-arg").arg(format!("{name}={value}"));
        }
        if let Some(target) = &case.file.target {
            command.args(["--target", target]);
        }
        if no_cache {
            command.arg("--no-cache");
        }
        command
            .args(&case.file.buildah_flags)
            .arg("-f")
            .arg(case.dockerfile())
            .args(["-t", tag])
            .arg(context);
        run(&mut command).map(|_| ())
    }

    /// Writes the image as an OCI layout (for umoci) and returns its Docker-format config.
    /// `buildah push` to an OCI layout converts the config to the OCI schema, which has no
    /// Healthcheck, OnBuild or Shell; `buildah inspect` shows the Docker config Buildah keeps.
    pub fn export(&self, tag: &str, oci_dir: &Path) -> Result<Value, String> {
        run(self
            .command()
            // Uncompressed layers: compressing a Debian layer only to unpack it again costs
            // seconds per build, and umoci reads plain tar layers as well.
            .args(["push", "--quiet", "--disable-compression", tag])
            .arg(format!("oci:{}:{OCI_TAG}", oci_dir.display())))?;
        let output = run(self.command().args(["inspect", "--type", "image", tag]))?;
        let inspect: Value = serde_json::from_slice(&output.stdout)
            .map_err(|e| format!("buildah inspect {tag}: not JSON: {e}"))?;
        match inspect.get("Docker") {
            Some(config @ Value::Object(_)) => Ok(config.clone()),
            _ => Err(format!("buildah inspect {tag}: no Docker config")),
        }
    }

    /// Removes the storage; best effort (leftovers sit in target/tmp). `buildah bud` unmounts
    /// what it mounted, so the directories can go without `buildah rmi`, which takes seconds
    /// per image.
    pub fn clean(&self) {
        if fs::remove_dir_all(&self.root).is_err() {
            let _ = run(self.command().args(["rmi", "--all", "--force"]));
            let _ = fs::remove_dir_all(&self.root);
        }
        let _ = fs::remove_dir_all(&self.runroot);
    }
}

/// The tag under which the suite reads an OCI layout.
const OCI_TAG: &str = "compat";

/// Unpacks the layout's image into `rootfs` with umoci, which applies the layers (whiteouts,
/// hardlinks, xattrs, owners) the way a container runtime does. A layout whose only manifest
/// has no ref name gets one first: umoci selects images by tag.
pub fn unpack(oci_dir: &Path, rootfs: &Path) -> Result<(), String> {
    let tag = ensure_tag(oci_dir)?;
    run(Command::new("umoci")
        .args(["raw", "unpack", "--image"])
        .arg(format!("{}:{tag}", oci_dir.display()))
        .arg(rootfs))
    .map(|_| ())
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))
}

fn ensure_tag(oci_dir: &Path) -> Result<String, String> {
    const REF_NAME: &str = "org.opencontainers.image.ref.name";
    let index_path = oci_dir.join("index.json");
    let mut index = read_json(&index_path)?;
    let manifests = index["manifests"]
        .as_array_mut()
        .filter(|m| m.len() == 1)
        .ok_or_else(|| format!("{}: expected exactly one manifest", index_path.display()))?;
    if let Some(tag) = manifests[0]["annotations"][REF_NAME].as_str() {
        return Ok(tag.to_owned());
    }
    let annotations = manifests[0]
        .as_object_mut()
        .ok_or_else(|| {
            format!(
                "{}: a manifest descriptor is not an object",
                index_path.display()
            )
        })?
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    annotations[REF_NAME] = Value::String(OCI_TAG.to_owned());
    fs::write(&index_path, index.to_string())
        .map_err(|e| format!("{}: {e}", index_path.display()))?;
    Ok(OCI_TAG.to_owned())
}

/// The image config of the layout's only image.
pub fn read_oci_config(oci_dir: &Path) -> Result<Value, String> {
    let blob = |digest: &Value| -> Result<PathBuf, String> {
        let digest = digest.as_str().unwrap_or_default();
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| format!("{}: bad digest {digest:?}", oci_dir.display()))?;
        Ok(oci_dir.join("blobs/sha256").join(hex))
    };
    let index = read_json(&oci_dir.join("index.json"))?;
    let manifest = read_json(&blob(&index["manifests"][0]["digest"])?)?;
    read_json(&blob(&manifest["config"]["digest"])?)
}

/// Builds the case with Stratum into the OCI layout `out_oci_dir`, the way a user would: the
/// `stratum` binary, the same context, build args and base image as Buildah gets.
pub fn stratum_build(
    case: &Case,
    context: &Path,
    registry: &Registry,
    cache_dir: &Path,
    out_oci_dir: &Path,
) -> Result<(), String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stratum"));
    command
        .arg("build")
        .arg("--file")
        .arg(case.dockerfile())
        .arg("--build-arg")
        .arg(format!("BASE={}", registry.base(case.file.base)))
        .args(["--insecure-registry", &registry.addr, "--progress", "plain"])
        .arg("--cache-dir")
        .arg(cache_dir)
        .arg("--output")
        .arg(format!("type=oci,dest={}", out_oci_dir.display()));
    for (name, value) in &case.file.build_args {
        command.arg("--build-arg").arg(format!("{name}={value}"));
    }
    if let Some(target) = &case.file.target {
        command.args(["--target", target]);
    }
    command.arg(context);
    run(&mut command).map(|_| ())
}

/// Seconds since `start`, for the timing table.
pub fn seconds(start: Instant) -> f64 {
    Duration::as_secs_f64(&start.elapsed())
}
