//! Running one container: a host process in its own mount namespace, with the pod's volumes
//! bind-mounted at their `mountPath`s.
//!
//! `unshare --mount --propagation private` gives the process a private mount namespace (mounts
//! made there never reach the host), then a tiny `sh` script bind-mounts each volume
//! (`mount --bind`, plus a read-only remount for read-only mounts, as runc does), changes to the
//! working directory and `exec`s the container's argv — so the pid we spawn is the container's
//! main process. No `unsafe` is needed: util-linux does the namespace work.
//!
//! Mount points that do not exist on the host (e.g. `/workspace`, `/dev/termination-log`) are
//! created on the host before the start and left there ([`ensure_mountpoint`]).

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use super::volumes::Mount;
use crate::apiserver::MemoryLogs;

/// What to run.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<String>,
    pub mounts: Vec<Mount>,
}

/// Quotes for `sh` (single quotes; `'` becomes `'\''`).
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The script run inside the new mount namespace before `exec`.
pub fn mount_script(mounts: &[Mount], working_dir: Option<&str>) -> String {
    let mut script = String::from("set -e\n");
    for m in mounts {
        let (src, dst) = (
            sh_quote(&m.source.to_string_lossy()),
            sh_quote(&m.target.to_string_lossy()),
        );
        script.push_str(&format!("mount --bind {src} {dst}\n"));
        if m.read_only {
            script.push_str(&format!("mount -o remount,bind,ro {dst}\n"));
        }
    }
    if let Some(wd) = working_dir {
        script.push_str(&format!("cd {}\n", sh_quote(wd)));
    }
    script.push_str("exec \"$@\"\n");
    script
}

/// Creates a missing mount point on the host (a file if `file`, else a directory, with missing
/// parents). Mount points are left in place afterwards: unlinking a mount point that another
/// pod's namespace still uses would detach that mount there (Linux >= 3.18), so the empty
/// files/directories stay (e.g. `/dev/termination-log`, `/workspace`).
pub fn ensure_mountpoint(target: &Path, file: bool) -> std::io::Result<()> {
    if target.exists() {
        return Ok(());
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let made = if file {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(target)
            .map(drop)
    } else {
        std::fs::create_dir(target)
    };
    match made {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// A started container process.
#[derive(Debug)]
pub struct Running {
    pub child: Child,
    pub pid: u32,
    /// The last bytes of its output (for `FallbackToLogsOnError`).
    pub tail: Arc<Mutex<Vec<u8>>>,
    pumps: Vec<tokio::task::JoinHandle<()>>,
}

const TAIL_KEEP: usize = 16 * 1024;

fn pump(
    mut r: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    logs: MemoryLogs,
    key: (String, String, String),
    tail: Arc<Mutex<Vec<u8>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 8192];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    logs.append(&key.0, &key.1, &key.2, &buf[..n]);
                    let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
                    t.extend_from_slice(&buf[..n]);
                    if t.len() > TAIL_KEEP {
                        let cut = t.len() - TAIL_KEEP;
                        t.drain(..cut);
                    }
                }
            }
        }
    })
}

/// Starts the container; stdout and stderr go to `logs` under (namespace, pod, container).
pub fn spawn(
    spec: &ContainerSpec,
    logs: &MemoryLogs,
    key: (String, String, String),
) -> std::io::Result<Running> {
    let script = mount_script(&spec.mounts, spec.working_dir.as_deref());
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        &script,
        "sh",
    ])
    .args(&spec.argv)
    .env_clear()
    .envs(&spec.env)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0)
    .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let pid = child.id().unwrap_or_default();
    let tail = Arc::new(Mutex::new(Vec::new()));
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(pump(out, logs.clone(), key.clone(), tail.clone()));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(pump(err, logs.clone(), key, tail.clone()));
    }
    Ok(Running {
        child,
        pid,
        tail,
        pumps,
    })
}

/// How a container process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit code, or 128 + signal number for a killed process (what runtimes report).
    pub code: i32,
    pub signal: Option<i32>,
}

impl Running {
    /// Waits for the process and for its output to drain.
    pub async fn wait(&mut self) -> std::io::Result<Exit> {
        let status = self.child.wait().await?;
        for p in self.pumps.drain(..) {
            let _ = p.await;
        }
        Ok(match (status.code(), status.signal()) {
            (Some(c), _) => Exit {
                code: c,
                signal: None,
            },
            (None, Some(s)) => Exit {
                code: 128 + s,
                signal: Some(s),
            },
            (None, None) => Exit {
                code: 255,
                signal: None,
            },
        })
    }
}

/// Stops a container the way runtimes do: SIGTERM goes to the container's main process only
/// (PID 1 in a real container), SIGKILL to every process of the container (its process group,
/// standing in for the cgroup kill).
pub fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let Ok(p) = i32::try_from(pid) else { return };
    if p <= 0 {
        return;
    }
    let pid = nix::unistd::Pid::from_raw(p);
    let _ = if sig == nix::sys::signal::Signal::SIGKILL {
        nix::sys::signal::killpg(pid, sig)
    } else {
        nix::sys::signal::kill(pid, sig)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_quotes_and_remounts_read_only() {
        let mounts = vec![
            Mount {
                source: "/var/pod/vol it's".into(),
                target: "/workspace".into(),
                read_only: false,
            },
            Mount {
                source: "/var/pod/secret".into(),
                target: "/etc/push".into(),
                read_only: true,
            },
        ];
        let s = mount_script(&mounts, Some("/workspace"));
        assert_eq!(
            s,
            "set -e\nmount --bind '/var/pod/vol it'\\''s' '/workspace'\nmount --bind '/var/pod/secret' '/etc/push'\nmount -o remount,bind,ro '/etc/push'\ncd '/workspace'\nexec \"$@\"\n"
        );
    }

    #[test]
    fn mountpoints_are_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a/b/file");
        ensure_mountpoint(&target, true).unwrap();
        ensure_mountpoint(&target, true).unwrap();
        assert!(target.is_file());
        ensure_mountpoint(&dir.path().join("d/e"), false).unwrap();
        assert!(dir.path().join("d/e").is_dir());
    }

    #[tokio::test]
    async fn runs_in_a_private_mount_namespace_with_bind_mounts() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("hello"), "from the volume").unwrap();
        let target = dir.path().join("mnt");
        std::fs::create_dir(&target).unwrap();
        let logs = MemoryLogs::default();
        let spec = ContainerSpec {
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                "cat hello; echo; echo $GREETING; touch x 2>/dev/null || echo read-only; exit 3"
                    .into(),
            ],
            env: [
                ("GREETING".to_string(), "hi".to_string()),
                ("PATH".to_string(), "/usr/bin:/bin".to_string()),
            ]
            .into(),
            working_dir: Some(target.to_string_lossy().into_owned()),
            mounts: vec![Mount {
                source: src.clone(),
                target: target.clone(),
                read_only: true,
            }],
        };
        let mut run = spawn(&spec, &logs, ("ns".into(), "p".into(), "c".into())).unwrap();
        let exit = run.wait().await.unwrap();
        assert_eq!(
            exit,
            Exit {
                code: 3,
                signal: None
            }
        );
        let out = String::from_utf8(run.tail.lock().unwrap().clone()).unwrap();
        assert_eq!(out, "from the volume\nhi\nread-only\n");
        assert_eq!(
            std::fs::read_dir(&target).unwrap().count(),
            0,
            "the bind mount never reached the host"
        );
    }

    #[tokio::test]
    async fn killed_processes_report_128_plus_signal() {
        let logs = MemoryLogs::default();
        let spec = ContainerSpec {
            argv: vec!["/bin/sleep".into(), "30".into()],
            env: BTreeMap::new(),
            working_dir: None,
            mounts: vec![],
        };
        let mut run = spawn(&spec, &logs, ("ns".into(), "p".into(), "c".into())).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        signal(run.pid, nix::sys::signal::Signal::SIGKILL);
        assert_eq!(
            run.wait().await.unwrap(),
            Exit {
                code: 137,
                signal: Some(9)
            }
        );
    }
}
