//! The parent side of a step: prepare (validate, resolve USER, plan), create mount-point stubs,
//! clone the child, stream its output, enforce timeout and cancellation, reap it, remove the stubs.
//!
//! The overlay and every other mount exist only in the child's private mount namespace, so when the
//! step's init process dies (killing the rest of the pid namespace, which the kernel does before
//! reporting the init's exit) the namespace and all its mounts are gone: there is nothing to unmount
//! in the builder's namespace, even after a crash (the child has `PR_SET_PDEATHSIG`).

use std::ffi::OsString;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::unistd::Pid;

use super::child::{ChildIo, FailureKind, REPORT_LEN, child_main, decode_report};
use super::command::{build_argv, build_envp, search_path};
use super::output::{LineSplitter, Stream};
use super::overlay::overlay_mount;
use super::plan::{ChildPlan, NOFILE_LIMIT, PlanInput, Step, build_plan};
use super::rootfs::{ImageFile, LowerStack};
use super::stubs::{MountPoint, Stubs, find_in_layers, plan_stubs};
use super::syscalls::{Syscalls, TargetKind};
use super::user::resolve_user;
use super::{CancelToken, DEFAULT_HOSTNAME, ExitStatus, Network, RunSpec, SandboxError};

/// Largest `/etc/passwd` or `/etc/group` read from an image.
const MAX_DB_FILE: u64 = 16 << 20;

/// How often cancellation and the deadline are checked while the step is quiet.
const TICK: Duration = Duration::from_millis(100);

/// After the init has exited, how long to keep reading pipes that something outside the namespace
/// might still hold open.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// The mount points every step needs.
const BASE_MOUNT_POINTS: [MountPoint; 3] = [
    MountPoint {
        rel: "proc",
        kind: TargetKind::Dir,
    },
    MountPoint {
        rel: "sys",
        kind: TargetKind::Dir,
    },
    MountPoint {
        rel: "dev",
        kind: TargetKind::Dir,
    },
];

/// Runs one RUN step; see the module docs of `sandbox`. `output` receives each line of the step's
/// stdout and stderr (without the `\n`, binary-safe) as it arrives.
pub fn run(
    spec: &RunSpec,
    sys: &dyn Syscalls,
    output: &mut dyn FnMut(Stream, &[u8]),
    cancel: &CancelToken,
) -> Result<ExitStatus, SandboxError> {
    let prepared = prepare(spec)?;
    if cancel.is_cancelled() {
        return Err(SandboxError::Cancelled);
    }
    let stubs = Stubs::create(&prepared.upper, &prepared.stubs).map_err(|source| {
        SandboxError::Prepare {
            what: "creating mount-point stubs".into(),
            source,
        }
    })?;
    let outcome = supervise(&prepared, sys, output, cancel, spec.timeout);
    // The child and its mount namespace are gone here (supervise always reaps), so the upper dir
    // is no longer part of a mounted overlay.
    let cleanup = stubs
        .remove()
        .map_err(|source| SandboxError::Cleanup { source });
    match (outcome, cleanup) {
        (Ok(status), Ok(())) => Ok(status),
        (Err(e), Ok(())) | (Ok(_), Err(e)) => Err(e),
        (Err(e), Err(cleanup)) => {
            tracing::error!(error = %cleanup, "mount-point stubs could not be removed after a failed step");
            Err(e)
        }
    }
}

struct Prepared {
    upper: PathBuf,
    stubs: super::stubs::StubPlan,
    plan: ChildPlan,
    program: String,
    cwd: String,
}

fn prepare(spec: &RunSpec) -> Result<Prepared, SandboxError> {
    let lowers = spec
        .lower_dirs
        .iter()
        .map(|l| existing_dir("lower_dirs", l))
        .collect::<Result<Vec<_>, _>>()?;
    let upper = created_dir("upper_dir", &spec.upper_dir)?;
    let work = created_dir("work_dir", &spec.work_dir)?;
    let merged = created_dir("merged_dir", &spec.merged_dir)?;
    check_upper(&upper, &work)?;
    let overlay = overlay_mount(&lowers, &upper, &work)?;
    let cwd = if spec.cwd.is_empty() {
        "/".to_owned()
    } else {
        spec.cwd.clone()
    };
    if !cwd.starts_with('/') {
        return Err(SandboxError::InvalidSpec {
            field: "cwd",
            reason: format!("WORKDIR {cwd:?} is not absolute"),
        });
    }
    let hostname = if spec.hostname.is_empty() {
        DEFAULT_HOSTNAME
    } else {
        spec.hostname.as_str()
    };
    if hostname.len() > 64 {
        return Err(SandboxError::InvalidSpec {
            field: "hostname",
            reason: format!("{hostname:?} is longer than 64 bytes"),
        });
    }
    for (field, file) in [("resolv_conf", &spec.resolv_conf), ("hosts", &spec.hosts)] {
        if let Some(f) = file
            && !fs::metadata(f).is_ok_and(|m| m.is_file())
        {
            return Err(SandboxError::InvalidSpec {
                field,
                reason: format!("{} is not a regular file", f.display()),
            });
        }
    }

    let stack = LowerStack::new(&lowers);
    let passwd = read_db(&stack, "/etc/passwd")?;
    let group = read_db(&stack, "/etc/group")?;
    let user = resolve_user(&spec.user, &passwd, &group).map_err(|source| SandboxError::User {
        spec: spec.user.clone(),
        source,
    })?;

    let mut wanted = BASE_MOUNT_POINTS.to_vec();
    if spec.resolv_conf.is_some() {
        wanted.push(MountPoint {
            rel: "etc/resolv.conf",
            kind: TargetKind::File,
        });
    }
    if spec.hosts.is_some() {
        wanted.push(MountPoint {
            rel: "etc/hosts",
            kind: TargetKind::File,
        });
    }
    let stubs =
        plan_stubs(&wanted, &mut |c: &[OsString]| find_in_layers(&stack, c)).map_err(|source| {
            SandboxError::Prepare {
                what: "inspecting mount points in the image".into(),
                source,
            }
        })?;
    for (mp, why) in &stubs.skipped {
        tracing::warn!(path = %format!("/{}", mp.rel), reason = why, "not mounting into the step");
    }

    let plan = build_plan(PlanInput {
        merged: &merged,
        overlay,
        mount_points: &stubs.usable,
        resolv_conf: spec.resolv_conf.as_deref(),
        hosts: spec.hosts.as_deref(),
        hostname,
        new_netns: spec.network == Network::None,
        user: &user,
        cwd: &cwd,
        argv: build_argv(&spec.argv)?,
        envp: build_envp(&spec.env, &user.home)?,
        search_path: search_path(&spec.env),
        nofile: read_proc_number("/proc/sys/fs/nr_open")
            .unwrap_or(NOFILE_LIMIT)
            .min(NOFILE_LIMIT),
        nofile_fallback: nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(1024, |(_, hard)| hard),
        last_cap: read_proc_number("/proc/sys/kernel/cap_last_cap")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(40),
    })?;
    Ok(Prepared {
        upper,
        stubs,
        plan,
        program: spec.argv[0].clone(),
        cwd,
    })
}

fn existing_dir(field: &'static str, path: &Path) -> Result<PathBuf, SandboxError> {
    match fs::canonicalize(path) {
        Ok(p) if p.is_dir() => Ok(p),
        _ => Err(SandboxError::InvalidSpec {
            field,
            reason: format!("{} is not a directory", path.display()),
        }),
    }
}

fn created_dir(field: &'static str, path: &Path) -> Result<PathBuf, SandboxError> {
    if !path.is_absolute() {
        return Err(SandboxError::InvalidSpec {
            field,
            reason: format!("{} is not absolute", path.display()),
        });
    }
    fs::create_dir_all(path).map_err(|source| SandboxError::Prepare {
        what: format!("creating {}", path.display()),
        source,
    })?;
    existing_dir(field, path)
}

/// overlayfs cannot use an upper dir on overlayfs (a builder pod's own root filesystem is one: use
/// an emptyDir), and a step's upper dir must start empty for its diff to be the step's changes.
fn check_upper(upper: &Path, work: &Path) -> Result<(), SandboxError> {
    for (field, dir) in [("upper_dir", upper), ("work_dir", work)] {
        if nix::sys::statfs::statfs(dir)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC)
        {
            return Err(SandboxError::InvalidSpec {
                field,
                reason: format!(
                    "{} is on overlayfs; use a directory on a non-overlay filesystem (e.g. an emptyDir)",
                    dir.display()
                ),
            });
        }
    }
    let mut entries = fs::read_dir(upper).map_err(|source| SandboxError::Prepare {
        what: format!("reading {}", upper.display()),
        source,
    })?;
    if entries.next().is_some() {
        return Err(SandboxError::InvalidSpec {
            field: "upper_dir",
            reason: format!("{} is not empty", upper.display()),
        });
    }
    Ok(())
}

fn read_db(stack: &LowerStack<'_>, path: &'static str) -> Result<String, SandboxError> {
    match stack.read_file(path, MAX_DB_FILE) {
        Ok(ImageFile::Contents(bytes)) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Ok(ImageFile::Missing) => Ok(String::new()),
        Err(source) => Err(SandboxError::ImageFile { path, source }),
    }
}

fn read_proc_number(path: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Why the parent ended the step early.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Timeout(Duration),
    Cancelled,
}

/// The reaped child, unless something failed before; killed and reaped on drop otherwise.
struct Child<'a> {
    sys: &'a dyn Syscalls,
    pid: Pid,
    pidfd: OwnedFd,
    reaped: bool,
}

impl Child<'_> {
    fn reap(&mut self) -> Result<ExitStatus, SandboxError> {
        let status = self
            .sys
            .wait(self.pid)
            .map_err(|source| SandboxError::Supervise {
                what: "waitpid",
                source,
            })?;
        self.reaped = true;
        Ok(status)
    }
}

impl Drop for Child<'_> {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.sys.kill(&self.pidfd);
            let _ = self.sys.wait(self.pid);
        }
    }
}

fn supervise(
    prepared: &Prepared,
    sys: &dyn Syscalls,
    output: &mut dyn FnMut(Stream, &[u8]),
    cancel: &CancelToken,
    timeout: Option<Duration>,
) -> Result<ExitStatus, SandboxError> {
    let pipe =
        || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|source| SandboxError::Spawn { source });
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (rep_r, rep_w) = pipe()?;
    let io = ChildIo {
        stdout: out_w.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
        report: rep_w.as_raw_fd(),
    };
    let plan = &prepared.plan;
    let (pid, pidfd) = sys
        .spawn(plan.clone_flags, &mut || child_main(plan, &io, sys))
        .map_err(|source| SandboxError::Spawn { source })?;
    let mut child = Child {
        sys,
        pid,
        pidfd,
        reaped: false,
    };
    // Only the child may hold the write ends now, or EOF would never come.
    drop((out_w, err_w, rep_w));

    let start = Instant::now();
    let deadline = timeout.map(|t| (start + t, t));
    let mut streams = [
        (Some(out_r), LineSplitter::new(Stream::Stdout)),
        (Some(err_r), LineSplitter::new(Stream::Stderr)),
    ];
    let mut report_fd = Some(rep_r);
    let mut report = Vec::with_capacity(REPORT_LEN);
    let mut stop = None;
    let mut exited_at: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if stop.is_none() {
            stop = if cancel.is_cancelled() {
                Some(Stop::Cancelled)
            } else {
                deadline
                    .filter(|(at, _)| Instant::now() >= *at)
                    .map(|(_, t)| Stop::Timeout(t))
            };
            if stop.is_some() && exited_at.is_none() {
                // Killing the pid namespace's init makes the kernel kill every process in it.
                match sys.kill(&child.pidfd) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(source) => {
                        return Err(SandboxError::Supervise {
                            what: "kill",
                            source,
                        });
                    }
                }
            }
        }
        let pipes_open = streams.iter().any(|(fd, _)| fd.is_some()) || report_fd.is_some();
        if let Some(at) = exited_at
            && (!pipes_open || at.elapsed() >= DRAIN_GRACE)
        {
            break;
        }
        let mut wait = TICK;
        if let (None, Some((at, _))) = (stop, deadline) {
            wait = wait.min(at.saturating_duration_since(Instant::now()));
        }
        let mut watched: Vec<(usize, RawFd)> = Vec::with_capacity(4);
        for (i, (fd, _)) in streams.iter().enumerate() {
            if let Some(fd) = fd {
                watched.push((i, fd.as_raw_fd()));
            }
        }
        if let Some(fd) = &report_fd {
            watched.push((2, fd.as_raw_fd()));
        }
        if exited_at.is_none() {
            watched.push((3, child.pidfd.as_raw_fd()));
        }
        let readable = poll_readable(&watched, wait)?;
        for i in readable {
            match i {
                0 | 1 => {
                    let (fd, splitter) = &mut streams[i];
                    match fd.as_ref().map(|f| nix::unistd::read(f, &mut buf)) {
                        Some(Ok(0)) | Some(Err(_)) => {
                            splitter.finish(output);
                            *fd = None;
                        }
                        Some(Ok(n)) => splitter.feed(&buf[..n], output),
                        None => {}
                    }
                }
                2 => match report_fd.as_ref().map(|f| nix::unistd::read(f, &mut buf)) {
                    Some(Ok(0)) | Some(Err(_)) => report_fd = None,
                    Some(Ok(n)) => report
                        .extend_from_slice(&buf[..n.min(REPORT_LEN.saturating_sub(report.len()))]),
                    None => {}
                },
                _ => exited_at = Some(Instant::now()),
            }
        }
    }
    for (fd, splitter) in &mut streams {
        if fd.take().is_some() {
            splitter.finish(output);
        }
    }
    let status = child.reap()?;
    if !report.is_empty() {
        return Err(report_error(prepared, &report));
    }
    match stop {
        Some(Stop::Timeout(after)) => Err(SandboxError::TimedOut { after }),
        Some(Stop::Cancelled) => Err(SandboxError::Cancelled),
        None => Ok(status),
    }
}

/// `poll(2)` for input on `fds` (tagged); returns the tags of those ready (readable, hung up or in
/// error: all mean "read now"). nix's `poll` is behind a feature this crate does not enable.
fn poll_readable(fds: &[(usize, RawFd)], wait: Duration) -> Result<Vec<usize>, SandboxError> {
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|(_, fd)| libc::pollfd {
            fd: *fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = libc::c_int::try_from(wait.as_millis()).unwrap_or(libc::c_int::MAX);
    let nfds = libc::nfds_t::try_from(pollfds.len()).unwrap_or(0);
    // SAFETY: `pollfds` is a valid array of `nfds` pollfd structs for the duration of the call;
    // the fds are open (owned by the caller).
    let ret = unsafe { libc::poll(pollfds.as_mut_ptr(), nfds, ms) };
    match Errno::result(ret) {
        Ok(_) => {}
        Err(Errno::EINTR) => return Ok(Vec::new()),
        Err(source) => {
            return Err(SandboxError::Supervise {
                what: "poll",
                source,
            });
        }
    }
    Ok(fds
        .iter()
        .zip(&pollfds)
        .filter(|(_, p)| p.revents != 0)
        .map(|((tag, _), _)| *tag)
        .collect())
}

/// Turns the child's failure report into the error a user can act on.
fn report_error(prepared: &Prepared, report: &[u8]) -> SandboxError {
    let Ok(bytes) = <[u8; REPORT_LEN]>::try_from(report) else {
        return SandboxError::Setup {
            step: "unknown (truncated failure report)".into(),
            source: Errno::EIO,
        };
    };
    let (index, kind, errno) = decode_report(&bytes);
    let step = prepared.plan.steps.get(index);
    let program = prepared.program.clone();
    match (kind, step) {
        (Some(FailureKind::MagicLink), _) => SandboxError::ExecThroughMagicLink { program },
        (Some(FailureKind::CwdOutsideRoot), _) => SandboxError::WorkdirOutsideRoot {
            cwd: prepared.cwd.clone(),
        },
        (Some(FailureKind::NotFound), _) => SandboxError::ProgramNotFound { program },
        (_, Some(Step::EnterWorkdir(_))) => SandboxError::Workdir {
            cwd: prepared.cwd.clone(),
            source: errno,
        },
        (_, Some(Step::FindProgram { .. } | Step::Exec)) => SandboxError::Exec {
            program,
            source: errno,
        },
        (_, Some(step)) => SandboxError::Setup {
            step: step.to_string(),
            source: errno,
        },
        (_, None) => SandboxError::Setup {
            step: format!("step {index}"),
            source: errno,
        },
    }
}

#[cfg(test)]
#[path = "runner_tests.rs"]
mod tests;
