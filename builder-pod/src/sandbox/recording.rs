//! A [`Syscalls`] test double that records every call, in order, as a line of text, and lets a
//! test make one call fail. `spawn` runs the child's step interpreter in-process against the same
//! recorder (nothing is really mounted or exec'ed), so one recording shows the parent and the child
//! interleaved exactly as the real sandbox would issue them. Public so the executor's tests can use it.

use std::ffi::CStr;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::SFlag;
use nix::unistd::Pid;

use super::ExitStatus;
use super::syscalls::{CStringArray, Syscalls, TargetKind};

const FAKE_PID: i32 = 4242;

#[derive(Debug, Default)]
struct State {
    calls: Vec<String>,
    /// Write end of the fake pidfd, held while the fake child "runs".
    running: Option<OwnedFd>,
    next_fd: RawFd,
}

/// See the module docs.
pub struct RecordingSyscalls {
    state: Mutex<State>,
    /// Fail the first call whose line starts with this prefix.
    fail: Option<(String, Errno)>,
    exit: ExitStatus,
    /// Keep the fake child "running" until `kill` (to test timeouts and cancellation).
    hang: bool,
    /// Bytes the fake program "prints" on stdout.
    stdout: Vec<u8>,
    /// `getcwd` reports the kernel's marker for a cwd outside the root.
    cwd_outside_root: bool,
    /// Run on `spawn` before anything else, e.g. to snapshot the upper dir.
    on_spawn: Option<Box<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for RecordingSyscalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingSyscalls")
            .field("calls", &self.lock().calls.len())
            .finish_non_exhaustive()
    }
}

impl Default for RecordingSyscalls {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                next_fd: 100,
                ..State::default()
            }),
            fail: None,
            exit: ExitStatus::Exited(0),
            hang: false,
            stdout: Vec::new(),
            cwd_outside_root: false,
            on_spawn: None,
        }
    }
}

impl RecordingSyscalls {
    pub fn new() -> Self {
        Self::default()
    }

    /// The first call whose recorded line starts with `prefix` fails with `errno`.
    pub fn failing(mut self, prefix: &str, errno: Errno) -> Self {
        self.fail = Some((prefix.to_owned(), errno));
        self
    }

    /// How the fake program ends.
    pub fn exiting(mut self, status: ExitStatus) -> Self {
        self.exit = status;
        self
    }

    /// The fake program runs until killed.
    pub fn hanging(mut self) -> Self {
        self.hang = true;
        self
    }

    /// What the fake program writes to stdout.
    pub fn printing(mut self, bytes: &[u8]) -> Self {
        self.stdout = bytes.to_vec();
        self
    }

    /// `getcwd` answers `(unreachable)/…`, as after a `chdir` through a leaked fd (CVE-2024-21626).
    pub fn cwd_outside_root(mut self) -> Self {
        self.cwd_outside_root = true;
        self
    }

    pub fn on_spawn(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_spawn = Some(Box::new(f));
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(&self, line: String) -> Result<(), Errno> {
        let fail = self
            .fail
            .as_ref()
            .filter(|(prefix, _)| line.starts_with(prefix.as_str()))
            .map(|(_, e)| *e);
        let mut state = self.lock();
        let already_failed = state.calls.iter().any(|c| c.ends_with(" = FAILED"));
        match fail {
            Some(e) if !already_failed => {
                state.calls.push(format!("{line} = FAILED"));
                Err(e)
            }
            _ => {
                state.calls.push(line);
                Ok(())
            }
        }
    }

    fn fake_fd(&self) -> RawFd {
        let mut state = self.lock();
        state.next_fd += 1;
        state.next_fd
    }
}

fn s(c: &CStr) -> String {
    c.to_string_lossy().into_owned()
}

fn opt(c: Option<&CStr>) -> String {
    c.map_or_else(|| "-".to_owned(), s)
}

impl Syscalls for RecordingSyscalls {
    fn spawn(
        &self,
        flags: CloneFlags,
        child: &mut dyn FnMut() -> isize,
    ) -> Result<(Pid, OwnedFd), Errno> {
        if let Some(f) = &self.on_spawn {
            f();
        }
        self.record(format!("spawn {flags:?}"))?;
        let code = child();
        self.record(format!("child returned {code}"))?;
        // The fake pidfd: a pipe whose write end is held while the fake program "runs".
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        if self.hang {
            self.lock().running = Some(write);
        }
        Ok((Pid::from_raw(FAKE_PID), read))
    }

    fn kill(&self, _pidfd: &OwnedFd) -> Result<(), Errno> {
        self.record("kill SIGKILL".to_owned())?;
        self.lock().running = None;
        Ok(())
    }

    fn wait(&self, pid: Pid) -> Result<ExitStatus, Errno> {
        self.record(format!("wait {pid}"))?;
        Ok(if self.hang {
            ExitStatus::Signaled(9)
        } else {
            self.exit
        })
    }

    fn set_parent_death_signal(&self) -> Result<(), Errno> {
        self.record("prctl PR_SET_PDEATHSIG SIGKILL".to_owned())
    }

    fn dup2(&self, old: RawFd, new: RawFd) -> Result<(), Errno> {
        self.record(format!("dup2 -> {new}"))?;
        if new == 1 && !self.stdout.is_empty() {
            // Stand-in for the program's output: write it to the real stdout pipe.
            // SAFETY: `old` is the write end of the parent's stdout pipe, open for this call.
            unsafe { libc::write(old, self.stdout.as_ptr().cast(), self.stdout.len()) };
        }
        Ok(())
    }

    fn close_fds_except(&self, _keep: RawFd) -> Result<(), Errno> {
        self.record("close_range 3.. except report".to_owned())
    }

    fn close(&self, _fd: RawFd) {
        let _ = self.record("close".to_owned());
    }

    fn umask(&self, mask: u32) {
        let _ = self.record(format!("umask {mask:04o}"));
    }

    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: MsFlags,
        data: Option<&CStr>,
    ) -> Result<(), Errno> {
        self.record(format!(
            "mount {} {} {} {flags:?} {}",
            opt(source),
            s(target),
            opt(fstype),
            opt(data)
        ))
    }

    fn umount2(&self, target: &CStr, flags: MntFlags) -> Result<(), Errno> {
        self.record(format!("umount2 {} {flags:?}", s(target)))
    }

    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> Result<(), Errno> {
        self.record(format!("pivot_root {} {}", s(new_root), s(put_old)))
    }

    fn open_dir(&self, path: &CStr) -> Result<RawFd, Errno> {
        self.record(format!("open_dir {}", s(path)))?;
        Ok(self.fake_fd())
    }

    fn open_rdwr(&self, path: &CStr) -> Result<RawFd, Errno> {
        self.record(format!("open_rdwr {}", s(path)))?;
        Ok(self.fake_fd())
    }

    fn fchdir(&self, _fd: RawFd) -> Result<(), Errno> {
        self.record("fchdir".to_owned())
    }

    fn chdir(&self, path: &CStr) -> Result<(), Errno> {
        self.record(format!("chdir {}", s(path)))
    }

    fn mkdir(&self, path: &CStr, mode: u32) -> Result<(), Errno> {
        self.record(format!("mkdir {} {mode:04o}", s(path)))
    }

    fn symlink(&self, target: &CStr, link: &CStr) -> Result<(), Errno> {
        self.record(format!("symlink {} -> {}", s(link), s(target)))
    }

    fn mknod(&self, path: &CStr, _kind: SFlag, mode: u32, dev: u64) -> Result<(), Errno> {
        let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
        self.record(format!("mknod {} {mode:04o} {major}:{minor}", s(path)))
    }

    fn verify_beneath(&self, root: &CStr, rel: &CStr, kind: TargetKind) -> Result<(), Errno> {
        self.record(format!("verify_beneath {} {} {kind:?}", s(root), s(rel)))
    }

    fn mask_path(&self, path: &CStr, dev_null: &CStr) -> Result<(), Errno> {
        self.record(format!("mask {} with {}", s(path), s(dev_null)))
    }

    fn readonly_path(&self, path: &CStr) -> Result<(), Errno> {
        self.record(format!("readonly {}", s(path)))
    }

    fn getcwd(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        self.record("getcwd".to_owned())?;
        let cwd = self
            .lock()
            .calls
            .iter()
            .rev()
            .find_map(|c| c.strip_prefix("chdir ").map(str::to_owned));
        let mut cwd = cwd.unwrap_or_else(|| "/".to_owned());
        if self.cwd_outside_root {
            cwd = format!("(unreachable){cwd}");
        }
        let n = cwd.len().min(buf.len());
        buf[..n].copy_from_slice(&cwd.as_bytes()[..n]);
        Ok(n)
    }

    fn sethostname(&self, name: &CStr) -> Result<(), Errno> {
        self.record(format!("sethostname {}", s(name)))
    }

    fn loopback_up(&self) -> Result<(), Errno> {
        self.record("loopback_up".to_owned())
    }

    fn setrlimit(&self, resource: i32, soft: u64, hard: u64) -> Result<(), Errno> {
        self.record(format!("setrlimit {resource} {soft} {hard}"))
    }

    fn drop_bounding_caps(&self, keep: u64, last_cap: u32) -> Result<(), Errno> {
        self.record(format!("drop_bounding_caps keep={keep:#x} last={last_cap}"))
    }

    fn setgroups(&self, gids: &[u32]) -> Result<(), Errno> {
        self.record(format!("setgroups {gids:?}"))
    }

    fn setresgid(&self, gid: u32) -> Result<(), Errno> {
        self.record(format!("setresgid {gid}"))
    }

    fn setresuid(&self, uid: u32) -> Result<(), Errno> {
        self.record(format!("setresuid {uid}"))
    }

    fn is_executable_file(&self, path: &CStr) -> bool {
        // Pretend only these programs exist, so the PATH order is observable.
        let found = ["/bin/sh", "/bin/ls"].contains(&s(path).as_str());
        let _ = self.record(format!("is_executable_file {} = {found}", s(path)));
        found
    }

    fn verify_exec_chain(&self, path: &CStr) -> Result<(), Errno> {
        self.record(format!("verify_exec_chain {}", s(path)))
    }

    fn execve(&self, path: &CStr, argv: &CStringArray, envp: &CStringArray) -> Result<(), Errno> {
        let list = |a: &CStringArray| {
            a.strings()
                .iter()
                .map(|c| s(c))
                .collect::<Vec<_>>()
                .join(" ")
        };
        self.record(format!(
            "execve {} [{}] [{}]",
            s(path),
            list(argv),
            list(envp)
        ))
    }
}
