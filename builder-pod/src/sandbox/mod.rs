#![allow(unsafe_code)] // the one module with syscalls; every block has a SAFETY note
//! The RUN sandbox: one Dockerfile `RUN` step in a container over overlayfs.
//!
//! [`run`] mounts the stage's layers (top-first lower dirs, a fresh upper dir) with overlayfs,
//! clones into new mount/pid/uts/ipc (and, for `--network none`, net) namespaces, `pivot_root`s
//! into the merged view with `/proc`, a minimal `/dev`, a read-only `/sys` and the builder's
//! `/etc/resolv.conf` and `/etc/hosts`, applies USER (resolved from the image's own
//! `/etc/passwd`/`/etc/group` as data, [`resolve_user`]), WORKDIR, env, umask and rlimits, and execs
//! the command, streaming its output line by line. Every privileged call goes through
//! [`Syscalls`]; [`LinuxSyscalls`] is the real one, [`RecordingSyscalls`] the test double.
//! docs/arch/sandbox.md explains the process model and the order of operations.

mod child;
mod command;
mod exec_check;
mod linux;
mod output;
pub(crate) mod overlay;
mod plan;
mod recording;
mod rootfs;
mod runner;
mod stubs;
mod syscalls;
mod user;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use thiserror::Error;

pub use command::{DEFAULT_PATH, DEFAULT_SHELL, ExitStatus, non_zero_exit_message, shell_argv};
pub use linux::LinuxSyscalls;
pub use output::{MAX_LINE, Stream};
pub use recording::RecordingSyscalls;
pub use runner::run;
pub use syscalls::{CStringArray, Syscalls, TargetKind};
pub use user::{ResolvedUser, UserError, resolve_user};

/// The hostname a step gets when the spec leaves it empty (BuildKit's).
pub const DEFAULT_HOSTNAME: &str = "buildkitsandbox";

/// Network namespace of a step (`--network`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// The builder's network namespace (Docker's default for builds).
    #[default]
    Host,
    /// A new, empty network namespace with only `lo`, up.
    None,
}

/// One RUN step.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The stage's layer directories, top-first (overlayfs `lowerdir` order). Must not change
    /// while the step runs.
    pub lower_dirs: Vec<PathBuf>,
    /// Fresh, empty directory on a non-overlay filesystem; holds the step's changes afterwards.
    pub upper_dir: PathBuf,
    /// Empty directory on the same filesystem as `upper_dir`, for overlayfs.
    pub work_dir: PathBuf,
    /// Where the merged view is mounted (inside the step's own mount namespace only).
    pub merged_dir: PathBuf,
    /// The program and its arguments: [`shell_argv`] for the shell form, the JSON array for the
    /// exec form. A name without `/` is looked up in the env's `PATH`.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// WORKDIR, absolute (empty means `/`).
    pub cwd: String,
    /// USER as written (`name`, `uid`, `name:group`, `uid:gid`; empty is root).
    pub user: String,
    /// Empty means [`DEFAULT_HOSTNAME`].
    pub hostname: String,
    pub network: Network,
    pub timeout: Option<Duration>,
    /// Bound read-only onto `/etc/resolv.conf` when set.
    pub resolv_conf: Option<PathBuf>,
    /// Bound read-only onto `/etc/hosts` when set.
    pub hosts: Option<PathBuf>,
}

/// Cancels a running step from another thread (e.g. the builder's SIGTERM handler): the step's
/// whole process tree is killed and its mounts go away. Noticed within ~100 ms.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Why a step could not run to completion. A step that ran and exited non-zero is not an error
/// here: [`run`] returns its [`ExitStatus`] and [`non_zero_exit_message`] words it.
#[derive(Debug, Error)]
pub enum SandboxError {
    #[error("invalid RUN step ({field}): {reason}")]
    InvalidSpec { field: &'static str, reason: String },
    #[error("USER {spec:?}: {source}")]
    User {
        spec: String,
        #[source]
        source: UserError,
    },
    #[error("reading {path} from the image: {source}")]
    ImageFile {
        path: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("preparing the step ({what}): {source}")]
    Prepare {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the step's container: {source}")]
    Spawn {
        #[source]
        source: Errno,
    },
    #[error("setting up the step's container failed at \"{step}\": {source}")]
    Setup {
        step: String,
        #[source]
        source: Errno,
    },
    #[error(
        "refusing to run {program:?}: its #! interpreter or ELF loader chain goes through a /proc magic link \
         such as /proc/self/exe, which would execute the builder itself inside the container (CVE-2019-5736)"
    )]
    ExecThroughMagicLink { program: String },
    #[error("WORKDIR {cwd:?} is outside the container's root filesystem (CVE-2024-21626)")]
    WorkdirOutsideRoot { cwd: String },
    #[error("WORKDIR {cwd:?}: {source} (does the directory exist in the image?)")]
    Workdir {
        cwd: String,
        #[source]
        source: Errno,
    },
    #[error("exec: {program:?}: executable file not found in $PATH")]
    ProgramNotFound { program: String },
    #[error("exec {program:?}: {source}")]
    Exec {
        program: String,
        #[source]
        source: Errno,
    },
    #[error("the step timed out after {after:?}; its processes were killed")]
    TimedOut { after: Duration },
    #[error("the step was cancelled; its processes were killed")]
    Cancelled,
    #[error("supervising the step ({what}): {source}")]
    Supervise {
        what: &'static str,
        #[source]
        source: Errno,
    },
    #[error("removing mount-point stubs from the upper dir: {source}")]
    Cleanup {
        #[source]
        source: std::io::Error,
    },
}
