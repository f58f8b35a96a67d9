//! The `Syscalls` seam: every privileged (and every child-side) system call of the sandbox goes
//! through this trait, so the order of operations is testable with
//! [`RecordingSyscalls`](super::RecordingSyscalls) without root (youki's `Syscall` trait).
//!
//! The methods marked *child* run in the cloned child of a multi-threaded process, before `execve`:
//! they must not allocate, lock or panic (another thread may have held the allocator's lock at
//! clone time). Implementations take `&CStr` and fixed buffers for that reason, and report errors as
//! a plain [`Errno`].

use std::ffi::{CStr, c_char};
use std::os::fd::{OwnedFd, RawFd};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::SFlag;
use nix::unistd::Pid;

use super::ExitStatus;

/// What a mount target must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Dir,
    File,
}

/// NUL-terminated pointer array over owned C strings, built before the clone so that `execve` in
/// the child needs no allocation.
#[derive(Debug)]
pub struct CStringArray {
    strings: Vec<std::ffi::CString>,
    ptrs: Vec<*const c_char>,
}

impl CStringArray {
    pub fn new(strings: Vec<std::ffi::CString>) -> Self {
        let mut ptrs: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        Self { strings, ptrs }
    }

    pub fn strings(&self) -> &[std::ffi::CString] {
        &self.strings
    }

    /// The NULL-terminated `char *const[]` for `execve`; valid as long as `self` is.
    pub fn as_ptr(&self) -> *const *const c_char {
        self.ptrs.as_ptr()
    }
}

/// The system calls the sandbox makes. See the module docs for the *child* rules.
pub trait Syscalls: Send + Sync {
    // ---- parent side ----------------------------------------------------------------------------
    /// Clones a child into new namespaces (`flags`) that runs `child` and exits with its result.
    /// Also returns a pidfd for it (`CLONE_PIDFD`, so there is no window where the pid could be
    /// recycled); the pidfd polls readable once the child has exited.
    fn spawn(
        &self,
        flags: CloneFlags,
        child: &mut dyn FnMut() -> isize,
    ) -> Result<(Pid, OwnedFd), Errno>;
    /// SIGKILL through the pidfd (cannot hit a recycled pid).
    fn kill(&self, pidfd: &OwnedFd) -> Result<(), Errno>;
    /// Reaps the child.
    fn wait(&self, pid: Pid) -> Result<ExitStatus, Errno>;

    // ---- child side: process ----------------------------------------------------------------------
    /// `prctl(PR_SET_PDEATHSIG, SIGKILL)`: the step dies if the builder does.
    fn set_parent_death_signal(&self) -> Result<(), Errno>;
    fn dup2(&self, old: RawFd, new: RawFd) -> Result<(), Errno>;
    /// Closes every fd >= 3 except `keep` (threats §2.7 #38: nothing of the builder may leak).
    fn close_fds_except(&self, keep: RawFd) -> Result<(), Errno>;
    fn close(&self, fd: RawFd);
    fn umask(&self, mask: u32);

    // ---- child side: filesystem and mounts --------------------------------------------------------
    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: MsFlags,
        data: Option<&CStr>,
    ) -> Result<(), Errno>;
    fn umount2(&self, target: &CStr, flags: MntFlags) -> Result<(), Errno>;
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> Result<(), Errno>;
    /// `open(path, O_DIRECTORY|O_RDONLY|O_CLOEXEC)`.
    fn open_dir(&self, path: &CStr) -> Result<RawFd, Errno>;
    /// `open(path, O_RDWR|O_CLOEXEC)`.
    fn open_rdwr(&self, path: &CStr) -> Result<RawFd, Errno>;
    fn fchdir(&self, fd: RawFd) -> Result<(), Errno>;
    fn chdir(&self, path: &CStr) -> Result<(), Errno>;
    fn mkdir(&self, path: &CStr, mode: u32) -> Result<(), Errno>;
    fn symlink(&self, target: &CStr, link: &CStr) -> Result<(), Errno>;
    fn mknod(&self, path: &CStr, kind: SFlag, mode: u32, dev: u64) -> Result<(), Errno>;
    /// Succeeds if `rel` exists beneath `root` as `kind` with no symlink on the way
    /// (`openat2(RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH)`); the last line of defence before a mount.
    fn verify_beneath(&self, root: &CStr, rel: &CStr, kind: TargetKind) -> Result<(), Errno>;
    /// Hides a procfs/sysfs path: a read-only tmpfs on a directory, `dev_null` bound on a file;
    /// a path this kernel lacks is fine.
    fn mask_path(&self, path: &CStr, dev_null: &CStr) -> Result<(), Errno>;
    /// Makes a path read-only with a bind mount of itself; a path this kernel lacks is fine.
    fn readonly_path(&self, path: &CStr) -> Result<(), Errno>;
    /// `getcwd(2)` into `buf`; the length without the NUL. The kernel prefixes `(unreachable)` when
    /// the cwd is outside the root (threats §2.7 #38).
    fn getcwd(&self, buf: &mut [u8]) -> Result<usize, Errno>;

    // ---- child side: identity and limits ----------------------------------------------------------
    fn sethostname(&self, name: &CStr) -> Result<(), Errno>;
    /// Brings `lo` up in the (new) network namespace.
    fn loopback_up(&self) -> Result<(), Errno>;
    fn setrlimit(&self, resource: i32, soft: u64, hard: u64) -> Result<(), Errno>;
    /// Drops every capability not in `keep` (bit mask) from the bounding set.
    fn drop_bounding_caps(&self, keep: u64, last_cap: u32) -> Result<(), Errno>;
    fn setgroups(&self, gids: &[u32]) -> Result<(), Errno>;
    fn setresgid(&self, gid: u32) -> Result<(), Errno>;
    fn setresuid(&self, uid: u32) -> Result<(), Errno>;

    // ---- child side: exec ----------------------------------------------------------------------
    /// A regular file with an execute bit (Go's `exec.LookPath`, which runc uses).
    fn is_executable_file(&self, path: &CStr) -> bool;
    /// Walks the exec chain of `path` (`#!` interpreters, the ELF `PT_INTERP`) and fails with
    /// `ELOOP` if any of it resolves through a procfs magic link (`/proc/self/exe`, CVE-2019-5736):
    /// the kernel would otherwise run the builder's own binary inside the container.
    fn verify_exec_chain(&self, path: &CStr) -> Result<(), Errno>;
    /// Replaces the process image. The real implementation only returns on failure; a test double
    /// returns `Ok(())` to stand for "the program is now running".
    fn execve(&self, path: &CStr, argv: &CStringArray, envp: &CStringArray) -> Result<(), Errno>;
}
