//! Shared fixtures for the sandbox tests: a busybox image layer built from the host's static
//! busybox, a fresh upper/work/merged per step, and oracles over the whole host (processes,
//! mounts). These tests need root (overlayfs, namespaces), which CI and the test machines have.

#![allow(dead_code)] // each test binary uses a different subset

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use stratum_builder::sandbox::{
    CancelToken, ExitStatus, LinuxSyscalls, Network, RunSpec, SandboxError, Stream, run, shell_argv,
};

/// Applets linked into the image's /bin.
const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "id", "echo", "head", "wc", "hostname", "pwd", "env", "stat", "readlink",
    "touch", "mkdir", "rm", "sleep", "grep", "true", "false", "test", "printf", "cut", "tr",
    "mount", "ps", "sed", "chmod", "ln", "cp",
];

pub const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
app:x:1000:1000:App:/home/app:/bin/sh
";

pub const GROUP: &str = "\
root:x:0:
daemon:x:1:
wheel:x:10:app
staff:x:50:app,daemon
app:x:1000:
";

/// A layer with busybox, /etc/passwd and /etc/group, and nothing else: no /proc, /sys, /dev,
/// /etc/hosts or /etc/resolv.conf (so every mount point needs a stub). Shared and read-only.
pub fn busybox_layer() -> &'static Path {
    static LAYER: OnceLock<tempfile::TempDir> = OnceLock::new();
    LAYER
        .get_or_init(|| {
            let dir = tempfile::Builder::new()
                .prefix("stratum-sandbox-base")
                .tempdir()
                .unwrap();
            let root = dir.path();
            fs::create_dir_all(root.join("bin")).unwrap();
            fs::create_dir_all(root.join("etc")).unwrap();
            fs::create_dir_all(root.join("tmp")).unwrap();
            fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
            fs::create_dir_all(root.join("home/app")).unwrap();
            fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
            for applet in APPLETS {
                symlink("busybox", root.join("bin").join(applet)).unwrap();
            }
            fs::write(root.join("etc/passwd"), PASSWD).unwrap();
            fs::write(root.join("etc/group"), GROUP).unwrap();
            dir
        })
        .path()
}

/// A fresh layer directory for a test's own content (e.g. a hostile top layer).
pub fn extra_layer(tmp: &Path, name: &str) -> PathBuf {
    let dir = tmp.join("layers").join(name);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// One step's directories and spec; the directories go away with `tmp`.
pub struct Step {
    pub tmp: tempfile::TempDir,
    pub spec: RunSpec,
}

/// A step running `argv` over `lowers` (top-first) as root in `/`, with a safety timeout.
pub fn step_with(lowers: Vec<PathBuf>, argv: Vec<String>) -> Step {
    let tmp = tempfile::Builder::new()
        .prefix("stratum-sandbox-step")
        .tempdir()
        .unwrap();
    let spec = RunSpec {
        lower_dirs: lowers,
        upper_dir: tmp.path().join("upper"),
        work_dir: tmp.path().join("work"),
        merged_dir: tmp.path().join("merged"),
        argv,
        env: vec![("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())],
        cwd: "/".into(),
        user: String::new(),
        hostname: "stratum-test".into(),
        network: Network::Host,
        timeout: Some(Duration::from_secs(20)),
        resolv_conf: None,
        hosts: None,
    };
    Step { tmp, spec }
}

/// A shell-form step over the busybox layer.
pub fn step(command: &str) -> Step {
    step_with(vec![busybox_layer().to_owned()], shell_argv(&[], command))
}

pub struct Outcome {
    pub result: Result<ExitStatus, SandboxError>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Stdout of a step that must have succeeded.
    pub fn ok(&self) -> &str {
        match &self.result {
            Ok(ExitStatus::Exited(0)) => self.stdout.trim_end(),
            other => panic!(
                "step failed: {other:?}\nstdout: {}\nstderr: {}",
                self.stdout, self.stderr
            ),
        }
    }
}

pub fn run_step(spec: &RunSpec) -> Outcome {
    run_step_cancellable(spec, &CancelToken::new())
}

pub fn run_step_cancellable(spec: &RunSpec, cancel: &CancelToken) -> Outcome {
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let result = run(
        spec,
        &LinuxSyscalls,
        &mut |stream, line| {
            let out = if stream == Stream::Stdout {
                &mut stdout
            } else {
                &mut stderr
            };
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        },
        cancel,
    );
    assert_no_mounts_left(spec);
    Outcome {
        result,
        stdout,
        stderr,
    }
}

/// Every path under `dir`, relative, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(dir)
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    v.sort();
    v
}

/// No mount namespace on the host (not just ours) still holds a mount of this step.
pub fn assert_no_mounts_left(spec: &RunSpec) {
    let needles = [&spec.merged_dir, &spec.upper_dir, &spec.work_dir].map(|p| {
        fs::canonicalize(p)
            .unwrap_or_else(|_| p.clone())
            .display()
            .to_string()
    });
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(info) = fs::read_to_string(entry.path().join("mountinfo")) else {
            continue;
        };
        for line in info.lines() {
            for needle in &needles {
                assert!(
                    !line.contains(needle.as_str()),
                    "pid {:?} still has a mount: {line}",
                    entry.file_name()
                );
            }
        }
    }
}

/// Host pids whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmdline) = fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(marker) {
                found.push(format!("{name}: {cmdline}"));
            }
        }
    }
    found
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(fs::read(path).unwrap()))
}
