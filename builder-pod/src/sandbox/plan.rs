//! The child's work as data: the ordered steps from "just cloned" to `execve`, built in the parent
//! (where allocation is fine) and interpreted by [`super::child`]. Pure; the order is the design and
//! is pinned by the tests below.
//!
//! Namespaces are entered all at once by `clone(2)` (mount, pid, uts, ipc, and net for
//! `--network none`); then, in order:
//! 1. process hygiene: die with the builder, stdout/stderr to our pipes, close every inherited fd
//!    (threats §2.7 #38), umask 0 so device nodes get their exact modes;
//! 2. mounts, all before `pivot_root` and all inside the merged dir: `/` made recursively slave (no
//!    mount of ours propagates to the host, host unmounts still reach us), overlayfs, then `/proc`,
//!    `/sys` (read-only), a tmpfs `/dev` with device nodes we create (nothing of the image's `/dev`
//!    is used, threats §2.7 #40), devpts, `/dev/shm`, the masked and read-only procfs/sysfs paths of
//!    Docker's default spec, and read-only binds of `/etc/resolv.conf` and `/etc/hosts`; every
//!    target in the image is re-verified symlink-free right before its mount;
//! 3. `pivot_root` by runc's recipe (no `put_old` directory is needed in the image);
//! 4. hostname, loopback, stdin from the container's `/dev/null`, rlimits, capability bounding set;
//! 5. WORKDIR (`chdir`, then `getcwd` must be inside the root), program lookup and the exec-chain
//!    check (as root, so unreadable scripts are checked too);
//! 6. groups, gid, uid (in that order: after setuid we could no longer change groups), umask 022,
//!    `execve`.

use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::stat::SFlag;

use super::SandboxError;
use super::overlay::OverlayMount;
use super::stubs::MountPoint;
use super::syscalls::{CStringArray, TargetKind};
use super::user::ResolvedUser;

/// One step of the child. Paths are absolute host paths before `PivotRoot`, container paths after.
#[derive(Debug)]
pub(crate) enum Step {
    DieWithParent,
    RedirectOutput,
    CloseInheritedFds,
    Umask(u32),
    MakeMountsSlave,
    Mount(MountStep),
    MountOverlay {
        target: CString,
        data: CString,
        data_compat: CString,
    },
    Mkdir {
        path: CString,
        mode: u32,
    },
    Symlink {
        target: CString,
        link: CString,
    },
    Mknod {
        path: CString,
        kind: SFlag,
        mode: u32,
        dev: u64,
    },
    Chdir(CString),
    VerifyTarget {
        root: CString,
        rel: CString,
        kind: TargetKind,
    },
    MaskPath {
        path: CString,
        dev_null: CString,
    },
    ReadonlyPath(CString),
    PivotRoot {
        new_root: CString,
    },
    SetHostname(CString),
    LoopbackUp,
    StdinFrom(CString),
    /// Sets `soft = hard = limit`; if raising the hard limit is not permitted (no CAP_SYS_RESOURCE,
    /// as in a pod without it), `fallback` (the builder's own hard limit) is used instead.
    SetRlimit {
        resource: i32,
        limit: u64,
        fallback: u64,
    },
    DropBoundingCaps {
        keep: u64,
        last_cap: u32,
    },
    EnterWorkdir(CString),
    FindProgram {
        search_path: CString,
    },
    SetGroups(Vec<u32>),
    SetGid(u32),
    SetUid(u32),
    Exec,
}

#[derive(Debug)]
pub(crate) struct MountStep {
    pub source: Option<CString>,
    pub target: CString,
    pub fstype: Option<CString>,
    pub flags: MsFlags,
    pub data: Option<CString>,
}

/// Everything the child needs, prepared before the clone.
#[derive(Debug)]
pub(crate) struct ChildPlan {
    pub clone_flags: CloneFlags,
    pub steps: Vec<Step>,
    pub argv: CStringArray,
    pub envp: CStringArray,
}

impl fmt::Display for Step {
    /// For error messages: which step of the sandbox setup failed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |c: &CString| c.to_string_lossy().into_owned();
        match self {
            Self::DieWithParent => write!(f, "set the parent-death signal"),
            Self::RedirectOutput => write!(f, "redirect stdout/stderr"),
            Self::CloseInheritedFds => write!(f, "close inherited file descriptors"),
            Self::Umask(m) => write!(f, "set umask {m:04o}"),
            Self::MakeMountsSlave => write!(f, "make mounts recursively slave"),
            Self::Mount(m) => write!(
                f,
                "mount {} on {}",
                m.fstype
                    .as_ref()
                    .or(m.source.as_ref())
                    .map_or_else(|| "(remount)".into(), s),
                s(&m.target)
            ),
            Self::MountOverlay { target, data, .. } => {
                write!(f, "mount overlay on {} ({})", s(target), s(data))
            }
            Self::Mkdir { path, .. } => write!(f, "mkdir {}", s(path)),
            Self::Symlink { target, link } => write!(f, "symlink {} -> {}", s(link), s(target)),
            Self::Mknod { path, .. } => write!(f, "mknod {}", s(path)),
            Self::Chdir(p) => write!(f, "chdir {}", s(p)),
            Self::VerifyTarget { rel, .. } => {
                write!(f, "check mount target /{} is not a symlink", s(rel))
            }
            Self::MaskPath { path, .. } => write!(f, "mask {}", s(path)),
            Self::ReadonlyPath(p) => write!(f, "make {} read-only", s(p)),
            Self::PivotRoot { new_root } => write!(f, "pivot_root into {}", s(new_root)),
            Self::SetHostname(h) => write!(f, "set hostname {}", s(h)),
            Self::LoopbackUp => write!(f, "bring up the loopback interface"),
            Self::StdinFrom(p) => write!(f, "open {} as stdin", s(p)),
            Self::SetRlimit { resource, .. } => write!(f, "set rlimit {resource}"),
            Self::DropBoundingCaps { .. } => write!(f, "drop capabilities from the bounding set"),
            Self::EnterWorkdir(p) => write!(f, "enter WORKDIR {}", s(p)),
            Self::FindProgram { .. } => write!(f, "find the program"),
            Self::SetGroups(g) => write!(f, "set supplementary groups {g:?}"),
            Self::SetGid(g) => write!(f, "set gid {g}"),
            Self::SetUid(u) => write!(f, "set uid {u}"),
            Self::Exec => write!(f, "exec"),
        }
    }
}

/// Docker's default capability set (moby `oci/caps/defaults.go`); everything else leaves the
/// bounding set, so a RUN as root cannot mount, load modules or use raw I/O.
pub(crate) const DEFAULT_CAPABILITIES: &[u32] = &[
    0,  // CAP_CHOWN
    1,  // CAP_DAC_OVERRIDE
    3,  // CAP_FOWNER
    4,  // CAP_FSETID
    5,  // CAP_KILL
    6,  // CAP_SETGID
    7,  // CAP_SETUID
    8,  // CAP_SETPCAP
    10, // CAP_NET_BIND_SERVICE
    13, // CAP_NET_RAW
    18, // CAP_SYS_CHROOT
    27, // CAP_MKNOD
    29, // CAP_AUDIT_WRITE
    31, // CAP_SETFCAP
];

/// Docker's default masked paths (moby `oci/defaults.go`).
const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's default read-only paths: without these a root RUN could write
/// `/proc/sys/kernel/core_pattern` and run code on the host.
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// `(name, major, minor)` of the device nodes in the step's `/dev` (runc's default devices).
const DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// `RLIMIT_NOFILE` a RUN gets: 1048576, what `docker build` shows under dockerd; the child raises
/// it while it still has CAP_SYS_RESOURCE. Clamped to `fs.nr_open` by the caller; without
/// CAP_SYS_RESOURCE the step gets the builder's hard limit as both soft and hard limit.
pub(crate) const NOFILE_LIMIT: u64 = 1 << 20;

/// Inputs of [`build_plan`], all already validated and resolved.
#[derive(Debug)]
pub(crate) struct PlanInput<'a> {
    pub merged: &'a Path,
    pub overlay: OverlayMount,
    /// Mount points in the image that are safe to use (see `stubs`).
    pub mount_points: &'a [MountPoint],
    pub resolv_conf: Option<&'a Path>,
    pub hosts: Option<&'a Path>,
    pub hostname: &'a str,
    pub new_netns: bool,
    pub user: &'a ResolvedUser,
    pub cwd: &'a str,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub search_path: &'a str,
    pub nofile: u64,
    /// The builder's own hard `RLIMIT_NOFILE`, used when raising is not permitted.
    pub nofile_fallback: u64,
    pub last_cap: u32,
}

pub(crate) fn build_plan(input: PlanInput<'_>) -> Result<ChildPlan, SandboxError> {
    let merged = input.merged.as_os_str().as_bytes();
    let host = |rel: &str| cstr_bytes(&[merged, b"/", rel.as_bytes()].concat());
    let has = |rel: &str| input.mount_points.iter().any(|m| m.rel == rel);
    let mut steps = vec![
        Step::DieWithParent,
        Step::RedirectOutput,
        Step::CloseInheritedFds,
        Step::Umask(0),
        Step::MakeMountsSlave,
    ];
    overlay_steps(&mut steps, input.merged, input.overlay)?;

    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let verified_mount =
        |steps: &mut Vec<Step>, rel: &str, kind, m: MountStep| -> Result<(), SandboxError> {
            steps.push(Step::VerifyTarget {
                root: cstr_bytes(merged)?,
                rel: cstr(rel)?,
                kind,
            });
            steps.push(Step::Mount(m));
            Ok(())
        };
    for (rel, fstype, flags, data) in [
        ("proc", "proc", nosuid_nodev_noexec, None),
        (
            "sys",
            "sysfs",
            nosuid_nodev_noexec | MsFlags::MS_RDONLY,
            None,
        ),
        (
            "dev",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
            Some("mode=755,size=65536k"),
        ),
    ] {
        if !has(rel) {
            return Err(SandboxError::InvalidSpec {
                field: "lower_dirs",
                reason: format!("no usable /{rel} mount point"),
            });
        }
        let m = MountStep {
            source: Some(cstr(fstype)?),
            target: host(rel)?,
            fstype: Some(cstr(fstype)?),
            flags,
            data: data.map(cstr).transpose()?,
        };
        verified_mount(&mut steps, rel, TargetKind::Dir, m)?;
    }
    dev_steps(&mut steps, &host)?;
    let dev_null = host("dev/null")?;
    for path in MASKED_PATHS {
        steps.push(Step::MaskPath {
            path: host(&path[1..])?,
            dev_null: dev_null.clone(),
        });
    }
    for path in READONLY_PATHS {
        steps.push(Step::ReadonlyPath(host(&path[1..])?));
    }
    for (rel, source) in [
        ("etc/resolv.conf", input.resolv_conf),
        ("etc/hosts", input.hosts),
    ] {
        let Some(source) = source else { continue };
        if !has(rel) {
            continue;
        }
        let bind = MountStep {
            source: Some(cstr_bytes(source.as_os_str().as_bytes())?),
            target: host(rel)?,
            fstype: None,
            flags: MsFlags::MS_BIND,
            data: None,
        };
        verified_mount(&mut steps, rel, TargetKind::File, bind)?;
        // Read-only: the step must not write the builder's own files.
        steps.push(Step::Mount(MountStep {
            source: None,
            target: host(rel)?,
            fstype: None,
            flags: MsFlags::MS_BIND
                | MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | nosuid_nodev_noexec,
            data: None,
        }));
    }

    steps.push(Step::PivotRoot {
        new_root: cstr_bytes(merged)?,
    });
    steps.push(Step::SetHostname(cstr(input.hostname)?));
    if input.new_netns {
        steps.push(Step::LoopbackUp);
    }
    steps.push(Step::StdinFrom(cstr("/dev/null")?));
    steps.push(Step::SetRlimit {
        resource: libc::RLIMIT_NOFILE as i32,
        limit: input.nofile,
        fallback: input.nofile_fallback.min(input.nofile),
    });
    let keep = DEFAULT_CAPABILITIES.iter().fold(0u64, |m, c| m | (1 << c));
    steps.push(Step::DropBoundingCaps {
        keep,
        last_cap: input.last_cap,
    });
    steps.push(Step::EnterWorkdir(cstr(input.cwd)?));
    steps.push(Step::FindProgram {
        search_path: cstr(input.search_path)?,
    });
    // runc (Docker, BuildKit, Buildah) always lists the primary gid among the supplementary
    // groups, so `id` in a step shows `groups=<gid>,…`.
    let mut groups = vec![input.user.gid];
    groups.extend(
        input
            .user
            .additional_gids
            .iter()
            .filter(|g| **g != input.user.gid),
    );
    steps.push(Step::SetGroups(groups));
    steps.push(Step::SetGid(input.user.gid));
    steps.push(Step::SetUid(input.user.uid));
    steps.push(Step::Umask(0o022));
    steps.push(Step::Exec);

    let mut clone_flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC;
    if input.new_netns {
        clone_flags |= CloneFlags::CLONE_NEWNET;
    }
    Ok(ChildPlan {
        clone_flags,
        steps,
        argv: CStringArray::new(input.argv),
        envp: CStringArray::new(input.envp),
    })
}

fn overlay_steps(
    steps: &mut Vec<Step>,
    merged: &Path,
    overlay: OverlayMount,
) -> Result<(), SandboxError> {
    let target = cstr_bytes(merged.as_os_str().as_bytes())?;
    let Some(links) = overlay.links else {
        steps.push(Step::MountOverlay {
            target,
            data: overlay.data,
            data_compat: overlay.data_compat,
        });
        return Ok(());
    };
    // Short names for the layers (see `overlay`): a private tmpfs on the merged dir holds them.
    steps.push(Step::Mount(MountStep {
        source: Some(cstr("tmpfs")?),
        target: target.clone(),
        fstype: Some(cstr("tmpfs")?),
        flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        data: Some(cstr("mode=700,size=1m")?),
    }));
    for (name, lower) in links {
        let link = cstr_bytes(&[target.as_bytes(), b"/", name.as_bytes()].concat())?;
        steps.push(Step::Symlink {
            target: lower,
            link,
        });
    }
    steps.push(Step::Chdir(target.clone()));
    steps.push(Step::MountOverlay {
        target,
        data: overlay.data,
        data_compat: overlay.data_compat,
    });
    steps.push(Step::Chdir(cstr("/")?));
    Ok(())
}

fn dev_steps(
    steps: &mut Vec<Step>,
    host: &dyn Fn(&str) -> Result<CString, SandboxError>,
) -> Result<(), SandboxError> {
    for (name, major, minor) in DEVICES {
        steps.push(Step::Mknod {
            path: host(&format!("dev/{name}"))?,
            kind: SFlag::S_IFCHR,
            mode: 0o666,
            dev: nix::sys::stat::makedev(*major, *minor),
        });
    }
    steps.push(Step::Mkdir {
        path: host("dev/pts")?,
        mode: 0o755,
    });
    steps.push(Step::Mount(MountStep {
        source: Some(cstr("devpts")?),
        target: host("dev/pts")?,
        fstype: Some(cstr("devpts")?),
        flags: MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        data: Some(cstr("newinstance,ptmxmode=0666,mode=0620,gid=5")?),
    }));
    steps.push(Step::Mkdir {
        path: host("dev/shm")?,
        mode: 0o1777,
    });
    steps.push(Step::Mount(MountStep {
        source: Some(cstr("shm")?),
        target: host("dev/shm")?,
        fstype: Some(cstr("tmpfs")?),
        flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        data: Some(cstr("mode=1777,size=65536k")?),
    }));
    for (link, target) in [
        ("dev/ptmx", "pts/ptmx"),
        ("dev/fd", "/proc/self/fd"),
        ("dev/stdin", "/proc/self/fd/0"),
        ("dev/stdout", "/proc/self/fd/1"),
        ("dev/stderr", "/proc/self/fd/2"),
    ] {
        steps.push(Step::Symlink {
            target: cstr(target)?,
            link: host(link)?,
        });
    }
    Ok(())
}

fn cstr(s: &str) -> Result<CString, SandboxError> {
    cstr_bytes(s.as_bytes())
}

fn cstr_bytes(b: &[u8]) -> Result<CString, SandboxError> {
    CString::new(b).map_err(|_| SandboxError::InvalidSpec {
        field: "spec",
        reason: format!("{:?} contains NUL", String::from_utf8_lossy(b)),
    })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
