//! [`Syscalls`] on Linux, over `nix` where it does not allocate and `libc` where `nix` has a gap
//! or would allocate (`execve`, `close_range`, `pidfd_*`, `getcwd`, the loopback ioctl).

use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, mknod, stat};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use super::ExitStatus;
use super::exec_check::{
    BINPRM_BUF_SIZE, MAX_INTERPRETER_DEPTH, elf_layout, interp_segment, shebang_interpreter,
};
use super::syscalls::{CStringArray, Syscalls, TargetKind};

/// Stack for the cloned child until it execs. The child only runs the step interpreter, whose
/// largest frame holds two `PATH_MAX` buffers.
const CHILD_STACK_SIZE: usize = 1 << 20;

const PATH_MAX: usize = libc::PATH_MAX as usize;

/// The real thing. Zero-sized; share it freely.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinuxSyscalls;

fn errno(ret: libc::c_long) -> Result<libc::c_long, Errno> {
    if ret < 0 { Err(Errno::last()) } else { Ok(ret) }
}

fn is_type(st: &FileStat, kind: SFlag) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == kind
}

impl Syscalls for LinuxSyscalls {
    fn spawn(
        &self,
        flags: CloneFlags,
        child: &mut dyn FnMut() -> isize,
    ) -> Result<(Pid, OwnedFd), Errno> {
        extern "C" fn trampoline(arg: *mut libc::c_void) -> libc::c_int {
            // SAFETY: `arg` is the `&mut &mut dyn FnMut` passed to clone below; the child has its
            // own copy of the parent's memory, in which that reference is still valid.
            let child = unsafe { &mut *arg.cast::<&mut dyn FnMut() -> isize>() };
            libc::c_int::try_from(child()).unwrap_or(127)
        }
        let mut stack = vec![0u8; CHILD_STACK_SIZE];
        let mut child = child;
        let mut pidfd: libc::c_int = -1;
        let flags = flags.bits() | libc::CLONE_PIDFD | libc::SIGCHLD;
        // SAFETY: clone without CLONE_VM gives the child a copy-on-write copy of this address
        // space, so the stack, the closure and `pidfd` stay valid in it whatever the parent does
        // next. The stack pointer is the 16-byte aligned top of `stack` (stacks grow down on every
        // Linux target we build for). The closure is the step interpreter, written to be safe
        // after a clone from a multi-threaded process: no allocation, no locks, no panics, only
        // raw system calls, then execve or returning an exit code (glibc's clone trampoline then
        // makes the exit syscall directly, without atexit handlers). Its deepest frame is far
        // below CHILD_STACK_SIZE. With CLONE_PIDFD the kernel stores the pidfd (close-on-exec)
        // through the parent_tid argument, which points at `pidfd`.
        let pid = unsafe {
            let top = stack.as_mut_ptr().add(stack.len());
            let top = top.sub(top as usize % 16);
            libc::clone(
                trampoline,
                top.cast(),
                flags,
                (&raw mut child).cast(),
                &raw mut pidfd,
            )
        };
        let pid = Errno::result(pid)?;
        // SAFETY: on success the kernel stored a new pidfd that nothing else owns.
        Ok((Pid::from_raw(pid), unsafe { OwnedFd::from_raw_fd(pidfd) }))
    }

    fn kill(&self, pidfd: &OwnedFd) -> Result<(), Errno> {
        // SAFETY: pidfd is a valid open pidfd; the siginfo pointer may be NULL (kernel fills it).
        errno(unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.as_raw_fd(),
                Signal::SIGKILL as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        })
        .map(drop)
    }

    fn wait(&self, pid: Pid) -> Result<ExitStatus, Errno> {
        loop {
            match waitpid(pid, None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(ExitStatus::Exited(code)),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(ExitStatus::Signaled(sig as i32)),
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn set_parent_death_signal(&self) -> Result<(), Errno> {
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
    }

    fn dup2(&self, old: RawFd, new: RawFd) -> Result<(), Errno> {
        // SAFETY: plain fd syscall; dup2 onto 0/1/2 in the child is its purpose.
        Errno::result(unsafe { libc::dup2(old, new) }).map(drop)
    }

    fn close_fds_except(&self, keep: RawFd) -> Result<(), Errno> {
        let keep = libc::c_uint::try_from(keep).map_err(|_| Errno::EBADF)?;
        // SAFETY: close_range takes integers only. Closing fds the builder's other threads use is
        // fine: this is the child's own copy of the fd table.
        unsafe {
            if keep > 3 {
                errno(libc::syscall(libc::SYS_close_range, 3u32, keep - 1, 0u32))?;
            }
            errno(libc::syscall(
                libc::SYS_close_range,
                keep + 1,
                u32::MAX,
                0u32,
            ))?;
        }
        Ok(())
    }

    fn close(&self, fd: RawFd) {
        // SAFETY: closing an fd the child opened itself and no longer uses.
        unsafe { libc::close(fd) };
    }

    fn umask(&self, mask: u32) {
        nix::sys::stat::umask(Mode::from_bits_truncate(mask));
    }

    fn mount(
        &self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: MsFlags,
        data: Option<&CStr>,
    ) -> Result<(), Errno> {
        mount(source, target, fstype, flags, data)
    }

    fn umount2(&self, target: &CStr, flags: MntFlags) -> Result<(), Errno> {
        umount2(target, flags)
    }

    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> Result<(), Errno> {
        nix::unistd::pivot_root(new_root, put_old)
    }

    fn open_dir(&self, path: &CStr) -> Result<RawFd, Errno> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(into_raw(fd))
    }

    fn open_rdwr(&self, path: &CStr) -> Result<RawFd, Errno> {
        let fd = nix::fcntl::open(path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())?;
        Ok(into_raw(fd))
    }

    fn fchdir(&self, fd: RawFd) -> Result<(), Errno> {
        // SAFETY: plain fd syscall on a directory fd the child opened.
        Errno::result(unsafe { libc::fchdir(fd) }).map(drop)
    }

    fn chdir(&self, path: &CStr) -> Result<(), Errno> {
        nix::unistd::chdir(path)
    }

    fn mkdir(&self, path: &CStr, mode: u32) -> Result<(), Errno> {
        nix::unistd::mkdir(path, Mode::from_bits_truncate(mode))
    }

    fn symlink(&self, target: &CStr, link: &CStr) -> Result<(), Errno> {
        nix::unistd::symlinkat(target, nix::fcntl::AT_FDCWD, link)
    }

    fn mknod(&self, path: &CStr, kind: SFlag, mode: u32, dev: u64) -> Result<(), Errno> {
        mknod(path, kind, Mode::from_bits_truncate(mode), dev)
    }

    fn verify_beneath(&self, root: &CStr, rel: &CStr, kind: TargetKind) -> Result<(), Errno> {
        let root = nix::fcntl::open(
            root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_BENEATH);
        let target = openat2(&root, rel, how)?;
        let st = fstat(&target)?;
        match kind {
            TargetKind::Dir if is_type(&st, SFlag::S_IFDIR) => Ok(()),
            TargetKind::File if is_type(&st, SFlag::S_IFREG) => Ok(()),
            TargetKind::Dir => Err(Errno::ENOTDIR),
            TargetKind::File => Err(Errno::EISDIR),
        }
    }

    fn mask_path(&self, path: &CStr, dev_null: &CStr) -> Result<(), Errno> {
        match stat(path) {
            Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(e),
            Ok(st) if is_type(&st, SFlag::S_IFDIR) => mount(
                Some(c"tmpfs"),
                path,
                Some(c"tmpfs"),
                MsFlags::MS_RDONLY,
                Some(c"size=0"),
            ),
            Ok(_) => mount(
                Some(dev_null),
                path,
                None::<&CStr>,
                MsFlags::MS_BIND,
                None::<&CStr>,
            ),
        }
    }

    fn readonly_path(&self, path: &CStr) -> Result<(), Errno> {
        match mount(
            Some(path),
            path,
            None::<&CStr>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&CStr>,
        ) {
            Err(Errno::ENOENT) => return Ok(()),
            other => other?,
        }
        // A bind remount replaces the per-mount flags, so procfs' nosuid/nodev/noexec are restated.
        let flags = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC;
        mount(None::<&CStr>, path, None::<&CStr>, flags, None::<&CStr>)
    }

    fn getcwd(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        // The raw syscall, not glibc's wrapper: glibc turns "(unreachable)…" into ENOENT, and we
        // want to see it. SAFETY: the kernel writes at most buf.len() bytes into buf.
        let len = errno(unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) })?;
        // The returned length includes the NUL.
        Ok(usize::try_from(len).map_or(0, |l| l.saturating_sub(1)))
    }

    fn sethostname(&self, name: &CStr) -> Result<(), Errno> {
        let bytes = name.to_bytes();
        // SAFETY: pointer and length describe `bytes`, which outlives the call.
        Errno::result(unsafe { libc::sethostname(bytes.as_ptr().cast(), bytes.len()) }).map(drop)
    }

    fn loopback_up(&self) -> Result<(), Errno> {
        // SAFETY: socket() takes integers; the returned fd is owned right away.
        let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        let sock = Errno::result(sock)?;
        // SAFETY: the kernel just returned this fd; nothing else owns it.
        let sock = unsafe { OwnedFd::from_raw_fd(sock) };
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write an ifreq, which `req` is.
        unsafe {
            Errno::result(libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req))?;
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            Errno::result(libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req))?;
        }
        Ok(())
    }

    fn setrlimit(&self, resource: i32, soft: u64, hard: u64) -> Result<(), Errno> {
        let limit = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: `limit` is a valid rlimit for the duration of the call.
        Errno::result(unsafe { libc::setrlimit(resource as libc::__rlimit_resource_t, &limit) })
            .map(drop)
    }

    fn drop_bounding_caps(&self, keep: u64, last_cap: u32) -> Result<(), Errno> {
        for cap in 0..=last_cap.min(63) {
            if keep & (1 << cap) != 0 {
                continue;
            }
            // SAFETY: PR_CAPBSET_DROP takes a capability number; no pointers.
            let ret =
                unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
            match Errno::result(ret) {
                Ok(_) | Err(Errno::EINVAL) => {} // a capability this kernel does not have
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    // The three credential calls are raw syscalls on purpose. glibc's wrappers (and nix, which
    // calls them) apply the change to every thread glibc believes the process has (`__nptl_setxid`:
    // signal each thread, wait on a futex, under the stack-cache lock). After a raw clone(2) the
    // child inherits the parent's thread list but none of its threads, and possibly that lock held
    // mid-pthread_create: the child then hangs forever. Found as an intermittent 10 s hang in the
    // sandbox tests; the raw syscalls change only the calling thread, which is the whole child.

    fn setgroups(&self, gids: &[u32]) -> Result<(), Errno> {
        // SAFETY: gid_t is u32 on Linux; pointer and length describe `gids`.
        errno(unsafe { libc::syscall(libc::SYS_setgroups, gids.len(), gids.as_ptr()) }).map(drop)
    }

    fn setresgid(&self, gid: u32) -> Result<(), Errno> {
        // SAFETY: integer arguments only.
        errno(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) }).map(drop)
    }

    fn setresuid(&self, uid: u32) -> Result<(), Errno> {
        // SAFETY: integer arguments only.
        errno(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) }).map(drop)
    }

    fn is_executable_file(&self, path: &CStr) -> bool {
        stat(path).is_ok_and(|st| is_type(&st, SFlag::S_IFREG) && st.st_mode & 0o111 != 0)
    }

    fn verify_exec_chain(&self, path: &CStr) -> Result<(), Errno> {
        let mut current = [0u8; PATH_MAX];
        let mut len = copy_path(&mut current, path.to_bytes())?;
        for _ in 0..MAX_INTERPRETER_DEPTH {
            let fd = open_no_magic(&current[..=len])?;
            let mut head = [0u8; BINPRM_BUF_SIZE];
            let n = pread(&fd, &mut head, 0).unwrap_or(0);
            let head = &head[..n];
            if let Some(interp) = shebang_interpreter(head) {
                len = copy_path(&mut current, interp)?;
                continue;
            }
            if let Some(layout) = elf_layout(head) {
                return verify_elf_interpreter(&fd, &layout);
            }
            return Ok(());
        }
        // Deeper than the kernel allows: execve itself fails with ELOOP.
        Ok(())
    }

    fn execve(&self, path: &CStr, argv: &CStringArray, envp: &CStringArray) -> Result<(), Errno> {
        // SAFETY: both arrays are NULL-terminated arrays of pointers to NUL-terminated strings
        // owned by `argv`/`envp`, which outlive the call (on success the process image is gone).
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        Err(Errno::last())
    }
}

fn into_raw(fd: OwnedFd) -> RawFd {
    use std::os::fd::IntoRawFd;
    fd.into_raw_fd()
}

/// Copies `src` plus a NUL into `buf`; the length without the NUL.
fn copy_path(buf: &mut [u8; PATH_MAX], src: &[u8]) -> Result<usize, Errno> {
    if src.len() >= PATH_MAX || src.contains(&0) {
        return Err(Errno::ENAMETOOLONG);
    }
    buf[..src.len()].copy_from_slice(src);
    buf[src.len()] = 0;
    Ok(src.len())
}

/// Opens `path` (NUL-terminated) for reading, refusing procfs magic links anywhere in its
/// resolution. `ELOOP` means a magic link; a plain symlink loop is reported as success so that
/// `execve` fails with its own, accurate error.
fn open_no_magic(path_with_nul: &[u8]) -> Result<OwnedFd, Errno> {
    let path = CStr::from_bytes_with_nul(path_with_nul).map_err(|_| Errno::EINVAL)?;
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK;
    let how = OpenHow::new()
        .flags(flags)
        .resolve(ResolveFlag::RESOLVE_NO_MAGICLINKS);
    match openat2(nix::fcntl::AT_FDCWD, path, how) {
        Err(Errno::ELOOP) => {
            // Same lookup without the restriction: if that works, the ELOOP was a magic link.
            let plain = OpenHow::new().flags(OFlag::O_PATH | OFlag::O_CLOEXEC);
            match openat2(nix::fcntl::AT_FDCWD, path, plain) {
                Ok(_) => Err(Errno::ELOOP),
                Err(_) => Err(Errno::ENOEXEC),
            }
        }
        other => other,
    }
}

fn pread(fd: &OwnedFd, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
    let offset = libc::off_t::try_from(offset).map_err(|_| Errno::EINVAL)?;
    // SAFETY: the kernel writes at most buf.len() bytes into buf.
    let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), offset) };
    usize::try_from(Errno::result(n)?).map_err(|_| Errno::EIO)
}

/// Checks the dynamic loader an ELF file names (`PT_INTERP`), which the kernel opens by path in
/// the container's root just like a `#!` interpreter.
fn verify_elf_interpreter(
    fd: &OwnedFd,
    layout: &super::exec_check::ElfLayout,
) -> Result<(), Errno> {
    let entsize = usize::from(layout.phentsize);
    let mut phdr = [0u8; 64];
    if entsize == 0 || entsize > phdr.len() {
        return Ok(()); // not loadable; execve will say so
    }
    for i in 0..u64::from(layout.phnum) {
        let at = layout.phoff.saturating_add(i * entsize as u64);
        if pread(fd, &mut phdr[..entsize], at)? < entsize {
            return Ok(());
        }
        let Some((offset, size)) = interp_segment(layout, &phdr[..entsize]) else {
            continue;
        };
        let mut interp = [0u8; PATH_MAX];
        let size = usize::try_from(size).map_err(|_| Errno::ENOEXEC)?;
        if size == 0 || size >= PATH_MAX {
            return Ok(());
        }
        let n = pread(fd, &mut interp[..size], offset)?;
        // The segment holds the path with its NUL.
        let end = interp[..n].iter().position(|b| *b == 0).unwrap_or(n);
        let mut path = [0u8; PATH_MAX];
        let len = copy_path(&mut path, &interp[..end])?;
        drop(open_no_magic(&path[..=len])?);
        return Ok(());
    }
    Ok(())
}
