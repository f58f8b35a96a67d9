//! The step interpreter that runs in the cloned child: it carries out a [`ChildPlan`] through
//! [`Syscalls`] and ends in `execve`. On failure it writes a fixed-size report (step index, kind,
//! errno) to the report pipe and exits 127; on success the close-on-exec report pipe simply closes.
//!
//! Rules for this file (the child of a multi-threaded process, see `syscalls`): no allocation, no
//! locks, no panics: no `format!`, no `Vec` growth, no indexing that could panic, no `?` into
//! anything that allocates. Buffers live on the stack. The same holds for the `Syscalls` methods it
//! calls: only raw syscalls or libc wrappers that are plain syscalls. glibc's `set*id`/`setgroups`
//! are not (they broadcast to the parent's threads under a lock and hang the child; see `linux`).

use std::ffi::CStr;
use std::os::fd::RawFd;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

use super::plan::{ChildPlan, Step};
use super::syscalls::Syscalls;

const PATH_MAX: usize = libc::PATH_MAX as usize;

/// The child's end of the pipes. The parent keeps the owned fds; the numbers are valid in the
/// child's copy of the fd table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChildIo {
    pub stdout: RawFd,
    pub stderr: RawFd,
    /// Close-on-exec: EOF on the parent's end means the exec happened.
    pub report: RawFd,
}

/// Why the child gave up, beyond the errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum FailureKind {
    Syscall = 0,
    /// The exec chain reaches a procfs magic link (CVE-2019-5736).
    MagicLink = 1,
    /// After `chdir` the cwd is outside the root (CVE-2024-21626).
    CwdOutsideRoot = 2,
    /// The program is not in `PATH`.
    NotFound = 3,
}

impl FailureKind {
    pub(crate) fn from_u32(v: u32) -> Option<Self> {
        [
            Self::Syscall,
            Self::MagicLink,
            Self::CwdOutsideRoot,
            Self::NotFound,
        ]
        .into_iter()
        .find(|k| *k as u32 == v)
    }
}

/// Size of a failure report: step index, kind, errno (little under `PIPE_BUF`, so one atomic write).
pub(crate) const REPORT_LEN: usize = 12;

pub(crate) fn encode_report(step: usize, kind: FailureKind, errno: Errno) -> [u8; REPORT_LEN] {
    let mut out = [0u8; REPORT_LEN];
    let step = u32::try_from(step).unwrap_or(u32::MAX);
    out[..4].copy_from_slice(&step.to_le_bytes());
    out[4..8].copy_from_slice(&(kind as u32).to_le_bytes());
    out[8..].copy_from_slice(&(errno as i32).to_le_bytes());
    out
}

/// `(step, kind, errno)` from a report.
pub(crate) fn decode_report(bytes: &[u8; REPORT_LEN]) -> (usize, Option<FailureKind>, Errno) {
    let word = |i: usize| [bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]];
    let step = u32::from_le_bytes(word(0)) as usize;
    let kind = FailureKind::from_u32(u32::from_le_bytes(word(4)));
    (step, kind, Errno::from_raw(i32::from_le_bytes(word(8))))
}

type StepResult = Result<(), (FailureKind, Errno)>;

fn sys_err(e: Errno) -> (FailureKind, Errno) {
    (FailureKind::Syscall, e)
}

/// The program to exec, found by `FindProgram`.
struct Program {
    buf: [u8; PATH_MAX + 1],
    len: usize,
}

impl Program {
    fn as_cstr(&self) -> Option<&CStr> {
        CStr::from_bytes_with_nul(self.buf.get(..=self.len)?).ok()
    }

    fn set(&mut self, parts: &[&[u8]]) -> bool {
        let mut len = 0;
        for part in parts {
            let Some(dst) = self.buf.get_mut(len..len + part.len()) else {
                return false;
            };
            dst.copy_from_slice(part);
            len += part.len();
        }
        if len >= PATH_MAX || self.buf[..len].contains(&0) {
            return false;
        }
        self.buf[len] = 0;
        self.len = len;
        true
    }
}

/// Runs the plan. Returns the exit code for the child (127 after a reported failure); with the real
/// syscalls it does not return on success, as the last step execs.
pub(crate) fn child_main(plan: &ChildPlan, io: &ChildIo, sys: &dyn Syscalls) -> isize {
    let mut program = Program {
        buf: [0u8; PATH_MAX + 1],
        len: 0,
    };
    for (index, step) in plan.steps.iter().enumerate() {
        if let Err((kind, errno)) = run_step(step, plan, io, sys, &mut program) {
            let report = encode_report(index, kind, errno);
            // SAFETY: writes REPORT_LEN bytes from a stack buffer to the report pipe; a short or
            // failed write only loses the detail (the parent then reports a generic failure).
            unsafe { libc::write(io.report, report.as_ptr().cast(), report.len()) };
            return 127;
        }
    }
    0
}

fn run_step(
    step: &Step,
    plan: &ChildPlan,
    io: &ChildIo,
    sys: &dyn Syscalls,
    program: &mut Program,
) -> StepResult {
    match step {
        Step::DieWithParent => sys.set_parent_death_signal().map_err(sys_err),
        Step::RedirectOutput => {
            sys.dup2(io.stdout, 1).map_err(sys_err)?;
            sys.dup2(io.stderr, 2).map_err(sys_err)
        }
        Step::CloseInheritedFds => sys.close_fds_except(io.report).map_err(sys_err),
        Step::Umask(mask) => {
            sys.umask(*mask);
            Ok(())
        }
        Step::MakeMountsSlave => sys
            .mount(None, c"/", None, MsFlags::MS_REC | MsFlags::MS_SLAVE, None)
            .map_err(sys_err),
        Step::Mount(m) => sys
            .mount(
                m.source.as_deref(),
                &m.target,
                m.fstype.as_deref(),
                m.flags,
                m.data.as_deref(),
            )
            .map_err(sys_err),
        Step::MountOverlay {
            target,
            data,
            data_compat,
        } => {
            let mount = |data: &CStr| {
                sys.mount(
                    Some(c"overlay"),
                    target,
                    Some(c"overlay"),
                    MsFlags::empty(),
                    Some(data),
                )
            };
            match mount(data) {
                // Kernels before 5.13 do not know `uuid=off` (and do not need it, see `overlay`).
                Err(Errno::EINVAL) => mount(data_compat).map_err(sys_err),
                other => other.map_err(sys_err),
            }
        }
        Step::Mkdir { path, mode } => sys.mkdir(path, *mode).map_err(sys_err),
        Step::Symlink { target, link } => sys.symlink(target, link).map_err(sys_err),
        Step::Mknod {
            path,
            kind,
            mode,
            dev,
        } => sys.mknod(path, *kind, *mode, *dev).map_err(sys_err),
        Step::Chdir(path) => sys.chdir(path).map_err(sys_err),
        Step::VerifyTarget { root, rel, kind } => {
            sys.verify_beneath(root, rel, *kind).map_err(sys_err)
        }
        Step::MaskPath { path, dev_null } => sys.mask_path(path, dev_null).map_err(sys_err),
        Step::ReadonlyPath(path) => sys.readonly_path(path).map_err(sys_err),
        Step::PivotRoot { new_root } => pivot_root(sys, new_root).map_err(sys_err),
        Step::SetHostname(name) => sys.sethostname(name).map_err(sys_err),
        Step::LoopbackUp => sys.loopback_up().map_err(sys_err),
        Step::StdinFrom(path) => {
            let fd = sys.open_rdwr(path).map_err(sys_err)?;
            let result = sys.dup2(fd, 0).map_err(sys_err);
            sys.close(fd);
            result
        }
        Step::SetRlimit {
            resource,
            limit,
            fallback,
        } => match sys.setrlimit(*resource, *limit, *limit) {
            Err(Errno::EPERM) => sys
                .setrlimit(*resource, *fallback, *fallback)
                .map_err(sys_err),
            other => other.map_err(sys_err),
        },
        Step::DropBoundingCaps { keep, last_cap } => {
            sys.drop_bounding_caps(*keep, *last_cap).map_err(sys_err)
        }
        Step::EnterWorkdir(path) => enter_workdir(sys, path),
        Step::FindProgram { search_path } => find_program(sys, plan, search_path, program),
        Step::SetGroups(gids) => sys.setgroups(gids).map_err(sys_err),
        Step::SetGid(gid) => sys.setresgid(*gid).map_err(sys_err),
        Step::SetUid(uid) => sys.setresuid(*uid).map_err(sys_err),
        Step::Exec => {
            let path = program
                .as_cstr()
                .ok_or((FailureKind::NotFound, Errno::ENOENT))?;
            sys.execve(path, &plan.argv, &plan.envp).map_err(sys_err)
        }
    }
}

/// runc's `pivot_root` recipe (libcontainer/rootfs_linux.go), which needs no `put_old` directory in
/// the image (so none can be left behind in the layer):
fn pivot_root(sys: &dyn Syscalls, new_root: &CStr) -> Result<(), Errno> {
    // Keep a handle on the old root: after the pivot it is only reachable through this fd.
    let old_root = sys.open_dir(c"/")?;
    let new = match sys.open_dir(new_root) {
        Ok(fd) => fd,
        Err(e) => {
            sys.close(old_root);
            return Err(e);
        }
    };
    let result = (|| {
        // pivot_root(".", ".") stacks the old root on top of the new one at "/"; that only works
        // with the cwd inside the new root.
        sys.fchdir(new)?;
        sys.pivot_root(c".", c".")?;
        // The kernel does not promise what the cwd is after pivot_root; go to the old root explicitly.
        sys.fchdir(old_root)?;
        // Make the old root slave before unmounting it so the unmount cannot propagate to the host.
        sys.mount(None, c".", None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None)?;
        // Lazily detach the whole old tree: it is busy (our own cwd), and nothing of it may remain.
        sys.umount2(c".", MntFlags::MNT_DETACH)?;
        sys.chdir(c"/")
    })();
    sys.close(new);
    sys.close(old_root);
    result
}

/// `chdir` into the WORKDIR, then insist that the cwd is inside the root: a `/proc/self/fd/N`
/// WORKDIR naming a leaked directory fd would otherwise put the step outside it (CVE-2024-21626).
/// Inherited fds are closed before this, so such a path normally fails already.
fn enter_workdir(sys: &dyn Syscalls, path: &CStr) -> StepResult {
    sys.chdir(path).map_err(sys_err)?;
    let mut buf = [0u8; PATH_MAX + 1];
    let len = sys
        .getcwd(&mut buf)
        .map_err(|e| (FailureKind::CwdOutsideRoot, e))?;
    if len == 0 || buf.first() != Some(&b'/') {
        return Err((FailureKind::CwdOutsideRoot, Errno::EPERM));
    }
    Ok(())
}

/// `execvp`'s lookup: a name with a `/` is used as is, otherwise the first executable regular file
/// in `PATH` (an empty entry is the cwd). Then the whole exec chain is checked for magic links.
fn find_program(
    sys: &dyn Syscalls,
    plan: &ChildPlan,
    search_path: &CStr,
    program: &mut Program,
) -> StepResult {
    let name = plan
        .argv
        .strings()
        .first()
        .map(|s| s.to_bytes())
        .ok_or((FailureKind::NotFound, Errno::ENOENT))?;
    if name.contains(&b'/') {
        if !program.set(&[name]) {
            return Err(sys_err(Errno::ENAMETOOLONG));
        }
    } else {
        let mut found = false;
        for dir in search_path.to_bytes().split(|b| *b == b':') {
            let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
            if program.set(&[dir, b"/", name])
                && program.as_cstr().is_some_and(|p| sys.is_executable_file(p))
            {
                found = true;
                break;
            }
        }
        if !found {
            return Err((FailureKind::NotFound, Errno::ENOENT));
        }
    }
    let path = program
        .as_cstr()
        .ok_or((FailureKind::NotFound, Errno::ENOENT))?;
    match sys.verify_exec_chain(path) {
        Err(Errno::ELOOP) => Err((FailureKind::MagicLink, Errno::ELOOP)),
        other => other.map_err(sys_err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trips() {
        let r = encode_report(17, FailureKind::MagicLink, Errno::ELOOP);
        assert_eq!(
            decode_report(&r),
            (17, Some(FailureKind::MagicLink), Errno::ELOOP)
        );
        let mut bad = r;
        bad[4] = 99;
        assert_eq!(decode_report(&bad).1, None);
    }

    #[test]
    fn program_buffer_refuses_overflow_and_nul() {
        let mut p = Program {
            buf: [0u8; PATH_MAX + 1],
            len: 0,
        };
        assert!(p.set(&[b"/usr/bin", b"/", b"env"]));
        assert_eq!(p.as_cstr().unwrap().to_bytes(), b"/usr/bin/env");
        assert!(!p.set(&[&[b'a'; PATH_MAX]]));
        assert!(!p.set(&[b"a\0b"]));
    }
}
